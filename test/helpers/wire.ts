// Wire-level helpers for tests: frame builders, exact waits on the server's frame counters, and a
// connection that collects every byte the server sends back.
import type { Socket } from 'node:net';
import { encodeFrame, type FrameFields } from '../../src/protocol/codec.js';
import type { FrameSize } from '../../src/protocol/constants.js';
import type { TestServer } from './server.js';
import type { StatsResponse } from '../../src/report/types.js';

/** Anything with a control client: a TestServer, or a supervised server (helpers/steady.ts). */
export type HasControl = Pick<TestServer, 'client'>;

export function stats(srv: HasControl): Promise<StatsResponse> {
  return srv.client.json<StatsResponse>('GET', '/v1/stats');
}

/** Concatenates frames of one size. */
export function frames(list: FrameFields[], size: FrameSize = 144): Buffer {
  return Buffer.concat(list.map((f) => encodeFrame(f, size)));
}

/**
 * Waits until the server has handled `n` frames in total (accepted + rejected). Exact, so a test
 * never races the data socket; fails loudly if the count overshoots or never arrives.
 */
export async function waitFrames(
  srv: HasControl,
  n: number,
  timeoutMs = 10000,
): Promise<StatsResponse> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await stats(srv);
    const seen = s.frames.total + s.frames.rejected;
    if (seen === n) return s;
    if (seen > n) throw new Error(`server handled ${seen} frames, expected exactly ${n}`);
    if (Date.now() > deadline)
      throw new Error(`server handled ${seen} frames, expected ${n} (timed out)`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Once it returns, every byte already written to a data socket was read (at most 64 KiB per
 * connection). Two control round trips: the server may answer the first in the same event-loop
 * turn, before it reads a data connection that turn (a busy connection is read after the turn's
 * I/O callbacks, see socket-reader.ts); the second is answered in a later turn.
 */
export async function roundTrip(srv: TestServer): Promise<void> {
  await srv.client.text('GET', '/v1/health');
  await srv.client.text('GET', '/v1/health');
}

export function write(s: Socket, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => s.write(bytes, (e) => (e ? reject(e) : resolve())));
}

/** Collects everything the server sends on a data connection. */
export class Inbox {
  buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  constructor(readonly s: Socket) {
    s.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      for (const w of this.waiters.splice(0)) w();
    });
  }
  /** Resolves with the next `n` bytes. */
  async take(n: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n) {
      if (Date.now() > deadline)
        throw new Error(`expected ${n} reply bytes, got ${this.buf.length}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 50);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
}

/** Lines of the server output matching `re`. */
export function linesMatching(out: string, re: RegExp): string[] {
  return out.split('\n').filter((l) => re.test(l));
}
