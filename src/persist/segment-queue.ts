// The journal's segment files and the queue of sealed batches waiting for them. Everything queued
// for the current file goes to libuv's thread pool in one writev, so the event loop never waits
// for the disk; a segment is closed, and the next one opened, once it holds `segmentBytes`. A
// write error (ENOSPC, EIO…) or a disk that cannot keep up is reported once to `onFail`.
import { close, closeSync, fsyncSync, openSync, rm, writev } from 'node:fs';
import { BATCH_HEADER, sealBatch } from './records.js';
import { segmentName, type StateDir } from './state-dir.js';

/** Bytes allowed to wait for the disk before persistence gives up (the disk cannot keep up). */
const MAX_QUEUED = 256 << 20;
/** Batches written by one writev (IOV_MAX is 1024). */
const MAX_WRITEV = 256;

export interface Segment {
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

export interface SegmentQueueOptions {
  dir: StateDir;
  /** A segment is closed (and a new one started) once it holds this many bytes. */
  segmentBytes: number;
  /** A new segment was opened: its first entry (the header) is due. */
  onSegment: (gen: number) => void;
  /** A batch buffer is written (or dropped): it may be reused. */
  onWritten: (buf: Buffer) => void;
  /** Writing failed; nothing more is written until `resumeAt`. */
  onFail: (reason: string) => void;
}

export class SegmentQueue {
  private fd = -1;
  private seg: Segment = { gen: 0, bytes: 0, closed: false };
  /** Segments after the snapshot, oldest first (the last one is being written). */
  readonly segments: Segment[] = [];
  private queue: Pending[] = [];
  /** Bytes waiting for the disk. */
  queued = 0;
  private writing = false;
  private failed = false;
  private drainWaiters: (() => void)[] = [];
  /** Bytes ever queued (the journal's growth rate is measured from it). */
  enqueuedBytes = 0;
  lastWriteMs = 0;

  constructor(private readonly o: SegmentQueueOptions) {}

  /** Segments found on disk after the snapshot (closed: a new one is started for writing). */
  adopt(gen: number, bytes: number): void {
    this.segments.push({ gen, bytes, closed: true });
  }

  get currentGen(): number {
    return this.seg.gen;
  }

  /** Opens segment `gen` for appending; its first batch starts with a header (`onSegment`). */
  start(gen: number): void {
    this.fd = openSync(this.o.dir.path(segmentName(gen)), 'a', 0o600);
    this.seg = { gen, bytes: 0, closed: false };
    this.segments.push(this.seg);
    this.failed = false;
    this.o.onSegment(gen);
  }

  /** Seals a batch of `len` payload bytes and queues it for the current segment. */
  enqueue(buf: Buffer, len: number): void {
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
    if (this.seg.bytes >= this.o.segmentBytes) {
      item.closeAfter = true;
      this.start(this.seg.gen + 1);
    }
    this.queue.push(item);
    this.queued += item.len;
    if (this.queued > MAX_QUEUED)
      return this.fail(`the disk cannot keep up (${this.queued} bytes waiting)`);
    this.pump();
  }

  /** Resolves when everything queued so far is on disk (or writing failed). */
  drained(): Promise<void> {
    if (!this.writing && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.drainWaiters.push(r));
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
        this.o.onWritten(p.buf);
        if (p.closeAfter) {
          close(p.fd, () => {});
          p.seg.closed = true;
        }
      }
      this.lastWriteMs = Date.now();
      if (items.length) return this.writeBatches(items, left);
      this.writing = false;
      this.pump();
    });
  }

  /** Stops writing: what waits is dropped, and `onFail` says why (once). */
  fail(reason: string): void {
    if (this.failed) return;
    this.failed = true;
    for (const p of this.queue) if (p.closeAfter) closeSync(p.fd);
    this.queue = [];
    this.queued = 0;
    for (const w of this.drainWaiters.splice(0)) w();
    this.o.onFail(reason);
  }

  /** After a failure: the current segment is given up (closed), and `gen + 1` is started. */
  restart(): number {
    const before = this.seg.gen;
    try {
      if (!this.seg.closed) closeSync(this.fd);
    } catch {
      /* already closed */
    }
    this.seg.closed = true;
    this.start(before + 1);
    return before;
  }

  /** Closed segments and the last of them (what a compaction may fold into a snapshot). */
  closedSegments(): { bytes: number; upTo: number } {
    let bytes = 0,
      upTo = 0;
    for (const s of this.segments)
      if (s.closed) {
        bytes += s.bytes;
        upTo = s.gen;
      }
    return { bytes, upTo };
  }

  /** Deletes the closed segments up to `gen` (a snapshot covers them). */
  dropThrough(gen: number): void {
    for (const s of this.segments.filter((x) => x.gen <= gen && x.closed)) {
      // freeing its blocks takes ms: not on the loop
      rm(this.o.dir.path(segmentName(s.gen)), { force: true }, () => {});
      this.segments.splice(this.segments.indexOf(s), 1);
    }
  }

  /** Bytes in the segment files, written or queued. */
  get bytes(): number {
    return this.segments.reduce((n, s) => n + s.bytes, 0);
  }

  /** Makes the current segment durable and closes it (a clean stop). */
  closeCurrent(sync = true): void {
    if (sync) fsyncSync(this.fd);
    closeSync(this.fd);
  }
}
