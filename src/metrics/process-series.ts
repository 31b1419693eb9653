// Per-process series, bounded. A PID label makes a new series for every process, and a host
// running thousands of short test processes would make Prometheus keep thousands of series: so
// only the `top` largest holders get their own series and the rest are summed into one
// pid="other" series, which keeps every per-device total exact (the per-process series still add
// up to ttalloc_device_used_bytes).
import { NUM_BUFFER_TYPES } from '../protocol/constants.js';
import { KINDS, KIND_KERNEL } from '../state/tracker.js';
import type { ProcessStats } from '../state/tracker.js';

/** The pid (and command) label of the sum of the processes beyond the top N. */
export const OTHER_PROCESSES = 'other';
/** Processes with their own series unless `--metrics-top-processes` says otherwise. */
export const DEFAULT_TOP_PROCESSES = 10;

/** The process owns a buffer, CB or kernel on device `d`. */
export function ownsOn(s: ProcessStats, d: number): boolean {
  for (let k = 0; k <= KIND_KERNEL; k++) if (s.counts[d * KINDS + k] > 0) return true;
  return false;
}
export function bytesOn(s: ProcessStats, d: number, kinds: readonly number[]): number {
  let v = 0;
  for (const k of kinds) v += s.bytes[d * KINDS + k];
  return v;
}
/** Live buffers of a process over every device and buffer type. */
export function buffersOf(s: ProcessStats): number {
  let n = 0;
  for (let d = 0; d < s.devices; d++)
    for (let k = 0; k < NUM_BUFFER_TYPES; k++) n += s.counts[d * KINDS + k];
  return n;
}

/** Bytes a process owns over every device and the given kinds. */
export function processBytes(s: ProcessStats, kinds: readonly number[]): number {
  let v = 0;
  for (let d = 0; d < s.devices; d++) v += bytesOn(s, d, kinds);
  return v;
}

/**
 * Live processes split into the `top` largest by bytes over `kinds` (ties: lower PID first, so
 * the choice is stable between scrapes) and the rest.
 */
export function splitTopProcesses(
  all: Iterable<ProcessStats>,
  top: number,
  kinds: readonly number[],
): { top: ProcessStats[]; rest: ProcessStats[] } {
  const live: { s: ProcessStats; bytes: number }[] = [];
  for (const s of all) if (s.live > 0) live.push({ s, bytes: processBytes(s, kinds) });
  live.sort((a, b) => b.bytes - a.bytes || a.s.pid - b.s.pid);
  return {
    top: live.slice(0, top).map((e) => e.s),
    rest: live.slice(top).map((e) => e.s),
  };
}
