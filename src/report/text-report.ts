// The seed's text layout, exactly (the README's "Finding leaks: the four-step workflow" shows it),
// for the live buffers and, after them, for what exited processes left behind.
import { clockTime, formatKB, formatMB, plural } from './format.js';
import {
  buildRemaining,
  type BufferReport,
  type ExitedReport,
  type Remaining,
} from './buffer-report.js';
import type { Tracker } from '../state/tracker.js';
import type { BufferRow, ReportFilter } from './types.js';

const TITLE = [
  '╔══════════════════════════════════════════════════════════════╗',
  '║           REMAINING ALLOCATED BUFFERS                       ║',
  '╚══════════════════════════════════════════════════════════════╝',
];

/** One part in the seed's layout: Device → type → buffer lines (`verbose`: and their notes). */
function deviceLines(r: BufferReport, verbose: boolean): string[] {
  const out: string[] = [];
  for (const d of r.devices) {
    out.push(`Device ${d.device}:`);
    for (const g of d.types) {
      out.push(`  ${g.type}: ${plural(g.count, 'buffer')}, ${formatMB(g.bytes)} MB total`);
      for (const b of g.buffers) {
        out.push(bufferLine(b));
        if (verbose) out.push(...noteLines(b));
      }
      if (g.more > 0 && g.buffers.length > 0) out.push(`    ... and ${g.more} more`);
    }
    out.push('');
  }
  return out;
}

/** "    - Buffer 0x40000000: 12.0 KB (PID 12345, ref_count=1)". */
function bufferLine(b: BufferRow): string {
  return `    - Buffer ${b.address}: ${formatKB(b.size)} (${ownerNote(b)})`;
}

/**
 * `dump --verbose`: the buffer's name and stack trace (648-byte clients), indented under its line;
 * nothing for a buffer without them.
 */
export function noteLines(b: BufferRow): string[] {
  const out: string[] = [];
  if (b.name) out.push(`        name: ${b.name}`);
  if (b.stack_trace) out.push(`        stack: ${b.stack_trace}`);
  return out;
}

/** "PID 12345, ref_count=1"; a left-behind buffer's: "PID 12345, exited 14:03:07, ref_count=1". */
export function ownerNote(b: BufferRow): string {
  const exited = b.exited_at_ms !== undefined ? `, exited ${clockTime(b.exited_at_ms)}` : '';
  return `PID ${b.pid}${exited}, ref_count=${b.ref_count}`;
}

/**
 * The report. With nothing left behind by exited processes (or `--live`), exactly the seed's
 * layout; otherwise the live part, then the left-behind part, each with its own total line, and
 * the grand total last.
 */
export function formatRemaining(r: Remaining, heading?: string, verbose = false): string {
  const out: string[] = [...TITLE, ''];
  if (heading) out.push(heading, '');
  const { live, exited } = r;
  const left = exited !== null && exited.totalBuffers > 0;
  if (live !== null && !left) {
    if (live.totalBuffers === 0) out.push(nothingLeft(live, exited), '');
    out.push(...deviceLines(live, verbose), `Total remaining buffers: ${live.totalBuffers}`);
    if (exited) out.push(...budgetNote(exited));
    return out.join('\n') + '\n';
  }
  if (live !== null) {
    out.push('Live buffers (their processes are still running):', '');
    if (live.totalBuffers === 0)
      out.push(
        live.filtered ? 'None that match the filter.' : 'None: no running process holds any.',
        '',
      );
    out.push(...deviceLines(live, verbose), `Total live buffers: ${live.totalBuffers}`, '');
  }
  if (exited !== null) {
    out.push('Left behind by processes that exited (never freed):', '');
    if (!left) out.push(exited.filtered ? 'None that match the filter.' : 'None.', '');
    out.push(...deviceLines(exited, verbose), ...exitedTotal(exited));
    out.push(...budgetNote(exited));
  }
  if (live !== null && exited !== null) {
    const all = live.totalBuffers + exited.totalBuffers;
    out.push(
      '',
      `Total remaining buffers: ${all} ` +
        `(${live.totalBuffers} live, ${exited.totalBuffers} left behind by exited processes)`,
    );
  }
  return out.join('\n') + '\n';
}

function nothingLeft(live: BufferReport, exited: ExitedReport | null): string {
  if (live.filtered) return 'No buffers remaining that match the filter.';
  if (exited === null) return 'No buffers remaining in running processes.';
  return 'No buffers remaining: every tracked allocation has been freed.';
}

/** "Total left behind by exited processes: 12" and one line per process. */
function exitedTotal(r: ExitedReport): string[] {
  const out = [`Total left behind by exited processes: ${r.totalBuffers}`];
  const listed = r.processes.slice(-EXITED_LISTED).reverse();
  for (const p of listed) {
    const cmd = p.cmdline ? ` ${shorten(p.cmdline, 60)}` : '';
    out.push(
      `  - PID ${p.pid}${cmd}: exited ${new Date(p.reapedAtMs).toISOString()}, ` +
        `${plural(p.buffers, 'buffer')}, ${formatMB(p.bytes)} MB` +
        (p.cbs || p.kernels ? `, ${p.cbs} CBs, ${p.kernels} kernels` : ''),
    );
  }
  if (r.processes.length > listed.length)
    out.push(`  ... and ${r.processes.length - listed.length} more processes`);
  return out;
}

/** Says what the left-behind budget dropped, if anything. */
function budgetNote(r: ExitedReport): string[] {
  if (r.droppedProcesses === 0 && r.droppedRecords === 0) return [];
  return [
    `(The left-behind budget of ${r.budget} records dropped ${r.droppedRecords} records ` +
      `of ${r.droppedProcesses} older exited processes; ttalloc forget clears records on purpose.)`,
  ];
}

const EXITED_LISTED = 10;

function shorten(s: string, n: number): string {
  return s.length <= n ? s : s.slice(0, n - 1) + '…';
}

/** Builds and renders the remaining-buffers report (DUMP_REMAINING, `ttalloc dump`). */
export function remainingBuffersText(tr: Tracker, filter: ReportFilter, limit: number): string {
  return formatRemaining(buildRemaining(tr, filter, limit));
}
