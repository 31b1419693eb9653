// Reporter: the client library a Node application uses to report its device allocations.
// It batches frames into one write, never blocks or throws into the application, counts what it
// had to drop while the server was unreachable, reconnects by itself, and flushes on exit.
//
// Cost per report: the 40-byte head is written into a batch buffer whose tail bytes are zero
// from its allocation and never written, so no frame is cleared or copied; a full batch goes to
// the socket as is, and comes back to a small pool once the kernel has taken it.
import { writeSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { FRAME_NOTES, MsgType, Off, TWO32, type FrameSize } from '../protocol/constants.js';
import { writeFrameNotes } from '../protocol/notes.js';
import { resolveSocket } from './control-client.js';

export interface ReporterOptions {
  socketPath?: string;
  /** 72, 112, 144 (default) or 648 (the generation whose ALLOCs carry a name and stack trace). */
  frameSize?: FrameSize;
  /** PID written into frames (default: this process). */
  pid?: number;
  /** Frames per batch before a write is forced. */
  batchFrames?: number;
  /** Bytes allowed to queue in the socket before new frames are dropped (never blocks). */
  maxQueuedBytes?: number;
  /** Delay before reconnecting after a failure. */
  reconnectMs?: number;
  /**
   * Stamp each ALLOC, CB_ALLOC and KERNEL_LOAD with the wall clock. The clock is read when a batch
   * starts and then every CLOCK_EVERY frames (a Date.now() costs as much as writing two frames).
   */
  timestamps?: boolean;
}

/** What a 648-byte ALLOC says besides the head (allocNamed()). */
export interface AllocNote {
  /** Buffer type (default 0, DRAM). */
  bufferType?: number;
  /** The buffer's name (at most 63 bytes are sent). */
  name?: string;
  /** Where it was allocated, short form `file.py:line:func -> …` (at most 511 bytes are sent). */
  stack?: string;
}

/** Written batches kept for re-use. */
const POOL = 4;
/** Frames of a burst that share one reading of the clock. */
const CLOCK_EVERY = 256;

/**
 * Live reporters, flushed when the event loop empties (one process listener for all of them), and
 * once more, synchronously, at exit (process.exit() never lets the loop empty).
 */
const live = new Set<Reporter>();
function onBeforeExit(): void {
  for (const r of live) r.flushForExit();
}
function onExit(): void {
  for (const r of live) r.flushAtExit();
}

export class Reporter {
  readonly socketPath: string;
  readonly frameSize: FrameSize;
  pid: number;
  /** Frames handed to the socket (a write that then fails moves its frames to `dropped`). */
  sent = 0;
  /** Frames dropped because the server was down or too far behind. */
  dropped = 0;
  /** Connections made again after one was lost. */
  reconnects = 0;
  private batch: Buffer;
  private dv: DataView;
  private used = 0;
  /** Wall clock (ns) for timestamps, and frames until it is read again. */
  private nowNs = 0;
  private clockLeft = 0;
  private readonly pool: Buffer[] = [];
  /** The note of the ALLOC being written (allocNamed()), else null. */
  private note: AllocNote | null = null;
  private sock: Socket | null = null;
  private connected = false;
  private everConnected = false;
  private nextAttempt = 0;
  private flushScheduled = false;
  private closed = false;
  private readonly opts: Required<Omit<ReporterOptions, 'socketPath' | 'frameSize' | 'pid'>>;
  private readonly scheduledFlush = () => {
    this.flushScheduled = false;
    this.flush();
  };

  constructor(opts: ReporterOptions = {}) {
    this.socketPath = resolveSocket(opts.socketPath);
    this.frameSize = opts.frameSize ?? 144;
    this.pid = opts.pid ?? process.pid;
    this.opts = {
      batchFrames: Math.max(1, opts.batchFrames ?? 4096),
      maxQueuedBytes: opts.maxQueuedBytes ?? 64 << 20,
      reconnectMs: opts.reconnectMs ?? 500,
      timestamps: opts.timestamps ?? true,
    };
    this.batch = this.newBatch();
    this.dv = new DataView(this.batch.buffer, this.batch.byteOffset, this.batch.length);
    if (live.size === 0) {
      process.on('beforeExit', onBeforeExit);
      process.on('exit', onExit);
    }
    live.add(this);
  }

  /** True when the last connection attempt succeeded and has not failed since. */
  get isConnected(): boolean {
    return this.connected;
  }

  alloc(device: number, address: number | bigint, size: number, bufferType: number): void {
    this.put(MsgType.ALLOC, device, address, size, bufferType);
  }
  /**
   * An ALLOC with the buffer's name and the allocation's stack trace: sent in full by a 648-byte
   * Reporter (`frameSize: 648`); other sizes have no room for them and send a plain ALLOC.
   */
  allocNamed(device: number, address: number | bigint, size: number, note: AllocNote): void {
    this.note = note;
    this.put(MsgType.ALLOC, device, address, size, note.bufferType ?? 0);
    this.note = null;
  }
  free(device: number, address: number | bigint): void {
    this.put(MsgType.FREE, device, address, 0, 0);
  }
  cbAlloc(device: number, address: number | bigint, size: number): void {
    this.put(MsgType.CB_ALLOC, device, address, size, 0);
  }
  cbFree(device: number, address: number | bigint, size = 0): void {
    this.put(MsgType.CB_FREE, device, address, size, 0);
  }
  kernelLoad(device: number, kernelId: number | bigint, size: number, kernelType = 0): void {
    this.put(MsgType.KERNEL_LOAD, device, kernelId, size, kernelType);
  }
  kernelUnload(device: number, kernelId: number | bigint, size = 0): void {
    this.put(MsgType.KERNEL_UNLOAD, device, kernelId, size, 0);
  }

  // One call per message of the application (its hot path): an options object per call measured
  // ~1-4 ns more per message (2e7 calls, Node 20, a shared 2-core host; noisy), for nothing.
  // eslint-disable-next-line max-params -- the per-message frame writer; see above
  private put(
    type: number,
    device: number,
    address: number | bigint,
    size: number,
    bt: number,
  ): void {
    if (this.closed) {
      this.dropped++;
      return;
    }
    try {
      let lo: number, hi: number;
      if (typeof address === 'number') {
        lo = address >>> 0;
        hi = address > 0xffffffff ? Math.floor(address / TWO32) >>> 0 : 0;
      } else {
        lo = Number(address & 0xffffffffn);
        hi = Number((address >> 32n) & 0xffffffffn);
      }
      const dv = this.dv,
        o = this.used;
      let ts = 0;
      if (
        this.opts.timestamps &&
        (type === MsgType.ALLOC || type === MsgType.CB_ALLOC || type === MsgType.KERNEL_LOAD)
      ) {
        if (o === 0 || --this.clockLeft <= 0) {
          this.nowNs = Date.now() * 1e6;
          this.clockLeft = CLOCK_EVERY;
        }
        ts = this.nowNs;
      }
      // Every field of the head (the batch may hold an older frame here); pads and tail stay zero.
      dv.setUint8(o + Off.type, type);
      dv.setInt32(o + Off.deviceId, device, true);
      dv.setUint32(o + Off.size, size >>> 0, true);
      dv.setUint32(o + Off.size + 4, size > 0xffffffff ? Math.floor(size / TWO32) >>> 0 : 0, true);
      dv.setUint8(o + Off.bufferType, bt);
      dv.setInt32(o + Off.processId, this.pid, true);
      dv.setUint32(o + Off.bufferId, lo, true);
      dv.setUint32(o + Off.bufferId + 4, hi, true);
      dv.setUint32(o + Off.timestamp, ts % TWO32, true);
      dv.setUint32(o + Off.timestamp + 4, Math.floor(ts / TWO32), true);
      // A 648-byte frame's strings: zero-filled (a re-used batch may hold an older frame's; the
      // server tells the size by zeros at 112 and 144 of a frame without a name).
      if (this.frameSize === FRAME_NOTES) {
        this.batch.fill(0, o + 72, o + FRAME_NOTES);
        const n = this.note;
        if (n !== null) writeFrameNotes(this.batch, o, n.name ?? '', n.stack ?? '');
      }
      this.used = o + this.frameSize;
      if (this.used === this.batch.length) this.flush();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(this.scheduledFlush);
      }
    } catch {
      // a bad argument (e.g. a device id that is not a number) must not throw into the app
      this.dropped++;
    }
  }

  /** Hands the batch to the socket now (connecting first if needed). Never throws. */
  flush(): void {
    if (this.used === 0) return;
    const frames = this.used / this.frameSize;
    try {
      // While a connection attempt is in flight the socket queues the writes (up to maxQueuedBytes)
      // and sends them once connected: a burst at start-up is not lost. If the attempt fails,
      // the writes' callbacks count them as dropped.
      if (!this.ensureSocket() || this.sock!.writableLength > this.opts.maxQueuedBytes) {
        this.dropped += frames;
        this.used = 0;
        return;
      }
      const full = this.batch;
      const s = this.sock!;
      // Bytes in flight keep the process alive until the kernel has them; nothing else does.
      s.ref();
      s.write(full.subarray(0, this.used), (err) => {
        if (!this.closed && s.writableLength === 0) s.unref();
        if (err) {
          this.sent -= frames;
          this.dropped += frames;
          return;
        }
        if (this.pool.length < POOL) this.pool.push(full);
      });
      this.sent += frames;
      this.batch = this.pool.pop() ?? this.newBatch();
      this.dv = new DataView(this.batch.buffer, this.batch.byteOffset, this.batch.length);
      this.used = 0;
    } catch {
      this.dropped += frames;
      this.used = 0;
    }
  }

  /**
   * The event loop is about to empty: send what is left, and let the process exit once it is
   * written.
   */
  flushForExit(): void {
    this.flush();
    if (this.sock && !this.sock.writableLength) this.sock.unref();
  }

  /**
   * The process is exiting (no more event loop): the frames not yet handed over are written
   * synchronously when the connection is up and has nothing queued before them (order matters);
   * otherwise they are counted as dropped. Never throws.
   */
  flushAtExit(): void {
    if (this.used === 0) return;
    const frames = this.used / this.frameSize;
    const fd = this.connected && this.sock?.writableLength === 0 ? socketFd(this.sock) : -1;
    let off = 0;
    try {
      while (fd >= 0 && off < this.used) off += writeSync(fd, this.batch, off, this.used - off);
    } catch {
      /* EAGAIN (the server is behind) or the connection is gone */
    }
    const whole = Math.floor(off / this.frameSize);
    this.sent += whole;
    this.dropped += frames - whole;
    this.used = 0;
  }

  private newBatch(): Buffer {
    // zeroed: the tails are never written
    return Buffer.alloc(this.frameSize * this.opts.batchFrames);
  }

  private ensureSocket(): boolean {
    if (this.sock) return true;
    const now = Date.now();
    if (now < this.nextAttempt) return false;
    const s = connect(this.socketPath);
    // Never what keeps the application alive: flush() refs it while bytes are in flight.
    s.unref();
    this.sock = s;
    s.on('connect', () => {
      if (this.everConnected) this.reconnects++;
      this.connected = this.everConnected = true;
      this.flush();
    });
    s.on('error', () => {
      /* handled by close */
    });
    s.on('close', () => {
      this.connected = false;
      if (this.sock === s) this.sock = null;
      this.nextAttempt = Date.now() + this.opts.reconnectMs;
    });
    s.on('data', () => {
      /* replies are not expected on a reporting connection */
    });
    return true;
  }

  /** Flushes and closes; resolves when the bytes are written (or the server is gone). */
  close(): Promise<void> {
    this.flush();
    this.closed = true;
    live.delete(this);
    if (live.size === 0) {
      process.off('beforeExit', onBeforeExit);
      process.off('exit', onExit);
    }
    const s = this.sock;
    s?.ref(); // the close is awaited
    if (!s) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => resolve();
      s.once('close', done);
      if (this.connected) s.end();
      else
        s.once('connect', () => {
          this.flush();
          s.end();
        });
      setTimeout(() => {
        s.destroy();
      }, 5000).unref();
    });
  }
}

/** The file descriptor under a connected Unix socket (-1 if Node does not expose it). */
function socketFd(s: Socket): number {
  const fd = (s as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' ? fd : -1;
}
