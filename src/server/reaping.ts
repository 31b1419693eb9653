// Releasing what owners that are gone still hold: the periodic sweep (reapDead) and the exits the
// exit watch noticed (reapGone), through one path that records the release and logs one summary
// line per PID.
import type { ReapedReport, Tracker } from '../state/tracker.js';
import { formatBytes } from '../report/format.js';
import type { ProcessInfo, ProcessRegistry } from './process-registry.js';

export interface ReaperDeps {
  tracker: Tracker;
  /** Which PIDs are gone (exited, or their PID now names another process). */
  registry: Pick<ProcessRegistry, 'goneAmong' | 'isGone' | 'released' | 'prune'>;
  /** Persists the release of these exited processes' objects. */
  persist: (exited: readonly ReapedReport[], atMs: number) => void;
  /** Called after each release with the PIDs still tracked (claims of others are forgotten). */
  afterSweep: (tracked: { has(pid: number): boolean }) => void;
  /** Is a connection the PID opened still open (held by a child after its exit)? */
  heldOpen?: (pid: number) => boolean;
  log: (msg: string) => void;
  /**
   * Who a released PID was (command line, parent, start), kept with what it left behind.
   */
  infoOf?: (pid: number) => ProcessInfo | null;
}

export class Reaper {
  /** How long the last sweep took to ask the kernel which owners are alive. */
  lastLivenessMs = 0;

  constructor(private readonly d: ReaperDeps) {}

  /** Releases objects of owners that are gone; one summary line per PID. */
  readonly reapDead = (): ReapedReport[] => {
    const { tracker, registry } = this.d;
    const t0 = performance.now();
    const dead = registry.goneAmong(tracker.livePids());
    this.lastLivenessMs = performance.now() - t0;
    this.keepHeld(dead);
    const now = Date.now();
    const reports = this.release(dead, now);
    tracker.forgetIdlePids((pid) => !registry.isGone(pid));
    this.settled(reports, now);
    return reports;
  };

  /**
   * Releases what `pids` hold, known to be gone (the exit watch checked them); the same release,
   * record and log line as a sweep.
   */
  readonly reapGone = (pids: Iterable<number>): ReapedReport[] => {
    const { tracker } = this.d;
    const dead = new Set<number>();
    for (const p of pids) if ((tracker.pids.get(p)?.live ?? 0) > 0) dead.add(p);
    const now = Date.now();
    const reports = this.release(dead, now);
    this.settled(reports, now);
    return reports;
  };

  /**
   * Releases what `pid` holds if it is gone and no connection of its is still open (the rule the
   * sweep applies); true when it released something. The tracker asks this when an ALLOC finds
   * its address held by `pid` (Tracker.onConflict).
   */
  readonly reapIfGone = (pid: number): boolean => {
    if (pid <= 0 || !this.d.registry.isGone(pid) || this.d.heldOpen?.(pid)) return false;
    return this.reapGone([pid]).length > 0;
  };

  /** PIDs said to be gone whose socket a child still holds (said once per PID). */
  private readonly heldSaid = new Set<number>();

  /**
   * Keeps gone PIDs whose connection is still open out of `dead`: a child the process shared its
   * socket with still reports under its PID (the kernel's credentials of the connection); what
   * it reports stays live until that connection closes (the exit watch then releases it).
   */
  private keepHeld(dead: Set<number>): void {
    const held = this.d.heldOpen;
    if (!held) return;
    for (const pid of dead) {
      if (!held(pid)) continue;
      dead.delete(pid);
      if (this.heldSaid.has(pid)) continue;
      this.heldSaid.add(pid);
      this.d.log(
        `process ${pid} is gone but its connection is still open (a child shares its socket?): ` +
          'what it reports stays live under its PID until that connection closes',
      );
    }
    for (const pid of this.heldSaid) if (!held(pid)) this.heldSaid.delete(pid);
  }

  private release(dead: Set<number>, now: number): ReapedReport[] {
    const infoOf = this.d.infoOf;
    const reports = this.d.tracker.releasePids(
      dead,
      now,
      infoOf && ((p) => infoOf(p) ?? undefined),
    );
    if (reports.length) this.d.persist(reports, now);
    return reports;
  }

  private settled(reports: ReapedReport[], now: number): void {
    const tracked = this.d.tracker.pids,
      registry = this.d.registry;
    this.d.afterSweep(tracked);
    if (reports.length)
      registry.released(
        reports.map((r) => r.pid),
        now,
      );
    registry.prune(tracked, now);
    for (const r of reports) this.d.log(reapedLine(r));
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
