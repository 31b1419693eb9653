// How data connections read their sockets: into one buffer the server owns, through libuv while a
// connection is quiet and directly while it is busy.
//
// 1. One buffer for every read. By default Node allocates a 64 KiB ArrayBuffer for every read,
// shrinks it to what was read, wraps it in a Buffer and pushes it through the Readable machinery;
// at ~1 M single-frame sends per second that is thousands of allocations per second, and their
// collection. Node's `onread` option (read straight into a
// caller's buffer, one callback per read) exists only for client sockets; `readIntoBuffer` applies
// the same mode to a socket a `net.Server` accepted, through the two fields the Socket constructor
// sets for it. The server is created with `pauseOnConnect`, so no read happens before. These are
// internals of Node's net module (checked on Node 20): if they are not as expected it returns
// false and the connection reads 'data' chunks instead.
//
// 2. Busy connections are read without epoll. libuv keeps every reading socket registered with
// epoll, and a socket registered with epoll has a waiter on it at all times: every send() a client
// makes then runs epoll's wake-up callback in the client's own system call, under a lock with
// interrupts off (~0.1 µs per send here, a tenth of what a one-frame send() costs). A reader that
// only waits when it has nothing to do (like poll(2)) spares the clients that cost while it is
// busy.
// So a connection whose read shows a busy sender (data-connection.ts: at least 1 KiB since the
// last turn; for a frame now and then the hand-over costs more than it saves) is taken off
// libuv's watch (its reading is stopped, and libuv drops the descriptor from epoll at its next
// event) and becomes "hot": the pump reads it directly (the native addon's read(2)), one read per
// connection per event-loop turn, for as long as bytes keep coming. The first read that finds
// nothing hands it back to libuv. End of
// stream and errors are handed back too, so that Node reports them through the socket as usual.
import type { Socket } from 'node:net';
import { loadNative } from '../platform/native.js';

/**
 * Bytes per read: 16 short of 64 KiB, a multiple of 72, 112 and 144 (65,520 = 455 × 144). A
 * client that writes one frame per send() (the runtime) puts whole frames in the socket, and a
 * read of a multiple of the frame size then never ends inside one: a server killed between reads
 * leaves the rest of the stream at a frame boundary, for the next server to read on (systemd.ts).
 */
const READ_BYTES = 65520;
/**
 * The one read buffer (libuv reads at most 64 KiB at a time). Each read is applied synchronously
 * before the next, and a partial frame at its end is copied out by the connection.
 */
export const READ_BUFFER = Buffer.allocUnsafeSlow(READ_BYTES);
export const READ_VIEW = new DataView(
  READ_BUFFER.buffer,
  READ_BUFFER.byteOffset,
  READ_BUFFER.length,
);

/**
 * Test hook: `TT_ALLOC_PER_READ_BUFFERS=1` makes readIntoBuffer decline (the path for a Node whose
 * internals differ).
 */
export const PER_READ_BUFFERS_ENV = 'TT_ALLOC_PER_READ_BUFFERS';
const perReadBuffers = process.env[PER_READ_BUFFERS_ENV] === '1';

type Internal = Socket & { _handle?: { useUserBuffer?: (b: Uint8Array) => void } | null } & Record<
    symbol,
    unknown
  >;

function fieldNamed(sock: Internal, name: string): symbol | undefined {
  return Object.getOwnPropertySymbols(sock).find((s) => s.description === name);
}

/**
 * Makes the (paused) accepted socket read into READ_BUFFER and call `onRead(bytes)` for each read,
 * then starts reading. Returning false from `onRead` stops reading until `sock.resume()`.
 * Returns false, leaving the socket untouched and paused, when this Node does not allow it.
 */
export function readIntoBuffer(sock: Socket, onRead: (bytes: number) => boolean | void): boolean {
  if (perReadBuffers) return false;
  const s = sock as Internal;
  const kBuffer = fieldNamed(s, 'kBuffer'),
    kBufferCb = fieldNamed(s, 'kBufferCb');
  const handle = s._handle;
  if (
    !kBuffer ||
    !kBufferCb ||
    s[kBuffer] !== null ||
    !handle ||
    typeof handle.useUserBuffer !== 'function'
  )
    return false;
  s[kBuffer] = READ_BUFFER;
  s[kBufferCb] = onRead;
  handle.useUserBuffer(READ_BUFFER);
  sock.resume();
  return true;
}

/**
 * Test hook: `TT_ALLOC_NO_READ_PUMP=1` reads every connection through libuv (the path without the
 * addon).
 */
export const NO_READ_PUMP_ENV = 'TT_ALLOC_NO_READ_PUMP';

/** A connection the pump can read. */
export interface Pumped {
  /** Set by the pump while it reads this connection. */
  hot: boolean;
  /** The descriptor, valid while `readable()` is true. */
  readonly fd: number;
  /** False once the socket is being destroyed (its descriptor may already be closed and reused). */
  readable(): boolean;
  /** Applies the first `n` bytes of READ_BUFFER. */
  onBytes(n: number): void;
  /** Hands the connection back to libuv (resumes reading through the socket). */
  cool(): void;
}

type ReadInto = (fd: number, bytes: Uint8Array) => number;

export class ReadPump {
  /** Reads that returned bytes, and connections handed back to libuv. */
  reads = 0;
  handBacks = 0;
  private hot: Pumped[] = [];
  private scheduled = false;
  private readonly pumpSoon = () => this.pump();

  private constructor(private readonly readInto: ReadInto) {}

  /** The pump, or why there is none (no native addon, or NO_READ_PUMP_ENV=1). */
  static create(): { pump: ReadPump; reason: null } | { pump: null; reason: string } {
    if (process.env[NO_READ_PUMP_ENV] === '1')
      return { pump: null, reason: `turned off by ${NO_READ_PUMP_ENV}=1` };
    const native = loadNative();
    if (!native.addon) return { pump: null, reason: native.reason };
    const readInto = native.addon.readInto;
    if (typeof readInto !== 'function')
      return {
        pump: null,
        reason: 'the native addon has no readInto function (npm run build:native)',
      };
    return { pump: new ReadPump(readInto as ReadInto), reason: null };
  }

  /** Connections being read directly now. */
  get hotConnections(): number {
    return this.hot.length;
  }

  /** Reads `p` from the next turn on; its libuv reading must be stopped already. */
  heat(p: Pumped): void {
    if (p.hot) return;
    p.hot = true;
    this.hot.push(p);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.pumpSoon);
    }
  }

  private pump(): void {
    this.scheduled = false;
    const hot = this.hot;
    let kept = 0;
    for (let i = 0; i < hot.length; i++) {
      const p = hot[i];
      // Checked right before each read: a destroyed socket's descriptor may already belong to a new
      // connection.
      if (!p.readable()) {
        p.hot = false;
        continue;
      }
      const n = this.readInto(p.fd, READ_BUFFER);
      if (n > 0) {
        this.reads++;
        p.onBytes(n);
        hot[kept++] = p;
      } else {
        p.hot = false;
        this.handBacks++;
        // nothing waiting (-EAGAIN), end of stream, or an error libuv will read again and report
        p.cool();
      }
    }
    hot.length = kept;
    if (kept > 0 && !this.scheduled) {
      this.scheduled = true;
      setImmediate(this.pumpSoon);
    }
  }
}
