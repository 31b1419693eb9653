// The dump report through a real server and the real CLI: the seed's text layout byte for byte,
// limits, --all, filters, the empty server, and the JSON form (including a streamed 50k listing).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferType, MsgType } from '../src/protocol/constants.js';
import type { FrameFields } from '../src/protocol/codec.js';
import { rawConnect, runCli, startServer, type TestServer } from './helpers/server.js';
import { frames, waitFrames, write } from './helpers/wire.js';

const P = process.pid;
const Q = process.ppid; // a second live PID (the test runner)
const TITLE = [
  '╔══════════════════════════════════════════════════════════════╗',
  '║           REMAINING ALLOCATED BUFFERS                       ║',
  '╚══════════════════════════════════════════════════════════════╝',
  '',
].join('\n');

const alloc = (
  deviceId: number,
  bufferType: number,
  bufferId: number | bigint,
  size: number,
): FrameFields => ({ type: MsgType.ALLOC, deviceId, bufferType, bufferId, size, pid: P });
/** The same ALLOC, reported for another PID. */
const allocFor = (pid: number, f: FrameFields): FrameFields => ({ ...f, pid });

async function load(srv: TestServer, list: FrameFields[]): Promise<void> {
  const s = await rawConnect(srv.socket);
  await write(s, frames(list));
  await waitFrames(srv, list.length);
  s.destroy();
}

async function dump(srv: TestServer, ...args: string[]): Promise<string> {
  const r = await runCli(['dump', '--socket', srv.socket, ...args]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  return r.stdout;
}

// The seed's example situation: device 0 holds a 12 KiB and a 24 KiB DRAM buffer (program cache)
// and five L1 buffers totalling 5.79 MB; device 1 the same DRAM pair and three L1 buffers, 6.70 MB.
const SEED: FrameFields[] = [
  alloc(0, BufferType.DRAM, 0x40000000, 12288),
  alloc(0, BufferType.DRAM, 0x40003000, 24576),
  alloc(0, BufferType.L1, 0x10000, 1048576),
  alloc(0, BufferType.L1, 0x20000, 2097152),
  alloc(0, BufferType.L1, 0x30000, 286720),
  alloc(0, BufferType.L1, 0x40000, 1572864),
  alloc(0, BufferType.L1, 0x50000, 786432),
  alloc(1, BufferType.DRAM, 0x40000000, 12288),
  alloc(1, BufferType.DRAM, 0x40003000, 24576),
  alloc(1, BufferType.L1, 0x10000, 3145728),
  alloc(1, BufferType.L1, 0x20000, 1458176),
  alloc(1, BufferType.L1, 0x30000, 2097152),
];

const SEED_TEXT = `${TITLE}
Device 0:
  DRAM: 2 buffers, 0.036864 MB total
    - Buffer 0x40003000: 24.0 KB (PID ${P}, ref_count=1)
    - Buffer 0x40000000: 12.0 KB (PID ${P}, ref_count=1)
  L1: 5 buffers, 5.79 MB total
    - Buffer 0x20000: 2048.0 KB (PID ${P}, ref_count=1)
    - Buffer 0x40000: 1536.0 KB (PID ${P}, ref_count=1)
    - Buffer 0x10000: 1024.0 KB (PID ${P}, ref_count=1)
    - Buffer 0x50000: 768.0 KB (PID ${P}, ref_count=1)
    - Buffer 0x30000: 280.0 KB (PID ${P}, ref_count=1)

Device 1:
  DRAM: 2 buffers, 0.036864 MB total
    - Buffer 0x40003000: 24.0 KB (PID ${P}, ref_count=1)
    - Buffer 0x40000000: 12.0 KB (PID ${P}, ref_count=1)
  L1: 3 buffers, 6.70 MB total
    - Buffer 0x10000: 3072.0 KB (PID ${P}, ref_count=1)
    - Buffer 0x30000: 2048.0 KB (PID ${P}, ref_count=1)
    - Buffer 0x20000: 1424.0 KB (PID ${P}, ref_count=1)

Total remaining buffers: 12
`;

test('the seed example, byte for byte, in the requesting terminal and on the server', async () => {
  const srv = await startServer();
  try {
    await load(srv, SEED);
    const out = await dump(srv);
    assert.equal(out, SEED_TEXT);
    await srv.waitFor('Total remaining buffers: 12');
    assert.ok(srv.output().includes(SEED_TEXT), `server stdout:\n${srv.output()}`);
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('empty server, limits, --all, and filters by device, PID and type', async () => {
  // --trust-client-pid: PID Q's buffers are reported over this process's connection.
  const srv = await startServer(['--trust-client-pid']);
  try {
    assert.equal(
      await dump(srv),
      `${TITLE}\nNo buffers remaining: every tracked allocation has been freed.\n\n` +
        'Total remaining buffers: 0\n',
    );

    // 13 DRAM buffers of distinct sizes on device 2 (PID P), one L1 and one TRACE of PID Q on
    // device 3.
    const many = Array.from({ length: 13 }, (_, i) =>
      alloc(2, BufferType.DRAM, 0x1000 * (i + 1), 1024 * (i + 1)),
    );
    await load(srv, [
      ...many,
      allocFor(Q, alloc(3, BufferType.L1, 0xaa, 2048)),
      allocFor(Q, alloc(3, BufferType.TRACE, 0xbb, 4096)),
    ]);
    const line = (i: number) =>
      `    - Buffer 0x${(0x1000 * i).toString(16)}: ${i}.0 KB (PID ${P}, ref_count=1)`;
    const desc = (n: number) => Array.from({ length: n }, (_, k) => line(13 - k)).join('\n');
    const trace3 =
      '  TRACE: 1 buffer, 0.004096 MB total\n' +
      `    - Buffer 0xbb: 4.0 KB (PID ${Q}, ref_count=1)\n`;
    const dev3 =
      'Device 3:\n  L1: 1 buffer, 0.002048 MB total\n' +
      `    - Buffer 0xaa: 2.0 KB (PID ${Q}, ref_count=1)\n${trace3}`;
    const total15 = 'Total remaining buffers: 15\n';
    const dev2 = (listing: string) =>
      `Device 2:\n  DRAM: 13 buffers, 0.093184 MB total\n${listing}\n`;

    assert.equal(
      await dump(srv),
      `${TITLE}\n${dev2(`${desc(10)}\n    ... and 3 more`)}\n${dev3}\n${total15}`,
    );
    assert.equal(
      await dump(srv, '--all'),
      `${TITLE}\n${dev2(desc(13))}\n${dev3}\nTotal remaining buffers: 15\n`,
    );
    assert.equal(
      await dump(srv, '--limit', '2'),
      `${TITLE}\n${dev2(`${desc(2)}\n    ... and 11 more`)}\n${dev3}\n${total15}`,
    );
    assert.equal(
      await dump(srv, '--device', '3'),
      `${TITLE}\n${dev3}\nTotal remaining buffers: 2\n`,
    );
    assert.equal(
      await dump(srv, '--pid', String(Q)),
      `${TITLE}\n${dev3}\nTotal remaining buffers: 2\n`,
    );
    assert.equal(
      await dump(srv, '--pid', String(P), '--limit', '1'),
      `${TITLE}\n${dev2(`${desc(1)}\n    ... and 12 more`)}\nTotal remaining buffers: 13\n`,
    );
    assert.equal(
      await dump(srv, '--type', 'TRACE'),
      `${TITLE}\nDevice 3:\n${trace3}\nTotal remaining buffers: 1\n`,
    );
    assert.equal(
      await dump(srv, '--type', 'l1,trace', '--device', '2'),
      `${TITLE}\nNo buffers remaining that match the filter.\n\nTotal remaining buffers: 0\n`,
    );

    // The seed's command name is the same command.
    const alias = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      void import('node:child_process').then(({ execFile }) =>
        execFile(
          process.execPath,
          [
            new URL('../dist/cli/dump-remaining-buffers.js', import.meta.url).pathname,
            '--socket',
            srv.socket,
            '--device',
            '3',
          ],
          (err, stdout) => resolve({ code: err ? (err.code as number) : 0, stdout }),
        ),
      );
    });
    assert.equal(alias.code, 0);
    assert.equal(alias.stdout, `${TITLE}\n${dev3}\nTotal remaining buffers: 2\n`);

    const bad = await runCli(['dump', '--socket', srv.socket, '--type', 'VRAM']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /unknown buffer type 'VRAM'/);
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

interface JsonReport {
  schema_version: number;
  kind: string;
  total_buffers: number;
  total_bytes: number;
  listed_per_type: number | 'all';
  devices: {
    device: number;
    count: number;
    bytes: number;
    types: {
      type: string;
      count: number;
      bytes: number;
      more: number;
      buffers: {
        device: number;
        address: string;
        size: number;
        type: string;
        pid: number;
        ref_count: number;
      }[];
    }[];
  }[];
  buffers?: {
    device: number;
    address: string;
    size: number;
    type: string;
    pid: number;
    ref_count: number;
  }[];
}

test('dump --json: schema_version, exact integer bytes, 64-bit hex addresses', async () => {
  const srv = await startServer();
  try {
    const big = 5 * 2 ** 30 + 7; // above 32 bits, exact
    await load(srv, [
      ...SEED,
      alloc(0, BufferType.DRAM, 0xfedcba9876543210n, big),
      alloc(0, BufferType.DRAM, 0x40000000, 12288),
    ]);
    const j = JSON.parse(await dump(srv, '--json')) as JsonReport;
    assert.equal(j.schema_version, 2);
    assert.equal(j.total_buffers, 13);
    assert.equal(j.total_bytes, SEED.reduce((a, f) => a + f.size!, 0) + big);
    assert.equal(j.listed_per_type, 10);
    const d0 = j.devices[0];
    assert.equal(d0.device, 0);
    const dram = d0.types.find((t) => t.type === 'DRAM')!;
    assert.equal(dram.count, 3);
    assert.equal(dram.bytes, big + 12288 + 24576);
    assert.deepEqual(
      dram.buffers.map((b) => [b.address, b.size, b.pid, b.ref_count]),
      [
        ['0xfedcba9876543210', big, P, 1],
        ['0x40003000', 24576, P, 1],
        ['0x40000000', 12288, P, 2],
      ],
    );
    assert.deepEqual(
      j.devices.map((d) => [d.device, d.count]),
      [
        [0, 8],
        [1, 5],
      ],
    );
    const filtered = JSON.parse(
      await dump(srv, '--json', '--device', '1', '--type', 'L1'),
    ) as JsonReport;
    assert.equal(filtered.total_buffers, 3);
    assert.equal(filtered.total_bytes, 6701056);
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('dump --json --all streams 50k buffers as one valid JSON document', async () => {
  const srv = await startServer();
  try {
    const N = 50000;
    const list = Array.from({ length: N }, (_, i) =>
      alloc(i % 4, i % 2 ? BufferType.L1 : BufferType.DRAM, 0x100000000 + i * 64, 64 + (i % 1000)),
    );
    await load(srv, list);
    const j = JSON.parse(await dump(srv, '--json', '--all')) as JsonReport;
    assert.equal(j.total_buffers, N);
    assert.equal(j.listed_per_type, 'all');
    assert.equal(j.buffers!.length, N);
    const addrs = new Set(j.buffers!.map((b) => b.address));
    assert.equal(addrs.size, N);
    assert.ok(
      addrs.has('0x100000000') && addrs.has(`0x${(0x100000000 + (N - 1) * 64).toString(16)}`),
    );
    assert.equal(
      j.buffers!.reduce((a, b) => a + b.size, 0),
      list.reduce((a, f) => a + f.size!, 0),
    );
    // The server's terminal got the bounded listing, not 50k lines.
    await srv.waitFor(`Total remaining buffers: ${N}`);
    assert.ok(srv.output().split('\n').length < 500);
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});
