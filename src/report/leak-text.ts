// Text views of leak analysis: marks, diff between marks, the CI check and the classes of the
// remaining buffers. Pure functions of the JSON shapes in types.ts (the CLI prints them; the
// server sends renderClassified() for /v1/classify?format=text).
import { clockTime, formatBytes, plural } from './format.js';
import { noteLines, ownerNote } from './text-report.js';
import type {
  BufferRow,
  CheckResult,
  ClassifyResponse,
  DiffResponse,
  MarkJson,
  MarksResponse,
} from './types.js';

/** Size groups listed per interval of a diff. */
const DIFF_GROUPS_LISTED = 20;

/** `ttalloc mark NAME`. */
export function renderMark(m: MarkJson): string {
  return `mark '${m.name}' set at ${m.time}${m.pid ? ` for pid ${m.pid}` : ''}\n`;
}

export function renderUnmark(m: MarkJson): string {
  const forPid = m.pid ? ` for pid ${m.pid}` : '';
  return `mark '${m.name}' deleted (it was set at ${m.time}${forPid})\n`;
}

/** `ttalloc marks`, oldest first. */
export function renderMarks(r: MarksResponse): string {
  if (!r.marks.length) return 'no marks (ttalloc mark NAME sets one)\n';
  return r.marks.map((m) => `${m.time}  ${m.name}${m.pid ? `  (pid ${m.pid})` : ''}\n`).join('');
}

/** `ttalloc diff A [B]`: per interval its size groups, then what accumulates across runs. */
export function renderDiff(r: DiffResponse): string {
  const out = [
    `Still alive, born between '${r.from}' and '${r.to}': ` +
      `${r.buffers} buffers, ${formatBytes(r.bytes)}`,
  ];
  for (const iv of r.intervals) {
    out.push('', `${iv.from} → ${iv.to}: +${iv.buffers} buffers, +${formatBytes(iv.bytes)}`);
    for (const g of iv.groups.slice(0, DIFF_GROUPS_LISTED))
      out.push(`  Device ${g.device} ${g.type}: ${g.count} × ${formatBytes(g.size)}`);
    if (iv.groups.length > DIFF_GROUPS_LISTED)
      out.push(`  ... and ${iv.groups.length - DIFF_GROUPS_LISTED} more groups`);
  }
  out.push('');
  if (r.accumulating.length) {
    out.push('Accumulating across runs (likely leaks):');
    for (const a of r.accumulating) out.push(`  ${a.text}`);
  } else
    out.push(
      r.intervals.length > 1
        ? 'No buffer pattern accumulates across the runs.'
        : 'Mark more runs to detect accumulation (ttalloc mark run-2 …).',
    );
  return out.join('\n') + '\n';
}

/** A buffer as the check and the classes list it (a left-behind one with its exit time). */
function bufferLine(b: BufferRow): string {
  return (
    `    - Device ${b.device} ${b.type} Buffer ${b.address}: ${formatBytes(b.size)} ` +
    `(${ownerNote(b)})`
  );
}

/** `ttalloc check`: the verdict line, and on a leak the offenders. */
export function renderCheck(r: CheckResult): string {
  const sup = r.suppressed_buffers ? ` (${r.suppressed_buffers} suppressed)` : '';
  const exited = r.exited_buffers
    ? `, ${r.exited_buffers} of them left behind by processes that exited`
    : '';
  const verdict =
    `ttalloc check: ${r.ok ? 'OK' : 'LEAK'} since '${r.since}': ` +
    `${r.leaked_buffers} buffers, ${r.leaked_bytes} bytes remain${exited} ` +
    `(budget ${r.max_bytes})${sup}`;
  if (r.ok) return verdict + '\n';
  // A buffer's name and stack trace (648-byte clients) under its line: where the leak was made.
  const out = [verdict, ...r.buffers.flatMap((b) => [bufferLine(b), ...noteLines(b)])];
  if (r.leaked_buffers > r.buffers.length)
    out.push(`    ... and ${r.leaked_buffers - r.buffers.length} more`);
  out.push('', r.summary);
  return out.join('\n') + '\n';
}

/** `ttalloc leaks`: the remaining buffers by class, with the reason for each. */
export function renderClassified(r: ClassifyResponse): string {
  const out = ['Remaining buffers by class (rules: docs/leak-analysis.md):', ''];
  for (const g of r.classes) {
    if (!g.count) continue;
    out.push(
      `${g.label.toUpperCase()}: ${plural(g.count, 'buffer')}, ` +
        `${formatBytes(g.bytes)} total — ${g.hint}`,
    );
    for (const p of g.processes ?? [])
      out.push(
        `    - PID ${p.pid} (exited ${clockTime(p.exited_at_ms)}): ` +
          `${plural(p.buffers, 'buffer')}, ` +
          `${formatBytes(p.bytes)} — ${p.reason}`,
      );
    if (g.more_processes) out.push(`    ... and ${plural(g.more_processes, 'more process')}`);
    for (const b of g.buffers) out.push(`${bufferLine(b)} — ${b.reason}`, ...noteLines(b));
    // Without per-buffer records, the per-process lines above already account for every buffer.
    if (g.more && (g.buffers.length || !g.processes?.length))
      out.push(`    ... and ${g.more} more`);
    out.push('');
  }
  const count = (c: string) => r.classes.find((g) => g.class === c)?.count ?? 0;
  const left = count('left_behind');
  const live = r.classes.reduce((n, g) => n + g.count, 0) - left;
  out.push(
    left
      ? `Total remaining buffers: ${live} in running processes, ` +
          `${left} left behind by exited processes`
      : `Total remaining buffers: ${live}`,
  );
  return out.join('\n') + '\n';
}
