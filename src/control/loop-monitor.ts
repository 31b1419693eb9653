// Event-loop stall measurement for the benchmark and for operators: the longest time the loop
// was blocked (a dump, a sweep, a table growth) is the longest a client's blocking send() could
// have waited on a full socket. Off until first asked for, so an idle server never wakes for it.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

let histogram: IntervalHistogram | null = null;

/** Starts (if needed) and clears the histogram. */
export function resetLoopMonitor(): void {
  if (!histogram) {
    histogram = monitorEventLoopDelay({ resolution: 1 });
    histogram.enable();
  }
  histogram.reset();
}

/** Loop delays since the last reset, in ms; null while the monitor was never started. */
export function loopDelayStats(): {
  max_ms: number;
  p99_ms: number;
  mean_ms: number;
  samples: number;
} | null {
  if (!histogram) return null;
  const ms = (ns: number) => Math.round(ns / 1e4) / 100;
  return {
    max_ms: ms(histogram.max),
    p99_ms: ms(histogram.percentile(99)),
    mean_ms: ms(histogram.mean || 0),
    samples: histogram.count,
  };
}
