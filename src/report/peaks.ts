// Peak device memory (high-water marks) as data and as text: per device and buffer type, the
// highest level since the server started, since the last `reset-peaks`, or since a mark, beside
// the level now — PyTorch's max_memory_allocated for a whole machine.
import { KINDS, type Tracker } from '../state/tracker.js';
import type { Mark } from '../state/marks.js';
import { bytesByKind } from './stats.js';
import { formatBytes, isoTime } from './format.js';
import type { DeviceBytes, PeaksResponse } from './types.js';
import { SCHEMA_VERSION } from './types.js';

const KIND_NAMES = Object.keys(bytesByKind(() => 0)) as (keyof DeviceBytes)[];

export function buildPeaks(tr: Tracker, mark: Mark | null): PeaksResponse {
  const since = mark ? tr.peaks.since(mark.cutMs) : null;
  const peakOf = since
    ? (slot: number) => since.peaks[slot]
    : (slot: number) => tr.peaks.overallPeak(slot);
  const devices: PeaksResponse['devices'] = [];
  for (let d = 0; d <= tr.maxDeviceSeen; d++) {
    if (!tr.usageSeen(d)) continue;
    devices.push({
      device: d,
      peak_bytes: bytesByKind((k) => peakOf(d * KINDS + k)),
      bytes: bytesByKind((k) => tr.deviceBytes(d, k)),
    });
  }
  const fromMs = mark ? mark.atMs : tr.peaks.overallSinceMs;
  return {
    schema_version: SCHEMA_VERSION,
    since: {
      what: mark ? 'mark' : 'start_or_reset',
      mark: mark ? mark.name : null,
      time: isoTime(fromMs),
      time_ms: fromMs,
    },
    complete: since ? since.complete : true,
    devices,
  };
}

const row = (kind: string, now: string, peak: string) =>
  `  ${kind.padEnd(14)}${now.padStart(12)}${peak.padStart(12)}`;

/** One table per device: each memory kind's level now and its peak. */
export function formatPeaks(r: PeaksResponse): string {
  const since = r.since.mark
    ? `mark '${r.since.mark}' (${r.since.time})`
    : `${r.since.time} (server start or the last reset-peaks)`;
  const out = [`Peak device memory since ${since}`];
  if (!r.complete)
    out.push('note: the mark is older than this server process: peaks count from its start');
  if (r.devices.length === 0) out.push('', 'no device has reported anything');
  for (const d of r.devices) {
    out.push('', `Device ${d.device}`, row('type', 'now', 'peak'));
    for (const k of KIND_NAMES) {
      if (d.peak_bytes[k] === 0 && d.bytes[k] === 0) continue;
      out.push(row(k, formatBytes(d.bytes[k]), formatBytes(d.peak_bytes[k])));
    }
  }
  return out.join('\n') + '\n';
}
