// The JSON form of the remaining-buffers report (BufferReportJson in types.ts). Exact integer
// bytes; addresses as hex strings because they are 64-bit.
import type { ServerResponse } from 'node:http';
import type { Tracker } from '../state/tracker.js';
import type {
  BufferReportJson,
  ExitedJson,
  ExitedProcessJson,
  MarkJson,
  ReportFilterJson,
} from './types.js';
import { BUFFER_TYPE_NAMES } from '../protocol/constants.js';
import type { ReapedReport } from '../state/left-behind.js';
import type { Mark } from '../state/marks.js';
import { isoTime } from './format.js';
import {
  BufferReportBuilder,
  bufferRow,
  exitedBuilder,
  finishExited,
  matcher,
  type ExitedReport,
  type Remaining,
  type ReportFilter,
} from './buffer-report.js';
import { RowArray, type Rows } from '../state/left-behind.js';
import { ROW_WORDS } from '../state/object-table.js';
import { SCHEMA_VERSION } from './types.js';

export function reportJson(
  r: Remaining,
  filter: ReportFilter,
  limit: number,
  extra: Record<string, unknown> = {},
): BufferReportJson {
  const now = Date.now();
  const live = r.live ?? { totalBuffers: 0, totalBytes: 0, devices: [] };
  return {
    schema_version: SCHEMA_VERSION,
    kind: 'remaining_buffers',
    generated_at: isoTime(now),
    generated_at_ms: now,
    server_pid: process.pid,
    filter: filterJson(filter),
    listed_per_type: limit === Infinity ? 'all' : limit,
    total_buffers: live.totalBuffers,
    total_bytes: live.totalBytes,
    ...extra,
    devices: live.devices,
    ...(r.exited ? { exited: exitedJson(r.exited) } : {}),
  };
}

function filterJson(f: ReportFilter): ReportFilterJson {
  return {
    devices: f.devices?.length ? f.devices : null,
    pids: f.pids?.length ? f.pids : null,
    types: f.types?.length ? f.types.map((t) => BUFFER_TYPE_NAMES[t] ?? String(t)) : null,
    since: f.since ?? null,
    state: f.state ?? 'all',
  };
}

function exitedJson(x: ExitedReport): ExitedJson {
  return {
    total_buffers: x.totalBuffers,
    total_bytes: x.totalBytes,
    devices: x.devices,
    processes: x.processes.map(exitedProcessJson),
    budget_records: x.budget,
    dropped_processes: x.droppedProcesses,
    dropped_records: x.droppedRecords,
  };
}

/** An exited process's summary with ISO times (no rows). */
export function exitedProcessJson(p: ReapedReport): ExitedProcessJson {
  return {
    pid: p.pid,
    ppid: p.ppid,
    cmdline: p.cmdline,
    exited_at: isoTime(p.reapedAtMs),
    exited_at_ms: p.reapedAtMs,
    started_at: p.startMs === null ? null : isoTime(p.startMs),
    started_at_ms: p.startMs,
    buffers: p.buffers,
    bytes: p.bytes,
    cbs: p.cbs,
    cb_bytes: p.cbBytes,
    kernels: p.kernels,
    kernel_bytes: p.kernelBytes,
    by_device: p.byDevice,
    records_dropped: p.recordsDropped,
  };
}

/** A mark as replies show it: its name, time and process, not its cut (an internal). */
export function markJson(m: Mark): MarkJson {
  return { name: m.name, time: isoTime(m.atMs), time_ms: m.atMs, pid: m.pid };
}

// Rows per slice between yields: ~1k rows (~220 B of JSON each) serialise in a few ms, so ingest
// never waits long (16k rows held the loop ~40 ms under load).
const CHUNK = 1024;
/**
 * Time per slice while the report head is built from the snapshot (checked every SCAN_STEP rows).
 */
const SCAN_MS = 4;
const SCAN_STEP = 4096;

export const nextTurn = () => new Promise<void>((r) => setImmediate(r));

/**
 * Streams the report with every matching buffer in a flat `buffers` array. The only block that
 * holds the event loop is the snapshot of the table (one memcpy per page); the report head
 * (totals, per device and type, the largest of each) is then built from that snapshot in slices,
 * and the rows are serialised from it in slices, yielding to the event loop between them, so
 * ingest never waits long and never waits for a slow reader. Head and rows describe the same
 * instant. `onReport` receives the head's report before streaming starts (the server prints it).
 */
export async function streamReportWithAllBuffers(
  res: ServerResponse,
  tr: Tracker,
  filter: ReportFilter,
  onReport?: (r: Remaining) => void,
): Promise<void> {
  streaming.active++;
  try {
    await stream(res, tr, filter, onReport);
  } finally {
    streaming.active--;
  }
}

/** Full dumps being streamed now (each holds a copy of the buffer table until it ends). */
export const streaming = { active: 0 };

/** A reader that has not taken a byte for this long is cut off (its copy of the table is freed). */
const STALLED_READER_MS = 60_000;

/** Resolves when `res` can take more, or is gone; a reader stalled past the limit is cut off. */
export function drainedOrGone(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    const t = setTimeout(() => {
      res.destroy();
      done();
    }, STALLED_READER_MS);
    res.once('drain', done);
    res.once('close', done);
  });
}

async function stream(
  res: ServerResponse,
  tr: Tracker,
  filter: ReportFilter,
  onReport?: (r: Remaining) => void,
): Promise<void> {
  const state = filter.state ?? 'all';
  // One instant: the live table's copy and the left-behind list (records never change once kept).
  const snap = state === 'exited' ? null : tr.buffers.snapshot();
  const exitedList = state === 'live' ? [] : tr.reaped.slice();
  let live = null;
  if (snap) {
    const builder = new BufferReportBuilder(tr, filter, 10, snap);
    const ok = await inSlices(res, snap.count, (from, to) => builder.add(from, to));
    if (!ok) return;
    live = builder.finish();
  }
  let exited = null;
  if (state !== 'live') {
    const xb = exitedBuilder(tr, filter, 10);
    for (const p of exitedList) {
      const n = p.rows.length / ROW_WORDS;
      if (!(await inSlices(res, n, (from, to) => xb.addExited(p, from, to)))) return;
    }
    exited = finishExited(tr, xb);
  }
  const r: Remaining = { live, exited };
  onReport?.(r);
  res.writeHead(200, { 'content-type': 'application/json' });
  const headText = JSON.stringify(reportJson(r, filter, Infinity));
  res.write(headText.slice(0, -1) + ',"buffers":[');
  const out: RowStream = { filter, first: true };
  if (snap && !(await streamRows(res, snap, out))) return;
  for (const p of exitedList) {
    if (filter.pids?.length && !filter.pids.includes(p.pid)) continue;
    out.exited = p;
    if (!(await streamRows(res, new RowArray(p.rows, p.notes, tr.notes), out))) return;
  }
  res.end(']}');
}

/** Where streamed rows go: the filter, whether a row was written yet, the rows' exited process. */
interface RowStream {
  filter: ReportFilter;
  first: boolean;
  exited?: ReapedReport;
}

/**
 * Runs `add` over 0..n-1 in slices of about SCAN_MS, a turn of the event loop before each, so
 * ingest never waits long; false when the reader went away meanwhile.
 */
async function inSlices(
  res: ServerResponse,
  n: number,
  add: (from: number, to: number) => void,
): Promise<boolean> {
  for (let start = 0; start < n;) {
    await nextTurn();
    if (res.destroyed) return false;
    // By time rather than rows: the first slices run before the code is optimised.
    const t0 = performance.now();
    do {
      const end = Math.min(n, start + SCAN_STEP);
      add(start, end);
      start = end;
    } while (start < n && performance.now() - t0 < SCAN_MS);
  }
  return true;
}

/** Writes the matching rows of `t` in slices; false when the reader went away. */
async function streamRows(res: ServerResponse, t: Rows, out: RowStream): Promise<boolean> {
  const { filter, exited } = out;
  const match = matcher(t, filter);
  const now = Date.now();
  for (let start = 0; start < t.count; start += CHUNK) {
    const end = Math.min(t.count, start + CHUNK);
    let text = '';
    for (let e = start; e < end; e++) {
      if (!match(e)) continue;
      text += (out.first ? '' : ',') + JSON.stringify(bufferRow(t, e, exited, now));
      out.first = false;
    }
    if (text && !res.write(text))
      await drainedOrGone(res); // a client that hangs up mid-dump must not hold the copy forever
    else await nextTurn();
    if (res.destroyed) return false;
  }
  return true;
}
