// Fault injection (issue 14), through real processes: kill -9 in the middle of a snapshot write and
// between a compaction's snapshot and its cleanup (TTALLOC_TEST_PAUSE, src/persist/test-pause.ts,
// stops the compactor there), ENOSPC in the middle of a journal write (a small tmpfs in a private
// mount namespace), the server SIGSTOPped for 5 s under load, and 10,000 connections opened and
// closed at random. Each ends with the state compared with a model of what the clients sent,
// buffer by buffer. Clients are the runtime-like test/c/steady_sender.c (blocking send(), no
// MSG_NOSIGNAL, SIGPIPE at its default): one that died would show.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { CLI, startServer, tempDir, type TestServer } from './helpers/server.js';
import { frames, stats, waitFrames, type HasControl } from './helpers/wire.js';
import { HAS_CC, Steady, liveBuffers, mapDiff } from './helpers/steady.js';
import { ControlClient } from '../src/client/control-client.js';
import { MsgType } from '../src/protocol/constants.js';
import { TEST_PAUSE_ENV, type PausePoint } from '../src/persist/test-pause.js';

const SKIP = HAS_CC ? false : 'no C compiler (`cc`) on this machine (apt-get install gcc)';
const ROOT = process.getuid?.() === 0;
const HAS_UNSHARE = ROOT && spawnSync('unshare', ['-m', 'true']).status === 0;
const NO_NS = HAS_UNSHARE ? SKIP : 'needs root and unshare -m (a private mount namespace)';

async function until<T>(what: string, f: () => T | Promise<T>, timeoutMs = 20000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function killed(p: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve();
    p.once('exit', () => resolve());
    p.kill('SIGKILL');
  });
}

/** The state equals `want` (device:address → size), every ref count 1. */
async function assertState(srv: HasControl, want: Map<string, number>, what: string) {
  const got = await liveBuffers(srv.client);
  const d = mapDiff(want, got.rows);
  assert.deepEqual(
    { missing: d.missingCount, extra: d.extra, wrong: d.wrong, size: got.rows.size },
    { missing: 0, extra: [], wrong: [], size: want.size },
    `${what}; first missing: ${d.missing.join(' ')}`,
  );
  if (want.size) assert.deepEqual(got.refs, [1], what);
}

/** Everything accepted so far is on disk: a mark is journalled before its request is answered. */
async function sync(srv: HasControl, name: string): Promise<void> {
  await srv.client.json('POST', '/v1/marks', { name });
}

for (const point of ['snapshot-mid-write', 'snapshot-before-cleanup'] as PausePoint[]) {
  test(
    `kill -9 at ${point} of a compaction: the restarted state equals the model`,
    { skip: SKIP },
    async () => {
      const srv = await startServer(['--journal-mib', '1', '--flush-interval', '20'], {
        [TEST_PAUSE_ENV]: point,
      });
      const state = join(srv.dir, 'state');
      const c = await Steady.start(srv.socket, 'mix', 4);
      const allocs = 120000; // 80,000 live: more than one 32,768-row batch of snapshot
      await c.send(allocs);
      await waitFrames(srv, c.framesFor(allocs));
      await sync(srv, 'before');
      // The journal stops growing, compaction starts, and the worker stops at the point.
      await until(point, () => existsSync(join(state, `paused-${point}`)));
      const files = readdirSync(state);
      const segments = files.filter((f) => f.startsWith('journal-'));
      if (point === 'snapshot-mid-write') {
        assert.ok(
          files.includes('snapshot.bin.tmp') && !files.includes('snapshot.bin'),
          `${files}`,
        );
      } else {
        assert.ok(
          files.includes('snapshot.bin') && !files.includes('snapshot.bin.tmp'),
          `${files}`,
        );
      }
      await killed(srv.proc);
      const b = await startServer(['--state-dir', state]);
      await assertState(b, c.model(allocs), `after kill -9 at ${point}`);
      const marks = await b.client.json<{ marks: { name: string }[] }>('GET', '/v1/marks');
      assert.deepEqual(
        marks.marks.map((m) => m.name),
        ['before'],
      );
      const restored = /state directory .*: (restored .*)/.exec(b.output())![1];
      if (point === 'snapshot-before-cleanup') {
        // the covered segments were left by the dead server: deleted, not replayed a second time
        assert.match(restored, /snapshot: [1-9]\d* objects/);
        const left = readdirSync(state).filter((f) => f.startsWith('journal-'));
        assert.ok(left.length < segments.length, `${segments} → ${left}`);
      } else assert.match(restored, /snapshot: 0 objects, journal: \d+ events/);
      console.log(`# kill -9 at ${point}: ${restored}`);
      assert.deepEqual(await c.end(), { code: 0, signal: null });
      await b.stop();
      await srv.stop();
    },
  );
}

/** A server started by an arbitrary command line (in another mount namespace), and its output. */
function serverBy(cmd: string, args: string[]) {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '',
    err = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return { proc, output: () => out, stderr: () => err };
}

test(
  'ENOSPC in the middle of a journal write: one clear line, serving goes on, nothing is lost, ' +
    'persistence resumes when there is room',
  { skip: NO_NS },
  async () => {
    const dir = tempDir();
    const mnt = join(dir, 'mnt');
    const socket = join(dir, 'alloc.sock');
    const serverArgs = (state: string) => [
      CLI,
      'server',
      '--socket',
      socket,
      '--stats-interval',
      '0',
      '--state-dir',
      state,
      '--flush-interval',
      '20',
    ];
    // A private mount namespace with an 8 MiB tmpfs; `sleep` keeps the namespace (and the tmpfs)
    // after the server is killed, for the restart (nsenter).
    const script =
      'mkdir -p "$0" && mount -t tmpfs -o size=8m tmpfs "$0" && ' +
      '{ sleep 600 & echo "holder $!"; } && exec "$@"';
    const a = serverBy('unshare', [
      '-m',
      '--propagation',
      'private',
      'sh',
      '-c',
      script,
      mnt,
      process.execPath,
      ...serverArgs(join(mnt, 'state')),
    ]);
    const holder = Number((await until('holder', () => /holder (\d+)/.exec(a.output())))![1]);
    const view = `/proc/${a.proc.pid}/root${mnt}`; // the tmpfs, seen through the server's namespace
    const client = new ControlClient(socket);
    const srv = { client };
    await until('listening', () => a.output().includes('listening on'));
    try {
      const c = await Steady.start(socket, 'mix', 2);
      await c.send(20000);
      await waitFrames(srv, c.framesFor(20000));
      await sync(srv, 'a');
      // fill the file system to its last 64 KiB: the next ~400 KB of journal cannot be written
      const free = statfsSync(view);
      writeFileSync(join(view, 'filler'), Buffer.alloc(Number(free.bavail * free.bsize) - 65536));
      await c.send(20000);
      await waitFrames(srv, c.framesFor(40000));
      await until('the warning', () => /PERSISTENCE STOPPED: ENOSPC/.test(a.output()));
      assert.equal(a.output().split('PERSISTENCE STOPPED').length, 2, 'one line, once');
      assert.match(a.stderr(), /PERSISTENCE STOPPED: ENOSPC/, 'on stderr too');
      // serving goes on: the client sends more, everything is tracked in memory
      await c.send(10000);
      await waitFrames(srv, c.framesFor(50000));
      await assertState(srv, c.model(50000), 'in memory while the disk is full');
      const st = await stats(srv);
      assert.match(st.persistence.enabled ? (st.persistence.failed ?? '') : '', /ENOSPC/);
      assert.equal(c.alive, true);
      // room again: resumes by itself with a snapshot of the live state
      const t0 = Date.now();
      rmSync(join(view, 'filler'));
      await until('resumed', () =>
        /persistence resumed in .*: snapshot of \d+ objects/.test(a.output()),
      );
      const resumedMs = Date.now() - t0;
      await c.send(10000);
      await waitFrames(srv, c.framesFor(60000));
      await sync(srv, 'b');
      await killed(a.proc);
      const b = serverBy('nsenter', [
        '-t',
        String(holder),
        '-m',
        process.execPath,
        ...serverArgs(join(mnt, 'state')),
      ]);
      await until('restarted', () => b.output().includes('listening on'));
      await assertState(srv, c.model(60000), 'after the full disk, the resume and a kill -9');
      console.log(
        `# ENOSPC: persistence stopped with one line; resumed ${resumedMs} ms after room ` +
          `returned; restart after kill -9: ${/restored [^\n]*/.exec(b.output())![0]}`,
      );
      assert.deepEqual(await c.end(), { code: 0, signal: null });
      await killed(b.proc);
    } finally {
      a.proc.kill('SIGKILL');
      process.kill(holder, 'SIGKILL');
    }
  },
);

/** The system call a process is blocked in (x86-64 numbers), from /proc/PID/syscall. */
function syscallOf(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/syscall`, 'utf8').split(' ')[0]);
}
const SYS_SENDTO = 44; // send() is sendto(2)

test(
  'the server SIGSTOPped for 5 s under load: clients block in send(), none dies, nothing is lost',
  { skip: SKIP },
  async () => {
    const srv = await startServer();
    const allocs = 150000;
    const clients = await Promise.all(
      [0, 1, 2, 3].map((i) => Steady.start(srv.socket, 'mix', 2, i * 1_000_000)),
    );
    for (const c of clients) {
      c.sent = allocs;
      c.request(allocs);
    }
    await until('load', async () => (await stats(srv)).frames.total > 100000);
    const pid = srv.proc.pid!;
    srv.proc.kill('SIGSTOP');
    const stoppedAt = Date.now();
    await new Promise((r) => setTimeout(r, 5000));
    for (const c of clients) {
      assert.equal(c.alive, true);
      if (process.arch === 'x64') assert.equal(syscallOf(c.pid), SYS_SENDTO, 'blocked in send()');
    }
    srv.proc.kill('SIGCONT');
    const contAt = Date.now();
    const done = await Promise.all(clients.map((c) => c.sentAll()));
    const total = clients.reduce((n, c) => n + c.framesFor(allocs), 0);
    await waitFrames(srv, total, 30000);
    const want = new Map<string, number>();
    for (const c of clients) for (const [k, v] of c.model(allocs)) want.set(k, v);
    await assertState(srv, want, 'after SIGSTOP / SIGCONT');
    for (const c of clients) assert.deepEqual(await c.end(), { code: 0, signal: null });
    assert.equal(existsSync(`/proc/${pid}`), true);
    const lastSent = Math.max(...done.map((d) => d.at));
    console.log(
      `# SIGSTOP: ${clients.length} clients blocked ${contAt - stoppedAt} ms; all ${total} ` +
        `frames sent ${lastSent - contAt} ms after SIGCONT; 0 lost, 0 clients died`,
    );
    await srv.stop();
  },
);

/** A deterministic PRNG (mulberry32): the seed is in the output, so a failure reproduces. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** One connection doing one of five things; resolves once it is closed on our side. */
function oneConnection(socket: string, i: number, kind: number): Promise<void> {
  const id = 0x200000000 + i * 0x40;
  const alloc = {
    type: MsgType.ALLOC,
    deviceId: i % 8,
    size: 4096,
    bufferType: 0,
    pid: process.pid,
    bufferId: id,
  };
  const free = { type: MsgType.FREE, deviceId: i % 8, pid: process.pid, bufferId: id };
  return new Promise((resolve) => {
    const s: Socket = connect(socket);
    s.on('error', () => resolve());
    s.on('close', () => resolve());
    if (kind === 4) return void s.destroy(); // gone before (or while) it connects
    s.once('connect', () => {
      if (kind === 0) return void s.end();
      const bytes =
        kind === 1
          ? frames([alloc])
          : kind === 2
            ? frames([alloc, free])
            : Buffer.concat([frames([alloc]), frames([alloc]).subarray(0, 60)]);
      s.end(bytes);
    });
  });
}

test('10,000 connections opened and closed at random: state exact, fds as before', async () => {
  const srv: TestServer = await startServer(['--no-persist']);
  const pid = srv.proc.pid!;
  await srv.client.text('GET', '/v1/health');
  const baseline = fdCount(pid);
  const seed = Date.now() % 100000;
  const rand = rng(seed);
  const want = new Map<string, number>();
  const N = 10000;
  const kinds = Array.from({ length: N }, () => Math.floor(rand() * 5));
  for (let i = 0; i < N; i++)
    if (kinds[i] === 1 || kinds[i] === 3)
      want.set(`${i % 8}:0x${(0x200000000 + i * 0x40).toString(16)}`, 4096);
  for (let from = 0; from < N; from += 250) {
    const wave = [];
    for (let i = from; i < Math.min(N, from + 250); i++)
      wave.push(oneConnection(srv.socket, i, kinds[i]));
    await Promise.all(wave);
  }
  await until('all closed', async () => (await stats(srv)).connections.open === 0);
  await assertState(srv, want, `seed ${seed}`);
  const st = await stats(srv);
  assert.equal(st.frames.rejected, 0, `seed ${seed}`);
  assert.match(await srv.client.text('GET', '/v1/health'), /"ok":true/);
  assert.equal(fdCount(pid), baseline, `seed ${seed}: descriptors back to the baseline`);
  console.log(
    `# 10,000 connections (seed ${seed}): ${st.connections.total} accepted, ${want.size} buffers ` +
      `exact, descriptors ${baseline} before and ${fdCount(pid)} after`,
  );
  await srv.stop();
});
