// `ttalloc top` in a real terminal: a pseudo-terminal (helpers/terminal.ts) runs a shell that runs
// it against a real server fed by real clients; the test reads the screen, presses keys, resizes
// the window and checks the terminal is restored.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Reporter } from '../src/client/reporter.js';
import { CLI, runCli, settle, startServer, type TestServer } from './helpers/server.js';
import { spawnTerminal, type TestTerminal } from './helpers/terminal.js';
import { liveProcess } from './helpers/live-process.js';
import { ControlClient } from '../src/client/control-client.js';
import { fetchTopData } from '../src/ui/top/model.js';
import { initialView, lineText, renderFrame } from '../src/ui/top/render.js';
import { lineWidth } from '../src/ui/top/line.js';

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
  assert.match(lines()[pidRow()], /node.* socket +0 +300 MiB +0 B +0 B +0 B +0 B +0 B +3$/);
  assert.match(lines()[childRow()], /sleep 60 +socket +0 +10\.0 MiB/);
  assert.match(lines()[childRow() + 1], /^ +1 +0 B +40\.0 MiB +0 B +0 B +2\.00 MiB +0 B +1$/);

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
  // Laid out for 70 columns, but into a pipe no text is cut: the whole status line, no ellipsis.
  const narrow = await runCli(['top', '--once', '--socket', server.socket], { COLUMNS: '70' });
  assert.match(narrow.stdout, /^Dev 0 +DRAM \[/m, 'the narrow layout');
  const status = narrow.stdout.split('\n')[1];
  assert.ok(status.length > 70 && status.endsWith('no driver'), status);
  assert.doesNotMatch(narrow.stdout, /…$/m);
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

// A small terminal at 2 a.m.: two devices, more processes than fit, one buffer that lives a few
// ms at a time. The frame must fit, the list scroll, the sparklines read against capacity.
describe('top at 70x20 and 200x50', () => {
  let srv: TestServer, spiker: Reporter, t: TestTerminal;
  let running = false;
  let spikes: NodeJS.Timeout | undefined;
  const sleepers: { c: ChildProcess; r: Reporter; dram: number }[] = [];
  const SLEEPERS = 10;

  before(async () => {
    srv = await startServer([
      '--devices',
      '2xwormhole_b0',
      '--sample-interval',
      '0.2',
      '--trust-client-pid',
    ]);
    for (let i = 0; i < SLEEPERS; i++) {
      const c = await liveProcess({ args: [String(300 + i)] });
      const r = new Reporter({ socketPath: srv.socket, pid: c.pid });
      // Distinct sizes, so the DRAM order is known: sleep 300 largest.
      const dram = (SLEEPERS - i) * 10 * MiB;
      r.alloc(0, 0x10000000 + i * 0x1000000, dram, 0);
      // Every third also on device 1: a block of two lines.
      if (i % 3 === 0) r.alloc(1, 0x20000000 + i * 0x1000000, MiB, 0);
      r.flush();
      sleepers.push({ c, r, dram });
    }
    // Device 0's L1 half full and flat: its sparkline stands at the middle, not at the top.
    sleepers[0].r.alloc(0, 0x100000, 46 * MiB, 1);
    sleepers[0].r.flush();
    // Device 1: a tiny flat DRAM (12 MiB of 12 GiB, 0.1 %) and an L1 buffer of 60 MiB that comes
    // and goes in the same batch (alive for no sample), as per-op buffers do.
    spiker = new Reporter({ socketPath: srv.socket });
    spiker.alloc(1, 0x40000000, 12 * MiB, 0);
    spiker.alloc(1, 0x1000, MiB, 1);
    // Pinned host memory: not in the L1 bar (not L1), shown apart.
    spiker.alloc(1, 0x80000000, 4 * MiB, 2);
    spiker.flush();
    const spike = () => {
      spiker.alloc(1, 0x400000, 60 * MiB, 1);
      spiker.free(1, 0x400000);
      spiker.flush();
    };
    spike();
    spikes = setInterval(spike, 50);
    await settle(srv);
  });

  after(async () => {
    clearInterval(spikes);
    await quit();
    for (const s of sleepers) {
      s.c.kill();
      await s.r.close();
    }
    await spiker?.close();
    await srv?.stop();
  });

  const rows = () => t.text().split('\n').slice(0, -1);
  const rowOf = (re: RegExp) => rows().find((l) => re.test(l)) ?? '';
  const pidShown = (i: number) => rows().some((l) => l.startsWith(`${sleepers[i].c.pid} `));
  /** The sparkline at the end of a bar row: the block characters after the percentage. */
  const spark = (row: string) => /%\s([▁▂▃▄▅▆▇█]+)$/.exec(row)?.[1] ?? '';
  /** The frame fits: the title on the first row, the keys on the last, no row wrapped. */
  const assertFits = (w: number, h: number) => {
    const r = rows();
    assert.equal(r.length, h);
    assert.match(r[0], /^ttalloc top · /, `title on top:\n${t.text()}`);
    assert.match(r[h - 1], /^q quit /, `keys at the bottom:\n${t.text()}`);
    assert.ok(
      r.every((l) => [...l].length <= w),
      t.text(),
    );
    // A wrapped row would leave the rest of a line on a row of its own: every row is a known kind.
    for (const l of r)
      assert.match(
        l,
        new RegExp(
          '^(|ttalloc top .*|server on .*|Dev \\d .*|Wormhole_B0 L1 .*| {18}L1 .*| {12,}DRAM .*|' +
            'DRAM bar: .*|█ DRAM.*|PID .*|\\d+ +\\S.*| {20,}\\d .*|processes .*|11 processes|' +
            'q quit .*)$',
        ),
        `an unexpected row:\n${t.text()}`,
      );
  };

  /** `top` alone in a new terminal of w x h (each test its own: a failure leaves nothing). */
  const start = async (w: number, h: number) => {
    await quit();
    const args = [CLI, 'top', '--socket', srv.socket, '--interval', '0.2'];
    t = spawnTerminal(process.execPath, args, { cols: w, rows: h });
    running = true;
    await t.waitFor((s) => s.includes('q quit') && /processes? /.test(s), 'a frame');
  };
  const quit = async () => {
    if (running) await t.kill();
    running = false;
  };

  test('70x20: fits, scrolls to every process, says where it stands', async () => {
    await start(70, 20);
    assertFits(70, 20);
    // Both devices' bars come first, then the list; sleep 300 (largest DRAM) leads it.
    assert.match(rowOf(/^Dev 0 /), /^Dev 0 +DRAM \[/);
    assert.match(rowOf(/^Dev 1 /), /^Dev 1 +DRAM \[/);
    assert.ok(pidShown(0) && pidShown(1), 'the first two processes');
    const shown = Number(/processes 1–(\d+) of 11/.exec(t.text())![1]);
    assert.ok(shown < 11, 'not all fit');
    assert.match(rowOf(/^processes /), new RegExp(`↓ ${11 - shown} below`));
    assert.ok(!pidShown(SLEEPERS - 1), 'the smallest is below');

    // One down: the second process leads; the indicator follows.
    t.write('j');
    await t.waitFor((s) => /processes 2–/.test(s), 'one down');
    assert.ok(!pidShown(0) && pidShown(1));
    assert.match(rowOf(/^processes /), /↑ 1 above/);
    // End: the last page, full, ending at the last process.
    t.write('\x1b[F');
    await t.waitFor((s) => / of 11 · ↑ \d+ above( ·|$)/m.test(s), 'the end');
    assertFits(70, 20);
    assert.ok(pidShown(SLEEPERS - 1), 'the smallest reached');
    const [, from, to] = /processes (\d+)–(\d+) of 11/.exec(t.text())!.map(Number);
    assert.equal(to, 11);
    assert.ok(from > 1);
    // Up from the end moves at once (the position is kept as drawn, not past the end).
    t.write('\x1b[A');
    await t.waitFor((s) => s.includes(`processes ${from - 1}–${to - 1} of 11`), 'one up');
    // PgUp and Home: back to the top.
    t.write('\x1b[5~');
    await t.waitFor((s) => !s.includes(`processes ${from - 1}–`), 'a page up');
    t.write('\x1b[H');
    await t.waitFor((s) => /processes 1–/.test(s), 'home');
    assert.ok(pidShown(0));
    // PgDn moves a page: the process after the first page leads (or the last page is shown).
    const page = Number(/processes 1–(\d+) of 11/.exec(t.text())![1]);
    t.write('\x1b[6~');
    const next = Math.min(page + 1, from);
    await t.waitFor((s) => s.includes(`processes ${next}–`), 'a page down');
    assert.ok(pidShown(next - 1) && !pidShown(next - 2));

    // Sorting still works, and starts from the top: by PID ascending.
    t.write('p');
    await t.waitFor((s) => s.includes('PID▲') && /processes 1–/.test(s), 'sort by PID');
    t.write('d');
    await t.waitFor((s) => s.includes('DRAM▼') && /processes 1–/.test(s), 'sort by DRAM');
    // ← and F5 are no commands: their letters (D, ~) neither sort nor scroll; j after them does.
    t.write('\x1b[D\x1b[15~j');
    await t.waitFor((s) => /processes 2–/.test(s), 'one down after the other keys');
    assert.match(t.text(), /DRAM▼/);
    assertFits(70, 20);
    await quit();
  });

  test('70x20: sparklines against capacity, the interval peak, the peak since start', async () => {
    await start(70, 20);
    // Device 0's L1: 46 MiB of 91.5 MiB, flat: the middle block (50 %), once the sparkline holds
    // only samples from after the allocation.
    const dev0L1 = () => rows()[rows().findIndex((l) => l.startsWith('Dev 0 ')) + 1] ?? '';
    await t.waitFor(() => spark(dev0L1()) === '▅'.repeat(10), 'a flat sparkline');
    assert.match(dev0L1(), /^Wormhole_B0 L1 .* 46\.0 MiB \/ 91\.5 MiB +50\.3% ▅{10}$/);
    // Device 1's DRAM: 16 MiB of 12 GiB, flat: the lowest block all along (never full bars).
    assert.match(spark(rowOf(/^Dev 1 /)), /^▁{10}$/, rowOf(/^Dev 1 /));
    // Device 1's L1: 1 MiB now, but a 60 MiB buffer in every interval: the sparkline draws the
    // interval peak (61 MiB: the ▆ block) while the figures say the level…
    const dev1 = rows().findIndex((l) => l.startsWith('Dev 1 '));
    const l1 = rows()[dev1 + 1];
    assert.match(l1, /^Wormhole_B0 L1 +\[█·*│·*\] 1\.00 MiB \/ 91\.5 MiB +1\.1% /);
    assert.match(spark(l1), /▆/, l1);
    // …and the bar marks the peak since start (│ above), the detail row gives it in figures.
    assert.match(
      rows()[dev1 + 2],
      /^ {12}DRAM 16\.0 MiB, L1 1\.00 MiB \(peak 61\.0 MiB\), host 4\.00 MiB$/,
    );
    await quit();
  });

  test('every size from 30x6 to 220x60: exactly the rows, no line wider, bars first', async () => {
    // The same pure renderer the terminal gets, over the live server's data, at every size.
    const data = await fetchTopData(new ControlClient(srv.socket));
    assert.equal(data.processes.length, 11);
    for (let w = 30; w <= 220; w += 7)
      for (let h = 6; h <= 60; h += 3)
        for (const scroll of [0, 4, Infinity]) {
          const f = renderFrame(data, { ...initialView(), scroll }, w, h);
          const text = f.lines.map((l) => lineText(l, w, false));
          const at = `${w}x${h} scroll ${scroll}`;
          assert.equal(text.length, h, at);
          for (const l of text) assert.ok([...l].length <= w, `${at}: ${l}`);
          // From 60 columns on the layout itself fits: nothing relies on the cut at the edge.
          if (w >= 60) f.lines.forEach((l, i) => assert.ok(lineWidth(l) <= w, `${at}: ${text[i]}`));
          assert.match(text[h - 1], /^q quit/, at);
          // The bars right under the two header rows, as many as the rows allow.
          const bars = text.slice(2, Math.min(h - 1, 2 + 5)).filter((l) => /^Dev \d/.test(l));
          if (h >= 8) assert.equal(bars.length, 2, `${at}:\n${text.join('\n')}`);
          // The list's window is within the list, and what it shows is on screen.
          const { first, shown, total } = f.list;
          assert.equal(total, 11);
          assert.ok(first >= 0 && first + shown <= total, at);
          if (shown > 0 && h >= 20)
            assert.match(
              text.join('\n'),
              new RegExp(`processes ${first + 1}–|^11 processes`, 'm'),
              at,
            );
        }
  });

  test('70x20 and 200x50: the screens for the docs', async () => {
    const screens: [number, number][] = [
      [70, 20],
      [200, 50],
    ];
    for (const [w, h] of screens) {
      await start(w, h);
      // The docs want a full sparkline (a sample each 0.2 s: 10 s at 200 columns); the check
      // only needs a few samples.
      const full = process.env.TTALLOC_SCREENS ? (w >= 100 ? 50 : 10) : 3;
      await t.waitFor(
        (s) => /▅{3}$/.test(s.split('\n')[3]) && spark(rowOf(/^Dev 1 /)).length >= full,
        'sparklines',
      );
      assertFits(w, h);
      // Both sizes show the short-lived buffer: in the sparkline, and in figures.
      assert.match(t.text(), /L1 1\.00 MiB \(peak 61\.0 MiB\)/);
      const l1 = rows().find((l) => /\] 1\.00 MiB \/ 91\.5 MiB/.test(l)) ?? '';
      assert.match(l1, /\[█·+│·+\] 1\.00 MiB \/ 91\.5 MiB +1\.1% [▁▆]*▆[▁▆]*$/);
      if (h === 50) {
        // All 11 fit: every process is on screen, and the count says so.
        for (let i = 0; i < SLEEPERS; i++) assert.ok(pidShown(i), `sleeper ${i}`);
        assert.match(t.text(), /^11 processes$/m);
        assert.match(t.text(), /^PID .* SOURCE .* BUFFERS$/m, 'every column');
        assert.match(rowOf(/L1 1\.00 MiB \(peak/), / · host memory 4\.00 MiB \(SYSTEM_MEMORY\) · /);
        // …and in the table: the spiker's L1_SMALL is 0 (not its host memory), HOST 4 MiB.
        const [, l1Small, host] = / 12\.0 MiB 1\.00 MiB +(\S+ \S+) .* (\S+ \S+) +\d+$/.exec(
          rowOf(/^\d+ +node /),
        )!;
        assert.deepEqual([l1Small, host], ['0 B', '4.00 MiB']);
      }
      if (process.env.TTALLOC_SCREENS)
        writeFileSync(
          fileURLToPath(new URL(`../docs/screens/top-${w}x${h}.txt`, import.meta.url)),
          `# ttalloc top at ${w}x${h}, as a real terminal (xterm) shows it.\n` +
            `# Regenerate: npm run build && TTALLOC_SCREENS=1 node --import tsx --test ` +
            `--test-name-pattern=docs test/top.test.ts\n\n` +
            t.text(),
        );
      await quit();
    }
  });
});
