// Restart and upgrade under running clients (issue 14): `ttalloc restart` and `ttalloc server
// --replace` hand the listening sockets, every data connection and the state to a new process.
// Real servers, real C and Python clients, real restarts; the end state is compared frame for
// frame with what the clients say they hold.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CLI, startServer, tempDir, type TestServer } from './helpers/server.js';
import { stats } from './helpers/wire.js';
import { encodeFrame } from '../src/protocol/codec.js';
import { MsgType } from '../src/protocol/constants.js';
import { TAKEOVER_PATH } from '../src/server/takeover-channel.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(tempDir('ttalloc-takeover-bin-'), 'steady_client');
execFileSync('cc', ['-O2', '-Wall', '-o', BIN, join(ROOT, 'test/c/steady_client.c')]);

/** Servers that took over are not the test helper's processes: they are killed at the end. */
const serverPids = new Set<number>();
after(() => {
  for (const pid of serverPids)
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
});

function cli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, ...env }, timeout: 120_000, maxBuffer: 1 << 30 },
      (e, out, err) => resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out, err }),
    );
  });
}

async function restart(srv: TestServer, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await cli(['restart', '--socket', srv.socket], env);
  assert.equal(r.code, 0, `restart failed:\n${r.out}\n${r.err}`);
  serverPids.add((await stats(srv)).pid);
  return r.out + r.err;
}

/** Stops whichever server now runs on the socket (it may not be the helper's process). */
async function stopAll(srv: TestServer): Promise<void> {
  const r = await cli(['stop', '--force', '--socket', srv.socket]);
  assert.equal(r.code, 0, r.err);
  await srv.stop();
}

interface Steady {
  proc: ChildProcess;
  /** Ends sending; resolves with what the client says it holds. */
  stop(): Promise<{ held: number; first: bigint; last: bigint; frames: number; maxGapUs: number }>;
  /** Closes its stdin: it closes its connection and exits; resolves with its exit status. */
  finish(): Promise<number | string | null>;
}

/** The runtime-like C client (test/c/steady_client.c), connected and sending. */
async function steady(socket: string, live: number, paceUs: number, fs = 144): Promise<Steady> {
  const proc = spawn(BIN, [socket, String(fs), String(live), String(paceUs)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  after(() => proc.kill('SIGKILL'));
  const lines: string[] = [];
  const rl = createInterface({ input: proc.stdout! });
  rl.on('line', (l) => lines.push(l));
  const line = async (prefix: string) => {
    for (;;) {
      const l = lines.find((x) => x.startsWith(prefix));
      if (l) return l;
      if (proc.exitCode !== null || proc.signalCode !== null)
        throw new Error(`C client ended (${proc.exitCode ?? proc.signalCode}) before "${prefix}"`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  await line('ready');
  return {
    proc,
    async stop() {
      proc.stdin!.write('stop\n');
      const w = (await line('held')).split(' ');
      return {
        held: Number(w[1]),
        first: BigInt(w[3]),
        last: BigInt(w[5]),
        frames: Number(w[7]),
        maxGapUs: Number(w[9]),
      };
    },
    finish() {
      const done = new Promise<number | string | null>((r) =>
        proc.once('exit', (code, sig) => r(code ?? sig)),
      );
      if (proc.exitCode !== null || proc.signalCode !== null)
        return Promise.resolve(proc.exitCode ?? proc.signalCode);
      proc.stdin!.end();
      return done;
    },
  };
}

/** Addresses of the buffers `pid` holds (live or left behind), from `dump --json`, sorted. */
async function heldBy(srv: TestServer, pid: number): Promise<bigint[]> {
  const r = await cli([
    'dump',
    '--socket',
    srv.socket,
    '--json',
    '--limit',
    '100000000',
    '--pid',
    String(pid),
  ]);
  assert.equal(r.code, 0, r.err);
  const found: bigint[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(walk);
    if (v === null || typeof v !== 'object') return;
    const o = v as Record<string, unknown>;
    if (typeof o.address === 'string') found.push(BigInt(o.address));
    else for (const x of Object.values(o)) walk(x);
  };
  // Per device and type, live then left behind (the flat "buffers" list repeats the live ones).
  const d = JSON.parse(r.out) as { devices: unknown; exited?: { devices: unknown } };
  walk(d.devices);
  walk(d.exited?.devices ?? []);
  return found.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function expected(first: bigint, held: number): bigint[] {
  return Array.from({ length: held }, (_, i) => first + BigInt(i) * 64n);
}

/** A copy of this package with another version string: an upgrade "from another install". */
function otherInstall(version: string): string {
  const dir = tempDir('ttalloc-upgrade-');
  cpSync(join(ROOT, 'dist'), join(dir, 'dist'), { recursive: true });
  mkdirSync(join(dir, 'build/Release'), { recursive: true });
  cpSync(
    join(ROOT, 'build/Release/ttalloc_native.node'),
    join(dir, 'build/Release/ttalloc_native.node'),
  );
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ ...pkg, version }));
  return dir;
}

test('a runtime-like C client sends through 10 restarts and an upgrade; state exact', async () => {
  const srv = await startServer();
  const client = await steady(srv.socket, 5000, 20);
  for (let i = 0; i < 10; i++) {
    const said = await restart(srv);
    assert.match(said, /took over from server \d+ .*1 data connection\(s\) kept open/);
  }
  // The upgrade: a build with another version string, started by hand with --replace.
  const other = otherInstall('9.9.9-upgrade');
  const state = join(srv.dir, 'state');
  const upgraded = spawn(
    process.execPath,
    [
      join(other, 'dist/cli/main.js'),
      'server',
      '--socket',
      srv.socket,
      '--state-dir',
      state,
      '--stats-interval',
      '0',
      '--replace',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let upOut = '';
  upgraded.stdout!.on('data', (d: Buffer) => (upOut += d.toString()));
  upgraded.stderr!.on('data', (d: Buffer) => (upOut += d.toString()));
  serverPids.add(upgraded.pid!);
  for (let t = Date.now(); !upOut.includes('took over from pid');) {
    assert.ok(upgraded.exitCode === null && Date.now() - t < 60_000, `upgrade failed:\n${upOut}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const info = await srv.client.json<{ version: string; pid: number }>('GET', '/v1/takeover/info');
  assert.equal(info.version, '9.9.9-upgrade');
  assert.equal(info.pid, upgraded.pid);
  await restart(srv); // and back to this install
  const c = await client.stop();
  const s = await stats(srv);
  // Every frame the client sent was applied once: counted, and the held set is exact.
  await waitFor(async () => (await stats(srv)).frames.total === c.frames);
  assert.deepEqual(await heldBy(srv, client.proc.pid!), expected(c.first, c.held));
  assert.equal(s.unknown_frees.buffers, 0);
  assert.equal(await client.finish(), 0, 'the C client must survive every restart');
  await stopAll(srv);
});

async function waitFor(ok: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A Python client as tt-metal's Python hosts write: sendall() of packed frames. */
const PYTHON_CLIENT = `
import socket, struct, sys, os
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
def frame(code, addr):
    f = struct.pack('<B3xiQB3xiQQ', code, 0, 4096, 0, os.getpid(), addr, 0)
    return f + bytes(144 - len(f))
for i in range(500):
    s.sendall(frame(1, 0x40000000 + i * 64))
cut = frame(1, 0x40000000 + 500 * 64)
s.sendall(cut[:40])
print('half', flush=True)
sys.stdin.readline()
s.sendall(cut[40:])
for i in range(501, 800):
    s.sendall(frame(1, 0x40000000 + i * 64))
for i in range(0, 100):
    s.sendall(frame(2, 0x40000000 + i * 64))
print('sent', flush=True)
sys.stdin.readline()
`;

test('a Python client with a frame cut in half across the handover: nothing lost', async () => {
  // The cut frame waits through the whole restart: no stall timeout may close it meanwhile.
  const srv = await startServer(['--partial-frame-timeout', '0']);
  const py = spawn('python3', ['-c', PYTHON_CLIENT, srv.socket], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  after(() => py.kill('SIGKILL'));
  const lines: string[] = [];
  createInterface({ input: py.stdout! }).on('line', (l) => lines.push(l));
  await waitFor(async () => lines.includes('half')).catch((e: Error) => {
    throw new Error(`${e.message}; server said:\n${srv.output()}\n${srv.stderr()}`);
  });
  await waitFor(async () => (await stats(srv)).frames.total === 500);
  await restart(srv);
  py.stdin!.write('go\n');
  await waitFor(async () => lines.includes('sent'));
  await waitFor(async () => (await stats(srv)).frames.total === 900);
  const want = expected(0x40000000n + 100n * 64n, 700);
  assert.deepEqual(await heldBy(srv, py.pid!), want);
  assert.equal((await stats(srv)).frames.rejected, 0);
  py.stdin!.end();
  await new Promise((r) => py.once('exit', r));
  assert.equal(py.exitCode, 0);
  await stopAll(srv);
});

test('marks, left-behind records and statistics survive a restart', async () => {
  for (const persist of [true, false]) {
    const srv = await startServer(persist ? [] : ['--no-persist']);
    const gone = await steady(srv.socket, 40, 0, 72);
    const g = await gone.stop();
    assert.equal(await gone.finish(), 0); // exits: its 40 buffers are left behind
    const marked = await cli(['mark', 'before-restart', '--socket', srv.socket]);
    assert.equal(marked.code, 0, marked.err);
    // (its exit is noticed when its connection closes, else by the 5 s sweep: a loaded machine)
    await waitFor(async () => (await stats(srv)).left_behind.records === 40, 30_000).catch(
      async (e: Error) => {
        throw new Error(`${e.message}: ${JSON.stringify((await stats(srv)).left_behind)}`);
      },
    );
    const before = await stats(srv);
    await restart(srv);
    const after = await stats(srv);
    assert.notEqual(after.pid, before.pid);
    assert.equal(after.frames.total, g.frames, 'frame counters carry over');
    assert.deepEqual(after.frames.by_type, before.frames.by_type);
    assert.equal(after.connections.total, before.connections.total);
    assert.deepEqual(after.left_behind, before.left_behind);
    assert.deepEqual(await heldBy(srv, gone.proc.pid!), expected(g.first, g.held));
    const marks = await cli(['marks', '--socket', srv.socket]);
    assert.match(marks.out, /before-restart/);
    await stopAll(srv);
  }
});

test('restart with no server running says so', async () => {
  const dir = tempDir();
  const r = spawnSync(process.execPath, [CLI, 'restart', '--socket', join(dir, 'none.sock')], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /no server is running on .*none\.sock: nothing to restart/);
});

test('a takeover asked in another handover protocol is refused, saying why', async () => {
  const srv = await startServer();
  const answer = await new Promise<string>((resolve) => {
    const s = connect(`${srv.socket}.ctl`);
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.on('close', () => resolve(got));
    s.write(
      `GET ${TAKEOVER_PATH}?protocol=99&version=x&pid=1 HTTP/1.1\r\nHost: t\r\n` +
        'Connection: Upgrade\r\nUpgrade: ttalloc-takeover\r\n\r\n',
    );
  });
  assert.match(answer, /^HTTP\/1.1 409/);
  assert.match(answer, /handover protocol 99 .* speaks 1: stop and start instead/);
  // and the server goes on serving
  assert.equal((await stats(srv)).pid, srv.proc.pid);
  await stopAll(srv);
});

test('without descriptor passing, restart stops and starts and says what clients see', async () => {
  const srv = await startServer();
  const client = await steady(srv.socket, 10, 200);
  const r = await cli(['restart', '--socket', srv.socket], { TT_ALLOC_NO_TAKEOVER: '1' });
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /takeover is impossible \(turned off by TT_ALLOC_NO_TAKEOVER=1\)/);
  assert.match(r.err, /STOP AND START: every data connection closes now/);
  assert.match(r.err, /dies of SIGPIPE on its next report/);
  const s = await stats(srv);
  serverPids.add(s.pid);
  assert.notEqual(s.pid, srv.proc.pid);
  // What the warning said: the runtime-like client died of SIGPIPE.
  assert.equal(await client.finish(), 'SIGPIPE');
  await stopAll(srv);
});

test('a frame of each size keeps its detected size across a restart', async () => {
  const srv = await startServer();
  const socks = await Promise.all(
    [72, 112, 144].map(
      (size) =>
        new Promise<{ size: number; s: ReturnType<typeof connect> }>((resolve) => {
          const s = connect(srv.socket, () => resolve({ size, s }));
        }),
    ),
  );
  const frame = (size: number, addr: number) =>
    encodeFrame(
      {
        type: MsgType.ALLOC,
        deviceId: 0,
        size: 4096,
        bufferType: 0,
        pid: 4242 + size,
        bufferId: BigInt(addr),
      },
      size as 72 | 112 | 144,
    );
  for (const { size, s } of socks)
    s.write(Buffer.concat([frame(size, 0x1000), frame(size, 0x2000)]));
  await waitFor(async () => (await stats(srv)).frames.total === 6);
  await restart(srv);
  // Sizes were decided before the handover: a lone frame now is read at once, as that size.
  for (const { size, s } of socks) s.write(frame(size, 0x3000));
  await waitFor(async () => (await stats(srv)).frames.total === 9);
  assert.equal((await stats(srv)).frames.rejected, 0);
  for (const { s } of socks) s.destroy();
  await stopAll(srv);
});
