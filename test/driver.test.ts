// The kernel driver, cards and chips, and who a process is: fake /proc/driver/tenstorrent and
// /sys/class/tenstorrent trees (helpers/sysfs-tree.ts) with real processes as holders, real
// processes' identities (their environ, another user's, another PID namespace), and DEVICE_INFO
// of chips and of undeclared devices through a real server and real 112/144-byte frames.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DriverReader, IDENTITY_KEEP_MS, readHolders, scanDriver } from '../src/sources/driver.js';
import { knownHolder, readProcessIdentity } from '../src/sources/driver-holders.js';
import { containerOf, readIdentity } from '../src/platform/processes.js';
import { chipsOfCard } from '../src/devices/cards.js';
import { decodeFrame, encodeFrame } from '../src/protocol/codec.js';
import { BufferType, MsgType, type FrameSize } from '../src/protocol/constants.js';
import { rawConnect, startServer, tempDir, type TestServer } from './helpers/server.js';
import { Inbox, waitFrames, write } from './helpers/wire.js';
import { CARDS, SysfsTree } from './helpers/sysfs-tree.js';
import { liveProcess } from './helpers/live-process.js';

const dirs: string[] = [];
function dir(): string {
  const d = tempDir('ttalloc-driver-');
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// ------------------------------------------------------------------ cards, sysfs, holders

test('an n150 as sysfs shows it: identity, firmware, clocks, sensors in their units', () => {
  const tree = new SysfsTree(dir()).driver('2.7.0').card(0, CARDS.n150);
  const scan = scanDriver({ root: tree.root });
  assert.equal(scan.present, true);
  assert.equal(scan.driver_version, '2.7.0');
  assert.equal(scan.holders_listed, false, 'no pids file: a driver before 2.5.0');
  assert.equal(scan.cards.length, 1);
  const c = scan.cards[0];
  assert.deepEqual(
    [c.index, c.card_type, c.arch, c.board_serial, c.asic_id],
    [0, 'n150', 'Wormhole_B0', CARDS.n150.serial, CARDS.n150.asicId],
  );
  assert.deepEqual(
    [c.chips, c.remote_chips, c.chips_note, c.device_ids],
    [1, 0, 'n150: 1 chip', [0]],
  );
  assert.deepEqual(c.firmware, { bundle: '80.15.0.0' });
  assert.deepEqual(c.clocks_mhz, { aiclk: 1000, axiclk: 900, arcclk: 540 });
  assert.deepEqual(c.sensors, { temperature_c: 45.25, voltage_v: 0.85, current_a: 21 });
  assert.equal(c.heartbeat, null);
  assert.deepEqual([c.holders, c.holders_outside_ns], [[], 0]);
});

test('holders: real processes, newest first, once each; 0 lines counted as outside', async () => {
  const a = await liveProcess(),
    b = await liveProcess();
  const tree = new SysfsTree(dir()).card(0, CARDS.p150).card(1, CARDS.n150);
  // b opened the device twice (newest first: b, a, b), and a holder of another namespace.
  tree.holders(0, [b.pid!, 0, a.pid!, b.pid!]).holders(1, []);
  const scan = scanDriver({ root: tree.root });
  assert.equal(scan.holders_listed, true);
  assert.deepEqual(scan.cards[0].holders, [b.pid, a.pid]);
  assert.equal(scan.cards[0].holders_outside_ns, 1);
  assert.deepEqual(scan.cards[1].holders, []);
  assert.deepEqual(readHolders(tree.root, 0), { pids: [b.pid, a.pid], outside: 1 });
  assert.equal(readHolders(tree.root, 7), null, 'no such device: not listed, not empty');
  // Who they are: real processes, as the views will show them.
  const who = readIdentity(b.pid!);
  assert.deepEqual([who.comm, who.cmdline], ['sleep', 'sleep 300']);
  // Blackhole sensors: fan and power in their units; the heartbeat counter.
  const p = scan.cards[0];
  assert.deepEqual(p.sensors, { temperature_c: 39.5, power_w: 55, fan_rpm: 2100 });
  assert.equal(p.heartbeat, 123456);
  assert.deepEqual([p.arch, p.card_type, p.chips], ['Blackhole', 'p150a', 1]);
});

test('chips per card: n300 two, a T3K eight (locals first), p150 one', () => {
  const n300 = scanDriver({ root: new SysfsTree(dir()).card(0, CARDS.n300).root }).cards[0];
  assert.deepEqual(
    [n300.chips, n300.remote_chips, n300.chips_note, n300.device_ids],
    [2, 1, 'n300: 1 local + 1 remote chip', [0, 1]],
  );
  assert.deepEqual(n300.firmware, { bundle: '80.15.0.0', eth: '6.14.0' });
  assert.deepEqual(n300.sensors, { temperature_c: 51, power_w: 36.5 });
  const t3k = scanDriver({ root: new SysfsTree(dir()).cards(4, CARDS.n300).root });
  assert.deepEqual(
    t3k.cards.map((c) => c.device_ids),
    [
      [0, 4],
      [1, 5],
      [2, 6],
      [3, 7],
    ],
  );
  assert.equal(new Set(t3k.cards.map((c) => c.board_serial)).size, 4, 'one serial per board');
  const mixed = scanDriver({
    root: new SysfsTree(dir()).card(0, CARDS.n300).card(1, CARDS.p150).root,
  });
  assert.deepEqual(
    mixed.cards.map((c) => c.device_ids),
    [[0, 2], [1]],
  );
});

test('galaxy, p300 and an unknown card: chips null and said, never guessed', () => {
  const tree = new SysfsTree(dir())
    .card(0, CARDS.n150)
    .card(1, CARDS.galaxy)
    .card(2, CARDS.p300)
    .card(3, CARDS.unknown);
  const cards = scanDriver({ root: tree.root }).cards;
  assert.deepEqual(
    cards.map((c) => [c.card_type, c.arch, c.chips, c.remote_chips, c.device_ids]),
    [
      ['n150', 'Wormhole_B0', 1, 0, null],
      ['galaxy-wormhole', 'Wormhole_B0', null, null, null],
      ['p300c', 'Blackhole', null, null, null],
      [null, 'Wormhole_B0', null, null, null],
    ],
    'the hwmon name gives the arch of a card whose type is not reported',
  );
  for (const c of cards.slice(1)) assert.match(c.chips_note, /not in ttalloc's sources/);
  assert.match(cards[3].chips_note, /^card type not reported/);
  assert.equal(cards[0].device_ids, null, "the n150's id depends on the others' chips");
  for (const t of ['galaxy-blackhole', 'p300a', 'e150', 'tt_galaxy_wh', 'unknown'])
    assert.equal(chipsOfCard(t).chips, null, t);
  for (const t of ['p100', 'p100a', 'p150', 'p150b', 'p150c', 'N150'])
    assert.equal(chipsOfCard(t).chips, 1, t);
});

test('DriverReader: sensors and holders every scan, identity kept until it ages out', (t) => {
  const tree = new SysfsTree(dir()).card(0, CARDS.n150);
  const cls = join(tree.root, 'sys/class/tenstorrent/tenstorrent!0');
  let now = 1_000_000;
  t.mock.method(Date, 'now', () => now);
  const reader = new DriverReader({ root: tree.root });
  assert.equal(reader.scan().cards[0].board_serial, CARDS.n150.serial);
  writeFileSync(join(cls, 'tt_serial'), 'FFFF\n');
  writeFileSync(join(cls, 'device/hwmon/hwmon3/temp1_input'), '60000\n');
  tree.holders(0, [process.pid]);
  now += IDENTITY_KEEP_MS;
  const second = reader.scan().cards[0];
  assert.equal(second.board_serial, CARDS.n150.serial, 'identity kept');
  assert.equal(second.sensors.temperature_c, 60, 'sensors read again');
  assert.deepEqual(second.holders, [process.pid]);
  now += 1;
  assert.equal(reader.scan().cards[0].board_serial, 'FFFF', 'aged out: read again');
  writeFileSync(join(cls, 'tt_serial'), 'EEEE\n');
  tree.card(1, CARDS.p150);
  const third = reader.scan();
  assert.deepEqual(
    third.cards.map((c) => c.board_serial),
    ['EEEE', CARDS.p150.serial],
    'a new set of cards: everything read again',
  );
});

test('attributes that fail to read, a fanless card and no driver at all', () => {
  const tree = new SysfsTree(dir()).card(0, {
    ...CARDS.p150,
    failing: ['tt_serial', 'tt_m3app_fw_ver'],
    hwmon: { name: 'blackhole', fan1_input: 0xffffffff, temp1_input: 40000 },
  });
  const c = scanDriver({ root: tree.root }).cards[0];
  assert.equal(c.board_serial, null, 'a failed read is left out, not shown');
  assert.equal(c.firmware.m3app, undefined);
  assert.deepEqual(c.sensors, { temperature_c: 40 }, 'the all-ones fan word is no reading');
  const none = scanDriver({ root: dir() });
  assert.deepEqual([none.present, none.cards, none.driver_version], [false, [], null]);
  assert.match(none.error!, /not loaded/);
});

test('the readers never open /dev/tenstorrent/N (a FIFO there would block an open)', () => {
  const tree = new SysfsTree(dir()).card(0, CARDS.n300);
  const node = join(tree.root, 'dev/tenstorrent/0');
  rmSync(node);
  assert.equal(spawnSync('mkfifo', [node]).status, 0);
  const script =
    "import { scanDriver } from './src/sources/driver.ts';" +
    "import { DeviceRegistry } from './src/devices/registry.ts';" +
    `const s = scanDriver({ root: ${JSON.stringify(tree.root)} });` +
    `const r = DeviceRegistry.resolve({ sysfsRoot: ${JSON.stringify(tree.root)} });` +
    'console.log(s.cards[0].chips, r.size);';
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(r.status, 0, `blocked or failed: ${r.stderr}`);
  assert.equal(r.stdout.trim(), '2 2');
});

// ------------------------------------------------------------------ who a process is

test('identity of a real process: user, whole command line, NSpid, tracking env', async () => {
  // Past the 4096 bytes readProcessInfo keeps: sleep sums its arguments, so zeros are valid.
  const zeros = Array<string>(3000).fill('0');
  const on = await liveProcess({
    env: { TT_ALLOC_TRACKING_ENABLED: '1', TT_METAL_SHM_TRACKING_DISABLED: '1' },
    args: ['300', ...zeros],
  });
  const id = readProcessIdentity(on.pid!);
  assert.equal(id.pid, on.pid);
  assert.equal(id.uid, process.getuid!());
  const me = readFileSync('/etc/passwd', 'latin1')
    .split('\n')
    .find((l) => l.split(':')[2] === String(process.getuid!()))!
    .split(':')[0];
  assert.equal(id.user, me);
  assert.equal(id.comm, 'sleep');
  assert.ok(id.cmdline === `sleep 300 ${zeros.join(' ')}`, 'whole, not cut');
  assert.equal(id.ns_pids[0], on.pid);
  assert.deepEqual([id.other_pid_ns, id.other_ipc_ns], [false, false]);
  assert.deepEqual(id.tracking_env, { alloc_tracking_enabled: true, shm_tracking_disabled: true });
  const off = await liveProcess({ env: { TT_ALLOC_TRACKING_ENABLED: '0', PATH: '/usr/bin:/bin' } });
  assert.deepEqual(readIdentity(off.pid!).tracking_env, {
    alloc_tracking_enabled: false,
    shm_tracking_disabled: false,
  });
  const gone = readIdentity(2 ** 22 + 1);
  assert.deepEqual(
    [gone.comm, gone.uid, gone.cmdline, gone.tracking_env, gone.ns_pids, gone.other_pid_ns],
    [null, null, null, null, [], null],
  );
});

const root = process.getuid?.() === 0;

test(
  'a process of another user (nobody): its name from passwd',
  { skip: !root && 'needs root' },
  async () => {
    const c = await liveProcess({ uid: 65534 });
    const id = readIdentity(c.pid!);
    assert.equal(id.uid, 65534);
    assert.equal(id.user, 'nobody');
    assert.equal(id.comm, 'sleep');
    // As root we may read its environ; the sleeper's is empty: tracking not switched on.
    assert.deepEqual(id.tracking_env, {
      alloc_tracking_enabled: false,
      shm_tracking_disabled: false,
    });
  },
);

const unshareOk =
  root && spawnSync('unshare', ['-p', '-f', '--mount-proc', '-i', 'true']).status === 0;

test(
  'a process in another PID and IPC namespace: NSpid chain and both flags',
  { skip: !unshareOk && 'needs unshare -p -i (root)' },
  async () => {
    const u = await liveProcess({
      cmd: 'unshare',
      args: ['-p', '-f', '--mount-proc', '-i', 'sleep', '300'],
      env: { PATH: process.env.PATH },
    });
    // unshare forks: the sleep is its child.
    let inner = 0;
    for (let i = 0; i < 500 && !inner; i++) {
      const kids = readFileSync(`/proc/${u.pid}/task/${u.pid}/children`, 'latin1').trim();
      inner = kids ? Number(kids.split(' ')[0]) : 0;
      if (!inner) await new Promise((r) => setTimeout(r, 5));
    }
    assert.ok(inner > 0, 'the namespaced sleep');
    for (let i = 0; i < 500 && readIdentity(inner).comm !== 'sleep'; i++)
      await new Promise((r) => setTimeout(r, 5));
    const id = readIdentity(inner);
    assert.deepEqual(id.ns_pids, [inner, 1], 'host PID, then PID 1 inside');
    assert.deepEqual([id.other_pid_ns, id.other_ipc_ns], [true, true]);
    assert.equal(id.comm, 'sleep');
  },
);

test('a fake /proc: container, NSpid, unreadable environ, namespaces by link target', () => {
  const proc = dir();
  const mk = (pid: string, files: Record<string, string>, ns: Record<string, string>) => {
    mkdirSync(join(proc, pid, 'ns'), { recursive: true });
    for (const [f, v] of Object.entries(files)) writeFileSync(join(proc, pid, f), v);
    for (const [k, v] of Object.entries(ns)) symlinkSync(v, join(proc, pid, 'ns', k));
  };
  mk('self', {}, { pid: 'pid:[4026531836]', ipc: 'ipc:[4026531839]' });
  const id = 'a3f9c2d1e4b5968778695a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d';
  mk(
    '4242',
    {
      status: 'Name:\tpython3\nUid:\t1000\t1000\t1000\t1000\nNSpid:\t4242\t7\n',
      comm: 'python3\n',
      cmdline: 'python3\0-m\0pytest\0tests/ttnn\0',
      cgroup: `0::/system.slice/docker-${id}.scope\n`,
    },
    { pid: 'pid:[4026532999]', ipc: 'ipc:[4026531839]' },
  );
  const passwd = join(proc, 'passwd');
  writeFileSync(passwd, 'root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n');
  const who = readIdentity(4242, proc, { passwd });
  assert.deepEqual(
    [who.user, who.comm, who.cmdline, who.ns_pids, who.container],
    ['alice', 'python3', 'python3 -m pytest tests/ttnn', [4242, 7], `docker:${id.slice(0, 12)}`],
  );
  assert.deepEqual([who.other_pid_ns, who.other_ipc_ns], [true, false]);
  assert.equal(who.tracking_env, null, 'no environ to read: unknown, not "off"');
  // An environ we may not read (mode 0 only stops a non-root reader; root reads it).
  writeFileSync(join(proc, '4242/environ'), 'TT_ALLOC_TRACKING_ENABLED=1\0');
  chmodSync(join(proc, '4242/environ'), 0);
  const env = readIdentity(4242, proc, { passwd }).tracking_env;
  if (root) assert.deepEqual(env, { alloc_tracking_enabled: true, shm_tracking_disabled: false });
  else assert.equal(env, null);
});

test('containers and cgroups from /proc/PID/cgroup', () => {
  const h = 'b'.repeat(64);
  const cases: [string | null, string | null][] = [
    ['0::/\n', null],
    ['12:memory:/\n0::/\n', null],
    [`0::/system.slice/docker-${h}.scope\n`, 'docker:bbbbbbbbbbbb'],
    [`11:cpu:/docker/${h}\n0::/\n`, 'docker:bbbbbbbbbbbb'],
    [`0::/system.slice/cri-containerd-${h}.scope\n`, 'containerd:bbbbbbbbbbbb'],
    [`0::/machine.slice/libpod-${h}.scope/container\n`, 'podman:bbbbbbbbbbbb'],
    [
      `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice/crio-${h}.scope`,
      'kubepods:bbbbbbbbbbbb',
    ],
    [`0::/kubepods/besteffort/pod1234-5678/${h}\n`, 'kubepods:bbbbbbbbbbbb'],
    [
      '0::/user.slice/user-1000.slice/session-3.scope\n',
      '/user.slice/user-1000.slice/session-3.scope',
    ],
    [null, null],
  ];
  for (const [raw, want] of cases) assert.equal(containerOf(raw), want, String(raw));
});

test('known non-tt-metal holders: by comm, by script, by python -m', async () => {
  // A real tt-smi stand-in: a script run by its shebang shows its file name as comm, and its
  // command line is the interpreter's.
  const bin = join(dir(), 'tt-smi');
  writeFileSync(bin, '#!/bin/sh\nwhile :; do sleep 1; done\n');
  chmodSync(bin, 0o755);
  const c = await liveProcess({ cmd: bin, args: ['-s'] });
  const id = readIdentity(c.pid!);
  assert.deepEqual([id.comm, id.cmdline], ['tt-smi', `/bin/sh ${bin} -s`]);
  assert.equal(knownHolder(id)?.name, 'tt-smi');
  assert.match(knownHolder(id)!.source, /SHM-LAYOUT/);
  const smi = knownHolder({ comm: 'tt-smi', cmdline: '/usr/bin/python3 /usr/bin/tt-smi -s' });
  assert.equal(smi?.name, 'tt-smi');
  assert.equal(
    knownHolder({ comm: 'python3', cmdline: 'python3 -m tt_flash --fw-tar x' })?.name,
    'tt-flash',
  );
  assert.equal(
    knownHolder({ comm: 'python3', cmdline: '/usr/bin/python3 /opt/venv/bin/tt-topology -l mesh' })
      ?.name,
    'tt-topology',
  );
  assert.equal(knownHolder({ comm: 'python3', cmdline: 'python3 -m pytest tests/ttnn' }), null);
  assert.equal(knownHolder({ comm: null, cmdline: null }), null);
});

// ------------------------------------------------------------------ declared chips on the wire

async function info(srv: TestServer, deviceId: number, size: FrameSize = 144) {
  const s = await rawConnect(srv.socket);
  const ib = new Inbox(s);
  await write(s, encodeFrame({ type: MsgType.DEVICE_INFO_QUERY, deviceId }, size));
  const r = decodeFrame(await ib.take(size));
  s.destroy();
  assert.equal(r.type, MsgType.DEVICE_INFO_RESPONSE);
  assert.equal(r.deviceId, deviceId);
  return r;
}
const NO_DRIVER = () => ({ TT_ALLOC_SYSFS_ROOT: dir() });

interface DevJson {
  device: number;
  card_index: number | null;
  remote: boolean | null;
  board_serial: string | null;
  asic_id: string | null;
}

test('--devices n300 declares its two chips; 4xn300 eight, remotes after the locals', async () => {
  const one = await startServer(['--devices', 'n300'], NO_DRIVER());
  try {
    assert.match(one.output(), /2 device\(s\): 2x Wormhole_B0/);
    assert.equal((await info(one, -1, 112)).numDevices, 2);
    const remote = await info(one, 1, 112);
    assert.deepEqual([remote.isAvailable, remote.arch, remote.totalDram], [1, 2, 12 * 2 ** 30]);
    const devs = (await one.client.json<{ devices: DevJson[] }>('GET', '/v1/devices')).devices;
    assert.deepEqual(
      devs.map((d) => [d.device, d.card_index, d.remote]),
      [
        [0, 0, false],
        [1, 0, true],
      ],
    );
  } finally {
    assert.equal(await one.stop(), 0);
  }
  const t3k = await startServer(['--devices', '4xn300'], NO_DRIVER());
  try {
    assert.equal((await info(t3k, -1)).numDevices, 8);
    const devs = (await t3k.client.json<{ devices: DevJson[] }>('GET', '/v1/devices')).devices;
    assert.deepEqual(
      devs.map((d) => [d.card_index, d.remote]),
      [0, 1, 2, 3, 0, 1, 2, 3].map((card, id) => [card, id >= 4]),
    );
  } finally {
    assert.equal(await t3k.stop(), 0);
  }
});

test('a T3K under the driver: eight chips with board serial and ASIC id', async () => {
  const tree = new SysfsTree(dir()).driver('2.7.0').cards(4, CARDS.n300);
  const srv = await startServer([], { TT_ALLOC_SYSFS_ROOT: tree.root });
  try {
    assert.match(srv.output(), /8 device\(s\): 8x Wormhole_B0/);
    const devs = (await srv.client.json<{ devices: DevJson[] }>('GET', '/v1/devices')).devices;
    const scan = scanDriver({ root: tree.root });
    assert.deepEqual(
      devs.map((d) => [d.device, d.card_index, d.remote, d.board_serial, d.asic_id]),
      scan.cards
        .flatMap((c) =>
          c.device_ids!.map((id, chip) => [
            id,
            c.index,
            chip === 1,
            c.board_serial,
            chip ? null : c.asic_id,
          ]),
        )
        .sort((a, b) => (a[0] as number) - (b[0] as number)),
      'the registry and the scan number chips the same way',
    );
    assert.equal(devs[4].board_serial, devs[0].board_serial, "chip 4 is card 0's remote chip");
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('DEVICE_INFO of a device nobody declared: counted, no facts, 112 and 144 bytes', async () => {
  const srv = await startServer([], NO_DRIVER());
  try {
    await srv.waitFor(/device capacities are unknown: declare the devices with --devices/);
    const s = await rawConnect(srv.socket);
    await write(
      s,
      encodeFrame({
        type: MsgType.ALLOC,
        deviceId: 0,
        size: 3 << 20,
        bufferType: BufferType.DRAM,
        pid: process.pid,
        bufferId: 0x1000,
      }),
    );
    await waitFrames(srv, 1);
    for (const size of [112, 144] as const) {
      const all = await info(srv, -1, size);
      assert.deepEqual([all.numDevices, all.isAvailable], [1, 1], `${size}: one device known`);
      const d = await info(srv, 0, size);
      assert.deepEqual(
        [d.isAvailable, d.arch, d.totalDram, d.totalL1, d.dramChannels, d.l1PerCore, d.numDevices],
        [0, 0, 0, 0, 0, 0, 1],
        `${size}: is_available 0 says "no facts", where 1 with 0 B would read as a real 0 B`,
      );
    }
    s.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
  const q = await startServer(['--devices', 'quasar'], NO_DRIVER());
  try {
    const d = await info(q, 0, 112);
    assert.deepEqual(
      [d.isAvailable, d.arch, d.totalDram],
      [0, 4, 0],
      'an architecture without capacities: its arch, no facts',
    );
  } finally {
    assert.equal(await q.stop(), 0);
  }
});

test('the driver bench prints its four rows (figures are not checked here)', () => {
  const bench = new URL('../dist/bench/driver-bench.js', import.meta.url);
  const r = spawnSync(process.execPath, [bench.pathname, '--quick'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stderr);
  for (const re of [
    /^holder lists of 4 cards .*\| +[\d.]+ µs \|$/m,
    /^full scan of 4 cards .*\| +[\d.]+ µs \|$/m,
    /^refresh of 4 cards .*\| +[\d.]+ µs \|$/m,
    /^identity of one holder .*\| +[\d.]+ µs \|$/m,
  ])
    assert.match(r.stdout, re);
});
