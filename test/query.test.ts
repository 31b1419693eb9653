// `ttalloc query` through a real server, its CSV read by Python's csv module and its NDJSON and
// JSON by Python's json module: the consumers scripts use.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { BufferType, MsgType } from '../src/protocol/constants.js';
import { rawConnect, runCli, startServer } from './helpers/server.js';
import { frames, waitFrames } from './helpers/wire.js';

/** Python reads `text` with csv.reader (or json per line) and prints it back as JSON. */
function python(text: string, how: 'csv' | 'ndjson' | 'json'): unknown {
  const prog = {
    csv:
      'import csv,json,sys; ' +
      'print(json.dumps(list(csv.reader(sys.stdin, skipinitialspace=True))))',
    ndjson: 'import json,sys; print(json.dumps([json.loads(l) for l in sys.stdin if l.strip()]))',
    json: 'import json,sys; print(json.dumps(json.load(sys.stdin)))',
  }[how];
  const r = spawnSync('python3', ['-c', prog], { input: text, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test('query: fields as CSV, NDJSON in a loop and JSON, read by Python', async () => {
  const srv = await startServer(['--devices', 'wormhole_b0', '--trust-client-pid']);
  const s = await rawConnect(srv.socket);
  const KiB = 1024;
  const list = [
    {
      type: MsgType.ALLOC,
      deviceId: 0,
      bufferType: BufferType.DRAM,
      size: 3 * 2 ** 20,
      bufferId: 1,
    },
    { type: MsgType.ALLOC, deviceId: 0, bufferType: BufferType.L1, size: 64 * KiB, bufferId: 2 },
    {
      type: MsgType.ALLOC,
      deviceId: 0,
      bufferType: BufferType.SYSTEM_MEMORY,
      size: 8 * KiB,
      bufferId: 3,
    },
    { type: MsgType.CB_ALLOC, deviceId: 0, size: 32 * KiB, bufferId: 4 },
    // device 1 was never declared: its capacity is unknown, never 0
    { type: MsgType.ALLOC, deviceId: 1, bufferType: BufferType.L1, size: KiB, bufferId: 5 },
  ].map((f) => ({ ...f, pid: process.pid }));
  s.write(frames(list));
  const cli = (...a: string[]) => runCli(['query', ...a, '--socket', srv.socket]);
  try {
    await waitFrames(srv, list.length);
    const d = await cli();
    assert.equal(d.code, 0, d.stderr);
    const rows = python(d.stdout, 'csv') as string[][];
    assert.deepEqual(rows[0], [
      'device',
      'arch',
      'dram.used [MiB]',
      'dram.total [MiB]',
      'dram.util [%]',
      'l1.resident [MiB]',
      'l1.total [MiB]',
      'l1.util [%]',
      'buffers.count',
    ]);
    assert.deepEqual(rows[1].slice(0, 4), ['0', 'Wormhole_B0', '3.00 MiB', '12288.00 MiB']);
    assert.equal(rows[1][5], '0.09 MiB', 'L1 + CB, not SYSTEM_MEMORY');
    assert.deepEqual(rows[2].slice(0, 5), ['1', '', '0.00 MiB', '', ''], 'unknown, not 0');

    const exact = await cli(
      '--format',
      'csv,noheader,nounits',
      '--units',
      'B',
      '--fields',
      'device,dram.used,l1.used,cb.used,l1.resident,system_memory.used,l1.util',
      '--device',
      '0',
    );
    assert.equal(exact.code, 0, exact.stderr);
    const util = Math.round((1e4 * 96 * KiB) / (1464 * KiB * 64)) / 100;
    assert.deepEqual(python(exact.stdout, 'csv'), [
      [
        '0',
        String(3 * 2 ** 20),
        String(64 * KiB),
        String(32 * KiB),
        String(96 * KiB),
        String(8 * KiB),
        String(util),
      ],
    ]);

    const loop = await cli(
      '--format',
      'ndjson',
      '--fields',
      'timestamp,device,l1.used',
      '-l',
      '0.05',
      '-c',
      '3',
    );
    assert.equal(loop.code, 0, loop.stderr);
    const objs = python(loop.stdout, 'ndjson') as {
      schema_version: number;
      time: string;
      time_ms: number;
      device: number;
      l1: { used: number };
    }[];
    assert.equal(objs.length, 6, 'three rounds of two devices');
    assert.deepEqual(
      objs.map((o) => [o.device, o.l1.used]),
      [0, 1, 2].flatMap(() => [
        [0, 64 * KiB],
        [1, KiB],
      ]),
    );
    assert.match(objs[0].time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(Date.parse(objs[0].time), objs[0].time_ms);
    assert.equal(objs[0].schema_version, 2, 'a record read alone says its version');
    // -l 0 turns the loop off (as the flag's error message says): one round, then exit
    const off = await cli('--format', 'ndjson', '--fields', 'device', '-l', '0');
    assert.equal(off.code, 0, off.stderr);
    assert.equal((python(off.stdout, 'ndjson') as unknown[]).length, 2, 'one round of two');

    const j = await cli('--format', 'json', '--fields', 'device,dram.total,l1.peak');
    assert.equal(j.code, 0, j.stderr);
    const doc = python(j.stdout, 'json') as {
      schema_version: number;
      devices: Record<string, unknown>[];
    };
    assert.equal(doc.schema_version, 2);
    assert.deepEqual(doc.devices, [
      { device: 0, dram: { total: 12 * 2 ** 30 }, l1: { peak: 64 * KiB } },
      { device: 1, dram: { total: null }, l1: { peak: KiB } },
    ]);

    const bad = await cli('--fields', 'device,dram.usd');
    assert.equal(bad.code, 1);
    assert.match(
      bad.stderr,
      /unknown field 'dram\.usd' \(ttalloc query --help-fields lists them\)/,
    );
    const badFormat = await cli('--format', 'csv,pretty');
    assert.equal(badFormat.code, 1);
    assert.match(badFormat.stderr, /unknown csv option 'pretty'/);
    const help = await runCli(['query', '--help-fields']);
    assert.match(help.stdout, /^l1\.util +l1\.resident over l1\.total, %$/m);
  } finally {
    s.destroy();
    await srv.stop();
  }
});
