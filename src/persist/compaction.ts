// When to fold closed journal segments into a new snapshot, and running the worker that does it
// (compactor.ts) beside the server.
import { Worker } from 'node:worker_threads';
import type { CompactRequest, CompactResult } from './compactor.js';

/**
 * Compaction waits while the journal grows faster than compactBytes / BUSY_SHARE per second (it
 * would take CPU from ingest, and a calmer moment comes), unless closed segments reach
 * HARD_FACTOR × the usual trigger, which bounds the disk.
 */
const BUSY_SHARE = 16;
const HARD_FACTOR = 4;
/** After a failed compaction, wait this long before the next attempt. */
const COMPACT_RETRY_MS = 60_000;

export interface CompactionOptions {
  dir: string;
  /** Closed segments are compacted into a new snapshot once they hold max(this, snapshot size). */
  compactBytes: number;
  log: (msg: string) => void;
  /** A new snapshot covers segments ≤ r.through. */
  onDone: (r: CompactResult) => void;
}

/** What the decision looks at. */
export interface JournalState {
  closedBytes: number;
  /** The newest closed segment. */
  upTo: number;
  snapshotBytes: number;
  /** Journal growth, measured over about a second. */
  bytesPerSecond: number;
  /** Live buffers (the worker's table is sized for them). */
  expectedObjects: number;
  leftBehindBudget: number;
  notesBudget: number;
}

/** Whether closed segments are worth a compaction now. */
export function compactionDue(s: JournalState, compactBytes: number): boolean {
  const trigger = Math.max(compactBytes, s.snapshotBytes);
  if (s.closedBytes < trigger) return false;
  return s.bytesPerSecond <= compactBytes / BUSY_SHARE || s.closedBytes >= HARD_FACTOR * trigger;
}

export class Compaction {
  private worker: Worker | null = null;
  private retryAt = 0;
  private stopped = false;
  count = 0;
  last: (CompactResult & { at: string }) | null = null;

  constructor(private readonly o: CompactionOptions) {}

  get running(): boolean {
    return this.worker !== null;
  }

  /** Starts a worker if none runs, no failure is being waited out and `s` calls for one. */
  maybeStart(s: JournalState): void {
    if (this.worker || this.stopped || Date.now() < this.retryAt) return;
    if (!compactionDue(s, this.o.compactBytes)) return;
    const req: CompactRequest = {
      dir: this.o.dir,
      upTo: s.upTo,
      expectedObjects: s.expectedObjects,
      leftBehindBudget: s.leftBehindBudget,
      notesBudget: s.notesBudget,
    };
    const w = new Worker(new URL('./compactor.js', import.meta.url), { workerData: req });
    this.worker = w;
    let done = false;
    w.once('message', (r: CompactResult) => {
      done = true;
      this.count++;
      this.last = { ...r, at: new Date().toISOString() };
      this.o.onDone(r);
    });
    w.once('error', (e) => {
      done = true;
      this.retryAt = Date.now() + COMPACT_RETRY_MS;
      this.o.log(
        `journal compaction failed (retrying in ${COMPACT_RETRY_MS / 1000} s): ${e.message}`,
      );
    });
    w.once('exit', () => {
      if (this.worker === w) this.worker = null;
      if (!done && !this.stopped) this.retryAt = Date.now() + COMPACT_RETRY_MS;
    });
  }

  /** Compactions may start again (after a restart's hold that did not complete). */
  resume(): void {
    this.stopped = false;
  }

  /** No more compactions; a running one is stopped (its segments stay for the next start). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (!this.worker) return;
    const w = this.worker;
    this.worker = null;
    await w.terminate();
  }
}
