// Persistence: an append-only journal of accepted events plus compact snapshots in a state
// directory, so a restart (clean or kill -9) resumes the state. Ingest only copies a 40-byte head
// into a buffer; a timer hands full buffers to the disk in big asynchronous writes.
import { closeSync, existsSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, write, writeFileSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Off } from '../protocol/constants.js';
import { MsgType } from '../protocol/constants.js';
import { KIND_CB, KIND_KERNEL, type Tracker } from '../state/tracker.js';
import type { ObjectTable } from '../state/object-table.js';
import type { Checkpoints, Mark } from '../analysis/checkpoints.js';
import { Ctl, EVENT_BYTES, encodeBatch, epochEntry, jsonEntry, readBatches } from './records.js';
import { isProcessAlive } from '../server/reaper.js';

const TWO32 = 4294967296;
const INITIAL_BUFFER = 1 << 20;
/** Bytes allowed to wait for the disk before persistence gives up (the disk cannot keep up). */
const MAX_QUEUED = 512 << 20;

export class StateDirError extends Error {}

/** Default directory: one per socket path, so servers on different sockets never share one. */
export function defaultStateDir(socketPath: string): string {
  const base = process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  const id = socketPath.replace(/^\/+/, '').replace(/[^A-Za-z0-9._-]/g, '_').slice(-120) || 'default';
  return join(base, 'ttalloc', id);
}

export interface Recovery {
  previousStop: 'clean' | 'crash' | 'none';
  snapshotEvents: number;
  journalEvents: number;
  truncatedBytes: number;
  problems: string[];
}

export interface StoreOptions {
  dir: string;
  flushIntervalMs: number;
  /** Journal size after which a snapshot replaces it. */
  snapshotBytes: number;
  warn: (msg: string) => void;
}

export class StateStore {
  private buf = Buffer.allocUnsafe(INITIAL_BUFFER);
  private dv = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.length);
  private used = 0;
  private fd = -1;
  private queue: Buffer[] = [];
  private queued = 0;
  private writing = false;
  private timer: NodeJS.Timeout | null = null;
  private drainWaiters: (() => void)[] = [];
  journalBytes = 0;
  lastFlushMs = 0;
  snapshots = 0;
  failed: string | null = null;
  recovery: Recovery = { previousStop: 'none', snapshotEvents: 0, journalEvents: 0, truncatedBytes: 0, problems: [] };

  constructor(readonly opts: StoreOptions) {}

  private get journalPath(): string { return join(this.opts.dir, 'journal.bin'); }
  private get snapshotPath(): string { return join(this.opts.dir, 'snapshot.bin'); }
  private get lockPath(): string { return join(this.opts.dir, 'lock'); }
  private get cleanPath(): string { return join(this.opts.dir, 'clean'); }

  /** Locks the directory, replays snapshot and journal into the tracker, and opens the journal. */
  open(tr: Tracker, marks: Checkpoints): Recovery {
    try { mkdirSync(this.opts.dir, { recursive: true, mode: 0o700 }); } catch (e) {
      throw new StateDirError(`cannot create state directory ${this.opts.dir}: ${(e as Error).message} (use --state-dir DIR or --no-persist)`);
    }
    this.lock();
    const rec = this.recovery;
    rec.previousStop = existsSync(this.cleanPath) ? 'clean' : existsSync(this.journalPath) || existsSync(this.snapshotPath) ? 'crash' : 'none';
    rmSync(this.cleanPath, { force: true });
    if (existsSync(this.snapshotPath)) {
      const r = readBatches(readFileSync(this.snapshotPath));
      if (r.problem) rec.problems.push(`snapshot: ${r.problem}`);
      for (const p of r.payloads) rec.snapshotEvents += replay(p, tr, marks);
    }
    if (existsSync(this.journalPath)) {
      const file = readFileSync(this.journalPath);
      const r = readBatches(file);
      for (const p of r.payloads) rec.journalEvents += replay(p, tr, marks);
      if (r.problem) {
        rec.truncatedBytes = file.length - r.goodBytes;
        rec.problems.push(`journal: ${r.problem}; cut ${rec.truncatedBytes} bytes at the last good record`);
        const fd = openSync(this.journalPath, 'r+');
        ftruncateSync(fd, r.goodBytes);
        closeSync(fd);
      }
      this.journalBytes = r.goodBytes;
    }
    this.fd = openSync(this.journalPath, 'a', 0o600);
    tr.onEpoch = (epoch, startMs) => this.control(epochEntry(Ctl.EPOCH, epoch, startMs));
    this.timer = setInterval(() => this.flush(), this.opts.flushIntervalMs);
    this.timer.unref();
    return rec;
  }

  // ---------------------------------------------------------------- hot path
  /** Appends the 40-byte head of an accepted frame (ten word copies: no allocation). */
  frame(src: DataView, off: number): void {
    if (this.used + EVENT_BYTES > this.buf.length) this.grow(EVENT_BYTES);
    const dv = this.dv, at = this.used;
    for (let i = 0; i < EVENT_BYTES; i += 4) dv.setUint32(at + i, src.getUint32(off + i, true), true);
    this.used = at + EVENT_BYTES;
  }

  control(entry: Uint8Array): void {
    if (this.failed) return;
    if (this.used + entry.length > this.buf.length) this.grow(entry.length);
    this.buf.set(entry, this.used);
    this.used += entry.length;
  }

  private grow(need: number): void {
    // Hand the full buffer to the disk now rather than growing without bound.
    this.flush();
    if (this.used + need > this.buf.length) this.buf = Buffer.allocUnsafe(Math.max(this.buf.length * 2, need));
    this.dv = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.length);
  }

  // ---------------------------------------------------------------- writing
  /** Queues what was appended as one checksummed batch and starts writing it. */
  flush(): void {
    if (this.used === 0 || this.failed || this.fd < 0) { this.used = 0; return; }
    const batch = encodeBatch(this.buf.subarray(0, this.used));
    this.used = 0;
    this.queue.push(batch);
    this.queued += batch.length;
    if (this.queued > MAX_QUEUED) return this.fail(`the disk cannot keep up (${this.queued} bytes waiting)`);
    this.pump();
  }

  private pump(): void {
    if (this.writing || this.failed) return;
    const next = this.queue.shift();
    if (!next) { for (const w of this.drainWaiters.splice(0)) w(); return; }
    this.writing = true;
    this.writeAll(next, 0);
  }

  private writeAll(b: Buffer, from: number): void {
    if (process.env.TT_ALLOC_TEST_JOURNAL_LIMIT && this.journalBytes + b.length - from > Number(process.env.TT_ALLOC_TEST_JOURNAL_LIMIT)) {
      // Test hook: behave as a full disk once the journal would pass this size.
      this.writing = false;
      return this.fail('ENOSPC: no space left on device (test limit)');
    }
    write(this.fd, b, from, b.length - from, null, (err, n) => {
      if (err) { this.writing = false; return this.fail(`${err.code ?? ''} ${err.message}`.trim()); }
      this.journalBytes += n;
      if (from + n < b.length) return this.writeAll(b, from + n);
      this.queued -= b.length;
      this.lastFlushMs = Date.now();
      this.writing = false;
      this.pump();
    });
  }

  private fail(reason: string): void {
    if (this.failed) return;
    this.failed = reason;
    this.queue = []; this.queued = 0; this.used = 0;
    for (const w of this.drainWaiters.splice(0)) w();
    this.opts.warn(`!!! PERSISTENCE STOPPED: ${reason}. The server keeps tracking in memory, but a restart now loses state. Free space in ${this.opts.dir} and restart the server to resume persistence.`);
  }

  /** Resolves when everything appended so far is on disk (or persistence failed). */
  drain(): Promise<void> {
    this.flush();
    if (!this.writing && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.drainWaiters.push(r));
  }

  /** Writes a snapshot of the whole state and empties the journal, in one turn of the loop. */
  async snapshot(tr: Tracker, marks: Checkpoints): Promise<void> {
    if (this.failed || this.fd < 0) return;
    await this.drain();
    if (this.failed) return;
    try {
      const tmp = `${this.snapshotPath}.tmp`;
      writeFileSync(tmp, encodeBatch(snapshotPayload(tr, marks)), { mode: 0o600 });
      const fd = openSync(tmp, 'r');
      fsyncSync(fd);
      closeSync(fd);
      renameSync(tmp, this.snapshotPath);
      ftruncateSync(this.fd, 0);
      this.journalBytes = 0;
      this.snapshots++;
    } catch (e) {
      this.fail(`snapshot failed: ${(e as Error).message}`);
    }
  }

  /** Journal past its budget: replace it by a snapshot. */
  maybeSnapshot(tr: Tracker, marks: Checkpoints): void {
    if (this.journalBytes > this.opts.snapshotBytes) void this.snapshot(tr, marks);
  }

  /** Clean stop: everything on disk, a snapshot, the clean marker, the lock released. */
  async close(tr: Tracker, marks: Checkpoints): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    tr.onEpoch = null;
    if (this.fd >= 0) {
      await this.snapshot(tr, marks);
      await this.drain();
      closeSync(this.fd);
      this.fd = -1;
      if (!this.failed) writeFileSync(this.cleanPath, `${process.pid}\n`);
    }
    rmSync(this.lockPath, { force: true });
  }

  /** Forgets persisted state too (ttalloc reset). */
  reset(): void {
    this.control(Buffer.from([Ctl.RESET, 0, 0, 0, 0, 0, 0, 0]));
  }

  stats() {
    return {
      enabled: true, dir: this.opts.dir, failed: this.failed, journalBytes: this.journalBytes + this.queued,
      flushIntervalMs: this.opts.flushIntervalMs, lastFlushAt: this.lastFlushMs ? new Date(this.lastFlushMs).toISOString() : null,
      snapshots: this.snapshots, recovery: this.recovery,
      note: this.recovery.previousStop === 'crash'
        ? `recovered after an unclean stop: events of the last flush interval (≤ ${this.opts.flushIntervalMs} ms) before it may be missing`
        : null,
    };
  }

  private lock(): void {
    try {
      writeFileSync(this.lockPath, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new StateDirError(`cannot lock ${this.opts.dir}: ${(e as Error).message}`);
    }
    const owner = Number(readFileSync(this.lockPath, 'utf8').trim());
    if (owner && owner !== process.pid && isProcessAlive(owner)) {
      throw new StateDirError(`state directory ${this.opts.dir} is in use by server pid ${owner}; use another --state-dir`);
    }
    writeFileSync(this.lockPath, `${process.pid}\n`, { mode: 0o600 }); // stale lock of a dead server
  }

  size(): number { try { return statSync(this.journalPath).size; } catch { return 0; } }
}

// ------------------------------------------------------------------ snapshot and replay
function writeHead(dv: DataView, at: number, type: number, t: ObjectTable, e: number): void {
  const size = t.size(e);
  dv.setUint8(at, type);
  dv.setInt32(at + Off.deviceId, t.device(e), true);
  dv.setUint32(at + Off.size, size >>> 0, true);
  dv.setUint32(at + Off.size + 4, Math.floor(size / TWO32), true);
  dv.setUint8(at + Off.bufferType, t.type(e));
  dv.setInt32(at + Off.processId, t.pid(e), true);
  dv.setUint32(at + Off.bufferId, t.addrLo(e), true);
  dv.setUint32(at + Off.bufferId + 4, t.addrHi(e), true);
}

/** The whole state as replayable entries: epochs, marks, reaped reports, then every live object. */
export function snapshotPayload(tr: Tracker, marks: Checkpoints): Buffer {
  const parts: Buffer[] = [jsonEntry(Ctl.EPOCHS, tr.epochStartMs)];
  for (const m of marks.list()) parts.push(jsonEntry(Ctl.MARK, m));
  parts.push(jsonEntry(Ctl.REAPED_LIST, tr.reaped));
  for (const [t, type] of [[tr.buffers, MsgType.ALLOC], [tr.cbs, MsgType.CB_ALLOC], [tr.kernels, MsgType.KERNEL_LOAD]] as const) {
    // Worst case per entry: a BORN (12 B), the head (40 B), a REF (12 B).
    const out = Buffer.alloc(t.count * 64);
    const dv = new DataView(out.buffer, out.byteOffset, out.length);
    let at = 0, born = -1;
    for (let e = 0; e < t.count; e++) {
      if (t.epoch(e) !== born) {
        born = t.epoch(e);
        out[at] = Ctl.BORN; dv.setUint32(at + 4, 4, true); dv.setUint32(at + 8, born, true); at += 12;
      }
      writeHead(dv, at, type, t, e); at += EVENT_BYTES;
      if (t.ref(e) > 1) { out[at] = Ctl.REF; dv.setUint32(at + 4, 4, true); dv.setUint32(at + 8, t.ref(e), true); at += 12; }
    }
    parts.push(out.subarray(0, at));
  }
  parts.push(epochEntry(Ctl.EPOCH, tr.epoch, tr.epochTimeMs(tr.epoch)));
  return Buffer.concat(parts);
}

/** Applies one verified payload to the tracker; returns the number of events. */
export function replay(p: Buffer, tr: Tracker, marks: Checkpoints): number {
  const dv = new DataView(p.buffer, p.byteOffset, p.length);
  let off = 0, events = 0;
  let lastAlloc: { device: number; lo: number; hi: number } | null = null;
  const savedHook = tr.onEpoch;
  tr.onEpoch = null;
  try {
    while (off < p.length) {
      const code = p[off];
      if (code < 0x80) {
        const device = dv.getInt32(off + Off.deviceId, true);
        const lo = dv.getUint32(off + Off.bufferId, true), hi = dv.getUint32(off + Off.bufferId + 4, true);
        const size = dv.getUint32(off + Off.size, true) + dv.getUint32(off + Off.size + 4, true) * TWO32;
        const bt = dv.getUint8(off + Off.bufferType), pid = dv.getInt32(off + Off.processId, true);
        if (code === MsgType.ALLOC) { tr.alloc(device, lo, hi, size, bt, pid); lastAlloc = { device, lo, hi }; }
        else if (code === MsgType.FREE) tr.free(device, lo, hi, pid);
        else if (code === MsgType.CB_ALLOC) tr.loadObject(KIND_CB, device, lo, hi, size, 0, pid);
        else if (code === MsgType.KERNEL_LOAD) tr.loadObject(KIND_KERNEL, device, lo, hi, size, bt, pid);
        else if (code === MsgType.CB_FREE) tr.unloadObject(KIND_CB, device, lo, hi);
        else if (code === MsgType.KERNEL_UNLOAD) tr.unloadObject(KIND_KERNEL, device, lo, hi);
        events++;
        off += EVENT_BYTES;
        continue;
      }
      const len = dv.getUint32(off + 4, true);
      const data = p.subarray(off + 8, off + 8 + len);
      off += 8 + ((len + 3) & ~3);
      switch (code) {
        case Ctl.EPOCH: tr.restoreEpoch(data.readUInt32LE(0), data.readDoubleLE(4)); break;
        case Ctl.BORN: tr.epoch = data.readUInt32LE(0); break;
        case Ctl.EPOCHS: tr.restoreEpochTimes(JSON.parse(data.toString()) as number[]); break;
        case Ctl.MARK: marks.load([JSON.parse(data.toString()) as Mark]); break;
        case Ctl.REAP: tr.releasePids(new Set(JSON.parse(data.toString()) as number[])); break;
        case Ctl.REAPED_LIST: tr.reaped.splice(0, tr.reaped.length, ...(JSON.parse(data.toString()) as Tracker['reaped'])); break;
        case Ctl.RESET: tr.reset(); marks.clear(); break;
        case Ctl.REF: {
          if (!lastAlloc) break;
          const e = tr.buffers.find(lastAlloc.device, lastAlloc.lo, lastAlloc.hi);
          if (e >= 0) tr.buffers.setRef(e, data.readUInt32LE(0));
          break;
        }
        default: break; // unknown control entries from a newer version are skipped
      }
    }
  } finally {
    tr.onEpoch = savedHook;
  }
  return events;
}
