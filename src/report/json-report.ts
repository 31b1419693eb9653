// The JSON form of the remaining-buffers report (BufferReportJson in types.ts). Exact integer
// bytes; addresses as hex strings because they are 64-bit.
import type { ServerResponse } from 'node:http';
import type { Tracker } from '../state/tracker.js';
import type { BufferReportJson } from './types.js';
import {
  BufferReportBuilder,
  bufferRow,
  matcher,
  REPORT_SCHEMA_VERSION,
  type BufferReport,
  type ReportFilter,
} from './buffer-report.js';

export function reportJson(
  r: BufferReport,
  filter: ReportFilter,
  limit: number,
  extra: Record<string, unknown> = {},
): BufferReportJson {
  return {
    schema_version: REPORT_SCHEMA_VERSION,
    kind: 'remaining_buffers',
    generated_at: new Date().toISOString(),
    server_pid: process.pid,
    filter,
    listed_per_type: limit === Infinity ? 'all' : limit,
    total_buffers: r.totalBuffers,
    total_bytes: r.totalBytes,
    ...extra,
    devices: r.devices,
  };
}

// Rows per slice between yields: ~2k rows serialise in a few ms, so ingest never waits long
// (16k rows held the loop ~40 ms under load).
const CHUNK = 2048;
/**
 * Time per slice while the report head is built from the snapshot (checked every SCAN_STEP rows).
 */
const SCAN_MS = 4;
const SCAN_STEP = 4096;

const nextTurn = () => new Promise<void>((r) => setImmediate(r));

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
  onReport?: (r: BufferReport) => void,
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
function drainedOrGone(res: ServerResponse): Promise<void> {
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
  onReport?: (r: BufferReport) => void,
): Promise<void> {
  const snap = tr.buffers.snapshot();
  const builder = new BufferReportBuilder(tr, filter, 10, snap);
  for (let start = 0; start < snap.count;) {
    await nextTurn();
    if (res.destroyed) return;
    // By time rather than rows: the first slices run before the code is optimised.
    const t0 = performance.now();
    do {
      const end = Math.min(snap.count, start + SCAN_STEP);
      builder.add(start, end);
      start = end;
    } while (start < snap.count && performance.now() - t0 < SCAN_MS);
  }
  const r = builder.finish();
  onReport?.(r);
  const match = matcher(snap, filter);
  res.writeHead(200, { 'content-type': 'application/json' });
  const headText = JSON.stringify(reportJson(r, filter, Infinity));
  res.write(headText.slice(0, -1) + ',"buffers":[');
  let first = true;
  for (let start = 0; start < snap.count; start += CHUNK) {
    const end = Math.min(snap.count, start + CHUNK);
    let text = '';
    for (let e = start; e < end; e++) {
      if (!match(e)) continue;
      text += (first ? '' : ',') + JSON.stringify(bufferRow(tr, snap, e));
      first = false;
    }
    if (text && !res.write(text))
      await drainedOrGone(res); // a client that hangs up mid-dump must not hold the copy forever
    else await nextTurn();
    if (res.destroyed) return;
  }
  res.end(']}');
}
