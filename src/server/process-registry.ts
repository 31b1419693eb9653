// Who the server's PIDs are: each process's identity (PID + start ticks, parent, command line) as
// it was when the server first saw it, so that a PID the kernel hands out again is a new process
// (the recorded one is gone), and a command's process tree can be found after its processes have
// exited (`ttalloc run`: the server records each PID's parent when it first sees it).
import {
  deadPids,
  isProcessAlive,
  readProcessInfo,
  startTicksOf,
  type ProcessInfo,
} from '../platform/processes.js';

export type { ProcessInfo } from '../platform/processes.js';

export interface RegistryOptions {
  /** Liveness of PIDs the registry has no identity for (default: kill(pid, 0) and zombies). */
  isAlive?: (pid: number) => boolean;
  /** Where /proc is (tests build a /proc-like tree). */
  procRoot?: string;
  /** A gone, unused entry is kept this long for queries about a tree that just ended. */
  keepGoneMs?: number;
  /** At most this many entries of gone processes (the oldest gone go first). */
  maxGone?: number;
}

interface Entry {
  readonly id: ProcessInfo;
  /** When prune() first found it gone (0: not yet). */
  goneAtMs: number;
}

/** How far up from a new process its ancestors are recorded (to pid 1 or a known one). */
const MAX_ANCESTRY = 64;

export class ProcessRegistry {
  private readonly known = new Map<number, Entry>();
  private readonly isAlive: (pid: number) => boolean;
  /** The default liveness: one read of /proc/PID/stat says gone, zombie, or a different start. */
  private readonly fused: boolean;
  private readonly procRoot: string;
  private readonly keepGoneMs: number;
  private readonly maxGone: number;
  private lastPruneMs = 0;

  constructor(o: RegistryOptions = {}) {
    this.isAlive = o.isAlive ?? isProcessAlive;
    this.fused = this.isAlive === isProcessAlive;
    this.procRoot = o.procRoot ?? '/proc';
    this.keepGoneMs = o.keepGoneMs ?? 10 * 60_000;
    this.maxGone = o.maxGone ?? 16_384;
  }

  get size(): number {
    return this.known.size;
  }

  /**
   * Called when see() finds that a recorded PID now names another process, before the new one is
   * recorded: the old process is gone and what it holds must be released as its own.
   */
  onReused: ((pid: number) => void) | null = null;

  /**
   * Records `pid`'s identity the first time it is seen, with the ancestors not known yet, up to
   * pid 1 or a known one. A PID with no process is not recorded. For a known PID one read of its
   * start ticks: a PID handed out again is a new process (onReused first).
   */
  see(pid: number): void {
    if (pid <= 0) return;
    const e = this.known.get(pid);
    if (e !== undefined) {
      const ticks = startTicksOf(pid, this.procRoot);
      if (ticks === e.id.startTicks || ticks < 0) return;
      this.onReused?.(pid);
    }
    const id = readProcessInfo(pid, this.procRoot);
    if (id === null) return;
    this.known.set(pid, { id, goneAtMs: 0 });
    let up = id.ppid;
    for (let i = 0; i < MAX_ANCESTRY && up > 1 && !this.known.has(up); i++) {
      const a = readProcessInfo(up, this.procRoot);
      if (a === null) break;
      this.known.set(up, { id: a, goneAtMs: 0 });
      up = a.ppid;
    }
  }

  /** The identity recorded at first sight, or null. */
  info(pid: number): ProcessInfo | null {
    return this.known.get(pid)?.id ?? null;
  }

  /**
   * Has the process `pid` names exited? Not alive (EPERM counts as alive, a zombie as dead), or a
   * different process now has the PID (its start ticks differ from the recorded ones). PID 0 or
   * below names nobody we can check: never gone.
   */
  isGone(pid: number): boolean {
    if (pid <= 0) return false;
    const e = this.known.get(pid);
    if (e === undefined) return !this.isAlive(pid);
    const ticks = startTicksOf(pid, this.procRoot);
    if (this.fused) return ticks !== e.id.startTicks;
    return !this.isAlive(pid) || ticks !== e.id.startTicks;
  }

  /**
   * The PIDs among `pids` that are gone (the sweep): known ones by one read each, the others in
   * one native call where the addon has it.
   */
  goneAmong(pids: Iterable<number>): Set<number> {
    const unknown: number[] = [];
    const gone = new Set<number>();
    for (const p of pids) {
      if (p > 0 && !this.known.has(p)) unknown.push(p);
      else if (this.isGone(p)) gone.add(p);
    }
    if (unknown.length) for (const p of deadPids(unknown, this.isAlive)) gone.add(p);
    return gone;
  }

  /**
   * `root` and every known PID whose chain of parents (through known PIDs, and the `parents`
   * given, e.g. those kept in the records of exited processes) reaches it.
   */
  descendantsOf(root: number, parents?: ReadonlyMap<number, number>): Set<number> {
    const parentOf = (p: number): number | undefined =>
      this.known.get(p)?.id.ppid ?? parents?.get(p);
    const inTree = new Map<number, boolean>([[root, true]]);
    const walk = (start: number): void => {
      const path: number[] = [];
      let p: number | undefined = start,
        verdict = false;
      while (p !== undefined && p > 0 && path.length <= this.known.size + (parents?.size ?? 0)) {
        const v = inTree.get(p);
        if (v !== undefined) {
          verdict = v;
          break;
        }
        path.push(p);
        p = parentOf(p);
      }
      for (const q of path) inTree.set(q, verdict);
    };
    for (const p of this.known.keys()) walk(p);
    if (parents) for (const p of parents.keys()) walk(p);
    const out = new Set<number>();
    for (const [p, v] of inTree) if (v) out.add(p);
    return out;
  }

  /** These PIDs were found gone and released at `now`: prune() need not ask about them again. */
  released(pids: readonly number[], now = Date.now()): void {
    for (const p of pids) {
      const e = this.known.get(p);
      if (e !== undefined && e.goneAtMs === 0) e.goneAtMs = now;
    }
  }

  /** Drops what is recorded about `pid`. */
  forget(pid: number): void {
    this.known.delete(pid);
  }

  /** Forgets everything (ttalloc reset). */
  clear(): void {
    this.known.clear();
  }

  /**
   * Bounds memory: an entry that `inUse` does not claim (the tracker no longer accounts the PID)
   * and that no known process names as its parent is dropped once it has been gone for
   * keepGoneMs; beyond maxGone gone entries the oldest gone go first. Cheap to call often: it
   * runs at most once a second unless `force`.
   */
  prune(inUse: { has(pid: number): boolean }, now = Date.now(), force = false): void {
    if (!force && now - this.lastPruneMs < 1000) return;
    this.lastPruneMs = now;
    const parents = new Set<number>();
    for (const e of this.known.values()) parents.add(e.id.ppid);
    const gone: [number, number][] = [];
    for (const [pid, e] of this.known) {
      if (inUse.has(pid) || parents.has(pid)) continue;
      if (e.goneAtMs === 0) {
        if (!this.isGone(pid)) continue;
        e.goneAtMs = now;
      }
      if (now - e.goneAtMs >= this.keepGoneMs) this.known.delete(pid);
      else gone.push([e.goneAtMs, pid]);
    }
    if (gone.length <= this.maxGone) return;
    gone.sort((a, b) => a[0] - b[0]);
    for (let i = 0; i < gone.length - this.maxGone; i++) this.known.delete(gone[i][1]);
  }
}
