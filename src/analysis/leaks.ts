// Leak questions over what is left — the live table and what exited processes left behind: what
// was born between checkpoints and is still held (diff, accumulation across runs), and whether
// what is left since a mark is within bounds (check).
import { BUFFER_TYPE_NAMES } from '../protocol/constants.js';
import type { Tracker } from '../state/tracker.js';
import { RowArray, type ExitedProcess, type Rows } from '../state/left-behind.js';
import { bufferRow } from '../report/buffer-report.js';
import type {
  Accumulation,
  BufferRow,
  CheckResult,
  DiffResponse,
  Interval,
  SizeGroup,
} from '../report/types.js';
import { formatBytes } from '../report/format.js';
import type { Mark } from '../state/marks.js';
import { suppressed, type Rule } from './suppressions.js';
import { SCHEMA_VERSION } from '../report/types.js';

export type { Accumulation, CheckResult, Interval, SizeGroup };

/** Rows that are left: the live table, then each exited process's records. */
interface LeftRows {
  rows: Rows;
  exited?: ExitedProcess;
}

/** The live table and the records of exited processes (only those of `pids`, when given). */
export function leftRows(tr: Tracker, pids?: ReadonlySet<number>): LeftRows[] {
  const out: LeftRows[] = [{ rows: tr.buffers }];
  for (const p of tr.reaped)
    if (p.rows.length && (!pids || pids.has(p.pid)))
      out.push({ rows: new RowArray(p.rows, p.notes, tr.notes), exited: p });
  return out;
}

/**
 * Splits the buffers still alive into the intervals between consecutive marks (the last one runs
 * to now when `toNow`), grouped by device, type and size.
 */
export function diffMarks(tr: Tracker, marks: Mark[], toNow: boolean): Interval[] {
  const bounds = marks.map((m) => m.cutMs);
  const n = toNow ? marks.length : marks.length - 1;
  const groups = Array.from({ length: n }, () => new Map<string, SizeGroup>());
  for (const src of leftRows(tr)) addToIntervals(src, marks, bounds, groups);
  return groups.map((gm, i) => {
    const gs = [...gm.values()].sort((a, b) => a.device - b.device || b.bytes - a.bytes);
    return {
      from: marks[i].name,
      to: i + 1 < marks.length ? marks[i + 1].name : 'now',
      buffers: gs.reduce((s, g) => s + g.count, 0),
      bytes: gs.reduce((s, g) => s + g.bytes, 0),
      groups: gs,
    };
  });
}

/** Adds the rows of `src` to the interval (between `bounds`) each was born in. */
function addToIntervals(
  src: LeftRows,
  marks: Mark[],
  bounds: number[],
  groups: Map<string, SizeGroup>[],
): void {
  const t = src.rows,
    n = groups.length;
  for (let e = 0; e < t.count; e++) {
    const born = t.bornMs(e);
    if (born < bounds[0]) continue;
    let i = 0;
    while (i + 1 < bounds.length && born >= bounds[i + 1]) i++;
    if (i >= n) continue;
    const m = marks[i];
    if (m.pid !== null && t.pid(e) !== m.pid) continue;
    const device = t.device(e);
    const type = BUFFER_TYPE_NAMES[t.type(e)];
    const size = t.size(e);
    const key = `${device}/${type}/${size}`;
    let g = groups[i].get(key);
    if (!g) {
      g = { device, type, size, count: 0, bytes: 0 };
      groups[i].set(key, g);
    }
    g.count++;
    g.bytes += size;
  }
}

/**
 * GET /v1/diff's reply: `marks` are the marks from the first to the last (oldest first); the last
 * interval runs to now when `toNow`.
 */
export function buildDiff(tr: Tracker, marks: Mark[], toNow: boolean): DiffResponse {
  const intervals = diffMarks(tr, marks, toNow);
  return {
    schema_version: SCHEMA_VERSION,
    from: marks[0].name,
    to: toNow ? 'now' : marks[marks.length - 1].name,
    buffers: intervals.reduce((n, i) => n + i.buffers, 0),
    bytes: intervals.reduce((n, i) => n + i.bytes, 0),
    intervals,
    accumulating: findAccumulation(intervals),
  };
}

/**
 * Buffers of the same type and size that survive in equal numbers from every interval: growth per
 * run.
 */
export function findAccumulation(intervals: Interval[]): Accumulation[] {
  if (intervals.length < 2) return [];
  const key = (g: SizeGroup) => `${g.device}/${g.type}/${g.size}/${g.count}`;
  const common = new Set(intervals[0].groups.map(key));
  for (const iv of intervals.slice(1)) {
    const here = new Set(iv.groups.map(key));
    for (const k of [...common]) if (!here.has(k)) common.delete(k);
  }
  const allDevices = [...new Set(intervals.flatMap((iv) => iv.groups.map((g) => g.device)))].sort(
    (a, b) => a - b,
  );
  const byPattern = new Map<string, Accumulation>();
  for (const k of common) {
    const [device, type, size, count] = k.split('/');
    const pk = `${type}/${size}/${count}`;
    let a = byPattern.get(pk);
    if (!a) {
      a = {
        type,
        size: Number(size),
        count_per_run: Number(count),
        devices: [],
        runs: intervals.length,
        bytes_per_run: Number(size) * Number(count),
        text: '',
      };
      byPattern.set(pk, a);
    }
    a.devices.push(Number(device));
  }
  return [...byPattern.values()]
    .map((a) => {
      const where =
        a.devices.length === allDevices.length && allDevices.length > 1
          ? `on every device (${a.devices.join(', ')})`
          : `on device${a.devices.length === 1 ? '' : 's'} ${a.devices.join(', ')}`;
      const what =
        a.count_per_run === 1 ? formatBytes(a.size) : `${a.count_per_run} × ${formatBytes(a.size)}`;
      a.text = `+${what} ${a.type} per run ${where}, ${a.runs} runs`;
      return a;
    })
    .sort((x, y) => y.bytes_per_run * y.devices.length - x.bytes_per_run * x.devices.length);
}

const CHECK_LISTED = 50;

export interface CheckOptions {
  /** Bytes allowed to remain. */
  maxBytes: number;
  /** Suppressions: a buffer any rule matches is not counted. */
  rules: readonly Rule[];
  /** The class of entry e, for rules with a class (built only when one has). */
  classOf?: (e: number) => string;
  /**
   * Only these PIDs, live or exited (a process tree: the server passes the mark's PID and its
   * descendants); default: the mark's PID, or everyone.
   */
  pids?: number[];
}

/**
 * What was born since `mark` and is still held — by a live process, or left behind by one that
 * exited since — less suppressions, against a byte budget.
 */
export function checkSinceMark(tr: Tracker, mark: Mark, o: CheckOptions): CheckResult {
  const { maxBytes, rules, classOf } = o;
  const only = o.pids ? new Set(o.pids) : mark.pid !== null ? new Set([mark.pid]) : undefined;
  const rows: BufferRow[] = [];
  const devices = new Set<number>();
  const c = { leaked: 0, bytes: 0, exited: 0, exitedBytes: 0, suppressed: 0 };
  const now = Date.now();
  for (const src of leftRows(tr, only)) {
    const t = src.rows,
      live = src.exited === undefined;
    for (let e = 0; e < t.count; e++) {
      if (t.bornMs(e) < mark.cutMs) continue;
      if (live && only && !only.has(t.pid(e))) continue;
      const b = {
        type: t.type(e),
        device: t.device(e),
        pid: t.pid(e),
        size: t.size(e),
        cls: live ? classOf && (() => classOf(e)) : () => 'left_behind',
      };
      if (suppressed(rules, b)) {
        c.suppressed++;
        continue;
      }
      c.leaked++;
      c.bytes += b.size;
      if (!live) {
        c.exited++;
        c.exitedBytes += b.size;
      }
      devices.add(b.device);
      rows.push(bufferRow(t, e, src.exited, now));
    }
  }
  rows.sort((a, b) => b.size - a.size);
  return {
    schema_version: SCHEMA_VERSION,
    since: mark.name,
    ok: c.bytes <= maxBytes,
    max_bytes: maxBytes,
    leaked_buffers: c.leaked,
    leaked_bytes: c.bytes,
    exited_buffers: c.exited,
    exited_bytes: c.exitedBytes,
    devices: [...devices].sort((a, b) => a - b),
    suppressed_buffers: c.suppressed,
    summary: leakSummary(c.bytes, c.leaked, devices.size),
    buffers: rows.slice(0, CHECK_LISTED),
  };
}

/** LeakSanitizer's last line, for ttalloc: what CI logs are grepped for. */
export function leakSummary(bytes: number, buffers: number, devices: number): string {
  return (
    `SUMMARY: ttalloc: ${bytes} byte(s) leaked in ${buffers} buffer(s) ` + `on ${devices} device(s)`
  );
}
