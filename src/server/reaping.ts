// The dead-PID sweep: releases what owners that are gone still hold, records it, and logs one
// summary line per PID.
import { deadPids } from '../platform/processes.js';
import type { ReapedReport, Tracker } from '../state/tracker.js';
import { formatBytes } from '../report/format.js';

export interface ReaperDeps {
  tracker: Tracker;
  isAlive: (pid: number) => boolean;
  /** Persists the release of these PIDs' objects. */
  persist: (pids: number[], atMs: number) => void;
  /** Called after each sweep with the PIDs still tracked (claims of others are forgotten). */
  afterSweep: (tracked: { has(pid: number): boolean }) => void;
  log: (msg: string) => void;
}

export class Reaper {
  /** How long the last sweep took to ask the kernel which owners are alive. */
  lastLivenessMs = 0;

  constructor(private readonly d: ReaperDeps) {}

  /** Releases objects of owners that are gone; one summary line per PID. */
  readonly reapDead = (): ReapedReport[] => {
    const { tracker, isAlive } = this.d;
    const t0 = performance.now();
    const dead = deadPids(tracker.livePids(), isAlive);
    this.lastLivenessMs = performance.now() - t0;
    const now = Date.now();
    const reports = tracker.releasePids(dead, now);
    if (reports.length)
      this.d.persist(
        reports.map((r) => r.pid),
        now,
      );
    tracker.forgetIdlePids(isAlive);
    this.d.afterSweep(tracker.pids);
    for (const r of reports) this.d.log(reapedLine(r));
    return reports;
  };
}

/** "process 42 is gone: released 3 buffers (1.5 KiB), 1 CB (64 B)". */
export function reapedLine(r: ReapedReport): string {
  const parts = [count(r.buffers, 'buffer', r.bytes)];
  if (r.cbs) parts.push(count(r.cbs, 'CB', r.cbBytes));
  if (r.kernels) parts.push(count(r.kernels, 'kernel', r.kernelBytes));
  return `process ${r.pid} is gone: released ${parts.join(', ')}`;
}

function count(n: number, noun: string, bytes: number): string {
  return `${n} ${noun}${n === 1 ? '' : 's'} (${formatBytes(bytes)})`;
}
