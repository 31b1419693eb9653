// `ttalloc doctor` on each broken set-up, with real servers, real sockets, real processes as the
// driver's holders (a fake driver tree, helpers/sysfs-tree.ts), real SHM regions (the C writer of
// test/c/shm-writer.c) and real users: the right finding with its fix, exit 1; healthy: exit 0.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Reporter } from '../src/client/reporter.js';
import { runCli, settle, startServer } from './helpers/server.js';
import { SysfsTree, CARDS } from './helpers/sysfs-tree.js';
import { cliAs, inPrivateTmp, liveProcess } from './helpers/live-process.js';
import { startShmWriter } from './helpers/shm-writer.js';
import type { DoctorReport, Finding } from '../src/sources/doctor.js';

const NOBODY = 65534;
const dirs: string[] = [];
/** Outside /tmp, so that a private /tmp (inPrivateTmp) still sees it. */
function dir(): string {
  const d = mkdtempSync('/var/tmp/ttalloc-doctor-');
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Roots with nothing in them: no driver, no SHM regions (the machine's own are not read). */
function emptyRoots(): NodeJS.ProcessEnv {
  const d = dir();
  return { TT_ALLOC_SYSFS_ROOT: join(d, 'sys-root'), TT_ALLOC_SHM_ROOT: join(d, 'shm') };
}

function parse(r: { code: number | null; stdout: string; stderr: string }): DoctorReport {
  try {
    return JSON.parse(r.stdout) as DoctorReport;
  } catch {
    throw new Error(`doctor printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
}
const find = (r: DoctorReport, check: string, text?: RegExp): Finding | undefined =>
  r.findings.find((f) => f.check === check && (!text || text.test(f.text)));

test('no server: a failure naming the socket, with the command that starts one', async () => {
  const d = dir();
  const r = await runCli(['doctor', '--json', '--socket', join(d, 'none.sock')], emptyRoots());
  assert.equal(r.code, 1, r.stderr);
  const f = find(parse(r), 'server');
  assert.equal(f?.severity, 'fail');
  assert.match(f!.text, /no allocation server answers on .*none\.sock/);
  assert.match(f!.fix!, /allocation-server/);
  // The text form: one line per finding, its fix beneath, the verdict last.
  const text = await runCli(['doctor', '--socket', join(d, 'none.sock')], emptyRoots());
  assert.equal(text.code, 1);
  assert.match(text.stdout, /^✗ server: no allocation server answers on .*\n {4}fix: start one/m);
  assert.match(text.stdout, /problems? found/);
});

test('a server on another path: the runtime connects to the default path', async () => {
  // In a private /tmp: no other server on the runtime's path can answer for it.
  const d = dir();
  const sock = join(d, 'elsewhere.sock');
  const r = await inPrivateTmp(
    `$NODE $CLI server --socket ${sock} --no-persist --devices n150 --quiet & SRV=$!; ` +
      `for i in $(seq 100); do [ -S ${sock}.ctl ] && break; sleep 0.05; done; ` +
      `TT_ALLOC_SERVER_SOCKET=${sock} $NODE $CLI doctor --json; echo "EXIT=$?"; kill $SRV`,
    emptyRoots(),
  );
  const report = parse({ ...r, stdout: r.stdout.replace(/EXIT=\d+\n?$/, '') });
  assert.match(r.stdout, /EXIT=1/);
  assert.equal(find(report, 'server')?.severity, 'ok');
  const f = find(report, 'socket_path');
  assert.equal(f?.severity, 'fail');
  assert.match(
    f!.text,
    new RegExp(
      'TT_ALLOC_SERVER_SOCKET=.*elsewhere\\.sock.*connects to /tmp/tt_allocation_server\\.sock ' +
        'and no server answers there',
    ),
  );
  assert.match(f!.fix!, /unset TT_ALLOC_SERVER_SOCKET/);
});

test("socket permissions: another user's server refuses us", async () => {
  const srv = await startServer(['--devices', 'n150']);
  // Its directory open to all: the socket itself (0600, root's) is what keeps us out.
  chmodSync(srv.dir, 0o755);
  try {
    const r = await cliAs(NOBODY, ['doctor', '--json', '--socket', srv.socket], emptyRoots());
    assert.equal(r.code, 1, r.stderr);
    const report = parse(r);
    assert.match(find(report, 'server')!.text, /permission denied/);
    const f = find(report, 'socket_permissions');
    assert.equal(f?.severity, 'fail');
    assert.match(f!.text, /belongs to uid 0 \(mode 0600\): processes of nobody may not connect/);
    assert.match(f!.fix!, /--group/);
  } finally {
    await srv.stop();
  }
});

test('a holder with tracking off in its environment: named, with the fix', async () => {
  const p = await liveProcess({ env: { TT_METAL_SHM_TRACKING_DISABLED: '1' } });
  const tree = new SysfsTree(dir()).driver('2.7.0').card(0, CARDS.n150).holders(0, [p.pid!]);
  const env = { ...emptyRoots(), TT_ALLOC_SYSFS_ROOT: tree.root };
  const r = await runCli(['doctor', '--json', '--socket', join(dir(), 'none.sock')], env);
  assert.equal(r.code, 1);
  const report = parse(r);
  const dev = find(report, 'devices')!.text;
  assert.match(dev, /\/dev\/tenstorrent\/0: n150, 1 chip\(s\).*1 holder/);
  const f = find(report, 'holder', new RegExp(`PID ${p.pid} `));
  assert.equal(f?.severity, 'fail');
  assert.match(f!.text, /reports nothing: its environment sets TT_METAL_SHM_TRACKING_DISABLED=1/);
  assert.match(f!.fix!, /unset TT_METAL_SHM_TRACKING_DISABLED/);
  p.kill();
});

test("a region we may not read (another user's, mode 0600): a failure, never empty", async () => {
  const roots = emptyRoots();
  const shm = roots.TT_ALLOC_SHM_ROOT!;
  mkdirSync(shm);
  chmodSync(join(shm, '..'), 0o755);
  chmodSync(shm, 0o755);
  const w = await startShmWriter(join(shm, 'tt_device_77_memory'), 'v3', [0]);
  assert.match(await w.send('alloc dram 4096'), /^ok/);
  // doctor as nobody: root's 0600 region is closed to it.
  const r = await cliAs(NOBODY, ['doctor', '--json', '--socket', join(dir(), 'none.sock')], roots);
  assert.equal(r.code, 1, r.stderr);
  const f = find(parse(r), 'shm', /tt_device_77_memory/);
  assert.equal(f?.severity, 'fail');
  assert.match(f!.text, /memory: version unknown, owner root, mode 0600: unreadable by us/);
  assert.match(f!.fix!, /run ttalloc as root/);
  await w.kill9();
});

test('all 64 slots taken: the region and the holder left without a slot', async () => {
  const roots = emptyRoots();
  const shm = roots.TT_ALLOC_SHM_ROOT!;
  mkdirSync(shm);
  const w = await startShmWriter(join(shm, 'tt_device_78_memory'), 'v3', [0]);
  assert.match(await w.send('alloc dram 4096'), /^ok/);
  // 63 more slots, as 63 other processes would claim them (PIDs no process has: dead slots stay).
  for (let i = 0; i < 63; i++)
    assert.match(await w.send(`claim ${4_000_000 + i} now worker${i}`), /^ok/);
  const late = await liveProcess({ env: {} });
  const tree = new SysfsTree(dir()).driver('2.7.0').card(0, CARDS.n150).holders(0, [late.pid!]);
  const env = { ...roots, TT_ALLOC_SYSFS_ROOT: tree.root };
  const r = await runCli(['doctor', '--json', '--socket', join(dir(), 'none.sock')], env);
  assert.equal(r.code, 1);
  const report = parse(r);
  const f = find(report, 'shm', /tt_device_78_memory/);
  assert.equal(f?.severity, 'fail');
  assert.match(f!.text, /1 live of 64 used slot\(s\): all 64 slots taken/);
  const h = find(report, 'holder', new RegExp(`PID ${late.pid} `));
  assert.match(
    h!.text,
    /reports nothing: all 64 process slots of \S+tt_device_78_memory are taken/,
  );
  late.kill();
  await w.kill9();
});

test('undeclared devices, frame sizes, unknown frees: tracking started late', async () => {
  const srv = await startServer([], emptyRoots());
  const r = new Reporter({ socketPath: srv.socket });
  try {
    r.alloc(0, 0x1000, 4096, 0);
    // Frees of buffers the server never saw: the application allocated before tracking began.
    for (let i = 0; i < 5; i++) r.free(0, 0x9000_0000 + i * 4096);
    r.flush();
    await settle(srv);
    const out = await runCli(['doctor', '--json', '--socket', srv.socket], emptyRoots());
    assert.equal(out.code, 1);
    const report = parse(out);
    const f = find(report, 'capacities');
    assert.equal(f?.severity, 'fail');
    assert.match(f!.text, /device\(s\) 0 report allocations but were never declared/);
    assert.match(f!.fix!, /--devices n300/);
    // The server knows each connection's frame size.
    const frames = find(report, 'frames', new RegExp(`^PID ${process.pid} `));
    assert.match(frames!.text, /: 1 connection\(s\), frames 144 bytes$/);
    const late = find(report, 'late_start');
    assert.equal(late?.severity, 'warn');
    assert.match(late!.text, /^5 of 5 frees \(100\.0%\) were of buffers the server never saw/);
    assert.match(late!.fix!, /start the server before the application/);
  } finally {
    await r.close();
    await srv.stop();
  }
});

test('healthy: a server on the runtime path with its devices declared, exit 0', async () => {
  const sock = '/tmp/tt_allocation_server.sock';
  const r = await inPrivateTmp(
    `$NODE $CLI server --no-persist --devices n150 --quiet & SRV=$!; ` +
      `for i in $(seq 100); do [ -S ${sock}.ctl ] && break; sleep 0.05; done; ` +
      `$NODE $CLI doctor; echo "EXIT=$?"; kill $SRV`,
    emptyRoots(),
  );
  assert.match(r.stdout, /^✓ server: server pid \d+ on \/tmp\/tt_allocation_server\.sock$/m);
  assert.doesNotMatch(r.stdout, /^✗/m, r.stdout);
  assert.match(r.stdout, /^healthy/m);
  assert.match(r.stdout, /EXIT=0/);
});
