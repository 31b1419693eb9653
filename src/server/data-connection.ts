// One client connection on the data socket: flow control (a byte budget per event-loop turn),
// the read paths (the server's one read buffer, Node's chunks, or the pump) and the wiring to the
// host. Frames come from the frame reader (protocol/frame-reader.ts), the rules per message code
// from protocol/messages.ts, and what an event does to the state from state/events.ts.
//
// Hot path: reads land in the server's one read buffer (socket-reader.ts) and its one DataView,
// fields are read in place, no per-frame or per-read objects.
import type { Socket } from 'node:net';
import {
  FRAME_NOTES,
  isDeviceId,
  MsgType,
  MSG_NAMES,
  NUM_BUFFER_TYPES,
  Off,
} from '../protocol/constants.js';
import { frameName, frameTrace } from '../protocol/notes.js';
import { FrameReader, type FrameSink, type ReaderState } from '../protocol/frame-reader.js';
import {
  Action,
  MAX_SIZE_HI,
  MESSAGES,
  frameTimeMs,
  ownerOf,
  refusedCodeReason,
} from '../protocol/messages.js';
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
  StateEvent,
  type EventJournal,
} from '../state/events.js';

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

/** A connection as a restart hands it to the new server (server/takeover-*.ts), with its fd. */
export interface ConnectionState {
  id: number;
  frames: number;
  rejected: number;
  firstRejection: string;
  claimedPid: number;
  peerPid: number;
  peerUid: number;
  ownerPid: number;
  openedAtMs: number;
  reader: ReaderState;
}

export class DataConnection implements Pumped, FrameSink {
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
  openedAtMs = Date.now();
  /** Reading stopped for a restart's handover (takeover-old.ts): bytes wait in the kernel. */
  private frozen = false;
  /** The event being applied (reused: applying a frame allocates nothing). */
  private readonly ev = new StateEvent();
  private readonly reader: FrameReader;
  private closing = false;
  /** When bytes last arrived (ms). */
  private lastDataMs = Date.now();
  private turnBytes = 0;
  hot = false;
  readonly fd: number;
  /** Reads land in READ_BUFFER (false: Node's per-read buffers, see socket-reader.ts). */
  readonly ownBuffer: boolean;
  private readonly nextTurn = () => {
    this.turnBytes = 0;
    if (!this.closing && !this.frozen) this.socket.resume();
  };

  constructor(
    readonly id: number,
    readonly socket: Socket,
    private host: ConnectionHost,
    forcedFrameSize = 0,
  ) {
    this.reader = new FrameReader(this, {
      frameSize: forcedFrameSize,
      quietMs: host.detectQuietMs,
    });
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

  /** 72, 112, 144 or 648; 0 while undecided. */
  get frameSize(): number {
    return this.reader.frameSize;
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
    if (this.closing || this.frozen) return false;
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
    return !this.closing && !this.frozen && !this.socket.destroyed;
  }

  cool(): void {
    if (!this.closing && !this.frozen) this.socket.resume();
  }

  /**
   * A restart hands this connection over: nothing more is read here (the client's bytes wait in
   * the kernel's socket buffer, the client blocks at worst briefly). Bytes Node already read into
   * its own buffer (the per-read-buffer path) are applied first: they would be lost otherwise.
   */
  freeze(): void {
    this.frozen = true;
    this.socket.pause();
    if (!this.ownBuffer) {
      for (let b = this.socket.read() as Buffer | null; b !== null; b = this.socket.read())
        this.apply(b, null, b.length);
      this.socket.pause();
    }
  }

  /** The handover did not happen: reading goes on. */
  thaw(): void {
    this.frozen = false;
    this.reader.adopt(this.reader.handOver());
    if (!this.closing) this.socket.resume();
  }

  /** What the new server needs to carry this connection on (after freeze()). */
  handOver(): ConnectionState {
    return {
      id: this.id,
      frames: this.frames,
      rejected: this.rejected,
      firstRejection: this.firstRejection,
      claimedPid: this.claimedPid,
      peerPid: this.peerPid,
      peerUid: this.peerUid,
      ownerPid: this.ownerPid,
      openedAtMs: this.openedAtMs,
      reader: this.reader.handOver(),
    };
  }

  /** The new server of a restart: goes on with a connection the old one handed over. */
  adopt(s: ConnectionState): void {
    this.frames = s.frames;
    this.rejected = s.rejected;
    this.firstRejection = s.firstRejection;
    this.claimedPid = s.claimedPid;
    this.peerPid = s.peerPid;
    this.peerUid = s.peerUid;
    this.ownerPid = s.ownerPid;
    this.openedAtMs = s.openedAtMs;
    this.reader.adopt(s.reader);
  }

  /** A chunk in Node's own buffer (when readIntoBuffer() declined). */
  private onData(chunk: Buffer): void {
    if (this.closing) return;
    const detecting = this.frameSize === 0;
    this.apply(chunk, null, chunk.length);
    if (!detecting && this.turnFull(chunk.length)) this.socket.pause();
  }

  private apply(chunk: Uint8Array, view: DataView | null, n: number): void {
    const now = Date.now();
    this.host.tracker.setNow(now);
    this.lastDataMs = now;
    this.reader.push(chunk, view, n);
  }

  /**
   * Closes the connection, saying why, when it has stopped in the middle of a frame for
   * `limitMs`: its sender waits for an answer to something that is not a whole request (e.g.
   * realtime_monitor.py's 24-byte "STATS"), and closing gives it an error instead of a hang.
   */
  closeIfStalled(now: number, limitMs: number): void {
    const held = this.reader.partialBytes;
    if (held === 0 || this.closing || now - this.lastDataMs < limitMs) return;
    this.reject(
      `stopped in the middle of a frame for ${((now - this.lastDataMs) / 1000).toFixed(1)} s ` +
        `(${held} of ${this.frameSize || '72, 112, 144 or 648'} bytes): a request no ttalloc ` +
        'message is, waiting for an answer that will not come',
    );
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

  /** FrameSink: a run of whole frames (the reader's hot path). */
  frameRun(dv: DataView, off: number, len: number): number {
    return this.host.logEvents ? this.handleAll(dv, off, len) : this.applyRun(dv, off, len);
  }

  /** FrameSink: one frame. */
  frame(dv: DataView, off: number): void {
    this.handle(dv, off);
  }

  private handleAll(dv: DataView, off: number, len: number): number {
    const fs = this.frameSize;
    for (; off + fs <= len && !this.closing; off += fs) this.handle(dv, off);
    return off;
  }

  /**
   * The hot loop: well-formed ALLOC and FREE frames are applied here with the connection's fields
   * in locals; every other frame (and any ALLOC/FREE that fails validation) goes through handle().
   * The checks are messages.ts's rules for ALLOC and FREE, inlined (the same limits). Returns the
   * offset after the last whole frame.
   */
  private applyRun(dv: DataView, off: number, len: number): number {
    const fs = this.frameSize,
      tr = this.host.tracker,
      owner = this.ownerPid,
      j = this.host.journal,
      ev = this.ev,
      reader = this.reader;
    let allocs = 0,
      frees = 0;
    for (; off + fs <= len && !this.closing; off += fs) {
      const type = dv.getUint8(off);
      const device = dv.getInt32(off + Off.deviceId, true);
      if (type === MsgType.ALLOC) {
        const bt = dv.getUint8(off + Off.bufferType);
        const sizeLo = dv.getUint32(off + Off.size, true),
          sizeHi = dv.getUint32(off + Off.size + 4, true);
        if (
          !isDeviceId(device) ||
          bt >= NUM_BUFFER_TYPES ||
          (sizeLo === 0 && sizeHi === 0) ||
          sizeHi > MAX_SIZE_HI ||
          this.claimedPid === 0
        ) {
          this.handle(dv, off);
          continue;
        }
        ev.code = type;
        ev.sub = bt;
        ev.device = device;
        ev.owner = ownerOf(owner, dv, off);
        ev.lo = dv.getInt32(off + Off.bufferId, true);
        ev.hi = dv.getInt32(off + Off.bufferId + 4, true);
        ev.sizeLo = sizeLo;
        ev.sizeHi = sizeHi;
        ev.bornMs = tr.stampOf(frameTimeMs(dv, off));
        const effect = applyAlloc(tr, ev);
        if (j !== null) j.record(ev, effect);
        if (fs === FRAME_NOTES) this.noteAlloc(dv, off);
        allocs++;
      } else if (type === MsgType.FREE) {
        if (!isDeviceId(device)) {
          this.handle(dv, off);
          continue;
        }
        ev.code = type;
        ev.sub = 0;
        ev.device = device;
        ev.owner = ownerOf(owner, dv, off);
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
      reader.accepted();
    }
    this.frames += allocs + frees;
    tr.countFrames(MsgType.ALLOC, allocs);
    tr.countFrames(MsgType.FREE, frees);
    return off;
  }

  /** Validates one frame by its code's rule (messages.ts) and does what the rule says. */
  private handle(dv: DataView, off: number): void {
    const type = dv.getUint8(off);
    if (this.host.logEvents) this.host.logEvent(this, dv, off);
    const rule = MESSAGES[type];
    if (rule === undefined || rule.action === Action.SERVER_ONLY) {
      this.bad(type, refusedCodeReason(type));
      this.reader.unknownFrame();
      return;
    }
    const why = rule.check(dv, off);
    if (why !== null) return this.bad(type, why);
    switch (rule.action) {
      case Action.EVENT: {
        // The first ALLOC, CB_ALLOC or KERNEL_LOAD says which PID the client claims (display only).
        if (rule.claims && this.claimedPid === 0)
          this.claimedPid = dv.getInt32(off + Off.processId, true);
        const ev = this.ev;
        ev.code = type;
        ev.sub = rule.sub ? dv.getUint8(off + Off.bufferType) : 0;
        ev.device = dv.getInt32(off + Off.deviceId, true);
        ev.owner = ownerOf(this.ownerPid, dv, off);
        ev.lo = dv.getInt32(off + Off.bufferId, true);
        ev.hi = dv.getInt32(off + Off.bufferId + 4, true);
        ev.sizeLo = rule.sized ? dv.getInt32(off + Off.size, true) : 0;
        ev.sizeHi = rule.sized ? dv.getInt32(off + Off.size + 4, true) : 0;
        ev.bornMs = rule.sized ? this.host.tracker.stampOf(frameTimeMs(dv, off)) : 0;
        applyEvent(this.host.tracker, ev, this.host.journal);
        if (type === MsgType.ALLOC && this.frameSize === FRAME_NOTES) this.noteAlloc(dv, off);
        break;
      }
      case Action.REPLY:
        this.host.reply(this, dv, off);
        break;
      case Action.DUMP_BUFFERS:
        this.host.dump(this, false);
        break;
      case Action.DUMP_KERNELS:
        this.host.dump(this, true);
        break;
    }
    this.reader.accepted();
    this.frames++;
    this.host.tracker.countFrames(type, 1);
  }

  /**
   * A 648-byte ALLOC just applied: its name and stack trace go with the buffer it created (and to
   * the journal). Only this generation pays for the strings; 72/112/144 never come here.
   */
  private noteAlloc(dv: DataView, off: number): void {
    const b = new Uint8Array(dv.buffer, dv.byteOffset, dv.byteLength);
    const name = frameName(b, off),
      trace = frameTrace(b, off);
    if (!this.host.tracker.noteAlloc(name, trace)) return;
    this.host.journal?.note?.(this.ev, name, trace);
  }

  private bad(type: number, reason: string): void {
    this.rejected++;
    if (this.rejected === 1) {
      this.firstRejection = `${MSG_NAMES[type] ?? `code ${type}`}: ${reason}`;
      this.host.log(
        `${this.describe()}: rejected a frame (${this.firstRejection}); ` +
          'further rejections on this connection are counted, not printed',
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
    this.reader.stop();
    if (this.frameSize === 0) this.rejected++; // a stream rejected before any frame: count it once
    if (!this.firstRejection) this.firstRejection = reason;
    this.host.log(`${this.describe()}: closing: ${reason}`);
    this.socket.destroy();
  }

  private onEnd(): void {
    const left = this.reader.end();
    if (left > 0 && !this.closing) {
      this.host.log(
        `${this.describe()}: closed with a partial frame ` +
          `(${left} of ${this.frameSize || '?'} bytes), ignored`,
      );
    }
    this.socket.end();
  }

  private onClose(): void {
    this.reader.stop();
    // No summary line here: bad() already logged this connection once; the count is in stats.
    this.host.closed(this);
  }
}
