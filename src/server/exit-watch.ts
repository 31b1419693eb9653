// Exits noticed at once: when a data connection closes and its owner still holds objects and has
// no other connection open, the owner is checked a few times over the next second; once it is gone
// (exited, a zombie, or its PID now names another process), what it held is released right away
// instead of at the next periodic sweep.
//
// What we ship: the connection closing plus this liveness check, else the periodic sweep (a
// process that closes its connection and lives on is found by the sweep). A pidfd per client
// (pidfd_open(2) + epoll in the native addon) would also catch processes that exit without a
// connection of their own closing (a child sharing its parent's socket); not built: the close
// already comes within ~1 ms of the exit, and the kernel closes a dying process's sockets in
// do_exit before it becomes a zombie, so the checks below see it gone within 10 ms.
import type { Tracker } from '../state/tracker.js';
import type { DataConnection } from './data-connection.js';
import type { ProcessRegistry } from './process-registry.js';

/**
 * When the owner is checked, in ms after its connection closed. The first finds processes whose
 * close came from exit(); the later ones a process that closed its socket just before exiting.
 */
export const CHECKS_MS = [0, 10, 30, 100, 300, 1000] as const;

export interface ExitWatchDeps {
  registry: Pick<ProcessRegistry, 'isGone'>;
  tracker: Pick<Tracker, 'pids'>;
  /** The open data connections (another one of the same owner: not exited). */
  open: ReadonlySet<DataConnection>;
  /** Releases what these gone PIDs hold (Reaper.reapGone). */
  reap: (pids: number[]) => void;
}

interface Pending {
  closedAtMs: number;
  /** Index into CHECKS_MS of the next check. */
  step: number;
  dueMs: number;
}

/** The PID a connection's objects belong to: the kernel's, else the one it claims. */
export function connectionOwner(c: Pick<DataConnection, 'ownerPid' | 'claimedPid'>): number {
  return c.ownerPid || c.claimedPid;
}

export class ExitWatch {
  private readonly pending = new Map<number, Pending>();
  /** The one timer for every pending check (unref'd: it never keeps the server up). */
  private timer: NodeJS.Timeout | null = null;
  private timerDueMs = Infinity;
  private stopped = false;
  /** PIDs found gone and released this way (stats, tests). */
  reaped = 0;

  constructor(private readonly d: ExitWatchDeps) {}

  /** How many owners are being watched. */
  get watching(): number {
    return this.pending.size;
  }

  /**
   * A data connection closed. O(1): whether the owner has another connection open is asked at
   * the check, once for all owners due (1,000 clients dying at once close 1,000 connections).
   */
  closed(c: Pick<DataConnection, 'ownerPid' | 'claimedPid'>): void {
    if (this.stopped) return;
    const pid = connectionOwner(c);
    if (pid <= 0 || !this.holds(pid)) return;
    const now = Date.now();
    this.pending.set(pid, { closedAtMs: now, step: 0, dueMs: now + CHECKS_MS[0] });
    this.arm(now + CHECKS_MS[0], now);
  }

  /** Clears the timer and every pending check (server stop, before connections are destroyed). */
  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.pending.clear();
  }

  private holds(pid: number): boolean {
    return (this.d.tracker.pids.get(pid)?.live ?? 0) > 0;
  }

  /** The owners of the open connections. */
  private connectedOwners(): Set<number> {
    const s = new Set<number>();
    for (const c of this.d.open) s.add(connectionOwner(c));
    return s;
  }

  private arm(dueMs: number, now: number): void {
    if (this.timer !== null && this.timerDueMs <= dueMs) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timerDueMs = dueMs;
    this.timer = setTimeout(this.run, Math.max(0, dueMs - now));
    this.timer.unref();
  }

  private readonly run = (): void => {
    this.timer = null;
    this.timerDueMs = Infinity;
    const now = Date.now();
    const gone: number[] = [];
    let next = Infinity,
      connected: Set<number> | null = null;
    for (const [pid, p] of this.pending) {
      if (p.dueMs > now) {
        next = Math.min(next, p.dueMs);
        continue;
      }
      connected ??= this.connectedOwners();
      // Released meanwhile (a sweep, a FREE of everything) or connected again: nothing to watch.
      if (!this.holds(pid) || connected.has(pid)) this.pending.delete(pid);
      else if (this.d.registry.isGone(pid)) {
        gone.push(pid);
        this.pending.delete(pid);
      } else if (++p.step >= CHECKS_MS.length) this.pending.delete(pid);
      else {
        // Never in the past: a late timer does not run the remaining checks back to back.
        p.dueMs = Math.max(p.closedAtMs + CHECKS_MS[p.step], now + 1);
        next = Math.min(next, p.dueMs);
      }
    }
    if (gone.length) {
      this.reaped += gone.length;
      this.d.reap(gone);
    }
    if (next !== Infinity && !this.stopped) this.arm(next, Date.now());
  };
}
