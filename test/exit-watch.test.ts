// Exits noticed at once: a real server with the periodic sweep off (--reap-interval 0), real client
// processes (the tests' C client and Node children) that allocate and then exit, are killed, or
// close their connection and live on; and the process registry on a /proc-like tree of real files
// (PID reuse, zombies, parents).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, tempDir, type TestServer } from './helpers/server.js';
import { waitFrames } from './helpers/wire.js';
import { ProcessRegistry } from '../src/server/process-registry.js';
import { ExitWatch, type ExitWatchDeps } from '../src/server/exit-watch.js';
import type { DataConnection } from '../src/server/data-connection.js';
import { readProcessInfo, startTicksOf, startTimeMs } from '../src/platform/processes.js';
import type { ProcessesResponse } from '../src/report/types.js';

const C_SOURCE = fileURLToPath(new URL('./c/runtime_client.c', import.meta.url));
const CODEC = new URL('../dist/protocol/codec.js', import.meta.url).href;
const hasCc = spawnSync('cc', ['--version']).status === 0;
const NO_CC = hasCc ? false : 'no C compiler (`cc`) on this machine';

// ------------------------------------------------------------------ a /proc-like tree

/** A stat line as the kernel writes it (fields 1-22 and a few more). */
function statLine(pid: number, o: { comm: string; state: string; ppid: number; start: number }) {
  const { comm, state, ppid, start } = o;
  const mid = Array.from({ length: 17 }, (_, i) => String(i + 10)).join(' '); // fields 5-21
  return `${pid} (${comm}) ${state} ${ppid} ${mid} ${start} 4096 100 18446744073709551615\n`;
}

class FakeProc {
  readonly root = tempDir('ttalloc-proc-');
  constructor() {
    writeFileSync(join(this.root, 'stat'), 'cpu  1 2 3\nbtime 1700000000\nprocesses 9\n');
  }
  put(
    pid: number,
    o: { comm: string; ppid: number; start: number; state?: string; argv?: string[] },
  ) {
    mkdirSync(join(this.root, String(pid)), { recursive: true });
    const line = statLine(pid, { ...o, state: o.state ?? 'S' });
    writeFileSync(join(this.root, String(pid), 'stat'), line);
    const argv = o.argv ?? [];
    writeFileSync(join(this.root, String(pid), 'cmdline'), argv.map((a) => a + '\0').join(''));
  }
  remove(pid: number) {
    rmSync(join(this.root, String(pid)), { recursive: true, force: true });
  }
  done() {
    rmSync(this.root, { recursive: true, force: true });
  }
}

test('platform: identity from /proc/PID/stat after the last ")", cmdline, start time', () => {
  const p = new FakeProc();
  try {
    p.put(500, { comm: 'we) ird (x', ppid: 42, start: 12345, argv: ['python3', '-m', 'pytest'] });
    const id = readProcessInfo(500, p.root);
    assert.deepEqual(id, {
      pid: 500,
      ppid: 42,
      startTicks: 12345,
      cmdline: 'python3 -m pytest',
      comm: 'we) ird (x',
      startMs: 1700000000_000 + 123450,
    });
    assert.equal(startTicksOf(500, p.root), 12345);
    assert.equal(readProcessInfo(501, p.root), null, 'no such process');
    assert.equal(startTicksOf(501, p.root), -1);
    p.put(502, { comm: 'z', ppid: 500, start: 7, state: 'Z' });
    assert.equal(startTicksOf(502, p.root), -1, 'a zombie has exited');
    assert.equal(readProcessInfo(502, p.root)?.ppid, 500, 'its parent is still known');
    // A long argv is cut, never read whole.
    p.put(503, { comm: 'long', ppid: 1, start: 8, argv: ['x'.repeat(10000)] });
    assert.equal(readProcessInfo(503, p.root)?.cmdline.length, 4096);
    assert.equal(startTimeMs(100, p.root), 1700000001_000);
  } finally {
    p.done();
  }
  // The real thing: this process, with the parent the kernel says.
  const me = readProcessInfo(process.pid);
  assert.ok(me);
  assert.equal(me.ppid, process.ppid);
  assert.equal(startTicksOf(process.pid), me.startTicks);
  assert.ok(Math.abs(me.startMs - (Date.now() - process.uptime() * 1000)) < 5000);
});

test('registry: a reused PID is a new process; the old one is gone', () => {
  const p = new FakeProc();
  try {
    const r = new ProcessRegistry({ procRoot: p.root });
    const reused: number[] = [];
    r.onReused = (pid) => reused.push(pid);
    p.put(1000, { comm: 'bash', ppid: 1, start: 10 });
    p.put(1234, { comm: 'python3', ppid: 1000, start: 100, argv: ['python3', 'a.py'] });
    r.see(1234);
    assert.equal(r.info(1234)?.cmdline, 'python3 a.py');
    assert.equal(r.info(1000)?.comm, 'bash', 'its ancestors are recorded at the same time');
    assert.equal(r.isGone(1234), false);
    // The process exits and another one gets the PID: the recorded process is gone.
    p.put(1234, { comm: 'other', ppid: 1000, start: 900 });
    assert.equal(r.isGone(1234), true);
    assert.deepEqual([...r.goneAmong([1234, 1000])], [1234]);
    r.see(1234);
    assert.deepEqual(reused, [1234], 'told before the new process is recorded');
    assert.equal(r.info(1234)?.comm, 'other');
    assert.equal(r.isGone(1234), false);
    r.see(1234);
    assert.deepEqual(reused, [1234], 'the same process seen again is not a reuse');
    // A zombie, then no process at all.
    p.put(1234, { comm: 'other', ppid: 1000, start: 900, state: 'Z' });
    assert.equal(r.isGone(1234), true);
    p.remove(1234);
    assert.equal(r.isGone(1234), true);
    assert.equal(r.isGone(0), false, 'PID 0 names nobody: never gone');
  } finally {
    p.done();
  }
});

test('registry: descendants through recorded parents; memory bounded by prune()', () => {
  const p = new FakeProc();
  try {
    const r = new ProcessRegistry({ procRoot: p.root, keepGoneMs: 1000 });
    p.put(10, { comm: 'init-ish', ppid: 1, start: 1 });
    p.put(20, { comm: 'ttalloc', ppid: 10, start: 2 });
    p.put(30, { comm: 'sh', ppid: 20, start: 3 }); // never a client itself
    p.put(40, { comm: 'pytest', ppid: 30, start: 4 });
    p.put(41, { comm: 'worker', ppid: 40, start: 5 });
    p.put(42, { comm: 'worker', ppid: 40, start: 6 });
    p.put(50, { comm: 'elsewhere', ppid: 10, start: 7 });
    for (const pid of [41, 42, 50]) r.see(pid);
    assert.deepEqual([...r.descendantsOf(30)].sort(), [30, 40, 41, 42]);
    assert.deepEqual([...r.descendantsOf(41)], [41]);
    // A parent kept elsewhere (e.g. in a record of what an exited process left behind).
    assert.deepEqual([...r.descendantsOf(30, new Map([[77, 42]]))].sort(), [30, 40, 41, 42, 77]);
    // Worker 41 exits and is released; the tree stays resolvable for keepGoneMs, then it goes.
    p.remove(41);
    const inUse = new Set([42, 50]);
    r.released([41], 5000);
    r.prune(inUse, 5000, true);
    assert.ok(r.info(41), 'kept for a while after it is gone');
    r.prune(inUse, 6000, true);
    assert.equal(r.info(41), null);
    assert.ok(r.info(40), 'a parent of a known process stays');
    // The whole tree exits: entries go, parents after their children.
    for (const pid of [42, 40, 30]) p.remove(pid);
    inUse.delete(42);
    for (let t = 7000; t < 14000; t += 1000) r.prune(inUse, t, true);
    assert.deepEqual(
      [41, 42, 40, 30].map((pid) => r.info(pid)),
      [null, null, null, null],
    );
    assert.ok(r.info(50) && r.info(20), 'live ones stay');
    // At most maxGone gone entries, the oldest gone first.
    const small = new ProcessRegistry({ procRoot: p.root, maxGone: 2 });
    for (let pid = 100; pid < 105; pid++) {
      p.put(pid, { comm: 'c', ppid: 1, start: pid });
      small.see(pid);
    }
    for (let pid = 100; pid < 105; pid++) {
      p.remove(pid);
      small.released([pid], pid);
    }
    small.prune(new Set(), 200, true);
    assert.equal(small.size, 2);
    assert.ok(small.info(103) && small.info(104));
  } finally {
    p.done();
  }
});

// ------------------------------------------------------------------ the watch alone

test('exit watch: checks an owner until gone; not one connected or owning none', async () => {
  const live = new Map([
    [10, { live: 2 }],
    [20, { live: 1 }],
    [30, { live: 0 }],
    [40, { live: 5 }],
  ]);
  let checks10 = 0;
  const asked: number[] = [];
  const open = new Set([{ ownerPid: 0, claimedPid: 40 } as DataConnection]);
  const reaped: number[][] = [];
  const w = new ExitWatch({
    // PID 10 is found gone at its third check; 20 never is; nothing else is asked.
    registry: {
      isGone: (pid) => {
        asked.push(pid);
        return pid === 10 && ++checks10 === 3;
      },
    },
    tracker: { pids: live } as unknown as ExitWatchDeps['tracker'],
    open,
    reap: (pids) => void reaped.push(pids),
  });
  for (const pid of [10, 20, 30, 40, 0]) w.closed({ ownerPid: pid, claimedPid: 0 });
  assert.equal(w.watching, 3, '30 owns nothing and 0 is nobody: not watched');
  const deadline = Date.now() + 10000;
  while (w.watching > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(reaped, [[10]]);
  assert.equal(w.reaped, 1);
  assert.ok(!asked.includes(40), '40 has another connection open: never asked');
  assert.equal(asked.filter((p) => p === 20).length, 6, 'every check, then given up');
  // After stop() a close starts nothing.
  w.stop();
  w.closed({ ownerPid: 20, claimedPid: 0 });
  assert.equal(w.watching, 0);
});

// ------------------------------------------------------------------ real server, real processes

async function processes(srv: TestServer): Promise<ProcessesResponse['processes']> {
  return (await srv.client.json<ProcessesResponse>('GET', '/v1/processes')).processes;
}

/** Polls the control API until `pid` owns nothing (generous overall timeout, no timing assert). */
async function released(srv: TestServer, pid: number, timeoutMs = 20000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await processes(srv)).some((p) => p.pid === pid)) {
    if (Date.now() > deadline) throw new Error(`PID ${pid} still owns buffers:\n${srv.output()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function owns(srv: TestServer, pid: number): Promise<number> {
  return (await processes(srv)).find((p) => p.pid === pid)?.buffers ?? 0;
}

function exited(c: ChildProcess): Promise<void> {
  return new Promise((r) =>
    c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r()),
  );
}

/** Resolves with the child's stdout once it contains `text`. */
function output(c: ChildProcess, text: string): Promise<string> {
  let out = '';
  return new Promise((resolve, reject) => {
    c.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(text)) resolve(out);
    });
    c.once('exit', (code) => reject(new Error(`child exited (${code}) before "${text}": ${out}`)));
  });
}

/**
 * A Node client: connects, sends `n` ALLOCs claiming `claim` (default its own PID), then either
 * exits without closing anything ('exit', on a line on stdin) or closes its connection and lives
 * on until stdin ends ('close').
 */
function nodeClient(socket: string, mode: 'exit' | 'close', n: number, claim = 0): ChildProcess {
  const script = `
    import { connect } from 'node:net';
    import { encodeFrame } from ${JSON.stringify(CODEC)};
    const [socket, mode, n, claim] = process.argv.slice(1);
    const pid = Number(claim) || process.pid;
    const s = connect(socket, () => {
      const f = [];
      for (let i = 0; i < Number(n); i++)
        f.push(encodeFrame({ type: 1, deviceId: 0, size: 4096, bufferType: 0, pid,
          bufferId: (pid % 4096) * 0x1000000 + i * 4096 }));
      s.write(Buffer.concat(f), () => {
        if (mode === 'close') s.end();
        process.stdout.write('sent\\n');
      });
    });
    s.on('close', () => process.stdout.write('closed\\n'));
    process.stdin.on('data', () => process.exit(0));
    process.stdin.on('end', () => process.exit(0));
  `;
  return spawn(
    process.execPath,
    ['--input-type=module', '-e', script, socket, mode, String(n), String(claim)],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
}

test('a client that exits or is killed: its buffers are released without the sweep', async (t) => {
  const srv = await startServer(['--reap-interval', '0']);
  const kids: ChildProcess[] = [];
  try {
    let frames = 0;
    await t.test('Node child exits without closing its connection', async () => {
      const c = nodeClient(srv.socket, 'exit', 5);
      kids.push(c);
      await output(c, 'sent');
      await waitFrames(srv, (frames += 5));
      assert.equal(await owns(srv, c.pid!), 5);
      c.stdin!.write('x\n');
      await exited(c);
      await released(srv, c.pid!);
      await srv.waitFor(`process ${c.pid} is gone: released 5 buffers (20.0 KiB)`);
    });
    await t.test('Node child killed with SIGKILL', async () => {
      const c = nodeClient(srv.socket, 'exit', 3);
      kids.push(c);
      await output(c, 'sent');
      await waitFrames(srv, (frames += 3));
      assert.equal(await owns(srv, c.pid!), 3);
      c.kill('SIGKILL');
      await released(srv, c.pid!);
    });
    await t.test('C client: exits normally, and killed with SIGKILL', { skip: NO_CC }, async () => {
      const dir = tempDir();
      try {
        const exe = join(dir, 'runtime_client');
        const cc = spawnSync('cc', ['-std=c11', '-O1', '-o', exe, C_SOURCE], { encoding: 'utf8' });
        assert.equal(cc.status, 0, cc.stderr);
        for (const how of ['exit', 'SIGKILL'] as const) {
          const c = spawn(exe, [srv.socket], { stdio: ['pipe', 'pipe', 'inherit'] });
          kids.push(c);
          await output(c, 'ready pid=');
          await waitFrames(srv, (frames += 17));
          assert.equal(await owns(srv, c.pid!), 6, how);
          if (how === 'exit') c.stdin!.end();
          else c.kill('SIGKILL');
          await exited(c);
          await released(srv, c.pid!);
          await srv.waitFor(new RegExp(`process ${c.pid} is gone: released 6 buffers .* 1 CB`));
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
    await t.test('closed its connection but lives on: keeps its buffers', async () => {
      const c = nodeClient(srv.socket, 'close', 4);
      kids.push(c);
      await output(c, 'closed');
      await waitFrames(srv, (frames += 4));
      // Past every check the exit watch makes after a close (CHECKS_MS, up to 1 s).
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(await owns(srv, c.pid!), 4, 'alive: nothing released');
      c.stdin!.end();
      await exited(c);
      // With the sweep off and no connection closing, the next sweep (here on request) finds it.
      assert.equal(await owns(srv, c.pid!), 4);
      await srv.client.json('POST', '/v1/reap');
      assert.equal(await owns(srv, c.pid!), 0);
    });
  } finally {
    for (const c of kids) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await srv.stop();
  }
});

test('--trust-client-pid: a claimed PID of no process is gone at its close', async () => {
  const srv = await startServer(['--reap-interval', '0', '--trust-client-pid']);
  const kids: ChildProcess[] = [];
  try {
    // A PID that surely names no process: a child that has exited and been waited for.
    const dead = spawn('true');
    await exited(dead);
    const a = nodeClient(srv.socket, 'close', 2, dead.pid!);
    // A claimed PID that lives (this test process): kept after the close.
    const b = nodeClient(srv.socket, 'close', 3, process.pid);
    kids.push(a, b);
    await Promise.all([output(a, 'closed'), output(b, 'closed')]);
    await waitFrames(srv, 5);
    await released(srv, dead.pid!);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await owns(srv, process.pid), 3);
  } finally {
    for (const c of kids) if (c.exitCode === null) c.kill('SIGKILL');
    await srv.stop();
  }
});
