// The memory map: buffers and CBs placed on one bank's address space, against a brute-force model
// of which bytes are held; and the out-of-memory-with-free-space case through a real server and
// `ttalloc map`, with two processes, a CB over an L1 buffer, and a device nobody declared.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Tracker } from '../src/state/tracker.js';
import { applyEvent, StateEvent } from '../src/state/events.js';
import { BufferType, MsgType } from '../src/protocol/constants.js';
import { lookupArch } from '../src/devices/arch.js';
import { buildMemoryMap } from '../src/report/memory-map.js';
import { rawConnect, runCli, startServer } from './helpers/server.js';
import { frames, waitFrames } from './helpers/wire.js';
import type { MemoryMapResponse } from '../src/report/types.js';

function alloc(tr: Tracker, o: { code?: number; type?: number; addr: number; size: number }) {
  const ev = new StateEvent();
  ev.code = o.code ?? MsgType.ALLOC;
  ev.sub = o.type ?? BufferType.L1;
  ev.device = 0;
  ev.owner = 77;
  ev.lo = o.addr;
  ev.hi = 0;
  ev.sizeLo = o.size;
  ev.sizeHi = 0;
  ev.bornMs = tr.stampOf(0);
  applyEvent(tr, ev, null);
}

test('held bytes, gaps and overlaps equal a byte-by-byte model of one bank', () => {
  const BANK = 4096; // a tiny architecture: 4 banks of 4 KiB
  const arch = { ...lookupArch('wormhole_b0')!, workerCores: 4, l1PerCore: BANK };
  const objArb = fc.record({
    cb: fc.boolean(),
    addr: fc.nat(BANK - 1),
    perBank: fc.integer({ min: 1, max: 600 }),
  });
  fc.assert(
    fc.property(
      fc.uniqueArray(objArb, { selector: (o) => `${o.cb}:${o.addr}`, maxLength: 40 }),
      (objs) => {
        const tr = new Tracker(64);
        const held = new Uint8Array(BANK * 2);
        for (const o of objs) {
          // a CB takes its size at its address; an interleaved buffer size / banks
          const size = o.cb ? o.perBank : o.perBank * 4;
          alloc(tr, { code: o.cb ? MsgType.CB_ALLOC : MsgType.ALLOC, addr: o.addr, size });
          for (let a = o.addr; a < o.addr + o.perBank; a++) held[a]++;
        }
        const m = buildMemoryMap(tr, { device: 0, space: 'L1', arch, bins: 64 });
        const end = Math.max(BANK, ...objs.map((o) => o.addr + o.perBank));
        assert.equal(m.range.end, end);
        const used = held.slice(0, end).filter((h) => h > 0).length;
        assert.equal(m.used_per_bank_bytes, used);
        assert.equal(m.overlap.per_bank_bytes, held.slice(0, end).filter((h) => h > 1).length);
        // objects that start inside one before them (touching is not overlapping)
        const byStart = objs.map((o) => [o.addr, o.addr + o.perBank]).sort((a, b) => a[0] - b[0]);
        const inside = byStart.filter(([a], k) => byStart.slice(0, k).some(([, e]) => e > a));
        assert.equal(m.overlap.objects, inside.length);
        // gaps: the runs of unheld bytes
        const gaps: number[] = [];
        for (let a = 0, run = 0; a <= end; a++) {
          if (a < end && held[a] === 0) run++;
          else if (run > 0) {
            gaps.push(run);
            run = 0;
          }
        }
        assert.equal(m.gap_count, gaps.length);
        assert.deepEqual(
          m.gaps.map((g) => g.size),
          gaps.sort((a, b) => b - a).slice(0, 10),
        );
        assert.equal(m.largest_free?.interleaved_bytes, gaps.length ? gaps[0] * 4 : undefined);
        assert.ok(
          Math.abs(m.bins.reduce((n, b) => n + b.used, 0) * (end / 64) - used) < 1e-6 * end,
          'the bins add up to the held bytes',
        );
      },
    ),
    { numRuns: 300 },
  );
});

test('ttalloc map: an L1 out-of-memory with ~400 KiB free, explained', async () => {
  const srv = await startServer(['--devices', 'wormhole_b0', '--trust-client-pid']);
  const s = await rawConnect(srv.socket);
  const KiB = 1024;
  const banks = 64; // wormhole_b0: one L1 bank per worker core, 8 × 8
  const list: Parameters<typeof frames>[0] = [];
  // 40 interleaved buffers of 25 KiB per bank, 10 KiB apart: 400 KiB free in gaps, per bank.
  for (let i = 0; i < 40; i++)
    list.push({
      type: MsgType.ALLOC,
      deviceId: 0,
      size: 25 * KiB * banks,
      bufferType: BufferType.L1,
      pid: i < 20 ? 1001 : 1002,
      bufferId: i * 35 * KiB,
    });
  // A CB of a third process over the first buffer: the clash shows as overlap.
  list.push({ type: MsgType.CB_ALLOC, deviceId: 0, size: 8 * KiB, pid: 1003, bufferId: 0 });
  // Device 5 was never declared: no bank model, said so.
  list.push({
    type: MsgType.ALLOC,
    deviceId: 5,
    size: 4096,
    bufferType: 1,
    pid: 1001,
    bufferId: 0x100,
  });
  s.write(frames(list));
  try {
    await waitFrames(srv, list.length);
    const cli = (...a: string[]) => runCli(['map', ...a, '--socket', srv.socket]);
    const j = await cli('--device', '0', '--type', 'L1', '--json', '--width', '70');
    assert.equal(j.code, 0, j.stderr);
    const m = JSON.parse(j.stdout) as MemoryMapResponse;
    assert.equal(m.model.banks, banks);
    assert.equal(m.model.bank_bytes, 1464 * KiB);
    assert.equal(m.objects, 41);
    assert.equal(m.used_per_bank_bytes, 40 * 25 * KiB);
    // 39 gaps of 10 KiB between the buffers, then the rest of the bank above the last one
    const top = 1464 * KiB - (39 * 35 + 25) * KiB;
    assert.equal(m.gap_count, 40);
    assert.deepEqual(m.largest_free, {
      start: (39 * 35 + 25) * KiB,
      size: top,
      interleaved_bytes: top * banks,
    });
    assert.deepEqual(m.overlap, { per_bank_bytes: 8 * KiB, objects: 1 });
    assert.deepEqual(
      m.owners.map((o) => o.pid),
      [1001, 1002, 1003],
    );
    assert.equal(m.bins.length, 70);

    const t = await cli('--device', '0', '--width', '70');
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, /^Device 0 L1 \(Wormhole_B0\): 64 banks × 1\.43 MiB\n {2}estimate: /);
    const bar = t.stdout.split('\n').find((l) => l.startsWith('  |'))!;
    assert.equal(bar.length, 2 + 70 + 2);
    assert.match(t.stdout, /free 464 KiB in 40 gaps/);
    assert.match(t.stdout, /overlap: 8\.00 KiB per bank held by more than one object/);
    assert.match(t.stdout, /A PID 1001.*\n {4}B PID 1002.*\n {4}C PID 1003/);
    const owners = t.stdout.split('\n').filter((l) => l.startsWith('  |'))[1];
    assert.match(owners, /^ {2}\|A+B+ +\|$/, 'the first half is A, the second B, then free');

    const u = await cli('--device', '5', '--type', 'dram');
    assert.equal(u.code, 0, u.stderr);
    assert.match(u.stdout, /Device 5 DRAM \(arch unknown\): size unknown\n {2}capacity unknown/);
    assert.match(u.stdout, /nothing allocated in DRAM/);
    const bad = await cli('--type', 'SRAM');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /memory must be L1 or DRAM/);
  } finally {
    s.destroy();
    await srv.stop();
  }
});
