// Reporter: the client library a Node application uses to report its device allocations.
// It batches frames into one write, never blocks or throws into the application, counts what it
// had to drop while the server was unreachable, reconnects by itself, and flushes on exit.
import { connect, type Socket } from 'node:net';
import { MsgType, type FrameSize } from '../protocol/constants.js';
import { writeFrame } from '../protocol/codec.js';
import { resolveSocket } from './control-client.js';

export interface ReporterOptions {
  socketPath?: string;
  frameSize?: FrameSize;
  /** PID written into frames (default: this process). */
  pid?: number;
  /** Frames per batch before a write is forced. */
  batchFrames?: number;
  /** Bytes allowed to queue in the socket before new frames are dropped (never blocks). */
  maxQueuedBytes?: number;
  /** Delay before reconnecting after a failure. */
  reconnectMs?: number;
  /** Stamp each frame with the wall clock (costs a Date.now() per frame). */
  timestamps?: boolean;
}

const TWO32 = 4294967296;

export class Reporter {
  readonly socketPath: string;
  readonly frameSize: FrameSize;
  pid: number;
  /** Frames handed to the socket. */
  sent = 0;
  /** Frames dropped because the server was down or too far behind. */
  dropped = 0;
  reconnects = 0;
  private batch: Buffer;
  private dv: DataView;
  private used = 0;
  private sock: Socket | null = null;
  private connected = false;
  private nextAttempt = 0;
  private flushScheduled = false;
  private closed = false;
  private readonly opts: Required<Omit<ReporterOptions, 'socketPath' | 'frameSize' | 'pid'>>;
  private readonly onBeforeExit = () => { this.flush(); if (this.sock && !this.sock.writableLength) this.sock.unref(); };

  constructor(opts: ReporterOptions = {}) {
    this.socketPath = resolveSocket(opts.socketPath);
    this.frameSize = opts.frameSize ?? 144;
    this.pid = opts.pid ?? process.pid;
    this.opts = { batchFrames: opts.batchFrames ?? 4096, maxQueuedBytes: opts.maxQueuedBytes ?? 64 << 20, reconnectMs: opts.reconnectMs ?? 500, timestamps: opts.timestamps ?? true };
    this.batch = Buffer.allocUnsafe(this.frameSize * this.opts.batchFrames);
    this.dv = new DataView(this.batch.buffer, this.batch.byteOffset, this.batch.length);
    process.on('beforeExit', this.onBeforeExit);
  }

  /** True when the last connection attempt succeeded and has not failed since. */
  get isConnected(): boolean { return this.connected; }

  alloc(device: number, address: number | bigint, size: number, bufferType: number): void {
    this.put(MsgType.ALLOC, device, address, size, bufferType);
  }
  free(device: number, address: number | bigint): void { this.put(MsgType.FREE, device, address, 0, 0); }
  cbAlloc(device: number, address: number | bigint, size: number): void { this.put(MsgType.CB_ALLOC, device, address, size, 0); }
  cbFree(device: number, address: number | bigint, size = 0): void { this.put(MsgType.CB_FREE, device, address, size, 0); }
  kernelLoad(device: number, kernelId: number | bigint, size: number, kernelType = 0): void {
    this.put(MsgType.KERNEL_LOAD, device, kernelId, size, kernelType);
  }
  kernelUnload(device: number, kernelId: number | bigint, size = 0): void { this.put(MsgType.KERNEL_UNLOAD, device, kernelId, size, 0); }

  private put(type: number, device: number, address: number | bigint, size: number, bt: number): void {
    if (this.closed) { this.dropped++; return; }
    let lo: number, hi: number;
    if (typeof address === 'bigint') { lo = Number(address & 0xffffffffn); hi = Number((address >> 32n) & 0xffffffffn); }
    else { lo = address >>> 0; hi = Math.floor(address / TWO32) >>> 0; }
    const ts = this.opts.timestamps && (type === MsgType.ALLOC || type === MsgType.CB_ALLOC || type === MsgType.KERNEL_LOAD) ? Date.now() * 1e6 : 0;
    writeFrame(this.dv, this.used, this.frameSize, type, device, size, bt, this.pid, lo, hi, ts);
    this.used += this.frameSize;
    if (this.used === this.batch.length) this.flush();
    else if (!this.flushScheduled) { this.flushScheduled = true; setImmediate(() => { this.flushScheduled = false; this.flush(); }); }
  }

  /** Hands the batch to the socket now (connecting first if needed). Never throws. */
  flush(): void {
    if (this.used === 0) return;
    const frames = this.used / this.frameSize;
    if (!this.ensureSocket() || !this.connected || (this.sock!.writableLength > this.opts.maxQueuedBytes)) {
      if (this.connected || !this.sock) { this.dropped += frames; this.used = 0; }
      // While a connection attempt is in flight keep the batch (until it fills, then drop).
      else if (this.used === this.batch.length) { this.dropped += frames; this.used = 0; }
      return;
    }
    this.sock!.write(Buffer.from(this.batch.subarray(0, this.used)));
    this.sent += frames;
    this.used = 0;
  }

  private ensureSocket(): boolean {
    if (this.sock) return true;
    const now = Date.now();
    if (now < this.nextAttempt) return false;
    const s = connect(this.socketPath);
    this.sock = s;
    s.on('connect', () => { this.connected = true; this.flush(); });
    s.on('error', () => { /* handled by close */ });
    s.on('close', () => {
      if (this.connected) this.reconnects++;
      this.connected = false;
      this.sock = null;
      this.nextAttempt = Date.now() + this.opts.reconnectMs;
    });
    s.on('data', () => { /* replies are not expected on a reporting connection */ });
    return true;
  }

  /** Flushes and closes; resolves when the bytes are written (or the server is gone). */
  close(): Promise<void> {
    this.flush();
    this.closed = true;
    process.off('beforeExit', this.onBeforeExit);
    const s = this.sock;
    if (!s) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => resolve();
      s.once('close', done);
      if (this.connected) s.end(); else s.once('connect', () => { this.flush(); s.end(); });
      setTimeout(() => { s.destroy(); }, 5000).unref();
    });
  }
}
