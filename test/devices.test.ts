// Which devices the server knows, through a real server: --devices, a --device-config file with
// capacity overrides, the kernel driver's sysfs (a fake tree), and devices nobody declared.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeFrame, encodeFrame } from '../src/protocol/codec.js';
import { BufferType, MsgType } from '../src/protocol/constants.js';
import { rawConnect, runCli, startServer, tempDir, type TestServer } from './helpers/server.js';
import { Inbox, stats, waitFrames, write } from './helpers/wire.js';
import { CARDS, SysfsTree } from './helpers/sysfs-tree.js';

const KiB = 1024,
  GiB = 2 ** 30;
const dirs: string[] = [];
function dir(): string {
  const d = tempDir();
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
/** No driver for tests that declare devices, whatever the host has. */
const NO_DRIVER = () => ({ TT_ALLOC_SYSFS_ROOT: dir() });

interface DeviceJson {
  device: number;
  declared: boolean;
  source?: string;
  arch: string | null;
  arch_type?: number;
  card_type?: string | null;
  card_index?: number | null;
  remote?: boolean | null;
  board_serial?: string | null;
  asic_id?: string | null;
  dram_channels?: number;
  dram_per_channel?: number;
  l1_per_core?: number;
  total_dram_bytes?: number;
  total_l1_bytes?: number;
}

async function info(srv: TestServer, deviceId: number) {
  const s = await rawConnect(srv.socket);
  const ib = new Inbox(s);
  await write(s, encodeFrame({ type: MsgType.DEVICE_INFO_QUERY, deviceId }));
  const r = decodeFrame(await ib.take(144));
  s.destroy();
  assert.equal(r.type, MsgType.DEVICE_INFO_RESPONSE);
  assert.equal(r.deviceId, deviceId);
  return r;
}

test("--devices declares devices with the architecture table's capacities", async () => {
  const srv = await startServer(['--devices', '2xwormhole_b0,p150'], NO_DRIVER());
  try {
    assert.match(srv.output(), /3 device\(s\): 2x Wormhole_B0, 1x Blackhole/);
    const all = await info(srv, -1);
    assert.deepEqual([all.numDevices, all.isAvailable], [3, 1]);
    const wh = await info(srv, 1);
    assert.deepEqual(
      [
        wh.isAvailable,
        wh.arch,
        wh.dramChannels,
        wh.dramPerChannel,
        wh.l1PerCore,
        wh.totalDram,
        wh.totalL1,
      ],
      [1, 2, 12, GiB, 1464 * KiB, 12 * GiB, 1464 * KiB * 64],
    );
    const bh = await info(srv, 2);
    // 4 GiB per channel does not fit the 32-bit wire field: it saturates, the 64-bit total is
    // exact.
    assert.deepEqual(
      [bh.arch, bh.dramChannels, bh.dramPerChannel, bh.l1PerCore, bh.totalDram],
      [3, 8, 0xffffffff, 1536 * KiB, 32 * GiB],
    );
    const none = await info(srv, 7);
    assert.deepEqual(
      [none.isAvailable, none.arch, none.totalDram],
      [0, 0, 0],
      'an unknown device is not available',
    );
    const devs = (await srv.client.json<{ devices: DeviceJson[] }>('GET', '/v1/devices')).devices;
    assert.deepEqual(
      devs.map((d) => [d.device, d.arch, d.source]),
      [
        [0, 'Wormhole_B0', 'declared'],
        [1, 'Wormhole_B0', 'declared'],
        [2, 'Blackhole', 'declared'],
      ],
    );
    const st = await runCli(['stats', '--socket', srv.socket]);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /device 2 \[Blackhole\]: DRAM 0 B \/ 32\.0 GiB/);
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('--device-config: devices by card type and id, with capacity overrides', async () => {
  const d = dir();
  const cfg = join(d, 'devices.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      devices: ['n300', { id: 3, arch: 'p150', dramChannels: 7 }],
      arch: { wormhole_b0: { l1PerCore: 1024 * KiB } },
    }),
  );
  const srv = await startServer(['--device-config', cfg], NO_DRIVER());
  try {
    const all = await info(srv, -1);
    assert.equal(all.numDevices, 3, 'an n300 is two chips, and the p150');
    const wh = await info(srv, 0);
    assert.deepEqual(
      [wh.arch, wh.l1PerCore, wh.totalL1, wh.totalDram],
      [2, 1024 * KiB, 1024 * KiB * 64, 12 * GiB],
      'the override of a capacity',
    );
    const bh = await info(srv, 3);
    assert.deepEqual(
      [bh.arch, bh.dramChannels, bh.totalDram, bh.l1PerCore],
      [3, 7, 28 * GiB, 1536 * KiB],
    );
    // The n300's remote chip comes after the local chips, at its position (2); id 1 is nobody.
    assert.equal((await info(srv, 1)).isAvailable, 0);
    const devs = (await srv.client.json<{ devices: DeviceJson[] }>('GET', '/v1/devices')).devices;
    assert.deepEqual(
      devs.map((x) => [x.device, x.source, x.total_l1_bytes, x.card_type, x.remote]),
      [
        [0, 'config', 1024 * KiB * 64, 'n300', false],
        [2, 'config', 1024 * KiB * 64, 'n300', true],
        [3, 'config', 1536 * KiB * 140, 'p150', false],
      ],
    );
  } finally {
    assert.equal(await srv.stop(), 0);
  }
  writeFileSync(cfg, JSON.stringify({ devices: ['n300', { arch: 'gpu9000' }] }));
  const bad = await runCli(['server', '--socket', join(d, 'x.sock'), '--device-config', cfg]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /unknown arch 'gpu9000'/);
  for (const [devices, arch, re] of [
    [[{ id: 5000, arch: 'n150' }], {}, /device id 5000 is not an integer from 0 to 1023/],
    [['n150', { id: 0, arch: 'n300' }], {}, /device id 0 is declared twice/],
    [['n150', 'galaxy'], {}, /cannot declare 'galaxy': how many tt-metal devices it is/],
    [
      ['n150'],
      { wormhole_b0: { dramChannels: 'twelve' } },
      /wormhole_b0: dramChannels must be a whole number/,
    ],
  ] as [unknown[], object, RegExp][]) {
    writeFileSync(cfg, JSON.stringify({ devices, arch }));
    const r = await runCli(['server', '--socket', join(d, 'x.sock'), '--device-config', cfg]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, re);
  }
  writeFileSync(cfg, '{ not json');
  const bad2 = await runCli(['server', '--socket', join(d, 'x.sock'), '--device-config', cfg]);
  assert.equal(bad2.code, 1);
  assert.match(bad2.stderr, /cannot read device config .*devices\.json/);
});

test('sysfs driver discovery (TT_ALLOC_SYSFS_ROOT), config overrides applied to it', async () => {
  const tree = new SysfsTree(dir()).card(0, CARDS.n300).card(1, CARDS.p150);
  const root = tree.root;
  const srv = await startServer([], { TT_ALLOC_SYSFS_ROOT: root });
  try {
    assert.match(srv.output(), /3 device\(s\)/);
    const devs = (await srv.client.json<{ devices: DeviceJson[] }>('GET', '/v1/devices')).devices;
    // Chips, not cards: the n300's local chip, the p150, then the n300's remote chip.
    assert.deepEqual(
      devs.map((x) => [x.device, x.source, x.card_type, x.arch, x.card_index, x.remote]),
      [
        [0, 'driver', 'n300', 'Wormhole_B0', 0, false],
        [1, 'driver', 'p150a', 'Blackhole', 1, false],
        [2, 'driver', 'n300', 'Wormhole_B0', 0, true],
      ],
    );
    assert.deepEqual(
      devs.map((x) => [x.board_serial, x.asic_id]),
      [
        [CARDS.n300.serial, CARDS.n300.asicId],
        [CARDS.p150.serial, CARDS.p150.asicId],
        [CARDS.n300.serial, null],
      ],
      'the board serial on both chips, the ASIC id on the local one only',
    );
    assert.equal((await info(srv, -1)).numDevices, 3);
    assert.deepEqual(
      [(await info(srv, 0)).arch, (await info(srv, 1)).arch, (await info(srv, 2)).arch],
      [2, 3, 2],
    );
  } finally {
    assert.equal(await srv.stop(), 0);
  }

  // An arch-only config file overrides capacities of discovered devices; --devices beats the
  // driver.
  const cfg = join(root, 'arch.json');
  writeFileSync(cfg, JSON.stringify({ arch: { wormhole_b0: { dramChannels: 6 } } }));
  const o = await startServer(['--device-config', cfg], { TT_ALLOC_SYSFS_ROOT: root });
  try {
    const wh = await info(o, 2);
    assert.deepEqual([wh.arch, wh.dramChannels, wh.totalDram], [2, 6, 6 * GiB]);
    assert.equal((await info(o, -1)).numDevices, 3);
  } finally {
    assert.equal(await o.stop(), 0);
  }
  const decl = await startServer(['--devices', 'blackhole'], { TT_ALLOC_SYSFS_ROOT: root });
  try {
    assert.equal((await info(decl, -1)).numDevices, 1);
    assert.equal((await info(decl, 0)).arch, 3);
  } finally {
    assert.equal(await decl.stop(), 0);
  }
});

test('a card whose chips no source gives: nothing declared from the driver, said why', async () => {
  const tree = new SysfsTree(dir()).card(0, CARDS.n150).card(1, { type: 'e150' }).card(2);
  const srv = await startServer([], { TT_ALLOC_SYSFS_ROOT: tree.root });
  try {
    await srv.waitFor(/so no device is declared from the driver/);
    const out = srv.output();
    assert.match(out, /no devices declared/);
    assert.match(out, /card 1 \(e150\): e150: how many tt-metal devices it is is not in/);
    assert.match(out, /card 2 \(type not reported\): card type not reported/);
    assert.match(out, /so no device is declared from the driver/);
    assert.doesNotMatch(out, /card 0/, 'the n150 is known');
    assert.equal((await info(srv, -1)).numDevices, 0);
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('an undeclared device that reports appears in stats, dump and DEVICE_INFO', async () => {
  const srv = await startServer(['--devices', 'n150'], NO_DRIVER());
  try {
    const s = await rawConnect(srv.socket);
    await write(
      s,
      encodeFrame({
        type: MsgType.ALLOC,
        deviceId: 5,
        size: 12288,
        bufferType: BufferType.DRAM,
        pid: process.pid,
        bufferId: 0x40000000,
      }),
    );
    const st = await waitFrames(srv, 1);
    assert.deepEqual(
      st.devices.map((d) => [d.device, d.declared, d.arch, d.bytes.DRAM]),
      [
        [0, true, 'Wormhole_B0', 0],
        [5, false, null, 12288],
      ],
    );
    assert.equal((await stats(srv)).devices.length, 2);
    const all = await info(srv, -1);
    assert.equal(all.numDevices, 2);
    const five = await info(srv, 5);
    assert.deepEqual(
      [five.isAvailable, five.arch, five.totalDram, five.totalL1, five.numDevices],
      [0, 0, 0, 0, 2],
      'counted, but capacity unknown: no facts rather than a real-looking 0 B',
    );
    const dump = await runCli(['dump', '--socket', srv.socket]);
    assert.match(
      dump.stdout,
      new RegExp(
        `Device 5:\\n  DRAM: 1 buffer, 0\\.012288 MB total\\n    - Buffer 0x40000000: ` +
          `12\\.0 KB \\(PID ${process.pid}, ref_count=1\\)`,
      ),
    );
    const devs = (await srv.client.json<{ devices: DeviceJson[] }>('GET', '/v1/devices')).devices;
    assert.deepEqual(
      devs.map((x) => [x.device, x.declared]),
      [
        [0, true],
        [5, false],
      ],
    );
    s.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('TT_ALLOC_DEVICES declares devices from the environment', async () => {
  const srv = await startServer([], {
    TT_ALLOC_DEVICES: '8xwormhole_b0',
    TT_ALLOC_SYSFS_ROOT: dir(),
  });
  try {
    assert.equal((await info(srv, -1)).numDevices, 8);
    assert.equal((await info(srv, 7)).arch, 2);
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('no devices: DEVICE_INFO_QUERY(-1) says 0, not available, in every reply size', async () => {
  const srv = await startServer([], NO_DRIVER());
  try {
    assert.match(srv.output(), /no devices declared/);
    await srv.waitFor(
      /device capacities are unknown: declare the devices with --devices \(cards or chips: n300/,
    );
    const all = await info(srv, -1);
    assert.deepEqual([all.numDevices, all.isAvailable], [0, 0]);
    const s = await rawConnect(srv.socket);
    const ib = new Inbox(s);
    await write(s, encodeFrame({ type: MsgType.DEVICE_INFO_QUERY, deviceId: -1 }, 112));
    const r = decodeFrame(await ib.take(112));
    assert.deepEqual(
      [r.type, r.deviceId, r.numDevices, r.isAvailable],
      [MsgType.DEVICE_INFO_RESPONSE, -1, 0, 0],
    );
    s.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});
