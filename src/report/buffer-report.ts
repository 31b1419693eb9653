// The remaining-buffers report as data: per device, per type, counts and bytes, and the largest
// buffers (or all of them). One pass over the live table; text and JSON are views of this.
import { BUFFER_TYPE_NAMES, NUM_BUFFER_TYPES, REPORT_TYPE_ORDER } from '../protocol/constants.js';
import type { ObjectTable } from '../state/object-table.js';
import { FLAG_RESIZED } from '../state/object-table.js';
import type { Tracker } from '../state/tracker.js';
import type { BufferRow, DeviceGroup, ReportFilter, TypeGroup } from './types.js';

export const REPORT_SCHEMA_VERSION = 1;

export type { BufferRow, DeviceGroup, ReportFilter, TypeGroup };

/** The report as the builder returns it; the JSON form is reportJson() in json-report.ts. */
export interface BufferReport {
  totalBuffers: number;
  totalBytes: number;
  devices: DeviceGroup[];
  /** A filter was applied: "nothing left" then means nothing that matches. */
  filtered?: boolean;
}

/** Does entry e pass the filter? Shared by every scan over the tables. */
export function matcher(t: ObjectTable, f: ReportFilter): (e: number) => boolean {
  const devs = f.devices?.length ? new Set(f.devices) : null;
  const pids = f.pids?.length ? new Set(f.pids) : null;
  const types = f.types?.length ? new Set(f.types) : null;
  const minEpoch = f.minEpoch ?? 0;
  if (!devs && !pids && !types && minEpoch === 0) return () => true;
  return (e) =>
    (!devs || devs.has(t.device(e))) &&
    (!pids || pids.has(t.pid(e))) &&
    (!types || types.has(t.type(e))) &&
    t.epoch(e) >= minEpoch;
}

export function bufferRow(tr: Tracker, t: ObjectTable, e: number): BufferRow {
  const epoch = t.epoch(e);
  return {
    device: t.device(e),
    address: '0x' + t.idHex(e),
    size: t.size(e),
    type: BUFFER_TYPE_NAMES[t.type(e)] ?? String(t.type(e)),
    pid: t.pid(e),
    refCount: t.ref(e),
    epoch,
    allocatedAtMs: tr.epochTimeMs(epoch),
    resized: (t.flags(e) & FLAG_RESIZED) !== 0,
  };
}

type Group = { count: number; bytes: number; top: number[]; topSizes: number[] };

/**
 * The report built over ranges of a table, so that a long scan can be split across turns of the
 * event loop (the streamed JSON dump reads a snapshot this way). `limit` buffers are listed per
 * (device, type), largest first (Infinity = all).
 */
export class BufferReportBuilder {
  private readonly match: (e: number) => boolean;
  // Group key: device * NUM_BUFFER_TYPES + type. Each group keeps its `limit` largest entries,
  // sorted descending.
  private readonly groups = new Map<number, Group>();
  // A flat array in front of the Map: one indexed load per buffer instead of a hash lookup (2x
  // faster at 1 M).
  private byKey: (Group | null)[];

  constructor(
    private readonly tr: Tracker,
    private readonly filter: ReportFilter,
    private readonly limit: number,
    private readonly t: ObjectTable = tr.buffers,
  ) {
    this.match = matcher(t, filter);
    this.byKey = new Array<Group | null>((tr.maxDeviceSeen + 1) * NUM_BUFFER_TYPES).fill(null);
  }

  /** Adds entries from..to-1. */
  add(from: number, to: number): void {
    const t = this.t,
      match = this.match,
      limit = this.limit;
    for (let e = from; e < to; e++) {
      if (!match(e)) continue;
      const key = t.device(e) * NUM_BUFFER_TYPES + t.type(e);
      let g = this.byKey[key];
      if (!g) {
        g = { count: 0, bytes: 0, top: [], topSizes: [] };
        this.groups.set(key, g);
        while (this.byKey.length <= key) this.byKey.push(null);
        this.byKey[key] = g;
      }
      const size = t.size(e);
      g.count++;
      g.bytes += size;
      if (limit === Infinity) {
        g.top.push(e);
        g.topSizes.push(size);
        continue;
      }
      if (limit === 0 || (g.top.length >= limit && size <= g.topSizes[g.top.length - 1])) continue;
      let i = Math.min(g.top.length, limit - 1);
      if (g.top.length < limit) {
        g.top.push(e);
        g.topSizes.push(size);
      }
      // Insertion into the small sorted list (ties keep arrival order).
      while (i > 0 && g.topSizes[i - 1] < size) {
        g.top[i] = g.top[i - 1];
        g.topSizes[i] = g.topSizes[i - 1];
        i--;
      }
      g.top[i] = e;
      g.topSizes[i] = size;
    }
  }

  finish(): BufferReport {
    const { tr, t, limit, filter, groups } = this;
    const byDevice = new Map<number, DeviceGroup>();
    let totalBuffers = 0,
      totalBytes = 0;
    for (const key of [...groups.keys()].sort((a, b) => a - b)) {
      const g = groups.get(key)!;
      const device = Math.floor(key / NUM_BUFFER_TYPES),
        type = key % NUM_BUFFER_TYPES;
      let d = byDevice.get(device);
      if (!d) {
        d = { device, count: 0, bytes: 0, types: [] };
        byDevice.set(device, d);
      }
      let idx = g.top;
      if (limit === Infinity)
        idx = idx
          .map((e, i) => [e, g.topSizes[i]])
          .sort((a, b) => b[1] - a[1] || a[0] - b[0])
          .map((p) => p[0]);
      d.types.push({
        type: BUFFER_TYPE_NAMES[type] ?? String(type),
        count: g.count,
        bytes: g.bytes,
        buffers: idx.map((e) => bufferRow(tr, t, e)),
        more: g.count - idx.length,
      });
      d.count += g.count;
      d.bytes += g.bytes;
      totalBuffers += g.count;
      totalBytes += g.bytes;
    }
    const order = (name: string) => REPORT_TYPE_ORDER.indexOf(BUFFER_TYPE_NAMES.indexOf(name));
    for (const d of byDevice.values()) d.types.sort((a, b) => order(a.type) - order(b.type));
    const filtered = !!(
      filter.devices?.length ||
      filter.pids?.length ||
      filter.types?.length ||
      filter.minEpoch
    );
    return { totalBuffers, totalBytes, devices: [...byDevice.values()], filtered };
  }
}

/**
 * Builds the report in one pass; `limit` buffers listed per (device, type), largest first (Infinity
 * = all).
 */
export function buildBufferReport(
  tr: Tracker,
  filter: ReportFilter = {},
  limit = 10,
): BufferReport {
  const b = new BufferReportBuilder(tr, filter, limit);
  b.add(0, tr.buffers.count);
  return b.finish();
}
