// The journal's batch being filled: accepted events as records (records.ts), control entries,
// the cancellation of created-then-removed pairs, and sealing. Ingest pays a 16- or 24-byte copy
// per event into a batch buffer and allocates nothing; a sealed batch goes to `seal` (the
// segment queue), whose written buffers come back through `reuse`.
import { EFFECT_CREATED, EFFECT_REMOVED, type StateEvent } from '../state/events.js';
import { MAX_DEVICE_ID, MsgType } from '../protocol/constants.js';
import {
  ALLOC_KEY_MASK,
  BATCH_HEADER,
  BIG_EVENT,
  DEAD_EVENT,
  SMALL_EVENT,
  allocKeyWord,
  cancelEvent,
  deviceEntry,
  entryBytes,
  writeEvent,
} from './records.js';

/** Batch buffer size: a full one is sealed and written at once (~13 k events). */
export const BATCH_BYTES = 256 << 10;
/**
 * Slots of the table that finds a pending ALLOC record by its key (more than the clients' usual
 * lag).
 */
const PENDING_SLOTS = 1 << 14;
const PENDING_MASK = PENDING_SLOTS - 1;
/** Spare batch buffers kept for reuse. */
const POOL = 4;

function pendingSlot(device: number, lo: number, hi: number): number {
  return (lo ^ (lo >>> 12) ^ hi ^ (device << 9)) & PENDING_MASK;
}

/**
 * Takes a batch: `buf` holds `payloadLen` bytes after room for the batch header (sealBatch
 * writes it).
 */
export type BatchSink = (buf: Buffer, payloadLen: number) => void;

export class Journal {
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

  constructor(private readonly seal: BatchSink) {}

  /** Payload bytes in the batch being filled. */
  get pendingBytes(): number {
    return this.used - BATCH_HEADER;
  }

  /** This device's first report is already on record (restored from disk). */
  deviceLogged(device: number): void {
    this.devicesLogged[device] = 1;
  }

  /**
   * Appends an accepted event as a record: no allocation. A FREE that removed a buffer whose
   * creating ALLOC is still in this batch, with no other event of that buffer between them,
   * cancels that record and is not written: short-lived buffers (most of a model's) cost the disk
   * nothing. `pending` finds that ALLOC by a hash of the key. `ev.owner` is the owner the tracker
   * used.
   */
  record(ev: StateEvent, effect: number): void {
    const code = ev.code;
    let slot = -1;
    if (code === MsgType.ALLOC) {
      // A cancelled ALLOC must not take with it the news that its device reported at all.
      if (effect === EFFECT_CREATED && this.devicesLogged[ev.device] === 0) {
        this.devicesLogged[ev.device] = 1;
        this.control(deviceEntry(ev.device));
      }
      slot = pendingSlot(ev.device, ev.lo, ev.hi);
      // a second reference: that buffer's pair is no longer a clean one
      if (effect !== EFFECT_CREATED) this.unpend(slot, ev);
    } else if (code === MsgType.FREE) {
      const p = this.unpend(pendingSlot(ev.device, ev.lo, ev.hi), ev);
      if (p >= 0 && effect === EFFECT_REMOVED) {
        // created and removed within this batch: neither record is needed
        cancelEvent(this.words, p);
        this.deadBytes += BIG_EVENT;
        return;
      }
    }
    // room for the record (frees are small; other codes are given the larger size)
    if (this.used + (code === MsgType.FREE ? SMALL_EVENT : BIG_EVENT) > BATCH_BYTES) this.flush();
    const w = this.used >> 2;
    // after the flush above: it forgets the pending records of the batch it seals
    if (slot >= 0 && effect === EFFECT_CREATED) this.pending[slot] = w + 1;
    this.used += writeEvent(this.words, w, ev);
  }

  /** Forgets the pending creating ALLOC of this buffer; returns its word offset, or -1 if none. */
  private unpend(slot: number, ev: StateEvent): number {
    const p = this.pending[slot] - 1;
    if (p < 0) return -1;
    const a = this.words;
    const same =
      (a[p] & ALLOC_KEY_MASK) === allocKeyWord(ev.device) &&
      a[p + 1] === ev.owner && // each owner's buffer is its own (two may share an address)
      a[p + 2] === ev.lo &&
      a[p + 3] === ev.hi;
    if (!same) return -1; // another buffer's
    this.pending[slot] = 0;
    return p;
  }

  /** Appends a control entry (marks, reaps, epochs, reset). */
  control(entry: Uint8Array): void {
    if (this.used + entry.length > BATCH_BYTES) this.flush();
    if (BATCH_HEADER + entry.length > BATCH_BYTES) {
      // a huge entry gets a batch of its own
      this.seal(Buffer.concat([Buffer.alloc(BATCH_HEADER), entry]), entry.length);
      return;
    }
    this.buf.set(entry, this.used);
    this.used += entry.length;
  }

  /** Hands what was appended to `seal` as one batch, and starts the next one. */
  flush(): void {
    if (this.deadBytes > 0) this.dropDead();
    this.pending.fill(0); // its offsets point into the batch being closed
    if (this.used === BATCH_HEADER) return;
    const buf = this.buf,
      len = this.used - BATCH_HEADER;
    this.buf = this.pool.pop() ?? Buffer.allocUnsafeSlow(BATCH_BYTES);
    this.words = new Int32Array(this.buf.buffer, this.buf.byteOffset, this.buf.length >> 2);
    this.used = BATCH_HEADER;
    this.seal(buf, len);
  }

  /** Forgets the batch being filled (persistence stopped). */
  discard(): void {
    this.used = BATCH_HEADER;
    this.deadBytes = 0;
    this.pending.fill(0);
  }

  /** A batch buffer written to disk: kept for a later batch if it is one of ours. */
  reuse(buf: Buffer): void {
    if (buf.length === BATCH_BYTES && buf.byteOffset === 0 && this.pool.length < POOL)
      this.pool.push(buf);
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
}
