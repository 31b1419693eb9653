// Periodic samples of the per-device counters, for live charts (dashboard, top's sparklines).
// Sampling reads the tracker's running totals on a timer, so its cost does not grow with the
// message rate; the ring of past samples lets a new viewer draw history at once.
import { SAMPLE_KINDS } from '../report/usage.js';
import { KINDS, type Tracker } from '../state/tracker.js';
import type { Sample } from '../report/types.js';

export type { Sample };

export { SAMPLE_KINDS };

export interface SampleSource {
  tracker: Tracker;
  knownDeviceIds(): number[];
}

export class Sampler {
  private ring: Sample[] = [];
  private timer: NodeJS.Timeout | null = null;
  private listeners = new Set<(s: Sample) => void>();

  constructor(
    private readonly src: SampleSource,
    readonly intervalMs = 1000,
    readonly keep = 600,
  ) {}

  start(): void {
    if (this.timer || this.intervalMs <= 0) return;
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.listeners.clear();
  }

  /** Takes a sample now, keeps it and hands it to subscribers. */
  sample(): Sample {
    const tr = this.src.tracker;
    const d: Record<string, number[]> = {};
    const p: Record<string, number[]> = {};
    for (const id of this.src.knownDeviceIds()) {
      d[id] = SAMPLE_KINDS.map((_, k) => tr.deviceBytes(id, k));
      p[id] = SAMPLE_KINDS.map((_, k) => tr.peaks.intervalPeak(id * KINDS + k));
    }
    tr.peaks.endInterval();
    const s: Sample = { t: Date.now(), d, p };
    this.ring.push(s);
    if (this.ring.length > this.keep) this.ring.splice(0, this.ring.length - this.keep);
    for (const l of this.listeners) l(s);
    return s;
  }

  /** Samples of the last `seconds` (all kept ones when omitted). */
  history(seconds?: number): Sample[] {
    if (seconds === undefined) return this.ring.slice();
    const from = Date.now() - seconds * 1000;
    return this.ring.filter((s) => s.t >= from);
  }

  subscribe(fn: (s: Sample) => void): () => void {
    this.listeners.add(fn);
    return () => {
      this.listeners.delete(fn);
    };
  }
}
