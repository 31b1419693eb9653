// The Reporter (the Node client library) over real Unix sockets: exact frames in all three sizes,
// batches re-used without stale bytes, drops counted while the server is down or not reading,
// reconnection, flush on close, and never a throw into the application.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { Reporter } from '../src/client/reporter.js';
import { encodeFrame } from '../src/protocol/codec.js';
import { MsgType, Off } from '../src/protocol/constants.js';
import { tempDir } from './helpers/server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A server that only records the bytes of every connection. */
class Capture {
  readonly sockets = new Set<Socket>();
  chunks: Buffer[] = [];
  private server: Server | null = null;
  constructor(
    readonly path: string,
    private readonly read = true,
  ) {}
  start(): Promise<void> {
    this.server = createServer((s) => {
      this.sockets.add(s);
      if (!this.read) s.pause();
      s.on('data', (c) => this.chunks.push(c));
      s.on('error', () => {});
      s.on('close', () => this.sockets.delete(s));
    });
    return new Promise((r) => this.server!.listen(this.path, () => r()));
  }
  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
  async waitBytes(n: number): Promise<void> {
    for (let i = 0; i < 500 && this.bytes.length < n; i++) await sleep(10);
    assert.equal(this.bytes.length, n);
  }
  stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server!.close(() => r()));
  }
}

test('frames are exact in every size; re-used batches carry no stale bytes', async () => {
  for (const size of [72, 112, 144] as const) {
    const cap = new Capture(join(tempDir(), 'cap.sock'));
    await cap.start();
    // Batches of 3 frames: an ALLOC with a size and a timestamp is followed, at the same place
    // of a re-used batch, by FREEs and unloads that must carry zeros there.
    const r = new Reporter({ socketPath: cap.path, frameSize: size, pid: 4242, batchFrames: 3 });
    const t0 = Date.now();
    const sent: {
      type: number;
      device: number;
      id: bigint;
      size: number;
      bt: number;
      stamped: boolean;
    }[] = [];
    r.alloc(0, 1, 1, 0);
    sent.push({ type: MsgType.ALLOC, device: 0, id: 1n, size: 1, bt: 0, stamped: true });
    // frames beyond one batch would wait for nothing
    for (let i = 0; i < 200 && !r.isConnected; i++) await sleep(10);
    const big = 0xdeadbeef12345n,
      huge = 2 ** 40 + 12345;
    for (let round = 0; round < 5; round++) {
      r.alloc(1, big + BigInt(round), huge + round, 4);
      sent.push({
        type: MsgType.ALLOC,
        device: 1,
        id: big + BigInt(round),
        size: huge + round,
        bt: 4,
        stamped: true,
      });
      r.free(2, 0x7f000000 + round);
      sent.push({
        type: MsgType.FREE,
        device: 2,
        id: BigInt(0x7f000000 + round),
        size: 0,
        bt: 0,
        stamped: false,
      });
      r.kernelLoad(3, 2 ** 33 + round, 4096, 2);
      sent.push({
        type: MsgType.KERNEL_LOAD,
        device: 3,
        id: BigInt(2 ** 33 + round),
        size: 4096,
        bt: 2,
        stamped: true,
      });
      r.cbFree(0, 0x1000 + round, 512);
      sent.push({
        type: MsgType.CB_FREE,
        device: 0,
        id: BigInt(0x1000 + round),
        size: 512,
        bt: 0,
        stamped: false,
      });
      r.kernelUnload(3, 2 ** 33 + round);
      sent.push({
        type: MsgType.KERNEL_UNLOAD,
        device: 3,
        id: BigInt(2 ** 33 + round),
        size: 0,
        bt: 0,
        stamped: false,
      });
      r.cbAlloc(7, 0x2000 + round, 1024);
      sent.push({
        type: MsgType.CB_ALLOC,
        device: 7,
        id: BigInt(0x2000 + round),
        size: 1024,
        bt: 0,
        stamped: true,
      });
      await sleep(5); // let the batches go out and come back to the pool
    }
    await r.close();
    await cap.waitBytes(sent.length * size);
    const got = cap.bytes;
    for (const [i, f] of sent.entries()) {
      const frame = got.subarray(i * size, (i + 1) * size);
      const dv = new DataView(frame.buffer, frame.byteOffset, size);
      const ts = dv.getBigUint64(Off.timestamp, true);
      const ms = Math.round(Number(ts) / 1e6); // ns of a double: exact to the millisecond
      if (f.stamped) assert.ok(ms >= t0 && ms <= Date.now(), `frame ${i} timestamp ${ts}`);
      else assert.equal(ts, 0n, `frame ${i} timestamp`);
      const want = encodeFrame(
        {
          type: f.type,
          deviceId: f.device,
          size: f.size,
          bufferType: f.bt,
          pid: 4242,
          bufferId: f.id,
          timestampNs: Number(ts),
        },
        size,
      );
      want.writeBigUInt64LE(ts, Off.timestamp); // the exact stamp (a double cannot hold it)
      assert.deepEqual(
        frame,
        want,
        `size ${size}, frame ${i} (${JSON.stringify({ ...f, id: String(f.id) })})`,
      );
    }
    assert.equal(r.sent, sent.length);
    assert.equal(r.dropped, 0);
    await cap.stop();
  }
});

test('server down: reports are dropped and counted, never thrown; it reconnects', async () => {
  const path = join(tempDir(), 'later.sock');
  const r = new Reporter({ socketPath: path, reconnectMs: 50 });
  for (let i = 0; i < 1000; i++) r.alloc(0, 0x1000 * i, 4096, 0); // no server yet
  r.flush();
  for (let i = 0; i < 100 && r.dropped < 1000; i++) await sleep(10);
  assert.equal(r.dropped, 1000);
  assert.equal(r.sent, 0);
  assert.equal(r.isConnected, false);

  const cap = new Capture(path);
  await cap.start();
  await sleep(80); // past reconnectMs
  // The first report after the pause starts a connection; it is kept until the socket is up.
  r.alloc(1, 0xabc000, 8192, 1);
  for (let i = 0; i < 200 && !r.isConnected; i++) await sleep(10);
  assert.equal(r.isConnected, true);
  for (let i = 0; i < 10; i++) r.free(1, 0xabc000);
  await cap.waitBytes(11 * 144);
  assert.equal(r.sent, 11);

  // The server goes away: counted as dropped, then back again: a reconnect.
  await cap.stop();
  for (let i = 0; i < 200 && r.isConnected; i++) await sleep(10);
  assert.equal(r.isConnected, false);
  r.alloc(2, 0x5000, 4096, 0);
  r.flush();
  const dropped = r.dropped;
  assert.ok(dropped >= 1001, `dropped ${dropped}`);
  const cap2 = new Capture(path);
  await cap2.start();
  await sleep(80);
  r.alloc(3, 0x6000, 4096, 0);
  for (let i = 0; i < 200 && !r.isConnected; i++) await sleep(10);
  await r.close();
  await cap2.waitBytes(144);
  assert.equal(r.reconnects, 1);
  assert.equal(cap2.bytes.readInt32LE(Off.deviceId), 3);
  await cap2.stop();
});

test('a server that stops reading never blocks the app: frames past the queue drop', async () => {
  const cap = new Capture(join(tempDir(), 'slow.sock'), false);
  await cap.start();
  const r = new Reporter({ socketPath: cap.path, maxQueuedBytes: 256 << 10, batchFrames: 256 });
  r.alloc(0, 1, 1, 0);
  for (let i = 0; i < 200 && !r.isConnected; i++) await sleep(10);
  const t0 = performance.now();
  for (let round = 0; round < 200; round++) {
    for (let i = 0; i < 1000; i++) r.alloc(i % 8, 0x10000 + i * 4096, 4096, 0);
    await sleep(0);
  }
  assert.ok(performance.now() - t0 < 20_000, 'reporting finished');
  assert.ok(r.dropped > 0, 'frames beyond the queue limit are dropped');
  assert.equal(r.sent + r.dropped, 200_001);
  await cap.stop();
  await r.close();
});

test('bad arguments and reports after close() are counted as dropped, not thrown', async () => {
  const cap = new Capture(join(tempDir(), 'bad.sock'));
  await cap.start();
  const r = new Reporter({ socketPath: cap.path });
  r.alloc(0, 0x1000, 4096, 0);
  r.alloc(0, 'not an address' as unknown as number, 4096, 0);
  r.free(0, Symbol('x') as unknown as bigint);
  await r.close();
  r.alloc(0, 0x2000, 4096, 0);
  await cap.waitBytes(144); // only the good report
  assert.equal(r.dropped, 3);
  assert.equal(r.sent, 1);
  await cap.stop();
});

test('a burst reported before the connection is up is queued and sent, not dropped', async () => {
  const path = join(tempDir(), 'burst.sock');
  const cap = new Capture(path);
  await cap.start();
  const r = new Reporter({ socketPath: path });
  // before any I/O could connect
  for (let i = 0; i < 50_000; i++) r.alloc(i % 8, 0x100000 + i * 0x100, 256, 0);
  await r.close();
  assert.equal(r.dropped, 0);
  assert.equal(r.sent, 50_000);
  await cap.waitBytes(50_000 * 144);
  const last = cap.bytes.subarray(49_999 * 144);
  assert.equal(last.readUInt32LE(Off.bufferId), 0x100000 + 49_999 * 0x100);
  await cap.stop();
});
