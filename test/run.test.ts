// `ttalloc run -- COMMAND`: real commands (the tests' C client, shell scripts around it) under a
// real server, one already running or one the run starts on a socket path of the test's choosing
// (never the real default path).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI, startServer, tempDir } from './helpers/server.js';
import { ControlClient, NoServerError } from '../src/client/control-client.js';
import type { MarksResponse } from '../src/report/types.js';

const SOURCE = fileURLToPath(new URL('./c/runtime_client.c', import.meta.url));
const hasCc = spawnSync('cc', ['--version']).status === 0;
const SKIP = hasCc ? false : 'no C compiler (`cc`) on this machine (apt-get install gcc)';

// The C client in "report" mode: 6 buffers (3188736 bytes on 2 devices) remain once it has sent
// its frames; it stays alive until its stdin closes, then exits without freeing them.
const LEAK_BUFFERS = 6;
const LEAK_BYTES = 12288 + 24576 + 1048576 + 2048 + 12288 + 2097152 + 4096 - 12288;

const dir = tempDir('ttalloc-run-');
let clientExe = '';
function client(): string {
  if (clientExe) return clientExe;
  const out = join(dir, 'runtime_client');
  const r = spawnSync('cc', ['-std=c11', '-O1', '-o', out, SOURCE], { encoding: 'utf8' });
  assert.equal(r.status, 0, `cc failed:\n${r.stderr}`);
  clientExe = out;
  return out;
}

/** Process groups of the runs: whatever a failed test left running is killed at the end. */
const groups = new Set<number>();
after(() => {
  for (const g of groups) killGroup(g);
});
function killGroup(g: number): void {
  try {
    process.kill(-g, 'SIGKILL');
  } catch {
    /* gone */
  }
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `ttalloc run ARGS` in its own process group (so that the workers a command leaves running are
 * killed with it afterwards); `onSpawn` gets the process to signal.
 */
function ttallocRun(
  args: string[],
  o: { onSpawn?: (pid: number) => void } = {},
): Promise<RunResult> {
  const p = spawn(process.execPath, [CLI, 'run', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  groups.add(p.pid!);
  o.onSpawn?.(p.pid!);
  let stdout = '',
    stderr = '';
  p.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  p.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  // Workers left running keep the pipes open: they are killed once the run has exited, and the
  // output is complete when the pipes close.
  p.once('exit', () => {
    killGroup(p.pid!);
    groups.delete(p.pid!);
  });
  return new Promise((resolve) => {
    p.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A fresh socket path in the test's directory, where no server runs. */
let nth = 0;
function freshSocket(): string {
  return join(dir, `run-${nth++}.sock`);
}

async function answers(socket: string): Promise<boolean> {
  try {
    await new ControlClient(socket).text('GET', '/v1/health');
    return true;
  } catch (e) {
    if (e instanceof NoServerError) return false;
    throw e;
  }
}

function sh(script: string): string[] {
  return ['--', 'sh', '-c', script];
}

/**
 * A script that starts the C client in the background, its stdin a pipe from a sleep (so that it
 * stays alive, holding its buffers; killed with the run's group), and exits once it is ready.
 */
function holderScript(): { script: string; ready: string } {
  const ready = join(dir, `holder-${nth++}.out`);
  const script =
    `sleep 600 | ${client()} > ${ready} & ` +
    // (bounded: 20 s, then exit 99, if the client never gets ready)
    `i=0; while ! grep -q ready ${ready} 2>/dev/null; do ` +
    `i=$((i+1)); [ $i -gt 2000 ] && exit 99; sleep 0.01; done`;
  return { script, ready };
}

/** Polls `cond` every 10 ms; fails after 20 s (a run that died early must not hang the suite). */
async function waitUntil(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const readyPids = (out: string) => [...out.matchAll(/^ready pid=(\d+)$/gm)].map((m) => +m[1]);

test('run without a command: a usage error, exit 2', async () => {
  const r = await ttallocRun(['--socket', freshSocket()]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /ttalloc run: no command given \(usage: ttalloc run \[options\] -- /);
});

test('a clean command with no server running: one started for the run, exit 0', async () => {
  const socket = freshSocket();
  const r = await ttallocRun(['--socket', socket, '--', 'true']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`^ttalloc: started a server for this run on ${socket} `, 'm'));
  assert.match(r.stdout, /^ttalloc run: OK: 0 buffers, 0 bytes remain from pid \d+ /m);
  assert.equal(await answers(socket), false, 'the server started for the run is stopped');
  assert.equal(existsSync(socket), false);
});

test('the command sees TT_ALLOC_TRACKING_ENABLED=1 and the socket', async () => {
  const socket = freshSocket();
  const script = 'echo "tracking=$TT_ALLOC_TRACKING_ENABLED socket=$TT_ALLOC_SERVER_SOCKET"';
  const r = await ttallocRun(['--socket', socket, ...sh(script)]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^tracking=1 socket=${socket}$`, 'm'));
});

test('a failing command: its own status (exit code, or 128+signal)', async () => {
  const socket = freshSocket();
  const failed = await ttallocRun(['--socket', socket, ...sh('exit 3')]);
  assert.equal(failed.code, 3, failed.stderr);
  const killed = await ttallocRun(['--socket', socket, ...sh('kill -TERM $$')]);
  assert.equal(killed.code, 128 + 15, killed.stderr);
  assert.equal(await answers(socket), false);
});

test('a command that cannot be spawned: exit 127, the server stopped', async () => {
  const socket = freshSocket();
  const r = await ttallocRun(['--socket', socket, '--', join(dir, 'no-such-command')]);
  assert.equal(r.code, 127);
  assert.match(r.stderr, /ttalloc run: cannot run '.*no-such-command': command not found/);
  assert.equal(await answers(socket), false);
  assert.equal(existsSync(socket), false);
});

test('a bad --ignore file fails before the command runs', async () => {
  const socket = freshSocket();
  const flag = join(dir, 'ran');
  const r = await ttallocRun([
    '--socket',
    socket,
    '--ignore',
    join(dir, 'missing.rules'),
    ...sh(`touch ${flag}`),
  ]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot read rules file .*missing\.rules: ENOENT/);
  assert.equal(existsSync(flag), false, 'the command never ran');
  assert.equal(await answers(socket), false);
});

test('with a server already running: it is used and keeps running', async () => {
  const srv = await startServer(['--reap-interval', '0']);
  try {
    const r = await ttallocRun(['--socket', srv.socket, '--', 'true']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`^ttalloc: using the server on ${srv.socket}`, 'm'));
    assert.equal(await answers(srv.socket), true);
  } finally {
    await srv.stop();
  }
});

// "Still holds": a worker the command started is still alive, holding its buffers, when the
// command exits.
test(
  'a command whose worker still holds buffers: exit 23, the report names them',
  { skip: SKIP },
  async () => {
    const socket = freshSocket();
    const { script, ready } = holderScript();
    const r = await ttallocRun(['--socket', socket, ...sh(script)]);
    assert.equal(r.code, 23, r.stderr);
    const pid = readyPids(readFileSync(ready, 'utf8'))[0];
    assert.ok(r.stdout.includes('REMAINING ALLOCATED BUFFERS'), r.stdout);
    assert.match(r.stdout, new RegExp(`Buffer 0x40003000: 24\\.0 KB \\(PID ${pid}[,)]`));
    assert.match(r.stdout, new RegExp(`Buffer 0x20000: 2048\\.0 KB \\(PID ${pid}[,)]`));
    assert.match(
      r.stdout,
      new RegExp(
        `^ttalloc run: LEAK: ${LEAK_BUFFERS} buffers, ${LEAK_BYTES} bytes remain from pid`,
        'm',
      ),
    );
    assert.match(
      r.stdout,
      new RegExp(
        `^SUMMARY: ttalloc: ${LEAK_BYTES} byte\\(s\\) leaked in ${LEAK_BUFFERS} buffer\\(s\\) ` +
          'on 2 device\\(s\\)$',
        'm',
      ),
    );
    assert.equal(await answers(socket), false);
  },
);

test('--exitcode changes 23; --max-bytes lets a budget pass; --json', { skip: SKIP }, async () => {
  // A server per run: on a shared one, a relaunch at the same addresses before the dead holder's
  // buffers are released would be counted on the dead one (issue 12, "one owner per buffer").
  const run = (flags: string[]) =>
    ttallocRun(['--socket', freshSocket(), ...flags, ...sh(holderScript().script)]);
  assert.equal((await run(['--exitcode', '7'])).code, 7);
  assert.equal((await run(['--exitcode', '0'])).code, 0);
  const within = await run(['--max-bytes', String(LEAK_BYTES)]);
  assert.equal(within.code, 0, within.stdout);
  assert.match(within.stdout, /^ttalloc run: OK: 6 buffers, /m);
  const j = await run(['--json']);
  assert.equal(j.code, 23, j.stdout + j.stderr);
  const out = JSON.parse(j.stdout) as {
    status: number;
    command_status: number;
    server_started: boolean;
    check: { ok: boolean; leaked_buffers: number; leaked_bytes: number };
    report: { total_buffers: number; total_bytes: number };
  };
  assert.equal(out.status, 23);
  assert.equal(out.command_status, 0);
  assert.equal(out.server_started, true);
  assert.deepEqual(
    [out.check.ok, out.check.leaked_buffers, out.check.leaked_bytes],
    [false, LEAK_BUFFERS, LEAK_BYTES],
  );
  assert.equal(out.report.total_buffers, LEAK_BUFFERS);
});

test('SIGTERM to run is forwarded to the command; the server is stopped', async () => {
  const socket = freshSocket();
  const started = join(dir, 'started');
  let runPid = 0;
  const p = ttallocRun(['--socket', socket, ...sh(`touch ${started}; exec sleep 600`)], {
    onSpawn: (pid) => (runPid = pid),
  });
  await waitUntil(() => existsSync(started), 'the command to start');
  process.kill(runPid, 'SIGTERM');
  const r = await p;
  assert.equal(r.code, 128 + 15, r.stderr);
  assert.equal(await answers(socket), false);
});

test("a terminal's Ctrl-C (SIGINT to the run's process group): report, then 130", async () => {
  const socket = freshSocket();
  const started = join(dir, 'started-int');
  let runPid = 0;
  const p = ttallocRun(['--socket', socket, ...sh(`touch ${started}; exec sleep 600`)], {
    onSpawn: (pid) => (runPid = pid),
  });
  await waitUntil(() => existsSync(started), 'the command to start');
  process.kill(-runPid, 'SIGINT'); // the command and `run` both get it; the server does not
  const r = await p;
  assert.equal(r.code, 128 + 2, r.stderr);
  assert.match(r.stdout, /^ttalloc run: OK: 0 buffers, /m);
  assert.equal(await answers(socket), false);
});

// ---------------------------------------------------------------- leftovers of exited processes
// These need the server's `tree=<pid>` query and left-behind records of exited processes (the
// lead's side of issue 12): until then the server releases what an exited process held, and the
// run reports nothing left.

test(
  'a leaking command (exits holding buffers), no server running: exit 23 with the report',
  { skip: SKIP },
  async () => {
    const socket = freshSocket();
    const r = await ttallocRun(['--socket', socket, '--', client()]);
    const pid = readyPids(r.stdout)[0];
    assert.ok(pid, r.stdout + r.stderr);
    assert.equal(r.code, 23, r.stdout + r.stderr);
    assert.match(r.stderr, /started a server for this run/);
    assert.ok(r.stdout.includes('REMAINING ALLOCATED BUFFERS'), r.stdout);
    assert.match(r.stdout, new RegExp(`Buffer 0x40003000: 24\\.0 KB \\(PID ${pid}, `));
    assert.match(
      r.stdout,
      new RegExp(`^SUMMARY: ttalloc: ${LEAK_BYTES} byte\\(s\\) leaked in 6 buffer\\(s\\)`, 'm'),
    );
    assert.equal(await answers(socket), false);
  },
);

test(
  'a leaking command with a server already running: exit 23, the mark removed',
  { skip: SKIP },
  async () => {
    const srv = await startServer(['--reap-interval', '0']);
    try {
      const r = await ttallocRun(['--socket', srv.socket, '--', client()]);
      assert.equal(r.code, 23, r.stdout + r.stderr);
      assert.match(r.stderr, /using the server on/);
      assert.match(r.stdout, /Buffer 0x20000: 2048\.0 KB \(PID \d+, /);
      const marks = await srv.client.json<MarksResponse>('GET', '/v1/marks');
      assert.deepEqual(
        marks.marks.filter((m) => m.name.startsWith('run-')),
        [],
        'the run deletes its mark (DELETE /v1/marks/NAME)',
      );
    } finally {
      await srv.stop();
    }
  },
);

test(
  'a command whose child forks two workers that leak: both counted',
  { skip: SKIP },
  async () => {
    const socket = freshSocket();
    const c = client();
    const script = join(dir, 'workers.sh');
    writeFileSync(script, `#!/bin/sh\n${c} < /dev/null &\n${c} < /dev/null &\nwait\n`, {
      mode: 0o755,
    });
    // The command is a shell running the script: the workers are grandchildren of the command.
    const r = await ttallocRun(['--socket', socket, ...sh(`${script}; true`)]);
    const pids = readyPids(r.stdout);
    assert.equal(pids.length, 2, r.stdout);
    assert.equal(r.code, 23, r.stdout + r.stderr);
    for (const pid of pids) assert.match(r.stdout, new RegExp(`\\(PID ${pid}, `));
    assert.match(
      r.stdout,
      new RegExp(
        `^SUMMARY: ttalloc: ${2 * LEAK_BYTES} byte\\(s\\) leaked in 12 buffer\\(s\\) ` +
          'on 2 device\\(s\\)$',
        'm',
      ),
    );
  },
);

test("a process outside the command's tree is not counted against it", { skip: SKIP }, async () => {
  const srv = await startServer(['--reap-interval', '0']);
  const go = join(dir, 'go');
  const ready = join(dir, 'outsider.out');
  let outsider = 0;
  try {
    const p = ttallocRun([
      '--socket',
      srv.socket,
      ...sh(`while [ ! -e ${go} ]; do sleep 0.01; done`),
    ]);
    // The outsider allocates after the run's mark, while the command runs.
    await waitUntil(async () => {
      const marks = await srv.client.json<MarksResponse>('GET', '/v1/marks');
      return marks.marks.some((m) => m.name.startsWith('run-'));
    }, "the run's mark");
    const holder = spawn('sh', ['-c', `sleep 600 | ${client()} ${srv.socket} > ${ready}`], {
      stdio: 'ignore',
      detached: true,
    });
    outsider = holder.pid!;
    groups.add(outsider);
    await waitUntil(
      () => existsSync(ready) && /ready/.test(readFileSync(ready, 'utf8')),
      'the outsider to be ready',
    );
    writeFileSync(go, '');
    const r = await p;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^ttalloc run: OK: 0 buffers, 0 bytes /m);
  } finally {
    if (outsider) killGroup(outsider);
    await srv.stop();
  }
});
