// One client connection on the data socket: reassembles frames however the bytes arrive, detects
// the frame size, validates each frame and applies it to the tracker.
//
// Hot path: reads land in the server's one read buffer (socket-reader.ts) and its one DataView,
// fields
// are read in place, no per-frame or per-read objects.
import type { Socket } from 'node:net';
import { MAX_DEVICE_ID, MAX_FRAME, MsgType, MSG_NAMES, Off } from '../protocol/constants.js';
import { detectFrameSize, NOT_FRAMES, UNDECIDED } from '../protocol/frame-size.js';
import type { Tracker } from '../state/tracker.js';
import {
  READ_BUFFER,
  READ_VIEW,
  readIntoBuffer,
  type Pumped,
  type ReadPump,
} from './socket-reader.js';
import {
  applyAlloc,
  applyEvent,
  applyFree,
  isStateEvent,
  StateEvent,
  type EventJournal,
} from '../state/events.js';

const TWO32 = 4294967296;
/** Consecutive frames with an unknown code after which the stream is judged not to be frames. */
const MAX_CONSECUTIVE_GARBAGE = 8;
/**
 * Bytes one connection may feed per event-loop turn. libuv reads up to 32 × 64 KiB from one
 * socket per turn; a busy client would then hold the loop for ~10 ms and a QUERY waits behind it.
 * Pausing until the next turn bounds that, and lets each later read carry more frames. One read's
 * worth (64 KiB, ~450 frames, ~40 µs) per connection and turn: QUERY p99 under full ingest
 * 1.8-2.2 → 1.2-1.6 ms against 128 KiB, batched ingest unchanged.
 */
const TURN_BYTES = 64 * 1024;
/**
 * A read through libuv at least this big means a busy sender (≥ 7 frames since the last turn):
 * only then is the connection handed to the pump. Each hand-over and hand-back costs a few system
 * calls (~3 µs); for a client sending a frame now and then (one frame per read) that was ~40% more
 * server CPU per frame than epoll alone, for nothing.
 */
const BUSY_READ_BYTES = 1024;

/** What the connection needs from the server beyond the tracker (the rare, non-hot messages). */
export interface ConnectionHost {
  tracker: Tracker;
  /** Reads busy connections directly (null: everything through libuv). */
  pump: ReadPump | null;
  logEvents: boolean;
  /** Detection wait after the stream goes quiet on an exact single-frame length. */
  detectQuietMs: number;
  reply(conn: DataConnection, dv: DataView, off: number): void;
  /**
   * Persistence of accepted events (null when off or failed); `effect` says whether a buffer was
   * created or removed.
   */
  journal: EventJournal | null;
  dump(conn: DataConnection, kernels: boolean): void;
  logEvent(conn: DataConnection, dv: DataView, off: number): void;
  log(msg: string): void;
  closed(conn: DataConnection): void;
}

export class DataConnection implements Pumped {
  frameSize: number;
  frames = 0;
  rejected = 0;
  firstRejection = '';
  /** PID claimed by the first frame that carries one (display only). */
  claimedPid = 0;
  /** The peer's PID and UID from the kernel at accept (SO_PEERCRED); 0 / -1 when unavailable. */
  peerPid = 0;
  peerUid = -1;
  /**
   * The owner of everything this connection reports: the kernel's PID, or 0 to take each frame's
   * claimed process_id (no peer credentials, or --trust-client-pid). One field read per frame.
   */
  ownerPid = 0;
  readonly openedAtMs = Date.now();
  /** The event being applied (reused: applying a frame allocates nothing). */
  private readonly ev = new StateEvent();
  private pending = new Uint8Array(MAX_FRAME * 2);
  private pendingDv = new DataView(this.pending.buffer);
  private pendingLen = 0;
  private garbageRun = 0;
  private detectTimer: NodeJS.Timeout | null = null;
  /** The first frame was applied from its 40-byte head while the size was still unknown. */
  private headApplied = false;
  /** The partial frame in `pending` is that already-applied first frame: drop it when complete. */
  private skipPending = false;
  private closing = false;
  private turnBytes = 0;
  hot = false;
  readonly fd: number;
  /** Reads land in READ_BUFFER (false: Node's per-read buffers, see socket-reader.ts). */
  readonly ownBuffer: boolean;
  private readonly nextTurn = () => {
    this.turnBytes = 0;
    if (!this.closing) this.socket.resume();
  };

  constructor(
    readonly id: number,
    readonly socket: Socket,
    private host: ConnectionHost,
    forcedFrameSize = 0,
  ) {
    this.frameSize = forcedFrameSize;
    this.fd = (socket as unknown as { _handle?: { fd?: number } | null })._handle?.fd ?? -1;
    // The server accepts paused: nothing is read before one of these two is in place.
    this.ownBuffer = readIntoBuffer(socket, this.onRead);
    if (!this.ownBuffer) {
      socket.on('data', (chunk: Buffer) => this.onData(chunk));
      socket.resume();
    }
    socket.on('end', () => this.onEnd());
    socket.on('error', () => {
      /* a client that vanishes mid-write: 'close' follows */
    });
    socket.on('close', () => this.onClose());
  }

  describe(): string {
    const p = this.peerPid,
      c = this.claimedPid;
    if (p === 0) return `connection #${this.id}${c ? ` (pid ${c})` : ''}`;
    return `connection #${this.id} (pid ${p}${c && c !== p ? `, claims ${c}` : ''})`;
  }

  /**
   * libuv read `n` bytes into READ_BUFFER (socket-reader.ts). Returning false stops its reading:
   * the pump reads the connection from the next turn, or it resumes then.
   */
  private readonly onRead = (n: number): boolean => {
    if (this.closing) return false;
    this.onBytes(n);
    const pump = this.host.pump;
    if (pump !== null && n >= BUSY_READ_BYTES && this.fd >= 0) {
      pump.heat(this);
      return false;
    }
    return !this.turnFull(n);
  };

  /** Applies the first `n` bytes of READ_BUFFER (a read by libuv or by the pump). */
  onBytes(n: number): void {
    this.apply(READ_BUFFER, READ_VIEW, n);
  }

  readable(): boolean {
    return !this.closing && !this.socket.destroyed;
  }

  cool(): void {
    if (!this.closing) this.socket.resume();
  }

  /** A chunk in Node's own buffer (when readIntoBuffer() declined). */
  private onData(chunk: Buffer): void {
    if (this.closing) return;
    const detecting = this.frameSize === 0;
    this.apply(chunk, null, chunk.length);
    if (!detecting && this.turnFull(chunk.length)) this.socket.pause();
  }

  private apply(chunk: Uint8Array, view: DataView | null, n: number): void {
    this.host.tracker.setNow(Date.now());
    if (this.frameSize === 0) this.detect(chunk.subarray(0, n), false);
    else this.ingest(chunk, view, n);
  }

  /**
   * Counts `n` bytes against this turn's share; true when it is used up (reading resumes next
   * turn).
   */
  private turnFull(n: number): boolean {
    if ((this.turnBytes += n) < TURN_BYTES) return false;
    setImmediate(this.nextTurn);
    return true;
  }

  /** Buffers the first bytes until the frame size is known, then replays them. */
  private detect(chunk: Uint8Array | null, settled: boolean): void {
    if (chunk) {
      const room = this.pending.length - this.pendingLen;
      const n = Math.min(room, chunk.length);
      this.pending.set(chunk.subarray(0, n), this.pendingLen);
      this.pendingLen += n;
      if (n < chunk.length) {
        // Detection is always decided within 113 bytes, so the buffer cannot overflow undecided.
        const size = detectFrameSize(this.pending, this.pendingLen, settled);
        if (size > 0) return this.decided(size, chunk.subarray(n));
      }
    }
    const size = detectFrameSize(this.pending, this.pendingLen, settled);
    if (size === NOT_FRAMES) {
      const head = Buffer.from(this.pending.subarray(0, Math.min(this.pendingLen, 16)));
      return this.reject(
        `stream is not allocation-protocol frames (first bytes ${head.toString('hex')}, ${JSON.stringify(head.toString('latin1').replace(/[^\x20-\x7e]/g, '.'))})`,
      );
    }
    if (size !== UNDECIDED) return this.decided(size, null);
    if (
      !settled &&
      (this.pendingLen === 72 || this.pendingLen === 112 || this.pendingLen === 144)
    ) {
      // An exact single-frame length: a client waiting for a reply, or one that paused.
      if (this.detectTimer) clearTimeout(this.detectTimer);
      this.detectTimer = setTimeout(() => {
        this.detectTimer = null;
        this.quiet();
      }, this.host.detectQuietMs);
    }
  }

  /**
   * The stream went quiet on an exact 72 or 112 bytes: one whole frame, or the start of a longer
   * one. Only a client waiting for a reply must be answered now, so its length decides. Any other
   * frame's 40-byte head means the same in every size: apply it now and let later bytes decide
   * (a 112/144-byte frame that paused after 72 bytes is then not misread as 72-byte frames).
   */
  private quiet(): void {
    if (this.frameSize !== 0) return;
    const t = this.pending[0];
    if (t === MsgType.QUERY || t === MsgType.DEVICE_INFO_QUERY) return this.detect(null, true);
    if (!this.headApplied) {
      this.headApplied = true;
      this.handle(this.pendingDv, 0);
    }
  }

  private decided(size: number, rest: Uint8Array | null): void {
    if (this.detectTimer) {
      clearTimeout(this.detectTimer);
      this.detectTimer = null;
    }
    this.frameSize = size;
    let head = Buffer.from(this.pending.subarray(0, this.pendingLen));
    this.pendingLen = 0;
    if (this.headApplied) {
      // never apply that first frame twice
      if (head.length >= size) head = head.subarray(size);
      else {
        this.pending.set(head);
        this.pendingLen = head.length;
        this.skipPending = true;
        head = head.subarray(head.length);
      }
    }
    this.ingest(head);
    if (rest && rest.length) this.ingest(rest);
  }

  /**
   * Applies the first `len` bytes of `chunk`; `view`, when given, is a DataView over all of
   * `chunk`.
   */
  private ingest(chunk: Uint8Array, view: DataView | null = null, len = chunk.length): void {
    const fs = this.frameSize;
    let off = 0;
    if (this.pendingLen > 0) {
      const need = fs - this.pendingLen;
      if (len < need) {
        this.pending.set(chunk.subarray(0, len), this.pendingLen);
        this.pendingLen += len;
        return;
      }
      this.pending.set(chunk.subarray(0, need), this.pendingLen);
      this.pendingLen = 0;
      if (this.skipPending) this.skipPending = false;
      else this.handle(this.pendingDv, 0);
      off = need;
    }
    if (len - off >= fs) {
      const dv = view ?? new DataView(chunk.buffer, chunk.byteOffset, len);
      off = this.host.logEvents ? this.handleAll(dv, off, len) : this.applyRun(dv, off, len);
    }
    if (off < len && !this.closing) {
      this.pending.set(chunk.subarray(off, len), 0);
      this.pendingLen = len - off;
    }
  }

  private handleAll(dv: DataView, off: number, len: number): number {
    const fs = this.frameSize;
    for (; off + fs <= len && !this.closing; off += fs) this.handle(dv, off);
    return off;
  }

  /**
   * The hot loop: well-formed ALLOC and FREE frames are applied here with the connection's fields
   * in locals; every other frame (and any ALLOC/FREE that fails validation) goes through handle().
   * Returns the offset after the last whole frame.
   */
  private applyRun(dv: DataView, off: number, len: number): number {
    const fs = this.frameSize,
      tr = this.host.tracker,
      owner = this.ownerPid,
      j = this.host.journal,
      ev = this.ev;
    let allocs = 0,
      frees = 0;
    for (; off + fs <= len && !this.closing; off += fs) {
      const type = dv.getUint8(off);
      const device = dv.getInt32(off + Off.deviceId, true);
      if (type === MsgType.ALLOC) {
        const bt = dv.getUint8(off + Off.bufferType);
        const sizeLo = dv.getUint32(off + Off.size, true),
          sizeHi = dv.getUint32(off + Off.size + 4, true);
        const size = sizeLo + sizeHi * TWO32;
        if (
          device < 0 ||
          device > MAX_DEVICE_ID ||
          bt > 4 ||
          size === 0 ||
          sizeHi > 0xffff ||
          this.claimedPid === 0
        ) {
          this.handle(dv, off);
          continue;
        }
        ev.code = type;
        ev.sub = bt;
        ev.device = device;
        ev.owner = owner !== 0 ? owner : dv.getInt32(off + Off.processId, true);
        ev.lo = dv.getInt32(off + Off.bufferId, true);
        ev.hi = dv.getInt32(off + Off.bufferId + 4, true);
        ev.sizeLo = sizeLo;
        ev.sizeHi = sizeHi;
        const effect = applyAlloc(tr, ev);
        if (j !== null) j.record(ev, effect);
        allocs++;
      } else if (type === MsgType.FREE) {
        if (device < 0 || device > MAX_DEVICE_ID) {
          this.handle(dv, off);
          continue;
        }
        ev.code = type;
        ev.sub = 0;
        ev.device = device;
        ev.owner = owner !== 0 ? owner : dv.getInt32(off + Off.processId, true);
        ev.lo = dv.getInt32(off + Off.bufferId, true);
        ev.hi = dv.getInt32(off + Off.bufferId + 4, true);
        ev.sizeLo = 0;
        ev.sizeHi = 0;
        const effect = applyFree(tr, ev);
        if (j !== null) j.record(ev, effect);
        frees++;
      } else {
        this.handle(dv, off);
        continue;
      }
      this.garbageRun = 0;
    }
    this.frames += allocs + frees;
    tr.countFrames(MsgType.ALLOC, allocs);
    tr.countFrames(MsgType.FREE, frees);
    return off;
  }

  /** Validates and applies one frame. */
  private handle(dv: DataView, off: number): void {
    const type = dv.getUint8(off);
    const tr = this.host.tracker;
    const device = dv.getInt32(off + Off.deviceId, true);
    if (this.host.logEvents) this.host.logEvent(this, dv, off);
    const ev = this.ev;
    switch (type) {
      case MsgType.ALLOC: {
        const bt = dv.getUint8(off + Off.bufferType);
        const size =
          dv.getUint32(off + Off.size, true) + dv.getUint32(off + Off.size + 4, true) * TWO32;
        if (device < 0 || device > MAX_DEVICE_ID)
          return this.bad(type, `device_id ${device} out of range 0..${MAX_DEVICE_ID}`);
        if (bt > 4) return this.bad(type, `buffer_type ${bt} is not 0..4`);
        if (size === 0) return this.bad(type, 'size 0');
        if (size > 0xffffffffffff) return this.bad(type, `size ${size} is absurd`);
        this.claim(dv, off);
        this.fillEvent(ev, dv, off, bt);
        break;
      }
      case MsgType.FREE:
        if (device < 0 || device > MAX_DEVICE_ID)
          return this.bad(type, `device_id ${device} out of range 0..${MAX_DEVICE_ID}`);
        this.fillEvent(ev, dv, off, 0);
        break;
      case MsgType.CB_ALLOC:
      case MsgType.KERNEL_LOAD: {
        if (device < 0 || device > MAX_DEVICE_ID)
          return this.bad(type, `device_id ${device} out of range 0..${MAX_DEVICE_ID}`);
        const sub = type === MsgType.KERNEL_LOAD ? dv.getUint8(off + Off.bufferType) : 0;
        if (sub > 2) return this.bad(type, `kernel type ${sub} is not 0..2`);
        const size =
          dv.getUint32(off + Off.size, true) + dv.getUint32(off + Off.size + 4, true) * TWO32;
        if (size > 0xffffffffffff) return this.bad(type, `size ${size} is absurd`);
        this.claim(dv, off);
        this.fillEvent(ev, dv, off, sub);
        break;
      }
      case MsgType.CB_FREE:
      case MsgType.KERNEL_UNLOAD:
        if (device < 0 || device > MAX_DEVICE_ID)
          return this.bad(type, `device_id ${device} out of range 0..${MAX_DEVICE_ID}`);
        this.fillEvent(ev, dv, off, 0);
        break;
      case MsgType.QUERY:
      case MsgType.DEVICE_INFO_QUERY:
        this.host.reply(this, dv, off);
        break;
      case MsgType.DUMP_REMAINING:
        this.host.dump(this, false);
        break;
      case MsgType.DUMP_KERNELS:
        this.host.dump(this, true);
        break;
      default:
        // RESPONSE / DEVICE_INFO_RESPONSE travel server → client only; anything else is unknown.
        this.bad(
          type,
          type === MsgType.RESPONSE || type === MsgType.DEVICE_INFO_RESPONSE
            ? `${MSG_NAMES[type]} is a server reply, not a request`
            : `unknown message code ${type}`,
        );
        if (++this.garbageRun >= MAX_CONSECUTIVE_GARBAGE) {
          this.reject(
            `${this.garbageRun} consecutive frames with unknown codes: the stream is not ${this.frameSize}-byte frames`,
          );
        }
        return;
    }
    if (isStateEvent(type)) applyEvent(tr, ev, this.host.journal);
    this.garbageRun = 0;
    this.frames++;
    tr.countFrames(type, 1);
  }

  /** The first ALLOC, CB_ALLOC or KERNEL_LOAD says which PID the client claims (display only). */
  private claim(dv: DataView, off: number): void {
    if (this.claimedPid === 0) this.claimedPid = dv.getInt32(off + Off.processId, true);
  }

  /**
   * The event a validated frame carries. The owner is the connection's kernel PID, or the PID the
   * frame claims (no peer credentials, or --trust-client-pid), so a restart replays the same
   * ownership.
   */
  private fillEvent(ev: StateEvent, dv: DataView, off: number, sub: number): void {
    ev.code = dv.getUint8(off);
    ev.sub = sub;
    ev.device = dv.getInt32(off + Off.deviceId, true);
    ev.owner = this.ownerPid !== 0 ? this.ownerPid : dv.getInt32(off + Off.processId, true);
    ev.lo = dv.getInt32(off + Off.bufferId, true);
    ev.hi = dv.getInt32(off + Off.bufferId + 4, true);
    const sized = ev.code === MsgType.ALLOC || ev.code === MsgType.CB_ALLOC;
    ev.sizeLo = sized || ev.code === MsgType.KERNEL_LOAD ? dv.getInt32(off + Off.size, true) : 0;
    ev.sizeHi =
      sized || ev.code === MsgType.KERNEL_LOAD ? dv.getInt32(off + Off.size + 4, true) : 0;
  }

  private bad(type: number, reason: string): void {
    this.rejected++;
    if (this.rejected === 1) {
      this.firstRejection = `${MSG_NAMES[type] ?? `code ${type}`}: ${reason}`;
      this.host.log(
        `${this.describe()}: rejected a frame (${this.firstRejection}); further rejections on this connection are counted, not printed`,
      );
    }
  }

  /**
   * Closes a connection that cannot be served (its bytes are not frames, it reads no replies),
   * saying why.
   */
  reject(reason: string): void {
    if (this.closing) return;
    this.closing = true;
    if (this.frameSize === 0) this.rejected++; // a stream rejected before any frame: count it once
    if (!this.firstRejection) this.firstRejection = reason;
    this.host.log(`${this.describe()}: closing: ${reason}`);
    this.socket.destroy();
  }

  private onEnd(): void {
    if (this.frameSize === 0 && this.pendingLen > 0) this.detect(null, true);
    if (this.pendingLen > 0 && !this.closing) {
      this.host.log(
        `${this.describe()}: closed with a partial frame (${this.pendingLen} of ${this.frameSize || '?'} bytes), ignored`,
      );
      this.pendingLen = 0;
    }
    this.socket.end();
  }

  private onClose(): void {
    if (this.detectTimer) clearTimeout(this.detectTimer);
    // No summary line here: bad() already logged this connection once; the count is in stats.
    this.host.closed(this);
  }
}
