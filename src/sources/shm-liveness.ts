// Whether a slot's owner still runs, judged as the writer judges it (kill(pid, 0) == 0 or
// EPERM: another user's live process is alive), plus two things the writer does not check: a
// zombie holds nothing, and a PID the kernel handed out again (the process started after the
// slot's last update) is not the slot's owner. Slot PIDs are in the writer's PID namespace: a
// writer in another one (a container) has PIDs that mean nothing here; the views say so.
import { isProcessAlive, startTicksOf, startTimeMs } from '../platform/processes.js';
import type { ShmSlot } from './types.js';

/**
 * A process started this long after a slot's last update is a new process with the old PID.
 * Start times are accurate to ~1 s (boot time is whole seconds) and the clock may be stepped.
 */
const REUSE_SLACK_MS = 1000;

type Seen = { alive: true; startMs: number | null } | { alive: false; reason: 'gone' | 'zombie' };

export interface LivenessOptions {
  /** /proc for start times (tests build their own). */
  procRoot?: string;
  /** Replaces the kill(pid, 0) check (e.g. for PIDs of another namespace). */
  isAlive?: (pid: number) => boolean;
}

/** One judge per scan: a process that uses several chips is looked up once. */
export class SlotJudge {
  private readonly seen = new Map<number, Seen>();
  private readonly procRoot: string;
  private readonly isAlive: ((pid: number) => boolean) | undefined;

  constructor(opts: LivenessOptions = {}) {
    this.procRoot = opts.procRoot ?? '/proc';
    this.isAlive = opts.isAlive;
  }

  /** Sets `alive` and `dead_reason` of a slot whose pid and updated_ms are filled in. */
  judge(slot: ShmSlot): void {
    if (slot.pid < 0) {
      slot.alive = false;
      slot.dead_reason = slot.pid === -1 ? 'releasing' : 'gone';
      return;
    }
    let s = this.seen.get(slot.pid);
    if (s === undefined) {
      s = this.look(slot.pid);
      this.seen.set(slot.pid, s);
    }
    if (!s.alive) {
      slot.alive = false;
      slot.dead_reason = s.reason;
    } else if (
      s.startMs !== null &&
      slot.updated_ms !== null &&
      s.startMs > slot.updated_ms + REUSE_SLACK_MS
    ) {
      slot.alive = false;
      slot.dead_reason = 'pid_reused';
    } else {
      slot.alive = true;
    }
  }

  private look(pid: number): Seen {
    if (this.isAlive) {
      if (!this.isAlive(pid)) return { alive: false, reason: 'gone' };
    } else if (!signalable(pid)) return { alive: false, reason: 'gone' };
    const ticks = startTicksOf(pid, this.procRoot);
    if (ticks >= 0) return { alive: true, startMs: startTimeMs(ticks, this.procRoot) };
    // No stat line: a zombie, or a /proc that hides it (hidepid, another /proc): kill said
    // it exists, so only a zombie counts as dead.
    if (!this.isAlive && !isProcessAlive(pid)) return { alive: false, reason: 'zombie' };
    return { alive: true, startMs: null };
  }
}

/** The writer's own test: kill(pid, 0) succeeds or fails with EPERM. */
function signalable(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
