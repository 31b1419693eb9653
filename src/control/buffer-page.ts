// GET /v1/buffers/page: one page of the live buffer table for the dashboard, filtered on the
// server. One pass over the typed-array columns (no snapshot, no per-entry objects except the
// rows returned), so a page costs a few ms even with a million live buffers.
import { HttpError } from './router.js';
import { intList, intParam, parseTypes, sinceParam } from './query.js';
import { bufferRow, isFiltered, matcher, type ReportFilter } from '../report/buffer-report.js';
import type { Tracker } from '../state/tracker.js';
import type { Checkpoints } from '../state/marks.js';
import { BUFFER_TYPE_NAMES } from '../protocol/constants.js';
import type { BufferPage } from '../report/types.js';

export const MAX_PAGE = 1000;
/** Largest-first paging keeps offset+limit candidates in a heap; bound its size. */
export const MAX_SORTED_WINDOW = 100_000;

/** One page: GET /v1/buffers/page's reply (report/types.ts BufferPageResponse) less its version. */

export function bufferPage(tr: Tracker, url: URL, marks?: Checkpoints): BufferPage {
  const filter: ReportFilter = {
    devices: intList(url, 'device'),
    pids: intList(url, 'pid'),
    types: parseTypes(url.searchParams.get('type')),
    bornFromMs: intParam(url, 'bornFromMs', { dflt: 0, min: 0, max: Number.MAX_SAFE_INTEGER }),
  };
  // The page's "show buffers born after it" link.
  if (marks) sinceParam(url, filter, marks);
  const minSize = intParam(url, 'minSize', { dflt: 0, min: 0, max: Number.MAX_SAFE_INTEGER });
  const offset = intParam(url, 'offset', { dflt: 0, min: 0, max: Number.MAX_SAFE_INTEGER });
  const limit = intParam(url, 'limit', { dflt: 100, min: 0, max: MAX_PAGE });
  const order = url.searchParams.get('order') === 'size' ? 'size' : 'table';
  const t = tr.buffers;
  const base = matcher(t, filter);
  const match = minSize > 0 ? (e: number) => t.size(e) >= minSize && base(e) : base;
  let total = 0,
    totalBytes = 0;
  const rows: number[] = [];
  if (order === 'table' && minSize === 0 && !isFiltered(filter)) {
    // Nothing to match: the page is a slice and the totals are the tracker's running counters.
    total = t.count;
    for (let d = 0; d <= tr.maxDeviceSeen; d++)
      for (let k = 0; k < BUFFER_TYPE_NAMES.length; k++) totalBytes += tr.deviceBytes(d, k);
    for (let e = offset; e < Math.min(t.count, offset + limit); e++) rows.push(e);
  } else if (order === 'table') {
    for (let e = 0; e < t.count; e++) {
      if (!match(e)) continue;
      if (total >= offset && rows.length < limit) rows.push(e);
      total++;
      totalBytes += t.size(e);
    }
  } else {
    const k = offset + limit;
    if (k > MAX_SORTED_WINDOW)
      throw new HttpError(
        400,
        `largest-first paging reaches only the first ${MAX_SORTED_WINDOW} buffers; ` +
          'narrow the filter',
      );
    const heap = new TopK(k);
    for (let e = 0; e < t.count; e++) {
      if (!match(e)) continue;
      const size = t.size(e);
      total++;
      totalBytes += size;
      heap.offer(size, e);
    }
    rows.push(...heap.sortedEntries().slice(offset, k));
  }
  return {
    total,
    total_bytes: totalBytes,
    offset,
    limit,
    order,
    buffers: rows.map((e) => bufferRow(t, e)),
  };
}

/** The k largest (size, entry) pairs: a binary min-heap on size, ties broken by entry index. */
class TopK {
  private sizes: Float64Array;
  private entries: Int32Array;
  private n = 0;
  constructor(private readonly k: number) {
    this.sizes = new Float64Array(Math.max(1, k));
    this.entries = new Int32Array(Math.max(1, k));
  }
  private less(i: number, j: number): boolean {
    const a = this.sizes[i],
      b = this.sizes[j];
    return a < b || (a === b && this.entries[i] > this.entries[j]);
  }
  private swap(i: number, j: number): void {
    const s = this.sizes[i];
    this.sizes[i] = this.sizes[j];
    this.sizes[j] = s;
    const e = this.entries[i];
    this.entries[i] = this.entries[j];
    this.entries[j] = e;
  }
  offer(size: number, e: number): void {
    if (this.k === 0) return;
    if (this.n < this.k) {
      let i = this.n++;
      this.sizes[i] = size;
      this.entries[i] = e;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!this.less(i, p)) break;
        this.swap(i, p);
        i = p;
      }
      return;
    }
    // not larger than the smallest kept (ties: earlier entry wins)
    if (size <= this.sizes[0]) return;
    this.sizes[0] = size;
    this.entries[0] = e;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1,
        r = l + 1;
      let m = i;
      if (l < this.n && this.less(l, m)) m = l;
      if (r < this.n && this.less(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
  }
  sortedEntries(): number[] {
    const idx = Array.from({ length: this.n }, (_, i) => i);
    idx.sort((a, b) => this.sizes[b] - this.sizes[a] || this.entries[a] - this.entries[b]);
    return idx.map((i) => this.entries[i]);
  }
}
