// Query-string parsing shared by the report endpoints: lists of integers, buffer types, the
// report filter and listing limit. Bad values are 400s, with the reason.
import { BUFFER_TYPE_NAMES } from '../protocol/constants.js';
import type { Checkpoints, Mark } from '../state/marks.js';
import type { ReportFilter } from '../report/buffer-report.js';
import { HttpError } from './router.js';
import { markJson } from '../report/json-report.js';

/** Comma-separated integers from a query parameter ("0,1,3"). */
export function intList(url: URL, name: string): number[] | undefined {
  const v = url.searchParams.get(name);
  if (v === null || v === '') return undefined;
  return v.split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n)) throw new HttpError(400, `${name}: '${s}' is not an integer`);
    return n;
  });
}

/** "DRAM,L1" or "0,1" → buffer type codes. */
export function parseTypes(v: string | null | undefined): number[] | undefined {
  if (!v) return undefined;
  return v.split(',').map((s) => {
    const t = s.trim().toUpperCase();
    const i = BUFFER_TYPE_NAMES.indexOf(t);
    if (i >= 0) return i;
    const n = Number(t);
    if (Number.isInteger(n) && n >= 0 && n < BUFFER_TYPE_NAMES.length) return n;
    throw new HttpError(400, `unknown buffer type '${s}' (one of ${BUFFER_TYPE_NAMES.join(', ')})`);
  });
}

/** An integer parameter within [min, max]; `dflt` when absent. */
export function intParam(
  url: URL,
  name: string,
  range: { dflt: number; min: number; max: number },
): number {
  const v = url.searchParams.get(name);
  if (v === null || v === '') return range.dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < range.min || n > range.max)
    throw new HttpError(400, `${name} must be an integer from ${range.min} to ${range.max}`);
  return n;
}

/**
 * `state`: live=1 → live buffers only; exited=1 (or its old name reaped=1) → what exited
 * processes left behind only; neither → both.
 */
export function stateParam(url: URL): ReportFilter['state'] {
  const live = url.searchParams.get('live') === '1';
  const exited = url.searchParams.get('exited') === '1' || url.searchParams.get('reaped') === '1';
  if (live && exited) throw new HttpError(400, 'live=1 and exited=1 exclude each other');
  return live ? 'live' : exited ? 'exited' : 'all';
}

/** `tree=PID` → that PID and its descendants (`expand`), added to any `pid=` list. */
export function treeParam(
  url: URL,
  pids: number[] | undefined,
  expand?: (root: number) => number[],
): number[] | undefined {
  const v = url.searchParams.get('tree');
  if (v === null || v === '') return pids;
  const root = Number(v);
  if (!Number.isInteger(root) || root <= 0)
    throw new HttpError(400, `tree: '${v}' is not a process id`);
  return [...(pids ?? []), ...(expand ? expand(root) : [root])];
}

/** The mark named `name`: 400 without a name, 404 when there is none (`what` needs it). */
export function markNamed(marks: Checkpoints, name: string | null, what: string): Mark {
  if (!name) throw new HttpError(400, `${what} needs a mark name`);
  try {
    return marks.get(name);
  } catch (e) {
    throw new HttpError(404, (e as Error).message);
  }
}

/**
 * `since=MARK`: only buffers born after the mark (and only its process's, for a per-process mark),
 * as `dump --since MARK` lists them.
 */
export function sinceParam(url: URL, filter: ReportFilter, marks: Checkpoints): void {
  const name = url.searchParams.get('since');
  if (!name) return;
  const m = markNamed(marks, name, 'since');
  filter.bornFromMs = Math.max(filter.bornFromMs ?? 0, m.cutMs);
  filter.since = markJson(m);
  if (m.pid !== null && !filter.pids?.length) filter.pids = [m.pid];
}

/** Filter and listing limit from the query string, shared by every report endpoint. */
export function reportQuery(
  url: URL,
  marks?: Checkpoints,
  expandTree?: (root: number) => number[],
): { filter: ReportFilter; limit: number; all: boolean } {
  const filter: ReportFilter = {
    devices: intList(url, 'device'),
    pids: treeParam(url, intList(url, 'pid'), expandTree),
    types: parseTypes(url.searchParams.get('type')),
    state: stateParam(url),
  };
  if (marks) sinceParam(url, filter, marks);
  const all = url.searchParams.get('all') === '1';
  const limitText = url.searchParams.get('limit');
  const limit = all ? Infinity : limitText === null ? 10 : Number(limitText);
  if (!(limit >= 0)) throw new HttpError(400, `limit must be a number ≥ 0`);
  return { filter, limit, all };
}
