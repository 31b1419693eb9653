// The dead-PID sweep: releases what owners that are gone still hold, records it, and logs one
// summary line per PID.
import { deadPids } from '../platform/processes.js';
import type { ProcessIdentity, ReapedReport, Tracker } from '../state/tracker.js';
import { formatBytes } from '../report/format.js';

export interface ReaperDeps {
  tracker: Tracker;
  isAlive: (pid: number) => boolean;
  /** Persists the release of these exited processes' objects. */
  persist: (exited: readonly ReapedReport[], atMs: number) => void;
  /** Called after each sweep with the PIDs still tracked (claims of others are forgotten). */
  afterSweep: (tracked: { has(pid: number): boolean }) => void;
  log: (msg: string) => void;
  /** Who a PID was while it ran (kept with what it left behind). */
  identityOf?: (pid: number) => ProcessIdentity | undefined;
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
    const reports = this.release(dead);
    tracker.forgetIdlePids(isAlive);
    this.d.afterSweep(tracker.pids);
    return reports;
  };

  /** Releases the objects of these PIDs, known to be gone (no liveness check here). */
  readonly reapGone = (pids: Iterable<number>): ReapedReport[] => this.release(new Set(pids));

  /** The one release path: what they held is kept as left behind, journalled, and logged. */
  private release(dead: Set<number>): ReapedReport[] {
    const now = Date.now();
    const reports = this.d.tracker.releasePids(dead, now, this.d.identityOf);
    if (reports.length) this.d.persist(reports, now);
    for (const r of reports) this.d.log(reapedLine(r));
    return reports;
  }
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
