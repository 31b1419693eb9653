// High-water marks of the per-device counters (bytes per device × kind), kept on the hot path:
// an increase compares the new level with three peaks, nothing is allocated. Charts sample levels
// once a second, so a buffer alive 100 ms of every 200 ms would draw as a square wave or not at
// all; the interval peak (since the last sample) shows it. PyTorch users expect
// max_memory_allocated and reset_peak_memory_stats: the overall peak, and reset().
//
// Peaks since a mark cost nothing per mark on the hot path: the event stream is cut into
// segments at the marks' cuts (Tracker.cut), each keeping its own peak; the peak since a mark is
// the maximum over the segments from its cut on. Segments whose mark is gone are merged into the
// one before (or dropped before the oldest mark), so a test suite marking every test keeps few.

interface Segment {
  /** The cut this segment starts at (0: the start of tracking). */
  fromMs: number;
  peaks: Float64Array;
}

export interface PeaksSince {
  peaks: Float64Array;
  /** False when the cut lies before what this process tracked (a mark from before a restart). */
  complete: boolean;
}

export class Peaks {
  /** Since the last takeInterval() (the chart sampler's). */
  private readonly interval: Float64Array;
  /** Since the start of tracking or the last reset(). */
  private readonly overall: Float64Array;
  /** Since the latest cut. */
  private current: Float64Array;
  private currentFromMs: number;
  /** Closed segments, oldest first. */
  private closed: Segment[] = [];
  /** When tracking (this process's state) started: peaks before it are not known. */
  private startedMs: number;
  private overallFromMs: number;

  /** `levels` is the tracker's live bytes per device × kind, read when a peak restarts. */
  constructor(
    private readonly levels: Float64Array,
    nowMs = Date.now(),
  ) {
    this.interval = new Float64Array(levels.length);
    this.overall = new Float64Array(levels.length);
    this.current = new Float64Array(levels.length);
    this.startedMs = nowMs;
    this.currentFromMs = nowMs;
    this.overallFromMs = nowMs;
  }

  /** Hot path: slot `k` rose to `v` bytes. */
  see(k: number, v: number): void {
    if (v > this.interval[k]) this.interval[k] = v;
    if (v > this.overall[k]) this.overall[k] = v;
    if (v > this.current[k]) this.current[k] = v;
  }

  /**
   * Recovery put the state back: what it restored is the level every peak starts from (peaks
   * from before the restart are not kept).
   */
  restarted(nowMs: number): void {
    this.interval.set(this.levels);
    this.overall.set(this.levels);
    this.current.set(this.levels);
    this.closed = [];
    this.currentFromMs = nowMs;
    this.startedMs = nowMs;
    this.overallFromMs = nowMs;
  }

  /** The interval peak of slot `k`; the sampler calls endInterval() once it has read them all. */
  intervalPeak(k: number): number {
    return this.interval[k];
  }
  endInterval(): void {
    this.interval.set(this.levels);
  }

  /** Peak of slot `k` since the start or the last reset(). */
  overallPeak(k: number): number {
    return this.overall[k];
  }
  /** When the overall peaks started (start of tracking, restart, or the last reset). */
  get overallSinceMs(): number {
    return this.overallFromMs;
  }

  /** `ttalloc reset-peaks`: the overall peaks start again from the levels now. */
  reset(nowMs: number): void {
    this.overall.set(this.levels);
    this.overallFromMs = nowMs;
  }

  /** A mark's cut at `cutMs`: a new segment starts at the levels now (`slots` in use). */
  cut(cutMs: number, slots: number): void {
    const n = Math.min(this.current.length, slots);
    this.closed.push({ fromMs: this.currentFromMs, peaks: this.current.slice(0, n) });
    this.current.set(this.levels);
    this.currentFromMs = cutMs;
  }

  /** Peaks since the cut `cutMs` (a mark's), per device × kind. */
  since(cutMs: number): PeaksSince {
    const out = this.current.slice();
    // a cut before this process's start (a mark from before a restart): every segment counts
    for (const s of this.closed) if (s.fromMs >= cutMs) maxInto(out, s.peaks);
    return { peaks: out, complete: cutMs >= this.startedMs };
  }

  /** Keeps segment boundaries only at these cuts (the marks that exist). */
  retain(cuts: ReadonlySet<number>): void {
    // A mark from before this process started asks for everything since the start.
    let fromStart = false;
    for (const c of cuts) if (c < this.startedMs) fromStart = true;
    const keep = (fromMs: number) => cuts.has(fromMs) || (fromStart && fromMs === this.startedMs);
    const kept: Segment[] = [];
    for (const s of this.closed) {
      if (keep(s.fromMs)) kept.push(s);
      else if (kept.length > 0) {
        const last = kept[kept.length - 1];
        last.peaks = merged(last.peaks, s.peaks);
      }
      // else: before the oldest mark, no query can ask for it
    }
    this.closed = kept;
    if (!keep(this.currentFromMs) && kept.length > 0) {
      // the latest mark is gone: its segment and the one before it are one
      const last = kept.pop()!;
      maxInto(this.current, last.peaks);
      this.currentFromMs = last.fromMs;
    }
  }

  /** `ttalloc reset`: everything is zero again. */
  clear(nowMs: number): void {
    this.restarted(nowMs);
  }
}

/** The elementwise maximum, as long as the longer of the two. */
function merged(a: Float64Array, b: Float64Array): Float64Array {
  const out = a.length >= b.length ? a : b.slice();
  maxInto(out, out === a ? b : a);
  return out;
}

function maxInto(into: Float64Array, from: Float64Array): void {
  const n = Math.min(into.length, from.length);
  for (let i = 0; i < n; i++) if (from[i] > into[i]) into[i] = from[i];
}
