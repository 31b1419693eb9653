// The server as a process: socket ownership, signals, output modes, dead-PID cleanup with real
// killed processes, and the CLI's help and errors.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeFrame } from '../src/protocol/codec.js';
import { BufferType, MsgType } from '../src/protocol/constants.js';
import {
  CLI,
  rawConnect,
  runCli,
  serverAt,
  startServer,
  tempDir as newTempDir,
} from './helpers/server.js';
import {
  frames,
  linesMatching,
  stats,
  waitFrames,
  write,
  type HasControl,
} from './helpers/wire.js';

const P = process.pid;
const DIST = fileURLToPath(new URL('../dist/', import.meta.url));
const dirs: string[] = [];
function tempDir(): string {
  const d = newTempDir();
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function exited(p: ChildProcess): Promise<void> {
  return new Promise((r) => {
    if (p.exitCode !== null || p.signalCode !== null) r();
    else p.once('exit', () => r());
  });
}

/**
 * A CLI run that is killed if it does not exit (a wrongly started server must not hang the suite).
 */
function runCliBounded(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 8000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A real client process that reports allocations as itself, then waits to be killed. */
function allocatingChild(
  dir: string,
  socket: string,
  list = `
    f({ type: 1, deviceId: 0, size: 4096, bufferType: 0, bufferId: 0x70000000 }),
    f({ type: 1, deviceId: 1, size: 8192, bufferType: 1, bufferId: 0x70001000 }),
    f({ type: 1, deviceId: 1, size: 4096, bufferType: 0, bufferId: 0x70002000 }),
    f({ type: 8, deviceId: 0, size: 2048, bufferId: 0x300 }),
    f({ type: 10, deviceId: 0, size: 1024, bufferType: 0, bufferId: 0x9 }),`,
): Promise<{ child: ChildProcess; pid: number }> {
  const script = join(dir, `client-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(
    script,
    `
import { connect } from 'node:net';
const { encodeFrame } = await import(${JSON.stringify(join(DIST, 'protocol/codec.js'))});
const pid = process.pid;
const f = (o) => encodeFrame({ pid, ...o });
const s = connect(${JSON.stringify(socket)}, () => {
  s.write(Buffer.concat([${list}
  ]), () => process.stdout.write('sent\\n'));
});
setInterval(() => {}, 1000);
`,
  );
  const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('sent')) resolve({ child, pid: child.pid! });
    });
    child.once('exit', (c) => reject(new Error(`client exited early (${c})`)));
  });
}

const REAPED = (pid: number) =>
  `[ttalloc] process ${pid} is gone: released 3 buffers (16.0 KiB), 1 CB (2.00 KiB), 1 ` +
  `kernel (1.00 KiB)`;

test('a killed client: its buffers, CBs and kernels are released, one summary line', async () => {
  const srv = await startServer(['--reap-interval', '0.2']);
  try {
    const own = await rawConnect(srv.socket);
    await write(
      own,
      encodeFrame({
        type: MsgType.ALLOC,
        deviceId: 0,
        size: 512,
        bufferType: BufferType.DRAM,
        pid: P,
        bufferId: 0x1,
      }),
    );
    const { child, pid } = await allocatingChild(srv.dir, srv.socket);
    await waitFrames(srv, 6);
    assert.match(
      await srv.client.text('GET', '/v1/report'),
      new RegExp(`Buffer 0x70001000: 8\\.0 KB \\(PID ${pid}, ref_count=1\\)`),
    );
    child.kill('SIGKILL');
    await exited(child);
    await srv.waitFor(REAPED(pid));
    // the same cleanup runs again before a dump
    const report = await srv.client.text('POST', '/v1/dump');
    const [live, exitedPart] = report.split('Left behind by processes that exited');
    assert.doesNotMatch(live, new RegExp(`PID ${pid}`), 'no live buffer of the dead PID');
    // what it left is listed buffer by buffer, then summarised per process
    for (const b of ['0x70000000: 4.0 KB', '0x70001000: 8.0 KB', '0x70002000: 4.0 KB'])
      assert.match(
        exitedPart,
        new RegExp(
          `Buffer ${b.replace('.', '\\.')} \\(PID ${pid}, ` +
            `exited \\d\\d:\\d\\d:\\d\\d, ref_count=1\\)`,
        ),
      );
    assert.match(
      exitedPart,
      new RegExp(
        `- PID ${pid}[^:]*: exited [0-9T:.Z-]+, 3 buffers, 0\\.016384 MB, 1 CBs, 1 kernels`,
      ),
      'what it left is summarised',
    );
    assert.match(
      report,
      new RegExp(`Buffer 0x1: 0\\.5 KB \\(PID ${P}, ref_count=1\\)`),
      'the live owner keeps its buffer',
    );
    assert.match(report, /Total live buffers: 1\n/);
    assert.match(
      report,
      /Total remaining buffers: 4 \(1 live, 3 left behind by exited processes\)/,
    );
    assert.equal(
      linesMatching(srv.output(), new RegExp(`process ${pid} `)).length,
      1,
      'one summary line for the PID',
    );
    const st = await srv.client.json<{
      live: { buffers: number; cbs: number; kernels: number };
      reaped_processes: number;
      devices: { bytes: Record<string, number> }[];
    }>('GET', '/v1/stats');
    assert.deepEqual(
      st.live,
      { buffers: 1, cbs: 0, kernels: 0, processes: 1, tracked_pids: 1 },
      'the dead PID is gone from the per-PID bookkeeping too',
    );
    assert.equal(st.reaped_processes, 1);
    assert.deepEqual(
      st.devices.map((d) => [d.bytes.DRAM, d.bytes.L1, d.bytes.CB, d.bytes.KERNEL]),
      [
        [512, 0, 0, 0],
        [0, 0, 0, 0],
      ],
    );
    const reaped = await srv.client.json<{
      reaped: { pid: number; buffers: number; bytes: number }[];
    }>('GET', '/v1/reaped');
    assert.deepEqual(
      reaped.reaped.map((r) => [r.pid, r.buffers, r.bytes]),
      [[pid, 3, 16384]],
    );
    own.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('with periodic cleanup off, a dump still releases dead owners first', async () => {
  const srv = await startServer(['--reap-interval', '0']);
  try {
    const { child, pid } = await allocatingChild(srv.dir, srv.socket);
    await waitFrames(srv, 5);
    child.kill('SIGKILL');
    await exited(child);
    const r = await runCli(['dump', '--socket', srv.socket]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /None: no running process holds any\./);
    assert.match(r.stdout, new RegExp(`\\(PID ${pid}, exited `));
    assert.ok(srv.output().includes(REAPED(pid)));
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('a live process of another user (EPERM) is alive', async (t) => {
  if (process.getuid?.() !== 0) {
    // Not root: PID 1 belongs to another user, so kill(1, 0) answers EPERM here.
    const { isProcessAlive } = await import('../src/platform/processes.js');
    assert.throws(() => process.kill(1, 0), { code: 'EPERM' });
    assert.equal(isProcessAlive(1), true);
    return;
  }
  // Root may signal anyone, so run the server as "nobody": our (root) PID then answers EPERM to it.
  const nobody = 65534;
  const dir = tempDir();
  chmodSync(dir, 0o777);
  const srv = await serverAt(join(dir, 'alloc.sock'), ['--reap-interval', '0.2'], {
    uid: nobody,
    gid: nobody,
  });
  try {
    const health = await srv.client.json<{ pid: number }>('GET', '/v1/health');
    assert.equal(
      Number(readFileSync(`/proc/${health.pid}/status`, 'utf8').match(/^Uid:\s+(\d+)/m)![1]),
      nobody,
      t.name,
    );
    const s = await rawConnect(srv.socket);
    await write(
      s,
      frames([
        {
          type: MsgType.ALLOC,
          deviceId: 0,
          size: 4096,
          bufferType: BufferType.DRAM,
          pid: P,
          bufferId: 0x10,
        },
      ]),
    );
    // A real (root) process reports a buffer as itself, then dies: the server must tell it from the
    // live one.
    const { child, pid: deadPid } = await allocatingChild(
      dir,
      srv.socket,
      `
    f({ type: 1, deviceId: 0, size: 8192, bufferType: 0, bufferId: 0x20 }),`,
    );
    await waitFrames(srv, 2);
    child.kill('SIGKILL');
    await exited(child);
    // its connection closed on the server's side too: while open, the PID counts as held by a child
    await openConnections(srv, 1);
    const report = await srv.client.text('POST', '/v1/dump');
    assert.match(
      report,
      new RegExp(`Buffer 0x10: 4\\.0 KB \\(PID ${P}, ref_count=1\\)`),
      'root-owned live PID kept',
    );
    const live = report.split('Left behind by processes that exited')[0];
    assert.doesNotMatch(live, /Buffer 0x20/, 'the dead PID was released');
    assert.match(report, /Buffer 0x20: [^\n]*exited/, 'and what it held is left behind');
    await srv.waitFor(`process ${deadPid} is gone`);
    assert.equal(linesMatching(srv.output(), new RegExp(`process ${P} `)).length, 0);
    s.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('a second server on the same socket is refused and the first keeps working', async () => {
  const srv = await startServer();
  try {
    const r = runCliBounded(['server', '--socket', srv.socket]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /another allocation server is already running on .*alloc\.sock/);
    const alias = spawnSync(
      process.execPath,
      [join(DIST, 'cli/allocation-server.js'), '--socket', srv.socket],
      { encoding: 'utf8', timeout: 8000 },
    );
    assert.equal(alias.status, 1);
    assert.match(alias.stderr, /already running/);
    const s = await rawConnect(srv.socket);
    await write(
      s,
      encodeFrame({
        type: MsgType.ALLOC,
        deviceId: 0,
        size: 12288,
        bufferType: BufferType.DRAM,
        pid: P,
        bufferId: 0x40000000,
      }),
    );
    await waitFrames(srv, 1);
    assert.match(await srv.client.text('GET', '/v1/report'), /Total remaining buffers: 1\n/);
    s.destroy();
    // A path that is not a socket is never replaced either.
    const file = join(srv.dir, 'not-a-socket');
    writeFileSync(file, 'precious');
    const f = runCliBounded(['server', '--socket', file]);
    assert.equal(f.code, 1);
    assert.match(f.stderr, /exists and is not a socket/);
    assert.equal(readFileSync(file, 'utf8'), 'precious');
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test("a SIGKILLed server's stale sockets are replaced; only own ones removed at exit", async () => {
  const dir = tempDir();
  const sock = join(dir, 'alloc.sock');
  const a = await serverAt(sock);
  a.proc.kill('SIGKILL');
  await exited(a.proc);
  assert.ok(
    lstatSync(sock).isSocket() && lstatSync(`${sock}.ctl`).isSocket(),
    'SIGKILL leaves the files behind',
  );
  const none = await runCli(['dump', '--socket', sock]);
  assert.equal(none.code, 2, 'a stale socket is no server');
  assert.match(none.stderr, /no allocation server is running/);

  const b = await serverAt(sock);
  const s = await rawConnect(sock);
  await write(
    s,
    encodeFrame({
      type: MsgType.ALLOC,
      deviceId: 0,
      size: 64,
      bufferType: BufferType.L1,
      pid: P,
      bufferId: 0x1,
    }),
  );
  await waitFrames(b, 1);
  s.destroy();
  assert.equal(await b.stop(), 0);
  assert.equal(existsSync(sock), false, 'own data socket removed');
  assert.equal(existsSync(`${sock}.ctl`), false, 'own control socket removed');
  assert.deepEqual(readdirSync(dir), [], 'nothing left behind');

  // While running, someone moves our socket away and puts their own at the path.
  const c = await serverAt(sock);
  renameSync(sock, `${sock}.moved`);
  const theirs = createServer();
  try {
    await new Promise<void>((r) => theirs.listen(sock, () => r()));
    const theirIno = lstatSync(sock).ino;
    assert.equal(await c.stop(), 0);
    assert.ok(existsSync(sock), 'their socket is still there');
    assert.equal(lstatSync(sock).ino, theirIno);
    assert.ok(existsSync(`${sock}.moved`), 'a moved socket is not chased either');
    assert.equal(existsSync(`${sock}.ctl`), false);
  } finally {
    await c.stop();
    await new Promise<void>((r) => theirs.close(() => r()));
  }
});

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  test(`${sig}: final statistics, exit code 0`, async () => {
    const srv = await startServer();
    const s = await rawConnect(srv.socket);
    await write(
      s,
      encodeFrame({
        type: MsgType.ALLOC,
        deviceId: 2,
        size: 2048,
        bufferType: BufferType.L1,
        pid: P,
        bufferId: 0x5,
      }),
    );
    await waitFrames(srv, 1);
    srv.proc.kill(sig);
    await exited(srv.proc);
    s.destroy();
    assert.equal(srv.proc.exitCode, 0);
    assert.match(
      srv.output(),
      new RegExp(
        // the client still connected is named (issue 14), then the final statistics
        `${sig} received, shutting down\\n\\[ttalloc\\] !!! stopping with 1 data client ` +
          `connected: PID ${process.pid} .*\\n\\[ttalloc\\] final statistics\\n\\[stats\\] ` +
          `device 2: 1 buffers, .*L1 2\\.00 KiB`,
      ),
    );
    assert.equal(existsSync(srv.socket), false);
    await srv.stop();
  });
}

test('output to a file (redirection), --quiet, --log-events and periodic statistics', async () => {
  const dir = tempDir();
  // Redirected to a file: every line is there when the server has exited.
  const logPath = join(dir, 'server.log');
  const fd = openSync(logPath, 'w');
  const f = await serverAt(join(dir, 'f.sock'), [], { stdoutFd: fd });
  closeSync(fd);
  const fs1 = await rawConnect(f.socket);
  fs1.end(encodeFrame({ type: MsgType.DUMP_REMAINING }, 72));
  await waitFrames(f, 1);
  assert.equal(await f.stop(), 0);
  const log = readFileSync(logPath, 'utf8');
  assert.match(
    log,
    new RegExp(
      /listening on .*f\.sock[^]*REMAINING ALLOCATED BUFFERS[^]*No buffers remaining[^]*final /
        .source + /statistics\n\[stats\] no devices have reported yet\n$/.source,
    ),
  );

  // --quiet: reports only.
  const q = await serverAt(join(dir, 'q.sock'), ['--quiet']);
  const qs = await rawConnect(q.socket);
  await write(
    qs,
    frames([
      {
        type: MsgType.ALLOC,
        deviceId: 0,
        size: 1024,
        bufferType: BufferType.DRAM,
        pid: P,
        bufferId: 0x1,
      },
      { type: 13 },
      { type: MsgType.DUMP_REMAINING },
    ]),
  );
  await q.waitFor('Total remaining buffers: 1');
  qs.destroy();
  // closed on the server's side before the SIGTERM (else it warns, rightly, of a connected client)
  await openConnections(q, 0);
  assert.equal(await q.stop(), 0);
  assert.equal(
    linesMatching(q.output(), /^\[/).length,
    0,
    `no log lines with --quiet:\n${q.output()}`,
  );
  assert.match(q.output(), /^╔/);

  // --log-events: one line per event, like the original server; and periodic stats when asked.
  const e = await serverAt(join(dir, 'e.sock'), ['--log-events', '--stats-interval', '0.1']);
  const es = await rawConnect(e.socket);
  await write(
    es,
    frames([
      {
        type: MsgType.ALLOC,
        deviceId: 1,
        size: 4096,
        bufferType: BufferType.TRACE,
        pid: P,
        bufferId: 0xabc,
      },
      { type: MsgType.KERNEL_LOAD, deviceId: 1, size: 100, bufferType: 1, pid: P, bufferId: 0x7 },
      { type: MsgType.FREE, deviceId: 1, pid: P, bufferId: 0xabc },
    ]),
  );
  await waitFrames(e, 3);
  await e.waitFor(/\[stats\] device 1: 0 buffers/);
  es.destroy();
  assert.equal(await e.stop(), 0);
  const ev = linesMatching(e.output(), /^\[event\]/);
  assert.equal(ev.length, 3);
  assert.match(
    ev[0],
    new RegExp(`^\\[event\\] ALLOC device=1 pid=${P} id=0xabc size=4096 type=TRACE`),
  );
  assert.match(ev[1], /^\[event\] KERNEL_LOAD device=1 .*id=0x7 size=100 type=Fabric/);
  assert.match(ev[2], /^\[event\] FREE device=1 .*id=0xabc/);
});

test('a closed stdout (allocation-server | head) does not stop the server', async () => {
  const srv = await startServer();
  srv.proc.stdout!.destroy(); // the reader goes away
  const s = await rawConnect(srv.socket);
  await write(
    s,
    frames([
      {
        type: MsgType.ALLOC,
        deviceId: 0,
        size: 4096,
        bufferType: BufferType.DRAM,
        pid: P,
        bufferId: 0x1,
      },
      { type: MsgType.DUMP_REMAINING },
    ]),
  );
  await waitFrames(srv, 2);
  // prints on the server's (closed) stdout too
  const r = await runCli(['dump', '--socket', srv.socket]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Total remaining buffers: 1\n/);
  assert.match(await srv.client.text('GET', '/v1/health'), /"ok":true/);
  s.destroy();
  assert.equal(await srv.stop(), 0);
  assert.match(srv.stderr(), /stdout is closed \(EPIPE\)/);
});

test('client commands with no server say so with exit code 2', async () => {
  const dir = tempDir();
  const cmds = [['dump'], ['dump', '--json'], ['stats'], ['dump-kernels'], ['stop']];
  const runs = await Promise.all(
    cmds.map((cmd) => runCli([...cmd, '--socket', join(dir, 'none.sock')])),
  );
  runs.forEach((r, i) => {
    assert.equal(r.code, 2, `${cmds[i].join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /no allocation server is running on .*none\.sock/);
    assert.equal(r.stdout, '');
  });
  const env = await runCli(['dump'], { TT_ALLOC_SERVER_SOCKET: join(dir, 'env.sock') });
  assert.equal(env.code, 2);
  assert.match(env.stderr, /env\.sock/, 'TT_ALLOC_SERVER_SOCKET is honoured');
});

test('server and clients find each other through TT_ALLOC_SERVER_SOCKET', async () => {
  const dir = tempDir();
  const sock = join(dir, 'env.sock');
  const env = { ...process.env, TT_ALLOC_SERVER_SOCKET: sock };
  const proc = spawn(process.execPath, [CLI, 'server', '--stats-interval', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  try {
    let out = '';
    await new Promise<void>((resolve, reject) => {
      proc.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('listening on')) resolve();
      });
      proc.once('exit', () => reject(new Error(`server exited: ${out}`)));
    });
    assert.match(out, new RegExp(`listening on ${sock.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} `));
    const r = await runCli(['dump'], { TT_ALLOC_SERVER_SOCKET: sock });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /No buffers remaining/);
    const stop = await runCli(['stop'], { TT_ALLOC_SERVER_SOCKET: sock });
    assert.equal(stop.code, 0, stop.stderr);
    await exited(proc);
    assert.equal(proc.exitCode, 0);
    assert.equal(existsSync(sock), false);
  } finally {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  }
});

test("--help works on every command and on the seed's command names", async () => {
  const top = await runCli(['--help']);
  assert.equal(top.code, 0);
  const commands = top.stdout
    .split('Commands:')[1]
    .split('\n')
    .map((l) => /^ {2}([a-z][\w-]*)/.exec(l)?.[1])
    .filter((c): c is string => !!c && c !== 'help');
  for (const c of ['server', 'dump', 'dump-kernels', 'stats', 'reset', 'stop', 'demo'])
    assert.ok(commands.includes(c), c);
  const helps = await Promise.all(commands.map((c) => runCli([c, '--help'])));
  helps.forEach((r, i) => {
    assert.equal(r.code, 0, `${commands[i]} --help: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^Usage: ttalloc ${commands[i]}`), commands[i]);
  });
  for (const [file, flag] of [
    ['allocation-server', '--frame-size'],
    ['dump-remaining-buffers', '--json'],
  ]) {
    const r = spawnSync(process.execPath, [join(DIST, `cli/${file}.js`), '--help'], {
      encoding: 'utf8',
      timeout: 8000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^Usage: ${file}`));
    assert.ok(r.stdout.includes(flag), `${file} --help lists ${flag}`);
  }
});

test('bad flag values: a clear error and a non-zero exit, nothing started', () => {
  const dir = tempDir();
  const sock = join(dir, 'x.sock');
  const cases: [string[], RegExp][] = [
    [['--frame-size', '100'], /--frame-size.*'100' is invalid.*auto, 72, 112, 144/],
    [['--reap-interval', '-1'], /--reap-interval.*'-1' is invalid/],
    [['--stats-interval', 'soon'], /--stats-interval.*'soon' is invalid/],
    [['--devices', '3xfoo'], /bad device spec '3xfoo'/],
    [['--devices', '0xwormhole_b0'], /bad device count/],
    [['--device-config', join(dir, 'missing.json')], /cannot read device config/],
    [['--socket', '/nonexistent-dir/x.sock'], /cannot listen on \/nonexistent-dir\/x\.sock/],
    [['--socket', join(dir, 'a'.repeat(110))], /is \d+ bytes; Unix sockets allow 107/],
  ];
  for (const [args, re] of cases) {
    const r = runCliBounded(['server', '--socket', sock, ...args]);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.notEqual(r.code, null, `${args.join(' ')}: the server started anyway`);
    assert.match(r.stderr, re);
    assert.equal(existsSync(sock), false);
  }
});

test('a client that died unwaited-for (a zombie) is reaped like a dead one', async () => {
  const srv = await startServer(['--reap-interval', '0.2']);
  const script = join(srv.dir, 'zombie-client.mjs');
  writeFileSync(
    script,
    `
import { connect } from 'node:net';
const { encodeFrame } = await import(${JSON.stringify(join(DIST, 'protocol/codec.js'))});
const s = connect(${JSON.stringify(srv.socket)}, () => {
  const f = { type: 1, deviceId: 0, size: 4096, bufferType: 0, pid: process.pid };
  s.end(encodeFrame({ ...f, bufferId: 0x5a000 }), () => process.stdout.write(process.pid + '\\n'));
});
`,
  );
  // sh starts the client in the background and then becomes \`sleep\`, which never waits for it.
  const parent = spawn('sh', ['-c', `"${process.execPath}" "${script}" & exec sleep 60`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const pid = await new Promise<number>((resolve, reject) => {
      parent.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
      parent.once('exit', () => reject(new Error('the client did not start')));
    });
    const state = () => {
      try {
        const s = readFileSync(`/proc/${pid}/stat`, 'latin1');
        return s[s.lastIndexOf(')') + 2];
      } catch {
        return 'gone';
      }
    };
    for (let i = 0; i < 500 && state() !== 'Z'; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(state(), 'Z', 'the client is a zombie: exited, not waited for');
    assert.doesNotThrow(() => process.kill(pid, 0), 'a zombie still answers kill(pid, 0)');
    const { isProcessAlive } = await import('../src/platform/processes.js');
    assert.equal(
      isProcessAlive(pid),
      false,
      'the JS check (used without the native addon) sees it dead',
    );
    await srv.waitFor(`process ${pid} is gone: released 1 buffer (4.00 KiB)`);
    assert.equal(state(), 'Z', 'still a zombie when the server reaped it');
  } finally {
    parent.kill('SIGKILL');
    await srv.stop();
  }
});

/** Waits until the server has exactly `n` data connections open (it saw the others close). */
async function openConnections(srv: HasControl, n: number): Promise<void> {
  for (let i = 0; (await stats(srv)).connections.open !== n; i++) {
    if (i > 500) throw new Error(`still not ${n} open data connections`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
