// `ttalloc top` in a real terminal: a pseudo-terminal (helpers/terminal.ts) runs a shell that runs
// it against a real server fed by real clients; the test reads the screen, presses keys, resizes
// the window and checks the terminal is restored.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { Reporter } from '../src/client/reporter.js';
import { CLI, runCli, settle, startServer, type TestServer } from './helpers/server.js';
import { spawnTerminal, type TestTerminal } from './helpers/terminal.js';

const MiB = 1 << 20;
let server: TestServer, child: ChildProcess, mine: Reporter, theirs: Reporter, term: TestTerminal;

/** The screen as text; with `escapes`, colours and attributes as SGR sequences too. */
const pane = (escapes = false) => (escapes ? term.styledText() : term.text());
/** "<alternate screen on> <cursor visible>", each 1 or 0. */
const flags = () => `${term.alternateScreen ? 1 : 0} ${term.cursorVisible ? 1 : 0}`;
const lines = () => pane().split('\n');
const lineOf = (re: RegExp) => lines().find((l) => re.test(l)) ?? '';
const keys = (k: string) => term.write(k);

/** Polls the screen until `pred` holds; fails with the screen's content. */
const waitForPane = (pred: (screen: string) => boolean, what: string, timeoutMs?: number) =>
  term.waitFor(pred, what, timeoutMs);

function startTop(env = '') {
  keys(`clear; ${env} node ${CLI} top --socket ${server.socket} --interval 0.2; echo EXIT=$?\r`);
}

before(async () => {
  // --trust-client-pid: `theirs` reports for the `sleep` child (its PID in the messages) from this
  // process.
  server = await startServer([
    '--devices',
    '2xwormhole_b0',
    '--reap-interval',
    '0.3',
    '--sample-interval',
    '0.2',
    '--trust-client-pid',
  ]);
  child = spawn('sleep', ['60'], { stdio: 'ignore' });
  mine = new Reporter({ socketPath: server.socket });
  theirs = new Reporter({ socketPath: server.socket, pid: child.pid });
  for (let i = 0; i < 3; i++) mine.alloc(0, 0x10000000 + i * 0x8000000, 100 * MiB, 0);
  mine.alloc(1, 0x1000, 1 * MiB, 1);
  theirs.alloc(0, 0x70000000, 10 * MiB, 0);
  theirs.alloc(1, 0x200000, 40 * MiB, 1);
  theirs.cbAlloc(1, 0x7000, 2 * MiB);
  mine.flush();
  theirs.flush();
  await settle(server);
  term = spawnTerminal('bash', ['--norc', '--noprofile'], {
    cols: 120,
    rows: 40,
    env: { ...process.env, PS1: '$ ' },
  });
});

after(async () => {
  await term?.kill();
  child?.kill();
  await mine?.close();
  await theirs?.close();
  await server?.stop();
});

test('top: devices and processes, sort, filter, resize, dead processes, clean quit', async () => {
  startTop();
  await waitForPane(
    (s) => s.includes('Dev 1 Wormhole_B0') && s.includes(`${child.pid} `) && s.includes('q quit'),
    'the first frame',
  );
  assert.equal(flags(), '1 0', 'alternate screen on, cursor hidden');

  // Device rows: used / total with the capacity of a Wormhole_B0, L1 parts drawn in the bar.
  assert.match(lineOf(/^Dev 0 Wormhole_B0 DRAM/), /\[█+·+\] 310 MiB \/ 12\.0 GiB +2\.5%/);
  const dev1 = lines().findIndex((l) => l.startsWith('Dev 1 '));
  assert.match(lines()[dev1 + 1], /^ +L1 +\[█+▒+·+\] 43\.0 MiB \/ 91\.5 MiB +47\.0%/);
  // Process rows: PID, command line from /proc, the sources, per-device figures.
  const pidRow = () => lines().findIndex((l) => l.startsWith(`${process.pid} `));
  const childRow = () => lines().findIndex((l) => l.startsWith(`${child.pid} `));
  assert.match(lines()[pidRow()], /node.* socket +0 +300 MiB +0 B +0 B +0 B +0 B +3$/);
  assert.match(lines()[childRow()], /sleep 60 +socket +0 +10\.0 MiB/);
  assert.match(lines()[childRow() + 1], /^ +1 +0 B +40\.0 MiB +0 B +0 B +2\.00 MiB +1$/);

  // Sorting: DRAM (default) puts this process first; L1 puts the sleeper first.
  assert.ok(pidRow() < childRow());
  keys('l');
  await waitForPane((s) => s.includes('L1▼'), 'sort by L1');
  assert.ok(childRow() < pidRow(), 'sorted by L1');
  keys('p');
  await waitForPane((s) => s.includes('PID▲'), 'sort by PID');
  assert.equal(childRow() < pidRow(), child.pid! < process.pid);

  // Device filter.
  keys('f');
  await waitForPane((s) => s.includes('[device 0]') && !s.includes('Dev 1 '), 'device 0 only');
  assert.equal(lines().filter((l) => /^ +1 +\d/.test(l)).length, 0, 'no device-1 process rows');
  keys('a');
  await waitForPane((s) => s.includes('Dev 1 ') && !s.includes('[device'), 'all devices again');

  // Live updates.
  mine.alloc(0, 0x9000000, 1024 * MiB, 4);
  mine.flush();
  await waitForPane(
    (s) => /Dev 0 Wormhole_B0 DRAM \[█+▓+·+\] 1\.30 GiB/.test(s),
    'TRACE part after a new allocation',
  );

  // Resize: the frame follows the window width.
  // Between the resize and top's redraw the screen may hold no Dev 0 row (a shorter terminal
  // drops its top rows to keep the cursor on screen): no bar yet, so not narrower yet.
  const barWidth = () => /\[([^\]]*)\]/.exec(lineOf(/^Dev 0 /))?.[1].length ?? Infinity;
  const wide = barWidth();
  term.resize(84, 30);
  await waitForPane(() => barWidth() < wide, 'a narrower bar');
  assert.ok(lines().every((l) => [...l].length <= 84));
  assert.match(lines().at(-2) ?? lines().at(-1)!, /q quit/);

  // A dead process disappears (the server reaps it; top shows what is live).
  child.kill('SIGKILL');
  await waitForPane(
    (s) => !s.includes(`${child.pid} `) && s.includes('1 reaped'),
    'the dead process gone',
  );

  keys('q');
  await waitForPane((s) => s.includes('EXIT=0'), 'exit on q');
  assert.equal(flags(), '0 1', 'main screen back, cursor visible');
  assert.ok(!pane().includes('Dev 0 '), 'the frame was on the alternate screen');
});

test('Ctrl-C quits cleanly; colours by pressure, NO_COLOR respected', async () => {
  term.resize(120, 40);
  startTop();
  await waitForPane((s) => s.includes('Dev 1 Wormhole_B0'), 'frame');
  const colored = pane(true);
  // eslint-disable-next-line no-control-regex -- the escape byte is what it looks for
  assert.match(colored, /\x1b\[32m█/, 'green bar for low pressure');
  keys('\x03');
  await waitForPane((s) => s.includes('EXIT=0'), 'exit on Ctrl-C');
  assert.equal(flags(), '0 1');

  startTop('NO_COLOR=1');
  await waitForPane(
    (s) => s.includes('Dev 1 Wormhole_B0') && !s.includes('EXIT=0'),
    'frame without colour',
  );
  // eslint-disable-next-line no-control-regex -- the escape byte is what it looks for
  assert.doesNotMatch(pane(true), /\x1b\[(3\d|1|7)m/, 'no colour or emphasis');
  keys('q');
  await waitForPane((s) => s.includes('EXIT=0'), 'exit');
});

test('--once prints one frame, --json the same data', async () => {
  const once = await runCli(['top', '--once', '--socket', server.socket]);
  assert.equal(once.code, 0, once.stderr);
  // eslint-disable-next-line no-control-regex -- the escape byte is what it looks for
  assert.doesNotMatch(once.stdout, /\x1b/, 'no escape codes when not a terminal');
  assert.match(once.stdout, /^Dev 0 Wormhole_B0 DRAM \[.*\] 1\.29 GiB \/ 12\.0 GiB +10\.8%/m);
  assert.match(once.stdout, new RegExp(`^${process.pid} +node.* socket +0 +300 MiB`, 'm'));
  const json = await runCli(['top', '--json', '--socket', server.socket]);
  const data = JSON.parse(json.stdout) as {
    devices: { device: number; bytes: { DRAM: number; TRACE: number } }[];
    processes: { pid: number; buffers: number }[];
  };
  assert.deepEqual(
    data.devices.map((d) => [d.device, d.bytes.DRAM, d.bytes.TRACE]),
    [
      [0, 300 * MiB, 1024 * MiB],
      [1, 0, 0],
    ],
  );
  assert.deepEqual(
    data.processes.map((p) => [p.pid, p.buffers]),
    [[process.pid, 5]],
  );
  // No server: SHM and the driver are read directly, and the header says so.
  const none = await runCli(['top', '--once', '--socket', `${server.dir}/nothing.sock`]);
  assert.equal(none.code, 0, none.stderr);
  assert.match(none.stdout, /no server on \S+nothing\.sock: reading SHM and the driver directly/);
});

test('top keeps running and says so when the server goes away', async () => {
  startTop();
  await waitForPane((s) => s.includes('Dev 1 Wormhole_B0') && !s.includes('EXIT='), 'frame');
  await server.stop();
  await waitForPane(
    (s) => s.includes('server not reachable: no allocation server is running'),
    'the message',
  );
  assert.match(pane(), /^Dev 0 Wormhole_B0/m, 'the last data stays on screen');
  keys('q');
  await waitForPane((s) => s.includes('EXIT=0'), 'exit');
  assert.equal(flags(), '0 1');
});
