// The seed's text layout, exactly (the README's "Finding leaks: the four-step workflow" shows it).
import { formatKB, formatMB, plural } from './format.js';
import { buildBufferReport, type BufferReport } from './buffer-report.js';
import type { ReapedReport, Tracker } from '../state/tracker.js';
import type { ReportFilter } from './types.js';

const TITLE = [
  '╔══════════════════════════════════════════════════════════════╗',
  '║           REMAINING ALLOCATED BUFFERS                       ║',
  '╚══════════════════════════════════════════════════════════════╝',
];

/**
 * `reaped`: what processes that exited left behind. Their buffers are no longer "remaining" (the
 * server released them), but a user who dumps after the application exited must not read an
 * empty report as "no leaks": they are summarised after the seed's total line.
 */
export function formatBufferReport(
  r: BufferReport,
  heading?: string,
  reaped: readonly ReapedReport[] = [],
): string {
  const out: string[] = [...TITLE, ''];
  if (heading) out.push(heading, '');
  if (r.totalBuffers === 0) {
    out.push(
      r.filtered
        ? 'No buffers remaining that match the filter.'
        : reaped.length
          ? 'No buffers remaining in running processes.'
          : 'No buffers remaining: every tracked allocation has been freed.',
      '',
    );
  }
  for (const d of r.devices) {
    out.push(`Device ${d.device}:`);
    for (const g of d.types) {
      out.push(`  ${g.type}: ${plural(g.count, 'buffer')}, ${formatMB(g.bytes)} MB total`);
      for (const b of g.buffers) {
        out.push(
          `    - Buffer ${b.address}: ${formatKB(b.size)} (PID ${b.pid}, ref_count=${b.refCount})`,
        );
      }
      if (g.more > 0 && g.buffers.length > 0) out.push(`    ... and ${g.more} more`);
    }
    out.push('');
  }
  out.push(`Total remaining buffers: ${r.totalBuffers}`);
  if (reaped.length) out.push('', ...exitedSummary(reaped));
  return out.join('\n') + '\n';
}

const EXITED_LISTED = 10;

function exitedSummary(reaped: readonly ReapedReport[]): string[] {
  const recent = reaped.slice(-EXITED_LISTED).reverse();
  const out = [
    'Processes that exited without freeing ' +
      '(released by the server; details: dump-remaining-buffers --reaped):',
  ];
  for (const p of recent) {
    const where = Object.entries(p.byDevice)
      .map(([dev, types]) => {
        const counts = Object.entries(types).map(([t, g]) => `${t} ${g.count}`);
        return `device ${dev}: ${counts.join(', ')}`;
      })
      .join('; ');
    out.push(
      `  - PID ${p.pid}: ${plural(p.buffers, 'buffer')}, ${formatMB(p.bytes)} MB ` +
        `(${where || 'no buffers'})` +
        (p.cbs || p.kernels ? `, ${p.cbs} CBs, ${p.kernels} kernels` : ''),
    );
  }
  if (reaped.length > recent.length) out.push(`  ... and ${reaped.length - recent.length} more`);
  return out;
}

/** `dump --reaped`: what each exited process left behind, with its largest buffers. */
export function formatReapedReport(reaped: readonly ReapedReport[]): string {
  const out = [
    '╔══════════════════════════════════════════════════════════════╗',
    '║           BUFFERS LEFT BY EXITED PROCESSES                  ║',
    '╚══════════════════════════════════════════════════════════════╝',
    '',
  ];
  if (!reaped.length) out.push('No process has exited while owning buffers.', '');
  for (const p of [...reaped].reverse()) {
    const others =
      p.cbs || p.kernels
        ? `; ${p.cbs} CBs (${formatKB(p.cbBytes)}), ` +
          `${p.kernels} kernels (${formatKB(p.kernelBytes)})`
        : '';
    out.push(
      `PID ${p.pid} (released ${new Date(p.reapedAtMs).toISOString()}): ` +
        `${p.buffers} buffers, ${formatMB(p.bytes)} MB total${others}`,
    );
    for (const [dev, types] of Object.entries(p.byDevice)) {
      for (const [t, g] of Object.entries(types))
        out.push(
          `  Device ${dev} ${t}: ${plural(g.count, 'buffer')}, ${formatMB(g.bytes)} MB total`,
        );
    }
    for (const b of p.largest)
      out.push(
        `    - Buffer ${b.address} on device ${b.device}: ${formatKB(b.size)} ` +
          `(ref_count=${b.refCount})`,
      );
    out.push('');
  }
  out.push(`Total exited processes: ${reaped.length}`);
  return out.join('\n') + '\n';
}

/**
 * The remaining-buffers report as the server prints and serves it: an unfiltered one ends with
 * what exited processes left behind (a filter picks live buffers only).
 */
export function renderRemaining(r: BufferReport, tr: Tracker): string {
  return formatBufferReport(r, undefined, r.filtered ? [] : tr.reaped);
}

/** Builds and renders the remaining-buffers report (DUMP_REMAINING, `ttalloc dump`). */
export function remainingBuffersText(tr: Tracker, filter: ReportFilter, limit: number): string {
  return renderRemaining(buildBufferReport(tr, filter, limit), tr);
}
