// DUMP_KERNELS: the live kernels per device, by kernel type.
import { KERNEL_TYPE_NAMES } from '../protocol/constants.js';
import type { Tracker } from '../state/tracker.js';
import { formatKB, formatMB } from './format.js';

export interface KernelRow {
  device: number;
  kernelId: string;
  size: number;
  kernelType: string;
  pid: number;
}

export function listKernels(tr: Tracker): KernelRow[] {
  const t = tr.kernels,
    rows: KernelRow[] = [];
  for (let e = 0; e < t.count; e++) {
    rows.push({
      device: t.device(e),
      kernelId: '0x' + t.idHex(e),
      size: t.size(e),
      kernelType: KERNEL_TYPE_NAMES[t.type(e)] ?? String(t.type(e)),
      pid: t.pid(e),
    });
  }
  return rows.sort((a, b) => a.device - b.device || b.size - a.size);
}

export function formatKernelReport(tr: Tracker, limit = 20): string {
  const rows = listKernels(tr);
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
      const ks = rows.filter((r) => r.device === d && r.kernelType === kt);
      if (!ks.length) continue;
      const bytes = ks.reduce((s, r) => s + r.size, 0);
      out.push(
        `  ${kt}: ${ks.length} kernel${ks.length === 1 ? '' : 's'}, ${formatMB(bytes)} MB total`,
      );
      for (const k of ks.slice(0, limit))
        out.push(`    - Kernel ${k.kernelId}: ${formatKB(k.size)} (PID ${k.pid})`);
      if (ks.length > limit) out.push(`    ... and ${ks.length - limit} more`);
    }
    out.push('');
  }
  out.push(`Total loaded kernels: ${rows.length}`);
  return out.join('\n') + '\n';
}
