// How the server reads data connections (src/server/socket-reader.ts): busy connections directly
// through the native addon, quiet ones through libuv, and everything through libuv without the
// addon. Both paths must deliver every byte of every connection, in order, across reads that cut
// frames anywhere, and must notice end of stream; a connection the server closes while it reads it
// directly must never have its descriptor read again (the kernel reuses the number at once).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { decodeFrame, encodeFrame } from '../src/protocol/codec.js';
import { MsgType } from '../src/protocol/constants.js';
import { NO_READ_PUMP_ENV, PER_READ_BUFFERS_ENV, ReadPump } from '../src/server/socket-reader.js';
import { rawConnect, startServer, type TestServer } from './helpers/server.js';
import { Inbox, stats, waitFrames, write } from './helpers/wire.js';
import type { ReadStats } from '../src/report/types.js';

const { ALLOC, FREE, QUERY } = MsgType;
// On CI the addon must have been built by `npm ci`: a missing one fails here instead of skipping.
const pumpHere = ReadPump.create();
const needsAddon =
  pumpHere.pump || process.env.CI ? {} : { skip: `no direct reads here (${pumpHere.reason})` };

/**
 * A server that files each frame under the PID it claims (so each test connection owns its own
 * PID, all from this process), without the periodic sweep. A connection that closes while its
 * claimed PID names no process has its buffers released at once (the exit watch): connections
 * that close before the checks claim PIDs of real processes.
 */
const pidClaimingServer = (env: NodeJS.ProcessEnv = {}) =>
  startServer(['--trust-client-pid', '--reap-interval', '0'], env);

const readStats = async (srv: TestServer) =>
  (await srv.client.json<{ reads: ReadStats }>('GET', '/v1/stats')).reads;
const processes = async (srv: TestServer) =>
  new Map(
    (
      await srv.client.json<{ processes: { pid: number; buffers: number; bytes: number }[] }>(
        'GET',
        '/v1/processes',
      )
    ).processes.map((p) => [p.pid, p]),
  );

/**
 * `n` ALLOCs on 8 devices, then a FREE of every other one: 144-byte frames claiming PID `pid` (the
 * server runs with --trust-client-pid), at addresses no other PID uses.
 */
function stream(pid: number, n: number): Buffer {
  const out = Buffer.alloc((n + n / 2) * 144);
  let off = 0;
  for (let i = 0; i < n; i++) {
    encodeFrame(
      {
        type: ALLOC,
        deviceId: i % 8,
        size: 4096 + i,
        bufferType: i % 5,
        pid,
        bufferId: pid * 0x100000 + i,
      },
      144,
    ).copy(out, off);
    off += 144;
  }
  for (let i = 0; i < n; i += 2) {
    encodeFrame({ type: FREE, deviceId: i % 8, pid, bufferId: pid * 0x100000 + i }, 144).copy(
      out,
      off,
    );
    off += 144;
  }
  return out;
}

/**
 * Writes `bytes` in pieces of 1..9000 bytes (cutting frames anywhere), without waiting between
 * them.
 */
async function writeCut(s: Socket, bytes: Buffer, seed: number): Promise<void> {
  let x = seed,
    last: Promise<void> = Promise.resolve();
  for (let off = 0; off < bytes.length;) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    const n = 1 + (x % 9000);
    last = write(s, bytes.subarray(off, off + n));
    off += n;
  }
  await last;
}

async function waitOpen(srv: TestServer, n: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if ((await stats(srv)).connections.open === n) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`expected ${n} open connections, have ${(await stats(srv)).connections.open}`);
}

const PATHS = {
  direct: { name: 'the native addon while busy', env: {} },
  epoll: { name: 'epoll only', env: { [NO_READ_PUMP_ENV]: '1' } },
  // What a Node whose net internals differ would do: Node's own buffer per read, through epoll.
  'per-read buffers': {
    name: "epoll into Node's per-read buffers",
    env: { [NO_READ_PUMP_ENV]: '1', [PER_READ_BUFFERS_ENV]: '1' },
  },
};
for (const [path, how] of Object.entries(PATHS)) {
  test(
    `reads through ${how.name}: every byte of 4 concurrent cut-up streams, in order, and the end`,
    path === 'direct' ? needsAddon : {},
    async () => {
      const srv = await pidClaimingServer(how.env);
      try {
        const N = 20_000,
          pids = [9101, 9102, 9103, 9104];
        const socks = await Promise.all(pids.map(() => rawConnect(srv.socket)));
        await Promise.all(socks.map((s, k) => writeCut(s, stream(pids[k], N), k + 1)));
        const st = await waitFrames(srv, pids.length * (N + N / 2));
        assert.equal(st.frames.rejected, 0);
        assert.equal(st.live.buffers, (pids.length * N) / 2);
        const procs = await processes(srv);
        for (const pid of pids) {
          // Odd i survive: sizes 4096 + i for i = 1, 3, …, N-1.
          assert.equal(procs.get(pid)?.buffers, N / 2, `pid ${pid}`);
          assert.equal(
            procs.get(pid)?.bytes,
            (N / 2) * 4096 + (N / 2) * (N / 2),
            `pid ${pid}: bytes`,
          );
        }
        const r = await readStats(srv);
        assert.equal(r.busy_connections, path === 'direct' ? 'direct' : 'epoll');
        if (path === 'per-read buffers') assert.equal(r.per_read_buffer_connections, pids.length);
        else
          assert.equal(
            r.per_read_buffer_connections,
            0,
            "every connection reads into the server's own buffer",
          );
        if (path === 'direct')
          assert.ok(
            r.direct_reads > 0,
            `busy connections were read directly (${JSON.stringify(r)})`,
          );
        else assert.match(r.reason ?? '', new RegExp(NO_READ_PUMP_ENV));

        // End of stream right behind a burst, while the connection is busy.
        await Promise.all(
          socks.map(
            (s, k) => new Promise<void>((r) => s.end(stream(pids[k] + 100, 2000), () => r())),
          ),
        );
        await waitFrames(srv, pids.length * (N + N / 2) + pids.length * 3000);
        await waitOpen(srv, 0);
      } finally {
        await srv.stop();
      }
    },
  );
}

test(
  'a QUERY answers with every frame sent before it on a busy connection',
  needsAddon,
  async () => {
    const srv = await pidClaimingServer();
    try {
      const s = await rawConnect(srv.socket);
      const ib = new Inbox(s);
      for (let round = 1; round <= 5; round++) {
        const n = 5000 * round;
        const burst = Buffer.concat(
          Array.from({ length: n }, (_, i) =>
            encodeFrame(
              {
                type: ALLOC,
                deviceId: 2,
                size: 64,
                bufferType: 0,
                pid: 9200,
                bufferId: round * 1_000_000 + i,
              },
              144,
            ),
          ),
        );
        await write(s, Buffer.concat([burst, encodeFrame({ type: QUERY, deviceId: 2 }, 144)]));
        const reply = decodeFrame(await ib.take(144));
        assert.equal(reply.type, MsgType.RESPONSE);
        const dram = reply.dram;
        const expected = (64 * 5000 * (round * (round + 1))) / 2;
        assert.equal(
          dram,
          expected,
          `round ${round}: the reply counts all ${n} ALLOCs sent before the QUERY`,
        );
      }
      s.destroy();
    } finally {
      await srv.stop();
    }
  },
);

test(
  'connections closed by the server while read directly, new ones taking their descriptors: ' +
    'nothing lost or misread',
  needsAddon,
  async () => {
    const srv = await pidClaimingServer();
    // The doomed connections are closed by the server: they claim PIDs of live processes, so
    // their buffers stay; the fresh ones stay open and claim PIDs above this machine's pid_max
    // (and below 2^22, PID_LIMIT: a claim at or above it is no PID).
    const sleepers = Array.from({ length: 24 }, () => spawn('sleep', ['600'], { stdio: 'ignore' }));
    const doomedPid = (round: number, k: number) => sleepers[round * 3 + k].pid!;
    try {
      // 16 frames of unknown code 0xee: the server closes the stream
      const garbage = Buffer.alloc(144 * 16, 0xee);
      const good = (pid: number, n: number) =>
        Buffer.concat(
          Array.from({ length: n }, (_, i) =>
            encodeFrame(
              {
                type: ALLOC,
                deviceId: i % 8,
                size: 512,
                bufferType: 0,
                pid,
                bufferId: pid * 0x100000 + i,
              },
              144,
            ),
          ),
        );
      let expectFrames = 0,
        expectRejected = 0;
      const keepers: Socket[] = [],
        fresh: [number, number][] = [];
      for (let round = 0; round < 8; round++) {
        // Doomed connections: a burst (so they are read directly), then garbage; meanwhile fresh
        // connections keep arriving, and take the descriptors the doomed ones free.
        const sends: Promise<void>[] = [];
        for (let k = 0; k < 3; k++) {
          const d = await rawConnect(srv.socket);
          d.on('error', () => {});
          sends.push(
            write(d, Buffer.concat([good(doomedPid(round, k), 4000), garbage])).catch(() => {}),
          );
          expectFrames += 4000;
          // the server closes each doomed stream at its 8th consecutive unknown frame
          expectRejected += 8;
        }
        for (let k = 0; k < 25; k++) {
          const pid = 4_100_000 + round * 100 + k,
            f = await rawConnect(srv.socket);
          sends.push(write(f, good(pid, 300)));
          keepers.push(f);
          fresh.push([pid, 300]);
          expectFrames += 300;
        }
        await Promise.all(sends);
      }
      const st = await waitFrames(srv, expectFrames + expectRejected, 20000);
      assert.equal(st.frames.total, expectFrames);
      const procs = await processes(srv);
      for (let round = 0; round < 8; round++) {
        for (let k = 0; k < 3; k++)
          assert.equal(
            procs.get(doomedPid(round, k))?.buffers,
            4000,
            `doomed ${round}/${k}: its good frames all applied`,
          );
      }
      for (const [pid, n] of fresh)
        assert.equal(
          procs.get(pid)?.buffers,
          n,
          `fresh connection of pid ${pid}: every frame applied to its own connection`,
        );
      await waitOpen(srv, keepers.length);
      for (const s of keepers) s.end();
      await waitOpen(srv, 0);
    } finally {
      for (const p of sleepers) p.kill('SIGKILL');
      await srv.stop();
    }
  },
);

test(
  'a client sending a frame now and then stays with epoll ' +
    '(handing it over and back would cost more than it saves)',
  needsAddon,
  async () => {
    const srv = await pidClaimingServer();
    try {
      const s = await rawConnect(srv.socket);
      // Each frame is applied before the next is sent: every read holds exactly one frame.
      for (let i = 0; i < 60; i++) {
        await write(
          s,
          encodeFrame(
            { type: ALLOC, deviceId: 1, size: 64, bufferType: 0, pid: 9400, bufferId: 0x5000 + i },
            144,
          ),
        );
        await waitFrames(srv, i + 1);
      }
      const r = await readStats(srv);
      assert.equal(r.busy_connections, 'direct', 'the pump is there');
      assert.deepEqual(
        [r.direct_reads, r.hand_backs],
        [0, 0],
        'one-frame reads never went to the pump',
      );
      s.destroy();
    } finally {
      await srv.stop();
    }
  },
);
