// Fault injection over real sockets: seeded random and mutated byte streams from many bad
// connections, alongside one well-behaved client whose state must come out exact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { encodeFrame } from '../src/protocol/codec.js';
import { MsgType } from '../src/protocol/constants.js';
import { rawConnect, settle, startServer } from './helpers/server.js';

const SIZES = [72, 112, 144] as const;
const GOOD_DEVICE = 7;

/** mulberry32: a seeded generator, so a failure is reproducible from the printed seed. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]!,
  };
}
type Rng = ReturnType<typeof rng>;

function randomBytes(r: Rng, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = r.int(256);
  return b;
}

/** A frame with every code and random fields; devices never GOOD_DEVICE, PIDs never ours. */
function randomFrame(r: Rng, size: 72 | 112 | 144): Buffer {
  const device = r.pick([0, 1, 2, -1, -7, 0x7fffffff, 1 << 20, 255]);
  let pid = 1 + r.int(0x7ffffffe);
  if (pid === process.pid) pid++;
  const f = encodeFrame(
    {
      type: r.int(16),
      deviceId: device,
      size: r.pick([0, 1, 4096, r.int(2 ** 31), 2 ** 52]),
      bufferType: r.int(8),
      pid,
      bufferId: BigInt(r.int(2 ** 31)) * 4096n,
      timestampNs: r.int(2 ** 40),
    },
    size,
  );
  if (r.int(4) === 0) f[8 + r.int(size - 8)] = r.int(256); // mutate a byte of the body
  return f;
}

/** One bad stream: garbage, mutated frames, mixed sizes, or frames ending half-way. */
function badStream(r: Rng): { kind: string; bytes: Buffer } {
  const kind = r.pick([
    'garbage',
    'mutated',
    'mixed-sizes',
    'truncated',
    'half-frame-then-silence',
  ] as const);
  const size = r.pick(SIZES);
  const frames: Buffer[] = [];
  const n = 1 + r.int(200);
  switch (kind) {
    case 'garbage':
      return { kind, bytes: randomBytes(r, 1 + r.int(20000)) };
    case 'mutated':
      for (let i = 0; i < n; i++) frames.push(randomFrame(r, size));
      break;
    case 'mixed-sizes':
      for (let i = 0; i < n; i++) frames.push(randomFrame(r, r.pick(SIZES)));
      break;
    case 'truncated':
      for (let i = 0; i < n; i++) {
        const f = randomFrame(r, size);
        frames.push(r.int(5) === 0 ? f.subarray(0, r.int(size)) : f);
      }
      break;
    case 'half-frame-then-silence':
      frames.push(randomFrame(r, size).subarray(0, 1 + r.int(size - 1)));
      break;
  }
  return { kind, bytes: Buffer.concat(frames) };
}

/** Writes `bytes` in random pieces; the server may close the connection at any point. */
async function writeInPieces(s: Socket, r: Rng, bytes: Buffer): Promise<void> {
  s.on('error', () => {
    /* closed by the server: expected for bad streams */
  });
  s.on('data', () => {
    /* replies to random QUERYs: drained and dropped */
  });
  for (let off = 0; off < bytes.length && !s.destroyed;) {
    const n = 1 + r.int(4096);
    await new Promise<void>((res) => s.write(bytes.subarray(off, off + n), () => res()));
    off += n;
    if (r.int(8) === 0) await new Promise((res) => setImmediate(res));
  }
}

interface Row {
  address: string;
  size: number;
  pid: number;
  ref_count: number;
  device: number;
}

for (const seed of [1, 0xc0ffee, Date.now() & 0xffffff]) {
  test(`fuzz seed ${seed}: bad streams never disturb a good client or the server`, async () => {
    const r = rng(seed);
    const srv = await startServer(['--reap-interval', '0']);
    try {
      // The well-behaved client: allocs, repeated allocs (ref counts) and frees, modelled in a Map.
      const model = new Map<bigint, { size: number; ref: number }>();
      const good: Buffer[] = [];
      for (let i = 0; i < 3000; i++) {
        const addr = 0x7000_0000_0000n + BigInt(r.int(500)) * 4096n;
        const cur = model.get(addr);
        if (cur && r.int(2) === 0) {
          good.push(
            encodeFrame({
              type: MsgType.FREE,
              deviceId: GOOD_DEVICE,
              pid: process.pid,
              bufferId: addr,
            }),
          );
          if (--cur.ref === 0) model.delete(addr);
        } else {
          const size = cur ? cur.size : 4096 * (1 + r.int(64));
          good.push(
            encodeFrame({
              type: MsgType.ALLOC,
              deviceId: GOOD_DEVICE,
              size,
              bufferType: r.int(5),
              pid: process.pid,
              bufferId: addr,
              timestampNs: 1,
            }),
          );
          if (cur) cur.ref++;
          else model.set(addr, { size, ref: 1 });
        }
      }
      const goodSock = await rawConnect(srv.socket);
      const bad = Array.from({ length: 24 }, () => badStream(r));
      const badSocks = await Promise.all(bad.map(() => rawConnect(srv.socket)));
      await Promise.all([
        writeInPieces(goodSock, r, Buffer.concat(good)),
        ...bad.map((b, i) => writeInPieces(badSocks[i]!, r, b.bytes)),
      ]);
      await settle(srv);

      assert.equal(srv.proc.exitCode, null, `server died:\n${srv.stderr()}`);
      assert.equal(goodSock.destroyed, false, 'the well-behaved connection was closed');
      const rep = await srv.client.json<{ buffers: Row[] }>(
        'GET',
        `/v1/report?format=json&all=1&device=${GOOD_DEVICE}&pid=${process.pid}`,
      );
      const got = new Map(
        rep.buffers.map((b) => [BigInt(b.address), { size: b.size, ref: b.ref_count }]),
      );
      assert.deepEqual(got, model, `seed ${seed}: the well-behaved client's buffers differ`);

      // Bad connections were noticed: a reason was logged for closing or for rejected frames.
      const stats = await srv.client.json<{ frames: { rejected: number } }>('GET', '/v1/stats');
      assert.ok(stats.frames.rejected > 0, 'no rejected frames counted');
      assert.match(srv.output() + srv.stderr(), /closing: |rejected a frame/);
      for (const s of badSocks) s.destroy();
      goodSock.destroy();
      assert.equal((await srv.client.json<{ ok: boolean }>('GET', '/v1/health')).ok, true);
    } finally {
      assert.equal(await srv.stop(), 0);
    }
  });
}
