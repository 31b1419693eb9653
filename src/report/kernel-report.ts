// DUMP_KERNELS: the live kernels per device, by kernel type.
import { KERNEL_TYPE_NAMES } from '../protocol/constants.js';
import type { Tracker } from '../state/tracker.js';
import { formatBytes, plural } from './format.js';
import type { KernelRow } from './types.js';

export type { KernelRow };

export function listKernels(tr: Tracker): KernelRow[] {
  const t = tr.kernels;
  const rows: KernelRow[] = [];
  for (let e = 0; e < t.count; e++) {
    rows.push({
      device: t.device(e),
      kernel_id: '0x' + t.idHex(e),
      size: t.size(e),
      kernel_type: KERNEL_TYPE_NAMES[t.type(e)] ?? String(t.type(e)),
      pid: t.pid(e),
    });
  }
  return rows.sort((a, b) => a.device - b.device || b.size - a.size);
}

/** DUMP_KERNELS's report of the tracker's kernels (printed by the server, sent to the CLI). */
export function formatKernelReport(tr: Tracker, limit = 20): string {
  return renderKernelReport(listKernels(tr), limit);
}

/** The kernel report of `rows` (sorted as listKernels sorts them), `limit` listed per type. */
export function renderKernelReport(rows: readonly KernelRow[], limit = 20): string {
  const out = [
    '╔══════════════════════════════════════════════════════════════╗',
    '║           LOADED KERNELS                                    ║',
    '╚══════════════════════════════════════════════════════════════╝',
    '',
  ];
  if (rows.length === 0) out.push('No kernels loaded.', '');
  const devices = [...new Set(rows.map((r) => r.device))];
  for (const d of devices) {
    out.push(`Device ${d}:`);
    for (const kt of KERNEL_TYPE_NAMES) {
      const ks = rows.filter((r) => r.device === d && r.kernel_type === kt);
      if (!ks.length) continue;
      const bytes = ks.reduce((s, r) => s + r.size, 0);
      out.push(`  ${kt}: ${plural(ks.length, 'kernel')}, ${formatBytes(bytes)} total`);
      for (const k of ks.slice(0, limit))
        out.push(`    - Kernel ${k.kernel_id}: ${formatBytes(k.size)} (PID ${k.pid})`);
      if (ks.length > limit) out.push(`    ... and ${ks.length - limit} more`);
    }
    out.push('');
  }
  out.push(`Total loaded kernels: ${rows.length}`);
  return out.join('\n') + '\n';
}
