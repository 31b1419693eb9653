// The handover channel of a restart (`ttalloc restart`, `ttalloc server --replace`): how the new
// server and the old one talk while the old one hands over its sockets and state.
//
// Why this shape:
// - It runs on the control socket (an HTTP Upgrade to `/v1/takeover`), so no third socket path
//   has to be claimed and cleaned up, and the control socket's peer check (same user, --group,
//   --allow-uid) decides who may take a server over.
// - Descriptors travel as SCM_RIGHTS (the addon's sendFds/recvFds). libuv must never read the
//   bytes that carry them (a plain read() drops the descriptors), so each direction has one
//   reader: the old server writes only through sendFds and reads the new one's requests with
//   Node; the new server writes with Node and reads only with recvFds (its socket stays paused).
// - The protocol is versioned and explicit (TAKEOVER_PROTOCOL in the upgrade request, refused
//   with a reason when it differs), because `--replace` is meant for upgrades: the two sides may
//   be different builds. Each message is JSON; what it means is written once, in TakeoverMessage.
//
// Old → new: [u32 length][JSON], the message's descriptors on its first byte.
// New → old: one JSON object per line.
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { loadNative } from '../platform/native.js';
import type { ConnectionState } from './data-connection.js';
import type { ConnectionCounters } from './connections.js';

/** Bumped whenever a message below changes meaning; both sides must agree. */
export const TAKEOVER_PROTOCOL = 1;
export const TAKEOVER_PATH = '/v1/takeover';
/** Test hook and escape hatch: `TT_ALLOC_NO_TAKEOVER=1` makes a restart stop and start. */
export const NO_TAKEOVER_ENV = 'TT_ALLOC_NO_TAKEOVER';
/** The kernel passes at most 253 descriptors per message (SCM_MAX_FD). */
export const FDS_PER_MESSAGE = 250;

/** This build's version (package.json), as the two sides of a handover tell each other. */
export const PACKAGE_VERSION = (
  createRequire(import.meta.url)('../../package.json') as { version: string }
).version;

export type TakeoverMessage =
  /** Old → new, once the channel is up: who hands over, and the compaction is held. */
  | { type: 'hello'; protocol: number; version: string; pid: number; stateDir: string | false }
  /** Old → new, after `switch`: fds [data listener, control listener, stdout, stderr]. */
  | {
      type: 'state';
      counters: ConnectionCounters;
      framesByType: number[];
      nextConnId: number;
      connections: number;
    }
  /** Old → new: connections, one descriptor each, in this order. */
  | { type: 'conns'; conns: ConnectionState[] }
  /** Old → new: all sent (and, with persistence, the journal is on disk to its last event). */
  | { type: 'sent' }
  /** Old → new, after `loaded`: the state directory's lock is released, the dashboard closed. */
  | { type: 'released' }
  | { type: 'error'; message: string }
  /** New → old: preloaded; stop reading and hand over (snapshotDir: no persistence). */
  | { type: 'switch'; snapshotDir: string | null }
  /** New → old: state complete, descriptors held: leave the state directory. */
  | { type: 'loaded' }
  /** New → old: serving; exit. */
  | { type: 'done' };

export interface FdNative {
  sendFds(fd: number, fds: Int32Array, bytes: Uint8Array): number;
  recvFds(fd: number, bytes: Uint8Array, timeoutMs: number): { n: number; fds: number[] };
  dup2(from: number, to: number): void;
}

/** The addon's descriptor passing, or why a takeover is impossible here. */
export function fdPassing(): { native: FdNative; reason: null } | { native: null; reason: string } {
  if (process.env[NO_TAKEOVER_ENV] === '1')
    return { native: null, reason: `turned off by ${NO_TAKEOVER_ENV}=1` };
  const n = loadNative();
  if (!n.addon) return { native: null, reason: n.reason };
  const a = n.addon;
  if (typeof a.sendFds !== 'function' || typeof a.recvFds !== 'function')
    return { native: null, reason: 'the native addon has no sendFds (npm run build:native)' };
  return { native: a as unknown as FdNative, reason: null };
}

/** The descriptor under a Node socket or server (-1 if none). */
export function fdOf(x: unknown): number {
  return (x as { _handle?: { fd?: number } | null } | null)?._handle?.fd ?? -1;
}

/** Old side: one message with its descriptors (blocks until the kernel took it). */
export function sendMessage(n: FdNative, fd: number, msg: TakeoverMessage, fds: number[]): void {
  const body = Buffer.from(JSON.stringify(msg));
  const buf = Buffer.alloc(4 + body.length);
  buf.writeUInt32LE(body.length, 0);
  body.copy(buf, 4);
  n.sendFds(fd, Int32Array.from(fds), buf);
}

/** New side: writes a request line to the old server. */
export function sendLine(sock: Socket, msg: TakeoverMessage): void {
  sock.write(`${JSON.stringify(msg)}\n`);
}

/**
 * New side: reads the old server's messages with recvFds (blocking this process, which serves
 * nothing yet). Descriptors arrive in order with the first bytes of their message.
 */
export class MessageReader {
  private buf = Buffer.alloc(0);
  private fds: number[] = [];
  private readonly chunk = Buffer.allocUnsafe(1 << 20);

  constructor(
    private readonly n: FdNative,
    private readonly fd: number,
  ) {}

  /** The HTTP response head (up to the blank line) of the upgrade. */
  head(timeoutMs: number): string {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end >= 0) {
        const text = this.buf.subarray(0, end).toString();
        this.buf = this.buf.subarray(end + 4);
        return text;
      }
      this.fill(deadline);
    }
  }

  /** Whatever came after the head (an error body), as text. */
  rest(): string {
    return this.buf.toString();
  }

  /** The next message (its descriptors: takeFds). */
  next(timeoutMs: number): TakeoverMessage {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.buf.length >= 4) {
        const len = this.buf.readUInt32LE(0);
        if (this.buf.length >= 4 + len) {
          const msg = JSON.parse(this.buf.subarray(4, 4 + len).toString()) as TakeoverMessage;
          this.buf = this.buf.subarray(4 + len);
          if (msg.type === 'error') throw new Error(`the old server: ${msg.message}`);
          return msg;
        }
      }
      this.fill(deadline);
    }
  }

  /** The `k` descriptors of the message just read (they came with its first bytes). */
  takeFds(k: number): number[] {
    if (this.fds.length < k) throw new Error(`expected ${k} descriptors, got ${this.fds.length}`);
    return this.fds.splice(0, k);
  }

  private fill(deadline: number): void {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error('the old server did not answer in time');
    const r = this.n.recvFds(this.fd, this.chunk, Math.min(left, 1000));
    if (r.n === -11) return; // EAGAIN: nothing yet
    if (r.n < 0) throw new Error(`reading the handover channel failed (errno ${-r.n})`);
    this.fds.push(...r.fds);
    if (r.n === 0) throw new Error('the old server closed the handover channel');
    this.buf = Buffer.concat([this.buf, this.chunk.subarray(0, r.n)]);
  }
}
