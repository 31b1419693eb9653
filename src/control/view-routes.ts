// The dashboard's two views of the state: the memory map zoomed into an address range
// (report/map-view.ts) and the active-memory timeline of buffer lifetimes (report/timeline.ts).
// Both answer with bounded JSON whatever the state holds.
import type { ArchSpec } from '../devices/arch.js';
import type { Tracker } from '../state/tracker.js';
import { BufferType, MAX_DEVICE_ID } from '../protocol/constants.js';
import { buildMapView, type MapViewResponse } from '../report/map-view.js';
import { buildTimeline, type TimelineResponse } from '../report/timeline.js';
import { commandName } from '../report/process-info.js';
import { HttpError, type Router } from './router.js';
import { intParam, parseTypes } from './query.js';

/** Objects a zoomed map lists at most (more in view: only its columns). */
const MAP_LIMIT_MAX = 5000;
/** Lifetimes a timeline lists at most. */
const TIMELINE_LIMIT_MAX = 5000;
const COLUMNS_MAX = 4096;

/** What the view routes read. */
export interface ViewContext {
  tracker: Tracker;
  /** A declared device's architecture, else null. */
  archOf(device: number): ArchSpec | null;
}

export function registerViewRoutes(r: Router, s: ViewContext): void {
  const device = (url: URL) => intParam(url, 'device', { dflt: 0, min: 0, max: MAX_DEVICE_ID });
  const columns = (url: URL, dflt: number) =>
    intParam(url, 'columns', { dflt, min: 1, max: COLUMNS_MAX });

  // ?device=N&memory=L1|DRAM&from=ADDR&to=ADDR&columns=W&limit=K: one address range of a bank.
  r.get('/v1/map/view', (c): MapViewResponse => {
    const q = c.url.searchParams;
    const memory = (q.get('memory') ?? 'L1').toUpperCase();
    if (memory !== 'L1' && memory !== 'DRAM')
      throw new HttpError(400, 'memory must be L1 or DRAM (L1 includes L1_SMALL and CBs)');
    const from = address(q.get('from'), 'from') ?? 0;
    const to = address(q.get('to'), 'to');
    if (to !== null && to <= from) throw new HttpError(400, 'to must be above from');
    const d = device(c.url);
    return buildMapView(s.tracker, {
      device: d,
      space: memory,
      arch: s.archOf(d),
      from,
      to,
      columns: columns(c.url, 1000),
      limit: intParam(c.url, 'limit', { dflt: 2000, min: 0, max: MAP_LIMIT_MAX }),
    });
  });

  // ?device=N&type=DRAM&from=T&to=T&limit=K&columns=W: buffer lifetimes over a time range.
  r.get('/v1/timeline', (c): TimelineResponse => {
    const q = c.url.searchParams;
    const types = parseTypes(q.get('type')) ?? [BufferType.DRAM];
    if (types.length !== 1) throw new HttpError(400, 'type: one buffer type, e.g. type=L1');
    const nowMs = Date.now();
    const fromMs = time(q.get('from'), 'from', nowMs);
    const toMs = time(q.get('to'), 'to', nowMs);
    if (fromMs !== null && fromMs >= (toMs ?? nowMs))
      throw new HttpError(400, 'from must be before to (to defaults to now)');
    return buildTimeline(s.tracker, {
      device: device(c.url),
      type: types[0],
      fromMs,
      toMs,
      limit: intParam(c.url, 'limit', { dflt: 500, min: 1, max: TIMELINE_LIMIT_MAX }),
      columns: columns(c.url, 1000),
      nowMs,
      commandOf: commandName,
    });
  });
}

/** A bank offset: decimal or 0x-hex. */
function address(v: string | null, name: string): number | null {
  if (v === null || v === '') return null;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new HttpError(400, `${name}: '${v}' is not an address (decimal or 0x-hex bytes)`);
  return n;
}

/** ms since 1970, -ms before now, or an ISO 8601 time. */
function time(v: string | null, name: string, nowMs: number): number | null {
  if (v === null || v === '') return null;
  if (/^-?\d+(\.\d+)?$/.test(v)) {
    const n = Number(v);
    return n < 0 ? nowMs + n : n;
  }
  const t = Date.parse(v);
  if (!/^\d{4}-\d\d-\d\d/.test(v) || Number.isNaN(t))
    throw new HttpError(
      400,
      `${name}: '${v}' is not a time (ms since 1970, -ms before now, or ISO 8601)`,
    );
  return t;
}
