// The dashboard's zoomed memory map: one address range of a bank, placed as report/memory-map.ts
// places it, as pixel columns (covered fraction, main owner) and, once few enough objects fall in
// the range, the objects themselves with owner and ref count (what the page's hover shows). A
// million buffers cost one pass over the table and `columns` numbers out; the page never gets
// more than `limit` objects, so zooming stays cheap at any state size.
import { BUFFER_TYPE_NAMES } from '../protocol/constants.js';
import type { ArchSpec } from '../devices/arch.js';
import { rowAddr, rowPid, rowRef, rowSize } from '../state/object-table.js';
import type { Tracker } from '../state/tracker.js';
import { SPACE_KINDS, forEachPlaced, modelOf, rangeEndOf, tablesOf } from './memory-map.js';
import {
  SCHEMA_VERSION,
  type MapSpace,
  type MapViewObject,
  type MapViewResponse,
} from './types.js';

export type { MapViewObject, MapViewResponse };

export interface MapViewOptions {
  device: number;
  space: MapSpace;
  arch: ArchSpec | null;
  /** The address range [from, to) of the bank; `to` null: to the map's end. */
  from: number;
  to: number | null;
  columns: number;
  /** Objects listed at most; more in view and only the columns describe them. */
  limit: number;
}

export function buildMapView(tr: Tracker, o: MapViewOptions): MapViewResponse {
  const m = modelOf(o.space, o.arch);
  const tables = tablesOf(tr, o.space);
  let hi = 0;
  forEachPlaced(tables, o.device, m, (pg, b, _k, extent) => {
    hi = Math.max(hi, rowAddr(pg, b) + extent);
  });
  const rangeEnd = rangeEndOf(hi, m);
  const from = Math.min(o.from, rangeEnd);
  const to = Math.max(from + 1, Math.min(o.to ?? rangeEnd, rangeEnd));
  const cols = o.columns;
  const w = (to - from) / cols;
  const used = new Float64Array(cols);
  const best = new Float64Array(cols);
  const owner = new Int32Array(cols).fill(-1);
  const objects: MapViewObject[] = [];
  let inView = 0;
  forEachPlaced(tables, o.device, m, (pg, b, k, extent) => {
    const start = rowAddr(pg, b),
      end = start + extent;
    if (end <= from || start >= to) return;
    inView++;
    const pid = rowPid(pg, b);
    if (objects.length <= o.limit)
      objects.push({
        start,
        end,
        address: `0x${start.toString(16)}`,
        size: rowSize(pg, b),
        kind: SPACE_KINDS[o.space][k] ?? BUFFER_TYPE_NAMES[k],
        pid,
        ref_count: rowRef(pg, b),
      });
    const a = Math.max(start, from),
      z = Math.min(end, to);
    for (let c = Math.min(cols - 1, Math.floor((a - from) / w)); c < cols; c++) {
      const c0 = from + c * w,
        c1 = c0 + w;
      if (c0 >= z) break;
      const part = Math.min(z, c1) - Math.max(a, c0);
      used[c] = Math.min(w, used[c] + part);
      if (part > best[c]) {
        best[c] = part;
        owner[c] = pid;
      }
    }
  });
  return {
    schema_version: SCHEMA_VERSION,
    device: o.device,
    memory: o.space,
    range: { start: 0, end: rangeEnd },
    view: { start: from, end: to },
    columns: Array.from(used, (u, c) => ({
      used: u / w,
      pid: owner[c] < 0 ? null : owner[c],
    })),
    objects_in_view: inView,
    objects: inView > o.limit ? null : objects.sort((x, y) => x.start - y.start),
    limit: o.limit,
  };
}
