// The dashboard's active-memory timeline (like PyTorch's memory_viz) of one device and buffer type
// over a time range: the `limit` largest lifetimes in the range one by one (the page stacks them
// while alive, the newest on top), all the others as one "other" band, and the peak of every
// pixel column, so that a buffer alive for a millisecond still shows at any zoom. The lifetimes
// are the Perfetto export's (report/perfetto.ts collects them: live, freed, left behind).
//
// Cost, whatever the range: one pass over the lifetimes held, a radix sort of their event times
// and a selection of the largest sizes, in typed arrays; out go at most `limit` lifetimes and two
// numbers per column. The page never gets a million of anything.
import { BUFFER_TYPE_NAMES } from '../protocol/constants.js';
import type { Tracker } from '../state/tracker.js';
import { STATES, collect, completeFromMs } from './perfetto.js';
import { isoTime } from './format.js';
import { SCHEMA_VERSION, type TimelineLifetime, type TimelineResponse } from './types.js';

export type { TimelineLifetime, TimelineResponse };

/** Event times are quantised to fit a 31-bit key (1 ms up to 24 days of range). */
const KEY_STEPS = 2 ** 30;
/** The range when nothing is held and none is asked for. */
const EMPTY_RANGE_MS = 60_000;

export interface TimelineOptions {
  device: number;
  type: number;
  /** null: from the oldest lifetime held. */
  fromMs: number | null;
  /** null: now. */
  toMs: number | null;
  limit: number;
  columns: number;
  nowMs: number;
  commandOf: (pid: number) => string | null;
}

export function buildTimeline(tr: Tracker, o: TimelineOptions): TimelineResponse {
  const l = collect(tr, { sinceMs: o.fromMs, nowMs: o.nowMs });
  const to = o.toMs ?? o.nowMs;
  const idx = new Int32Array(l.n);
  let n = 0,
    oldest = Infinity;
  for (let i = 0; i < l.n; i++) {
    if (l.device[i] !== o.device || l.type[i] !== o.type || l.born[i] > to) continue;
    idx[n++] = i;
    if (l.born[i] < oldest) oldest = l.born[i];
  }
  let from = o.fromMs ?? (n > 0 ? oldest : to - EMPTY_RANGE_MS);
  if (from >= to) from = to - 1;
  const cols = o.columns;
  const chosen = largest(l.size, idx.subarray(0, n), o.limit);
  const peaks = columnPeaks(l, idx.subarray(0, n), chosen, { from, to, cols });

  const shown: number[] = [];
  for (let k = 0; k < n; k++) if (chosen[k]) shown.push(idx[k]);
  shown.sort((a, b) => l.born[a] - l.born[b] || a - b);
  const pidBytes = new Map<number, number>();
  for (const i of shown) pidBytes.set(l.pid[i], (pidBytes.get(l.pid[i]) ?? 0) + l.size[i]);
  const completeFrom = completeFromMs(tr, from);
  return {
    schema_version: SCHEMA_VERSION,
    device: o.device,
    type: BUFFER_TYPE_NAMES[o.type],
    start_at: isoTime(from),
    start_at_ms: from,
    end_at: isoTime(to),
    end_at_ms: to,
    complete_from_at: isoTime(completeFrom),
    complete_from_at_ms: completeFrom,
    columns: cols,
    column_ms: (to - from) / cols,
    lifetimes_in_range: n,
    capped: n > shown.length,
    limit: o.limit,
    lifetimes: shown.map((i) => {
      const live = l.state[i] === 1;
      return {
        address: `0x${l.addr[i].toString(16)}`,
        size: l.size[i],
        pid: l.pid[i],
        state: STATES[l.state[i]] as TimelineLifetime['state'],
        allocated_at: isoTime(l.born[i]),
        allocated_at_ms: l.born[i],
        ended_at: live ? null : isoTime(l.end[i]),
        ended_at_ms: live ? null : l.end[i],
      };
    }),
    other: n > shown.length ? { lifetimes: n - shown.length, peak_bytes: peaks.other } : null,
    peak_bytes: peaks.all,
    owners: [...pidBytes]
      .sort((a, b) => b[1] - a[1])
      .map(([pid]) => ({ pid, command: o.commandOf(pid) })),
  };
}

/** Flags (per entry of `idx`) of the `limit` largest, ties to the earlier entries. */
function largest(size: Float64Array, idx: Int32Array, limit: number): Uint8Array {
  const n = idx.length;
  const chosen = new Uint8Array(n);
  if (n <= limit) return chosen.fill(1);
  const sizes = Float64Array.from(idx, (i) => size[i]);
  const threshold = kthSmallest(sizes, n - limit);
  let ties = limit;
  for (let k = 0; k < n; k++) if (sizes[k] > threshold) ties--;
  for (let k = 0; k < n; k++) {
    const s = size[idx[k]];
    if (s > threshold || (s === threshold && ties-- > 0)) chosen[k] = 1;
  }
  return chosen;
}

/** The k-th smallest of `a` (0-based), reordering `a`: Hoare's selection, O(n), no sort. */
function kthSmallest(a: Float64Array, k: number): number {
  let lo = 0,
    hi = a.length - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1];
    let i = lo,
      j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i++] = a[j];
        a[j--] = t;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k];
  }
  return a[k];
}

/**
 * The highest level of all the lifetimes and of those not chosen, per column: a sweep over their
 * births and ends in time order (an end before a birth at the same time; a lifetime born and
 * freed within one step counts at its birth).
 */
function columnPeaks(
  l: ReturnType<typeof collect>,
  idx: Int32Array,
  chosen: Uint8Array,
  r: { from: number; to: number; cols: number },
): { all: number[]; other: number[] } {
  const n = idx.length;
  const step = Math.max(1, (r.to - r.from) / KEY_STEPS);
  const keys = new Uint32Array(2 * n);
  const refs = new Int32Array(2 * n);
  let m = 0;
  const qt = (t: number) => Math.floor((Math.min(r.to, Math.max(r.from, t)) - r.from) / step);
  // births first, so that the stable sort keeps a birth before its own end at the same key
  for (let k = 0; k < n; k++) {
    keys[m] = qt(l.born[idx[k]]) * 2 + 1;
    refs[m++] = k;
  }
  for (let k = 0; k < n; k++) {
    const i = idx[k];
    if (l.state[i] === 1 || l.end[i] >= r.to) continue; // alive through the range
    const qe = qt(l.end[i]),
      qb = qt(l.born[i]);
    keys[m] = qe * 2 + (qe === qb ? 1 : 0);
    refs[m++] = ~k;
  }
  const order = radixOrder(keys.subarray(0, m));
  const all = new Float64Array(r.cols),
    other = new Float64Array(r.cols);
  const colSteps = (r.to - r.from) / step / r.cols;
  let level = 0,
    levelOther = 0,
    c = 0;
  for (let e = 0; e < m; e++) {
    const j = order[e];
    const ce = Math.min(r.cols - 1, Math.floor((keys[j] >>> 1) / colSteps));
    while (c < ce) {
      c++;
      all[c] = level;
      other[c] = levelOther;
    }
    const k = refs[j] < 0 ? ~refs[j] : refs[j];
    const delta = refs[j] < 0 ? -l.size[idx[k]] : l.size[idx[k]];
    level += delta;
    if (!chosen[k]) levelOther += delta;
    if (level > all[c]) all[c] = level;
    if (levelOther > other[c]) other[c] = levelOther;
  }
  while (c < r.cols - 1) {
    c++;
    all[c] = level;
    other[c] = levelOther;
  }
  return { all: Array.from(all), other: Array.from(other) };
}

/** The positions of `keys` in ascending order, ties kept in order (LSD radix, 2 × 16 bits). */
function radixOrder(keys: Uint32Array): Uint32Array {
  const n = keys.length;
  let a = new Uint32Array(n),
    b = new Uint32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  const count = new Uint32Array(65537);
  for (const shift of [0, 16]) {
    count.fill(0);
    for (let i = 0; i < n; i++) count[((keys[a[i]] >>> shift) & 0xffff) + 1]++;
    for (let d = 0; d < 65536; d++) count[d + 1] += count[d];
    for (let i = 0; i < n; i++) b[count[(keys[a[i]] >>> shift) & 0xffff]++] = a[i];
    [a, b] = [b, a];
  }
  return a;
}
