// The JSON form of the remaining-buffers report (documented in docs/json.md). Exact integer bytes;
// addresses as hex strings because they are 64-bit.
import type { ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { Tracker } from '../state/tracker.js';
import { bufferRow, matcher, REPORT_SCHEMA_VERSION, type BufferReport, type ReportFilter } from './buffer-report.js';

export function reportJson(r: BufferReport, filter: ReportFilter, limit: number, extra: Record<string, unknown> = {}) {
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
 * Streams the report with every matching buffer in a flat `buffers` array. Reads a snapshot of the
 * table in chunks, yielding to the event loop between them (ingest never waits for a slow reader).
 */
export async function streamReportWithAllBuffers(res: ServerResponse, tr: Tracker, head: object, filter: ReportFilter): Promise<void> {
  const snap = tr.buffers.snapshot();
  const match = matcher(snap, filter);
  await new Promise((r) => setImmediate(r)); // the report head and the snapshot were one block already
  res.writeHead(200, { 'content-type': 'application/json' });
  const headText = JSON.stringify(head);
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
    if (text && !res.write(text)) await once(res, 'drain');
    else await new Promise((r) => setImmediate(r));
    if (res.destroyed) return;
  }
  res.end(']}');
}
