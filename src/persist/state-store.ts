// Persistence of the tracked state in a state directory: an append-only journal of accepted events
// in numbered segments, and a snapshot that a worker thread rebuilds from the older segments.
//
//   lock                   pid of the server using the directory
//   clean                  present after a clean stop
//   snapshot.bin           the whole state as of the end of segment N (its header says N)
//   journal-0000000K.bin   events after the snapshot, K > N; only the newest one is being written
//
// Ingest pays a 16- or 24-byte copy per event into a batch buffer; batches are sealed with a
// checksum
// every flush interval (or when a 256 KiB buffer fills) and written by libuv's thread pool, all
// that
// is queued in one writev, so the event loop never waits for the disk. Start-up replays snapshot +
// segments and cuts a torn tail.
import { Worker } from 'node:worker_threads';
import {
  close,
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  rm,
  rmSync,
  statfsSync,
  statSync,
  unlinkSync,
  writev,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Tracker } from '../state/tracker.js';
import {
  EFFECT_CREATED,
  EFFECT_REMOVED,
  type EventJournal,
  type StateEvent,
} from '../state/events.js';
import type { Checkpoints } from '../state/marks.js';
import {
  BATCH_HEADER,
  BIG_EVENT,
  Ctl,
  DEAD_EVENT,
  FORMAT_VERSION,
  OBJECT_ROW_WORDS,
  SMALL_EVENT,
  controlEntry,
  deviceEntry,
  entryBytes,
  epochEntry,
  jsonEntry,
  sealBatch,
} from './records.js';
import { MAX_DEVICE_ID, MsgType, Off } from '../protocol/constants.js';
import { SNAPSHOT, listSegments, loadState, segmentName, type Recovery } from './replay.js';
import { snapshotSource, writeSnapshot } from './snapshot.js';
import type { CompactRequest, CompactResult } from './compactor.js';
import { isProcessAlive } from '../platform/processes.js';

/** Batch buffer size: a full one is sealed and written at once (~13 k events). */
const BATCH_BYTES = 256 << 10;
/** Bytes allowed to wait for the disk before persistence gives up (the disk cannot keep up). */
const MAX_QUEUED = 256 << 20;
/**
 * Slots of the table that finds a pending ALLOC record by its key (more than the clients' usual
 * lag).
 */
const PENDING_SLOTS = 1 << 14;
const PENDING_MASK = PENDING_SLOTS - 1;
/** Batches written by one writev (IOV_MAX is 1024). */
const MAX_WRITEV = 256;
/** Spare batch buffers kept for reuse. */
const POOL = 4;
/**
 * Compaction waits while the journal grows faster than compactBytes / BUSY_SHARE per second (it
 * would take CPU from ingest, and a calmer moment comes), unless closed segments reach
 * HARD_FACTOR × the usual trigger, which bounds the disk.
 */
const BUSY_SHARE = 16;
const HARD_FACTOR = 4;
/** After a failed compaction, wait this long before the next attempt. */
const COMPACT_RETRY_MS = 60_000;
/** While stopped by a full disk, check for free space this often. */
const RESUME_CHECK_MS = 1000;

export class StateDirError extends Error {}

function pendingSlot(device: number, lo: number, hi: number): number {
  return (lo ^ (lo >>> 12) ^ hi ^ (device << 9)) & PENDING_MASK;
}

export type PersistenceStats = ReturnType<StateStore['stats']> | { enabled: false; reason: string };

/** Default directory: one per socket path, so servers on different sockets never share one. */
export function defaultStateDir(socketPath: string): string {
  const base = process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  const id =
    socketPath
      .replace(/^\/+/, '')
      .replace(/[^A-Za-z0-9._-]/g, '_')
      .slice(-120) || 'default';
  return join(base, 'ttalloc', id);
}

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
  previousStop: 'clean' | 'crash' | 'none';
}

interface Segment {
  gen: number;
  bytes: number;
  closed: boolean;
}
interface Pending {
  fd: number;
  seg: Segment;
  buf: Buffer;
  len: number;
  closeAfter: boolean;
}

export class StateStore implements EventJournal {
  private buf: Buffer = Buffer.allocUnsafeSlow(BATCH_BYTES);
  /**
   * The same bytes as words (batch buffers are whole ArrayBuffers: aligned; records are whole
   * words, little-endian like the host).
   */
  private words = new Int32Array(this.buf.buffer, this.buf.byteOffset, this.buf.length >> 2);
  private used = BATCH_HEADER;
  /** Key hash → word offset + 1 of a creating ALLOC record in the batch being filled (0: none). */
  private pending = new Int32Array(PENDING_SLOTS);
  /** Devices whose first report is already on record (in the state restored, or a DEVICE entry). */
  private devicesLogged = new Uint8Array(MAX_DEVICE_ID + 1);
  /** Bytes of cancelled records in the batch being filled. */
  private deadBytes = 0;
  private pool: Buffer[] = [];
  private fd = -1;
  private seg: Segment = { gen: 0, bytes: 0, closed: false };
  /** Segments after the snapshot, oldest first (the last one is being written). */
  private segments: Segment[] = [];
  private queue: Pending[] = [];
  private queued = 0;
  private writing = false;
  private timer: NodeJS.Timeout | null = null;
  private drainWaiters: (() => void)[] = [];
  private compactor: Worker | null = null;
  private compactRetryAt = 0;
  /** Journal growth, measured over about a second (compaction waits while it is high). */
  private enqueuedBytes = 0;
  private rateBytes = 0;
  private rateSince = Date.now();
  bytesPerSecond = 0;
  private snapshotBytes = 0;
  private resumeAt = 0;
  private resuming = false;
  private closed = false;
  private tr: Tracker | null = null;
  private marks: Checkpoints | null = null;
  lastFlushMs = 0;
  compactions = 0;
  lastCompaction: (CompactResult & { at: string }) | null = null;
  failed: string | null = null;
  recovery: StoreRecovery = {
    previousStop: 'none',
    snapshotThrough: 0,
    snapshotObjects: 0,
    journalEvents: 0,
    lastGen: 0,
    journalBytes: 0,
    truncatedBytes: 0,
    problems: [],
  };

  constructor(readonly opts: StoreOptions) {}

  private path(name: string): string {
    return join(this.opts.dir, name);
  }

  /**
   * Locks the directory, replays snapshot and journal into the tracker, and starts a new segment.
   */
  open(tr: Tracker, marks: Checkpoints): StoreRecovery {
    try {
      mkdirSync(this.opts.dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new StateDirError(
        `cannot create state directory ${this.opts.dir}: ${(e as Error).message} (use --state-dir DIR or --no-persist)`,
      );
    }
    this.lock();
    this.tr = tr;
    this.marks = marks;
    const previousStop = existsSync(this.path('clean'))
      ? 'clean'
      : existsSync(this.path(SNAPSHOT)) || listSegments(this.opts.dir).length > 0
        ? 'crash'
        : 'none';
    rmSync(this.path('clean'), { force: true });
    let rec: Recovery;
    try {
      rec = loadState(this.opts.dir, tr, marks, { repair: true });
    } catch (e) {
      throw new StateDirError(`cannot read the state in ${this.opts.dir}: ${(e as Error).message}`);
    }
    this.recovery = { ...rec, previousStop };
    // Ingest statistics count from this start; the state itself came back from disk.
    tr.framesByType.fill(0);
    if (existsSync(this.path(SNAPSHOT))) this.snapshotBytes = statSync(this.path(SNAPSHOT)).size;
    for (const s of listSegments(this.opts.dir)) {
      if (s.gen <= rec.snapshotThrough) {
        unlinkSync(this.path(s.name));
        continue;
      } // left by a cut-short cleanup
      this.segments.push({ gen: s.gen, bytes: statSync(this.path(s.name)).size, closed: true });
    }
    for (let d = 0; d <= tr.maxDeviceSeen; d++) if (tr.usageSeen(d)) this.devicesLogged[d] = 1;
    this.startSegment(rec.lastGen + 1);
    tr.onEpoch = (epoch, startMs) => this.control(epochEntry(epoch, startMs));
    // each run records the epoch it starts in (epoch 0 has no other record)
    tr.onEpoch(tr.epoch, tr.epochTimeMs(tr.epoch));
    this.timer = setInterval(() => this.tick(), this.opts.flushIntervalMs);
    this.timer.unref();
    return this.recovery;
  }

  private startSegment(gen: number): void {
    this.fd = openSync(this.path(segmentName(gen)), 'a', 0o600);
    this.seg = { gen, bytes: 0, closed: false };
    this.segments.push(this.seg);
    // opens the segment's first batch
    this.control(jsonEntry(Ctl.HEADER, { version: FORMAT_VERSION, segment: gen }));
  }

  // ---------------------------------------------------------------- hot path
  /** The journal of accepted events (EventJournal): one record per event, no allocation. */
  record(ev: StateEvent, effect: number): void {
    this.event(ev.code, ev.sub, ev.device, ev.owner, ev.lo, ev.hi, ev.sizeLo, ev.sizeHi, effect);
  }

  /**
   * Appends an accepted event as a record: six or four word stores, no allocation (the ingest
   * loop passes the fields it has already read). A FREE that removed a buffer whose creating
   * ALLOC is still in this batch, with no other event of that buffer between them, cancels that
   * record and is not written: short-lived buffers (most of a model's) cost the disk nothing.
   * `pending` finds that ALLOC by a hash of the key. `pid` is the owner the tracker used.
   */
  event(
    code: number,
    sub: number,
    device: number,
    pid: number,
    lo: number,
    hi: number,
    sizeLo: number,
    sizeHi: number,
    effect: number,
  ): void {
    if (code === MsgType.ALLOC)
      return this.alloc(sub, device, pid, lo, hi, sizeLo, sizeHi, effect === EFFECT_CREATED);
    if (code === MsgType.FREE) return this.free(device, pid, lo, hi, effect === EFFECT_REMOVED);
    if (this.used + BIG_EVENT > BATCH_BYTES) this.flush();
    const a = this.words,
      w = this.used >> 2;
    a[w] = code | (sub << 8) | (device << 16);
    a[w + 1] = pid;
    a[w + 2] = lo;
    a[w + 3] = hi;
    if (code === MsgType.CB_ALLOC || code === MsgType.KERNEL_LOAD) {
      a[w + 4] = sizeLo;
      a[w + 5] = sizeHi;
      this.used += BIG_EVENT;
    } else this.used += SMALL_EVENT;
  }

  /** An ALLOC; `created`: it made a new buffer (not a second reference). */
  alloc(
    type: number,
    device: number,
    pid: number,
    lo: number,
    hi: number,
    sizeLo: number,
    sizeHi: number,
    created: boolean,
  ): void {
    // A cancelled ALLOC must not take with it the news that its device reported at all.
    if (created && this.devicesLogged[device] === 0) {
      this.devicesLogged[device] = 1;
      this.control(deviceEntry(device));
    }
    if (this.used + BIG_EVENT > BATCH_BYTES) this.flush();
    const a = this.words,
      w = this.used >> 2,
      head = MsgType.ALLOC | (type << 8) | (device << 16);
    const slot = pendingSlot(device, lo, hi);
    if (created) this.pending[slot] = w + 1;
    // a second reference: that buffer's pair is no longer a clean one
    else this.unpend(slot, device, lo, hi);
    a[w] = head;
    a[w + 1] = pid;
    a[w + 2] = lo;
    a[w + 3] = hi;
    a[w + 4] = sizeLo;
    a[w + 5] = sizeHi;
    this.used += BIG_EVENT;
  }

  /** A FREE; `removed`: it removed the buffer (its last reference). */
  free(device: number, pid: number, lo: number, hi: number, removed: boolean): void {
    const p = this.unpend(pendingSlot(device, lo, hi), device, lo, hi);
    if (p >= 0 && removed) {
      // created and removed within this batch: neither record is needed
      this.words[p] = (this.words[p] & ~0xff) | DEAD_EVENT;
      this.deadBytes += BIG_EVENT;
      return;
    }
    if (this.used + SMALL_EVENT > BATCH_BYTES) this.flush();
    const a = this.words,
      w = this.used >> 2;
    a[w] = MsgType.FREE | (device << 16);
    a[w + 1] = pid;
    a[w + 2] = lo;
    a[w + 3] = hi;
    this.used += SMALL_EVENT;
  }

  /** Forgets the pending creating ALLOC of this buffer; returns its word offset, or -1 if none. */
  private unpend(slot: number, device: number, lo: number, hi: number): number {
    const p = this.pending[slot] - 1;
    if (p < 0) return -1;
    const a = this.words;
    if (
      (a[p] & 0xffff00ff) !== (MsgType.ALLOC | (device << 16)) ||
      a[p + 2] !== lo ||
      a[p + 3] !== hi
    )
      return -1; // another buffer's
    this.pending[slot] = 0;
    return p;
  }

  /** Appends a control entry (marks, reaps, epochs, reset). */
  control(entry: Uint8Array): void {
    if (this.failed || this.closed) return;
    if (this.used + entry.length > BATCH_BYTES) this.flush();
    if (BATCH_HEADER + entry.length > BATCH_BYTES) {
      // a huge entry gets a batch of its own
      this.enqueue(Buffer.concat([Buffer.alloc(BATCH_HEADER), entry]), entry.length);
      return;
    }
    this.buf.set(entry, this.used);
    this.used += entry.length;
  }

  reap(pids: number[], atMs: number): void {
    this.control(jsonEntry(Ctl.REAP, { pids, atMs }));
  }
  /** A deliberate reset or mark is on disk before the request is answered. */
  reset(): Promise<void> {
    this.control(controlEntry(Ctl.RESET));
    return this.drain();
  }
  mark(m: unknown): Promise<void> {
    this.control(jsonEntry(Ctl.MARK, m));
    return this.drain();
  }

  // ---------------------------------------------------------------- writing
  /** Seals what was appended as one checksummed batch and queues it for the disk. */
  flush(): void {
    if (this.deadBytes > 0) this.dropDead();
    this.pending.fill(0); // its offsets point into the batch being closed
    if (this.used === BATCH_HEADER || this.failed) {
      this.used = BATCH_HEADER;
      return;
    }
    const buf = this.buf,
      len = this.used - BATCH_HEADER;
    this.buf = this.pool.pop() ?? Buffer.allocUnsafeSlow(BATCH_BYTES);
    this.words = new Int32Array(this.buf.buffer, this.buf.byteOffset, this.buf.length >> 2);
    this.used = BATCH_HEADER;
    this.enqueue(buf, len);
  }

  /** Squeezes the cancelled records out of the batch being filled. */
  private dropDead(): void {
    const b = this.buf,
      words = this.words,
      end = this.used;
    let r = BATCH_HEADER,
      w = BATCH_HEADER;
    while (r < end) {
      const code = b[r],
        n = entryBytes(code, words[(r + 4) >> 2]);
      if (code !== DEAD_EVENT) {
        if (w !== r) b.copyWithin(w, r, r + n);
        w += n;
      }
      r += n;
    }
    this.used = w;
    this.deadBytes = 0;
  }

  private enqueue(buf: Buffer, len: number): void {
    sealBatch(buf, len);
    const item: Pending = {
      fd: this.fd,
      seg: this.seg,
      buf,
      len: BATCH_HEADER + len,
      closeAfter: false,
    };
    this.seg.bytes += item.len;
    this.enqueuedBytes += item.len;
    if (this.seg.bytes >= this.opts.segmentBytes) {
      item.closeAfter = true;
      this.startSegment(this.seg.gen + 1);
    }
    this.queue.push(item);
    this.queued += item.len;
    if (this.queued > MAX_QUEUED)
      return this.fail(`the disk cannot keep up (${this.queued} bytes waiting)`);
    this.pump();
  }

  /**
   * Writes everything queued for the current file in one writev (one thread-pool job and one
   * callback, however many batches piled up while the loop was busy), then the rest.
   */
  private pump(): void {
    if (this.writing || this.failed) return;
    if (this.queue.length === 0) {
      for (const w of this.drainWaiters.splice(0)) w();
      return;
    }
    const fd = this.queue[0].fd;
    let n = 0;
    while (n < this.queue.length && n < MAX_WRITEV && this.queue[n].fd === fd)
      if (this.queue[n++].closeAfter) break;
    this.writing = true;
    this.writeBatches(this.queue.splice(0, n), 0);
  }

  /** Writes `items` from byte `skip` of the first (after a partial write). */
  private writeBatches(items: Pending[], skip: number): void {
    const bufs = items.map((p, i) => p.buf.subarray(i === 0 ? skip : 0, p.len));
    writev(items[0].fd, bufs, null, (err, written) => {
      if (err) {
        this.writing = false;
        for (const p of items) if (p.closeAfter) close(p.fd, () => {});
        return this.fail(`${err.code ?? ''} ${err.message}`.trim());
      }
      // Whole batches written leave; a partly written one is continued.
      let left = written + skip;
      while (items.length && left >= items[0].len) {
        const p = items.shift()!;
        left -= p.len;
        this.queued -= p.len;
        if (p.buf.length === BATCH_BYTES && p.buf.byteOffset === 0 && this.pool.length < POOL)
          this.pool.push(p.buf);
        if (p.closeAfter) {
          close(p.fd, () => {});
          p.seg.closed = true;
        }
      }
      this.lastFlushMs = Date.now();
      if (items.length) return this.writeBatches(items, left);
      this.writing = false;
      this.pump();
    });
  }

  private fail(reason: string): void {
    if (this.failed) return;
    this.failed = reason;
    for (const p of this.queue) if (p.closeAfter) closeSync(p.fd);
    this.queue = [];
    this.queued = 0;
    this.used = BATCH_HEADER;
    this.deadBytes = 0;
    this.pending.fill(0);
    for (const w of this.drainWaiters.splice(0)) w();
    this.resumeAt = Date.now() + RESUME_CHECK_MS;
    this.opts.onState(false);
    this.opts.warn(
      `!!! PERSISTENCE STOPPED: ${reason}. The server keeps tracking in memory; a restart now would lose what changed since. ` +
        `It resumes by itself (with a fresh snapshot) once ${this.opts.dir} has room again.`,
    );
  }

  /** Resolves when everything appended so far is on disk (or persistence failed). */
  drain(): Promise<void> {
    this.flush();
    if (!this.writing && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.drainWaiters.push(r));
  }

  // ---------------------------------------------------------------- upkeep
  private tick(): void {
    if (this.failed) {
      this.maybeResume();
      return;
    }
    this.flush();
    const now = Date.now();
    if (now - this.rateSince >= 1000) {
      this.bytesPerSecond = ((this.enqueuedBytes - this.rateBytes) * 1000) / (now - this.rateSince);
      this.rateSince = now;
      this.rateBytes = this.enqueuedBytes;
    }
    this.maybeCompact();
  }

  /**
   * Closed segments past max(compactBytes, snapshot size): a worker folds them into a new snapshot.
   */
  private maybeCompact(): void {
    if (this.compactor || this.closed || this.failed || Date.now() < this.compactRetryAt) return;
    let closedBytes = 0,
      upTo = 0;
    for (const s of this.segments)
      if (s.closed) {
        closedBytes += s.bytes;
        upTo = s.gen;
      }
    const trigger = Math.max(this.opts.compactBytes, this.snapshotBytes);
    if (closedBytes < trigger) return;
    if (
      this.bytesPerSecond > this.opts.compactBytes / BUSY_SHARE &&
      closedBytes < HARD_FACTOR * trigger
    )
      return;
    const req: CompactRequest = {
      dir: this.opts.dir,
      upTo,
      expectedObjects: this.tr ? this.tr.buffers.count : 0,
    };
    const w = new Worker(new URL('./compactor.js', import.meta.url), { workerData: req });
    this.compactor = w;
    let done = false;
    w.once('message', (r: CompactResult) => {
      done = true;
      this.compacted(r);
    });
    w.once('error', (e) => {
      done = true;
      this.compactRetryAt = Date.now() + COMPACT_RETRY_MS;
      this.opts.log(
        `journal compaction failed (retrying in ${COMPACT_RETRY_MS / 1000} s): ${e.message}`,
      );
    });
    w.once('exit', () => {
      if (this.compactor === w) this.compactor = null;
      if (!done && !this.closed) this.compactRetryAt = Date.now() + COMPACT_RETRY_MS;
    });
  }

  /** A new snapshot covers segments ≤ r.through: they can go. */
  private compacted(r: CompactResult): void {
    this.compactions++;
    this.snapshotBytes = r.bytes;
    this.lastCompaction = { ...r, at: new Date().toISOString() };
    this.dropSegmentsThrough(r.through);
  }

  private dropSegmentsThrough(gen: number): void {
    for (const s of this.segments.filter((x) => x.gen <= gen && x.closed)) {
      // freeing its blocks takes ms: not on the loop
      rm(this.path(segmentName(s.gen)), { force: true }, () => {});
      this.segments.splice(this.segments.indexOf(s), 1);
    }
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
    const need =
      2 * (tr.buffers.count + tr.cbs.count + tr.kernels.count) * OBJECT_ROW_WORDS * 4 + (4 << 20);
    try {
      const fs = statfsSync(this.opts.dir);
      if (fs.bavail * fs.bsize < need) return;
    } catch {
      return;
    }
    this.resuming = true;
    const before = this.seg.gen;
    try {
      if (!this.seg.closed) closeSync(this.fd);
    } catch {
      /* already closed */
    }
    this.seg.closed = true;
    this.failed = null;
    this.startSegment(before + 1);
    // consistent with the start of the new segment
    const src = snapshotSource(tr, this.marks, true);
    this.opts.onState(true);
    writeSnapshot(this.opts.dir, src, before, () => new Promise((r) => setImmediate(r))).then(
      (r) => {
        this.resuming = false;
        this.snapshotBytes = r.bytes;
        this.dropSegmentsThrough(before);
        this.opts.log(
          `persistence resumed in ${this.opts.dir}: snapshot of ${r.objects} objects written`,
        );
      },
      (e: Error) => {
        this.resuming = false;
        this.fail(`snapshot for resuming failed: ${e.message}`);
      },
    );
  }

  /** Clean stop: everything on disk and synced, the clean marker, the lock released. */
  async close(tr: Tracker): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    tr.onEpoch = null;
    if (this.compactor) {
      const w = this.compactor;
      this.compactor = null;
      await w.terminate();
    }
    await this.drain();
    this.closed = true;
    if (!this.failed) {
      try {
        fsyncSync(this.fd);
        closeSync(this.fd);
      } catch {
        /* reported below by the missing marker */
      }
      writeFileSync(this.path('clean'), `${process.pid}\n`);
    }
    rmSync(this.path('lock'), { force: true });
  }

  stats() {
    return {
      enabled: true as const,
      dir: this.opts.dir,
      failed: this.failed,
      journalBytes: this.segments.reduce((n, s) => n + s.bytes, 0) + (this.used - BATCH_HEADER),
      journalSegments: this.segments.length,
      /** Written to the journal but not yet on disk (the thread pool is writing it). */
      queuedBytes: this.queued,
      bytesPerSecond: Math.round(this.bytesPerSecond),
      snapshotBytes: this.snapshotBytes,
      flushIntervalMs: this.opts.flushIntervalMs,
      lastFlushAt: this.lastFlushMs ? new Date(this.lastFlushMs).toISOString() : null,
      compactions: this.compactions,
      compacting: this.compactor !== null,
      lastCompaction: this.lastCompaction,
      recovery: this.recovery,
      note:
        this.recovery.previousStop === 'crash'
          ? `recovered after an unclean stop: events of the last flush interval (≤ ${this.opts.flushIntervalMs} ms) before it may be missing`
          : null,
    };
  }

  private lock(): void {
    const lockPath = this.path('lock');
    try {
      writeFileSync(lockPath, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new StateDirError(`cannot lock ${this.opts.dir}: ${(e as Error).message}`);
    }
    const owner = Number(readFileSync(lockPath, 'utf8').trim());
    if (owner && owner !== process.pid && isProcessAlive(owner)) {
      throw new StateDirError(
        `state directory ${this.opts.dir} is in use by server pid ${owner}; use another --state-dir`,
      );
    }
    writeFileSync(lockPath, `${process.pid}\n`, { mode: 0o600 }); // stale lock of a dead server
  }
}
