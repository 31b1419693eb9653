// The merged view through every interface that shows it: one process known only from SHM (a real
// C writer, test/c/shm-writer.c), one only from the socket (this process's Reporter), one from
// both with figures that disagree (the cross-check shows both), a holder that reports nothing
// (a real process in a fake driver tree's holder list, tracking off in its environment), and what
// a killed writer left in the region. /v1/processes, `ps`, /metrics, `top` in a real terminal,
// the dashboard in a real Chromium; then `ps` and `top` with no server at all.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { Reporter } from '../src/client/reporter.js';
import type { ProcessesResponse, ProcessRow } from '../src/report/types.js';
import { CLI, runCli, settle, startServer, type TestServer } from './helpers/server.js';
import { CARDS, SysfsTree } from './helpers/sysfs-tree.js';
import { cliAs, liveProcess } from './helpers/live-process.js';
import { startShmWriter, type ShmWriter } from './helpers/shm-writer.js';
import { spawnTerminal } from './helpers/terminal.js';
import { launchBrowser, type TestBrowser } from './helpers/browser.js';
import { SourcesCache } from '../src/sources/merge-cache.js';
import { defaultReaders } from '../src/sources/merge-readers.js';

const MiB = 1 << 20;
const ASIC = '4242';
let base = '';
let env: NodeJS.ProcessEnv;
let server: TestServer;
let shmOnly: ShmWriter, both: ShmWriter, crashed: ShmWriter;
let silentPid = 0;
let mine: Reporter, theirs: Reporter;

before(async () => {
  base = mkdtempSync('/var/tmp/ttalloc-view-');
  const shm = join(base, 'shm');
  mkdirSync(shm);
  const region = join(shm, `tt_device_${ASIC}_memory`);
  shmOnly = await startShmWriter(region, 'v3', [0], { comm: 'python3' });
  assert.match(await shmOnly.send(`alloc dram ${8 * MiB}`), /^ok/);
  both = await startShmWriter(region, 'v3', [0], { comm: 'pytest' });
  assert.match(await both.send(`alloc dram ${5 * MiB}`), /^ok/);
  crashed = await startShmWriter(region, 'v3', [0], { comm: 'crashy' });
  assert.match(await crashed.send(`alloc dram ${2 * MiB}`), /^ok/);
  await crashed.kill9(); // its 2 MiB stay in the region's totals: ghost bytes
  const silent = await liveProcess({ env: { TT_METAL_SHM_TRACKING_DISABLED: '1' } });
  silentPid = silent.pid!;
  const tree = new SysfsTree(join(base, 'sys'))
    .driver('2.7.0')
    .card(0, CARDS.n150)
    .holders(0, [silentPid, both.pid, shmOnly.pid]);
  env = { TT_ALLOC_SYSFS_ROOT: tree.root, TT_ALLOC_SHM_ROOT: shm };
  // --trust-client-pid: `theirs` reports for the `both` writer (its PID in the messages).
  server = await startServer(
    ['--devices', 'n150', '--http', '127.0.0.1:0', '--trust-client-pid'],
    env,
  );
  mine = new Reporter({ socketPath: server.socket });
  mine.alloc(0, 0x1000_0000, 3 * MiB, 0);
  theirs = new Reporter({ socketPath: server.socket, pid: both.pid });
  theirs.alloc(0, 0x2000_0000, 5 * MiB, 0); // the same DRAM as its SHM slot
  theirs.alloc(0, 0x10_0000, 1 * MiB, 1); // and 1 MiB of L1 its SHM slot does not have
  mine.flush();
  theirs.flush();
  await settle(server);
});

after(async () => {
  await mine?.close();
  await theirs?.close();
  await server?.stop();
  if (base) rmSync(base, { recursive: true, force: true });
});

const byPid = (r: ProcessesResponse, pid: number): ProcessRow => {
  const p = r.processes.find((x) => x.pid === pid);
  assert.ok(p, `PID ${pid} in ${JSON.stringify(r.processes.map((x) => x.pid))}`);
  return p;
};

test('/v1/processes: every source per process, the cross-check, the silent holder', async () => {
  const r = await server.client.json<ProcessesResponse>('GET', '/v1/processes');
  assert.equal(r.from, 'server');
  const s = byPid(r, shmOnly.pid);
  assert.deepEqual(s.sources, ['shm', 'driver']);
  assert.deepEqual([s.buffers, s.devices], [0, []], 'no socket figures');
  assert.deepEqual(
    s.shm!.map((u) => [u.asic_id, u.device, u.layout, u.bytes.dram]),
    [[ASIC, 0, 'v3', 8 * MiB]],
  );
  assert.equal(s.identity!.comm, 'python3');
  assert.match(s.identity!.cmdline!, /shm-writer --comm python3 .*tt_device_4242_memory v3 0$/);
  const m = byPid(r, process.pid);
  assert.deepEqual(m.sources, ['socket']);
  assert.equal(m.devices[0].DRAM, 3 * MiB);
  const b = byPid(r, both.pid);
  assert.deepEqual(b.sources, ['socket', 'shm', 'driver']);
  const c = b.checks![0];
  assert.deepEqual([c.asic_id, c.agree, c.differs], [ASIC, false, ['l1']]);
  assert.deepEqual([c.socket.dram, c.shm.dram, c.socket.l1, c.shm.l1], [5 * MiB, 5 * MiB, MiB, 0]);
  const q = byPid(r, silentPid);
  assert.deepEqual(q.sources, ['driver']);
  assert.equal(q.silent?.code, 'tracking_disabled');
  assert.deepEqual(q.holds, [0]);
  // The summary: the region with what the killed writer left, the card and its holders.
  const g = r.sources!.shm.regions[0];
  assert.deepEqual(
    [g.asic_id, g.slots_live, g.totals.dram, g.ghost?.dram],
    [ASIC, 2, 15 * MiB, 2 * MiB],
  );
  assert.deepEqual([r.sources!.holders, r.sources!.silent], [3, { tracking_disabled: 1 }]);
  // /v1/stats carries the same summary.
  const st = await server.client.json<{ sources?: { holders: number } }>('GET', '/v1/stats');
  assert.equal(st.sources?.holders, 3);
});

/** Lines of `ps` output per PID (its row and the lines beneath it). */
function psBlock(out: string, pid: number): string {
  const lines = out.split('\n');
  const i = lines.findIndex((l) => l.startsWith(`${pid} `));
  assert.ok(i >= 0, `PID ${pid} in:\n${out}`);
  let j = i + 1;
  while (j < lines.length && /^ {9}/.test(lines[j])) j++;
  return lines.slice(i, j).join('\n');
}

test('ps: a line per process and device, sources, cross-check, reason; --json', async () => {
  const r = await runCli(['ps', '--socket', server.socket], { ...env, COLUMNS: '200' });
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    /^server on \S+ · SHM \S+: 1 region · driver 2\.7\.0: 1 card\(s\), 3 holder/,
  );
  assert.match(
    psBlock(r.stdout, shmOnly.pid),
    / shm\+driver +0 +8\.00 MiB .* \(shm\) .*shm-writer/,
  );
  assert.match(psBlock(r.stdout, process.pid), / socket +0 +3\.00 MiB +0 B/);
  const b = psBlock(r.stdout, both.pid);
  assert.match(b, /socket\+shm\+driver +0 +5\.00 MiB +1\.00 MiB/);
  assert.match(b, /\n {9}↳ cross-check: socket 1\.00 MiB ≠ shm 0 B \(l1, chip 4242\)$/);
  const q = psBlock(r.stdout, silentPid);
  assert.match(q, /driver +- +holds \/dev\/tenstorrent\/0\n/);
  assert.match(q, /↳ reports nothing \(tracking_disabled\): its environment sets TT_METAL_SHM_TRA/);
  assert.match(q, /\n {11}fix: unset TT_METAL_SHM_TRACKING_DISABLED/);
  assert.match(r.stdout, /tt_device_4242_memory: 2\.00 MiB DRAM, 0 B L1 left by crashed processes/);
  const j = JSON.parse((await runCli(['ps', '--json', '--socket', server.socket], env)).stdout);
  const row = (j as ProcessesResponse).processes.find((p) => p.pid === shmOnly.pid)!;
  assert.match(
    row.identity!.cmdline!,
    /^\S*shm-writer --comm python3 \S+tt_device_4242_memory v3 0$/,
  );
});

test('ps --format csv / ndjson in a loop, read by Python', async () => {
  const py = (prog: string, input: string) => {
    const r = spawnSync('python3', ['-c', prog], { input, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as unknown;
  };
  const csv = await runCli(
    ['ps', '--format', 'csv,nounits', '--units', 'B', '--socket', server.socket],
    env,
  );
  assert.equal(csv.code, 0, csv.stderr);
  const rows = py(
    'import csv,json,sys; ' +
      'print(json.dumps(list(csv.DictReader(sys.stdin, skipinitialspace=True))))',
    csv.stdout,
  ) as Record<string, string>[];
  const mine = rows.find((x) => x.pid === String(process.pid))!;
  assert.equal(mine['dram [B]'], String(3 * MiB));
  assert.equal(mine.sources, 'socket');
  const silent = rows.find((x) => x.pid === String(silentPid))!;
  assert.equal(silent.silent, 'tracking_disabled');
  assert.equal(silent.device, '', 'holds the card, no memory on a device');
  assert.match(silent.command, /\(holds \/dev\/tenstorrent\/0\)$/);
  const nd = await runCli(
    ['ps', '--format', 'ndjson', '-l', '0.05', '-c', '2', '--socket', server.socket],
    env,
  );
  assert.equal(nd.code, 0, nd.stderr);
  const recs = py(
    'import json,sys; print(json.dumps([json.loads(l) for l in sys.stdin if l.strip()]))',
    nd.stdout,
  ) as { pid: number; dram_bytes: number; time: string }[];
  assert.equal(recs.length, 2 * rows.length, 'two rounds of the same records');
  assert.equal(recs.find((x) => x.pid === process.pid)?.dram_bytes, 3 * MiB);
});

test('/metrics: per-chip SHM totals, ghost bytes, holders, silent holders by reason', async () => {
  const text = await server.client.text('GET', '/metrics');
  const labels = `asic_id="${ASIC}",device="0",type="DRAM"`;
  assert.match(text, new RegExp(`^ttalloc_shm_used_bytes\\{${labels}\\} ${15 * MiB}$`, 'm'));
  assert.match(text, new RegExp(`^ttalloc_shm_live_bytes\\{${labels}\\} ${13 * MiB}$`, 'm'));
  assert.match(text, new RegExp(`^ttalloc_shm_ghost_bytes\\{${labels}\\} ${2 * MiB}$`, 'm'));
  assert.match(text, /^ttalloc_device_holders\{card="0"\} 3$/m);
  assert.match(text, /^ttalloc_silent_holders\{reason="tracking_disabled"\} 1$/m);
  assert.match(text, /^ttalloc_silent_holders\{reason="other_user"\} 0$/m);
  assert.match(text, /^ttalloc_processes_by_source\{source="shm"\} 2$/m);
  assert.match(text, /^ttalloc_shm_regions\{status="ok"\} 1$/m);
  // the card's sensors (hwmon) and identity, as tt-smi shows them; no reading, no sample
  const card = 'card="0",type="n150",serial="0000010A12345678"';
  assert.match(text, new RegExp(`^ttalloc_card_temperature_celsius\\{${card}\\} 45\\.25$`, 'm'));
  assert.match(text, new RegExp(`^ttalloc_card_voltage_volts\\{${card}\\} 0\\.85$`, 'm'));
  assert.match(text, new RegExp(`^ttalloc_card_current_amperes\\{${card}\\} 21$`, 'm'));
  assert.doesNotMatch(text, /^ttalloc_card_power_watts\{/m);
  assert.match(
    text,
    new RegExp(
      `^ttalloc_card_info\\{${card},asic_id="0000000100000001",chips="1",driver="2\\.7\\.0",` +
        'firmware="80\\.15\\.0\\.0"\\} 1$',
      'm',
    ),
  );
});

test('top in a real terminal: the source column, the check and the reason', async () => {
  const term = spawnTerminal(
    process.execPath,
    [CLI, 'top', '--socket', server.socket, '--interval', '0.3'],
    { cols: 160, rows: 40, env: { ...process.env, ...env } },
  );
  try {
    const screen = await term.waitFor(
      (s) => s.includes(`${silentPid} `) && s.includes('Chip 4242'),
      'the merged rows',
    );
    const line = (pid: number) => screen.split('\n').find((l) => l.startsWith(`${pid} `)) ?? '';
    assert.match(line(shmOnly.pid), /shm-writer.* shm\+driver +0 +8\.00 MiB .*\(shm\)$/);
    assert.match(line(process.pid), / socket +0 +3\.00 MiB/);
    assert.match(line(both.pid), / socket\+shm\+driver +0 +5\.00 MiB +1\.00 MiB/);
    assert.match(screen, /socket 1\.00 MiB ≠ shm 0 B \(l1, chip 4242\)/);
    assert.match(line(silentPid), / driver +holds \/dev\/tenstorrent\/0/);
    assert.match(screen, /reports nothing: its environment sets TT_METAL_SHM_TRACKING_DISABLED=1/);
    assert.match(screen, /Chip 4242 dev 0 v3 .*2\/3 slots live · 2\.00 MiB left by crashed/);
    assert.match(
      screen,
      /Card 0 n150 +serial 0000010A12345678 · 1 chip · 45\.3 °C · 21\.0 A · fw 80\.15\.0\.0 ·/,
    );
  } finally {
    await term.kill();
  }
});

test('the dashboard: sources, the SHM-only rows, the reason, the chips', async () => {
  const url = /dashboard on (http:\/\/\S+\/)/.exec(server.output())![1];
  let browser: TestBrowser | null = null;
  try {
    browser = await launchBrowser({ width: 1400, height: 1400 });
    const page: Page = await browser.context.newPage();
    await page.goto(`${url}?poll=300`);
    const sel = (pid: number, more = '') => `#processes tr[data-pid="${pid}"]${more}`;
    await page.waitForSelector(sel(silentPid, '[data-silent="tracking_disabled"]'));
    const text = (s: string) => page.textContent(s).then((t) => t ?? '');
    assert.match(await text(sel(shmOnly.pid, '[data-from="shm"]')), /shm\+driver0\s*8\.00 MiB/);
    assert.match(await text(sel(process.pid, '[data-from="socket"]')), /socket0\s*3\.00 MiB/);
    assert.match(await text(sel(both.pid, '[data-from="socket"]')), /socket\+shm\+driver/);
    assert.match(
      await text(sel(both.pid, '.info')),
      /socket 1\.00 MiB ≠ shm 0 B \(l1, chip 4242\)/,
    );
    assert.match(
      await text(sel(silentPid, '[data-silent]')),
      /reports nothing: its environment sets TT_METAL_SHM_TRACKING_DISABLED=1 .* fix: unset/,
    );
    const cardRow = await text('#cards tr[data-card="0"]');
    assert.match(
      cardRow,
      /^0\s*n150\s*0000010A12345678\s*0000000100000001\s*1\s*3\s*45\.3 °C\s*–\s*80\.15\.0\.0$/,
    );
    const chip = await text(`#chips tr[data-asic="${ASIC}"]`);
    assert.match(chip, /^4242\s*0\s*v3.*ok.*15\.0 MiB.*2 \/ 3\s*2\.00 MiB$/);
  } finally {
    await browser?.close();
  }
});

test('ps and top with no server: SHM and the driver read directly, and said so', async () => {
  const none = join(base, 'nothing.sock');
  const ps = await runCli(['ps', '--socket', none], { ...env, COLUMNS: '200' });
  assert.equal(ps.code, 0, ps.stderr);
  assert.match(ps.stdout, /^no server on \S+nothing\.sock: reading SHM and the driver directly · /);
  assert.match(psBlock(ps.stdout, shmOnly.pid), / shm\+driver +0 +8\.00 MiB/);
  assert.match(psBlock(ps.stdout, both.pid), / shm\+driver +0 +5\.00 MiB/);
  assert.match(psBlock(ps.stdout, silentPid), /reports nothing \(tracking_disabled\)/);
  assert.doesNotMatch(ps.stdout, new RegExp(`^${process.pid} `, 'm'), 'the socket is not read');
  const once = await runCli(['top', '--once', '--socket', none], { ...env, COLUMNS: '160' });
  // into a pipe with no width known: laid out for 120 columns, but no line is cut
  const piped = await runCli(['top', '--once', '--socket', none], { ...env, COLUMNS: '' });
  const header = piped.stdout.split('\n').find((l) => l.startsWith('no server on '))!;
  assert.ok(header.length > 120, `a line longer than 120 columns: ${header}`);
  assert.match(header, /· driver 2\.7\.0: 1 card\(s\), 3 holder\(s\)/);
  assert.equal(once.code, 0, once.stderr);
  assert.match(once.stdout, /^ttalloc top · no server: SHM and the driver read directly/);
  assert.match(once.stdout, /^no server on \S+nothing\.sock: reading SHM and the driver directly/m);
  assert.match(once.stdout, new RegExp(`^${shmOnly.pid} .* shm\\+driver +0 +8\\.00 MiB`, 'm'));
  const term = spawnTerminal(process.execPath, [CLI, 'top', '--socket', none], {
    cols: 160,
    rows: 40,
    env: { ...process.env, ...env },
  });
  try {
    await term.waitFor(
      (s) => s.includes('reading SHM and the driver directly') && s.includes(`${silentPid} `),
      'top without a server',
    );
  } finally {
    await term.kill();
  }
});

test('a writer in another PID namespace: its slot is found through its NSpid', async () => {
  const shm = join(base, 'shm-ns');
  mkdirSync(shm);
  const w = await startShmWriter(join(shm, 'tt_device_99_memory'), 'v3', [0], {
    comm: 'nsproc',
    wrap: ['unshare', '--pid', '--fork'],
  });
  assert.match(await w.send(`alloc dram ${MiB}`), /^ok/);
  // The writer is the child of unshare; its slot carries the PID it has in its own namespace.
  const host = Number(readFileSync(`/proc/${w.child.pid}/task/${w.child.pid}/children`, 'latin1'));
  assert.notEqual(host, w.pid);
  const tree = new SysfsTree(join(base, 'sys-ns')).driver('2.7.0').card(0).holders(0, [host]);
  const view = new SourcesCache(defaultReaders({ sysfs: tree.root, shm })).view(null);
  const p = view.processes.find((x) => x.pid === host);
  assert.ok(p, JSON.stringify(view.processes.map((x) => [x.pid, x.sources])));
  assert.deepEqual(p.sources, ['shm', 'driver'], JSON.stringify([view.summary.shm, p]));
  assert.deepEqual([p.ns_pid, p.shm[0].slot_pid, p.shm[0].bytes.dram], [w.pid, w.pid, MiB]);
  assert.equal(p.identity?.other_pid_ns, true);
  assert.equal(p.silent, null);
  await w.kill9();
});

test('another user sees root holders and region as unreadable, and says so', async () => {
  // Readable paths for nobody: the roots themselves are not secret, root's region is (0600).
  for (const d of [base, join(base, 'shm'), join(base, 'sys')]) chmodSync(d, 0o755);
  const r = await cliAs(65534, ['ps', '--json', '--socket', join(base, 'nothing.sock')], env);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as ProcessesResponse;
  assert.equal(j.sources!.shm.regions[0].status, 'unreadable');
  const q = byPid(j, silentPid);
  assert.equal(q.identity?.tracking_env, null, 'its environ is not ours to read');
  assert.equal(q.silent?.code, 'other_user');
  assert.match(q.silent!.text, /^it runs as root: its environment and its regions/);
  assert.match(q.silent!.fix, /run ttalloc as root/);
  // The SHM-only process is a holder now known only from the driver: the same reason.
  assert.equal(byPid(j, shmOnly.pid).silent?.code, 'other_user');
});
