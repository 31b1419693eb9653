// Persistence of the tracked state in a state directory (state-dir.ts): an append-only journal of
// accepted events in numbered segments, and a snapshot that a worker thread rebuilds from the
// older segments. This facade wires the parts together:
//   journal.ts        the batch being filled (events and control entries as records)
//   segment-queue.ts  sealed batches → segment files, by writev on libuv's thread pool
//   compaction.ts     when to fold closed segments into a new snapshot (compactor.ts does it)
//   replay.ts         start-up: snapshot + segments replayed through the event function
// and owns what spans them: the flush timer, stopping on a failed write and resuming once the
// disk has room (with a snapshot of the live state written from copies, in slices).
import { statfsSync, statSync, unlinkSync, existsSync } from 'node:fs';
import type { Tracker } from '../state/tracker.js';
import type { EventJournal, StateEvent } from '../state/events.js';
import type { Checkpoints } from '../state/marks.js';
import { DEFAULT_LEFT_BEHIND_BUDGET, type ForgetFilter } from '../state/left-behind.js';
import { DEFAULT_NOTES_BUDGET } from '../state/buffer-notes.js';
import {
  Ctl,
  FORMAT_VERSION,
  OBJECT_ROW_BYTES,
  controlEntry,
  type ReapEntry,
  jsonEntry,
  noteEntry,
} from './records.js';
import { emptyRecovery, loadState, type Recovery } from './replay.js';
import { snapshotSource, writeSnapshot } from './snapshot.js';
import { Journal } from './journal.js';
import { SegmentQueue } from './segment-queue.js';
import { Compaction } from './compaction.js';
import {
  SNAPSHOT,
  StateDir,
  StateDirError,
  defaultStateDir,
  listSegments,
  type PreviousStop,
} from './state-dir.js';

export { StateDirError, defaultStateDir };

/** While stopped by a full disk, check for free space this often. */
const RESUME_CHECK_MS = 1000;

export type PersistenceStats = ReturnType<StateStore['stats']> | { enabled: false; reason: string };

export interface StoreOptions {
  dir: string;
  flushIntervalMs: number;
  /** A segment is closed (and a new one started) once it holds this many bytes. */
  segmentBytes: number;
  /** Closed segments are compacted into a new snapshot once they hold max(this, snapshot size). */
  compactBytes: number;
  /** Loud problems (persistence stopped); `log` for the ordinary news. */
  warn: (msg: string) => void;
  log: (msg: string) => void;
  /** Called when persistence stops (journal must no longer be fed) or resumes. */
  onState: (journaling: boolean) => void;
}

export interface StoreRecovery extends Recovery {
  previousStop: PreviousStop;
}

export class StateStore implements EventJournal {
  private readonly dir: StateDir;
  private readonly journal: Journal;
  private readonly segments: SegmentQueue;
  private readonly compaction: Compaction;
  private timer: NodeJS.Timeout | null = null;
  /** Journal growth, measured over about a second (compaction waits while it is high). */
  private rateBytes = 0;
  private rateSince = Date.now();
  bytesPerSecond = 0;
  private snapshotBytes = 0;
  private resumeAt = 0;
  private resuming = false;
  private closed = false;
  private tr: Tracker | null = null;
  private marks: Checkpoints | null = null;
  failed: string | null = null;
  recovery: StoreRecovery = { previousStop: 'none', ...emptyRecovery() };

  constructor(readonly opts: StoreOptions) {
    this.dir = new StateDir(opts.dir);
    this.journal = new Journal((buf, len) => {
      if (this.failed) this.journal.reuse(buf);
      else this.segments.enqueue(buf, len);
    });
    this.segments = new SegmentQueue({
      dir: this.dir,
      segmentBytes: opts.segmentBytes,
      // opens the segment's first batch
      onSegment: (gen) =>
        this.control(jsonEntry(Ctl.HEADER, { version: FORMAT_VERSION, segment: gen })),
      onWritten: (buf) => this.journal.reuse(buf),
      onFail: (reason) => this.fail(reason),
    });
    this.compaction = new Compaction({
      dir: opts.dir,
      compactBytes: opts.compactBytes,
      log: opts.log,
      onDone: (r) => {
        this.snapshotBytes = r.bytes;
        this.segments.dropThrough(r.through);
      },
    });
  }

  /**
   * Locks the directory, replays snapshot and journal into the tracker, and starts a new segment.
   */
  open(tr: Tracker, marks: Checkpoints): StoreRecovery {
    const previousStop = this.dir.acquire();
    let rec: Recovery;
    try {
      rec = loadState(this.opts.dir, tr, marks, { repair: true });
    } catch (e) {
      throw new StateDirError(`cannot read the state in ${this.opts.dir}: ${(e as Error).message}`);
    }
    return this.begin(tr, marks, { ...rec, previousStop });
  }

  /**
   * A restart's new server (server/takeover-new.ts): the state is already in the tracker, read
   * from this directory while the old server ran and caught up to its last event; this locks the
   * directory once the old server has left it and goes on from the next segment.
   */
  openLoaded(tr: Tracker, marks: Checkpoints, rec: Recovery): StoreRecovery {
    this.dir.acquire();
    return this.begin(tr, marks, { ...rec, previousStop: 'clean' });
  }

  /**
   * A restart's old server hands the directory over: no compaction may start or run while the
   * new server reads the files (it would fold and delete segments under it).
   */
  holdCompaction(): Promise<void> {
    return this.compaction.stop();
  }

  /** The takeover did not happen: compactions may run again. */
  releaseCompaction(): void {
    this.compaction.resume();
  }

  /**
   * The old server of a restart leaves the directory to the new one: everything appended is
   * written (drain() before), the segment is closed without fsync (the new server goes on where
   * this one stopped, and syncs at its own pace: a restart must not wait for the disk) and the
   * lock is released.
   */
  handOff(): void {
    if (this.timer) clearInterval(this.timer);
    this.closed = true;
    this.segments.closeCurrent(false);
    this.dir.release(false);
  }

  private begin(tr: Tracker, marks: Checkpoints, rec: StoreRecovery): StoreRecovery {
    this.tr = tr;
    this.marks = marks;
    this.recovery = rec;
    // Ingest statistics count from this start; the state itself came back from disk, and so did
    // the levels peaks start from (peaks from before the restart are not kept).
    tr.resetFrameCounts();
    tr.peaks.restarted(Date.now());
    tr.freed.clear(); // replayed frees carry the replay's time, not their own
    const snap = this.dir.path(SNAPSHOT);
    if (existsSync(snap)) this.snapshotBytes = statSync(snap).size;
    for (const s of listSegments(this.opts.dir)) {
      const path = this.dir.path(s.name);
      if (s.gen <= rec.snapshotThrough)
        unlinkSync(path); // left by a cut-short cleanup
      else this.segments.adopt(s.gen, statSync(path).size);
    }
    for (let d = 0; d <= tr.maxDeviceSeen; d++) if (tr.usageSeen(d)) this.journal.deviceLogged(d);
    this.segments.start(rec.lastGen + 1);
    this.timer = setInterval(() => this.tick(), this.opts.flushIntervalMs);
    this.timer.unref();
    return this.recovery;
  }

  /** The journal of accepted events (EventJournal): one record per event, no allocation. */
  record(ev: StateEvent, effect: number): void {
    this.journal.record(ev, effect);
  }

  /** Appends a control entry (marks, reaps, epochs, reset). */
  /** EventJournal: the buffer `ev` just created has a name and stack trace (a NOTE entry). */
  note(ev: StateEvent, name: string, trace: string): void {
    this.control(noteEntry(ev, name, trace));
  }

  private control(entry: Uint8Array): void {
    if (this.failed || this.closed) return;
    this.journal.control(entry);
  }

  /** PIDs released as gone, with who each was (their left-behind records replay from it). */
  reap(r: ReapEntry): void {
    this.control(jsonEntry(Ctl.REAP, r));
  }
  /** Left-behind records forgotten on request: on disk before the request is answered. */
  forget(f: ForgetFilter): Promise<void> {
    this.control(jsonEntry(Ctl.FORGET, f));
    return this.drain();
  }
  /** A deliberate reset, mark or unmark is on disk before the request is answered. */
  reset(): Promise<void> {
    this.control(controlEntry(Ctl.RESET));
    return this.drain();
  }
  mark(m: unknown): Promise<void> {
    this.control(jsonEntry(Ctl.MARK, m));
    return this.drain();
  }
  unmark(name: string): Promise<void> {
    this.control(jsonEntry(Ctl.UNMARK, { name }));
    return this.drain();
  }

  /** Seals what was appended as one checksummed batch and queues it for the disk. */
  flush(): void {
    this.journal.flush();
  }

  /** Resolves when everything appended so far is on disk (or persistence failed). */
  drain(): Promise<void> {
    this.flush();
    return this.segments.drained();
  }

  /** Persistence stops (the segment queue failed): the server keeps tracking in memory. */
  private fail(reason: string): void {
    this.failed = reason;
    this.journal.discard();
    this.resumeAt = Date.now() + RESUME_CHECK_MS;
    this.opts.onState(false);
    this.opts.warn(
      `!!! PERSISTENCE STOPPED: ${reason}. The server keeps tracking in memory; ` +
        'a restart now would lose what changed since. ' +
        `It resumes by itself (with a fresh snapshot) once ${this.opts.dir} has room again.`,
    );
  }

  private tick(): void {
    if (this.failed) {
      this.maybeResume();
      return;
    }
    this.flush();
    const now = Date.now();
    if (now - this.rateSince >= 1000) {
      const bytes = this.segments.enqueuedBytes;
      this.bytesPerSecond = ((bytes - this.rateBytes) * 1000) / (now - this.rateSince);
      this.rateSince = now;
      this.rateBytes = bytes;
    }
    if (this.closed || this.failed) return;
    const closed = this.segments.closedSegments();
    this.compaction.maybeStart({
      closedBytes: closed.bytes,
      upTo: closed.upTo,
      snapshotBytes: this.snapshotBytes,
      bytesPerSecond: this.bytesPerSecond,
      expectedObjects: this.tr ? this.tr.buffers.count : 0,
      leftBehindBudget: this.tr ? this.tr.leftBehind.budget : DEFAULT_LEFT_BEHIND_BUDGET,
      notesBudget: this.tr ? this.tr.notes.budgetBytes : DEFAULT_NOTES_BUDGET,
    });
  }

  /**
   * After a full disk: once there is room again, start a new segment now and write a snapshot of
   * the live state (from copies, in slices on the loop) covering everything before it.
   */
  private maybeResume(): void {
    if (this.resuming || this.closed || Date.now() < this.resumeAt || !this.tr || !this.marks)
      return;
    this.resumeAt = Date.now() + RESUME_CHECK_MS;
    const tr = this.tr;
    const rows = tr.buffers.count + tr.cbs.count + tr.kernels.count;
    const need = 2 * rows * OBJECT_ROW_BYTES + (4 << 20);
    try {
      const fs = statfsSync(this.opts.dir);
      if (fs.bavail * fs.bsize < need) return;
    } catch {
      return;
    }
    this.resuming = true;
    this.failed = null;
    const before = this.segments.restart();
    // consistent with the start of the new segment
    const src = snapshotSource(tr, this.marks, true);
    this.opts.onState(true);
    const pace = () => new Promise<void>((r) => setImmediate(r));
    writeSnapshot(this.opts.dir, src, before, pace).then(
      (r) => {
        this.resuming = false;
        this.snapshotBytes = r.bytes;
        this.segments.dropThrough(before);
        this.opts.log(
          `persistence resumed in ${this.opts.dir}: snapshot of ${r.objects} objects written`,
        );
      },
      (e: Error) => {
        this.resuming = false;
        this.segments.fail(`snapshot for resuming failed: ${e.message}`);
      },
    );
  }

  /** Clean stop: everything on disk and synced, the clean marker, the lock released. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.compaction.stop();
    await this.drain();
    this.closed = true;
    let synced = false;
    if (!this.failed) {
      try {
        this.segments.closeCurrent();
        synced = true;
      } catch {
        /* not on disk for sure: the next start reads it as a crash (no clean marker) */
      }
    }
    this.dir.release(synced);
  }

  /** The JSON of `stats.persistence` (snake_case, like every reply). */
  stats() {
    const r = this.recovery;
    const last = this.compaction.last;
    return {
      enabled: true as const,
      dir: this.opts.dir,
      failed: this.failed,
      journal_bytes: this.segments.bytes + this.journal.pendingBytes,
      journal_segments: this.segments.segments.length,
      /** Written to the journal but not yet on disk (the thread pool is writing it). */
      queued_bytes: this.segments.queued,
      bytes_per_second: Math.round(this.bytesPerSecond),
      snapshot_bytes: this.snapshotBytes,
      flush_interval_ms: this.opts.flushIntervalMs,
      last_flush_at: this.segments.lastWriteMs
        ? new Date(this.segments.lastWriteMs).toISOString()
        : null,
      last_flush_at_ms: this.segments.lastWriteMs || null,
      compactions: this.compaction.count,
      compacting: this.compaction.running,
      last_compaction: last && {
        finished_at: last.at,
        finished_at_ms: Date.parse(last.at),
        through: last.through,
        bytes: last.bytes,
        objects: last.objects,
        events: last.events,
        ms: last.ms,
        problems: last.problems,
      },
      recovery: {
        previous_stop: r.previousStop,
        snapshot_through: r.snapshotThrough,
        snapshot_objects: r.snapshotObjects,
        journal_events: r.journalEvents,
        journal_bytes: r.journalBytes,
        truncated_bytes: r.truncatedBytes,
        problems: r.problems,
      },
      note:
        r.previousStop === 'crash'
          ? 'recovered after an unclean stop: events of the last flush interval ' +
            `(≤ ${this.opts.flushIntervalMs} ms) before it may be missing`
          : null,
    };
  }
}
