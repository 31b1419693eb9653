// Peak device memory: the tracker's high-water marks against a model that keeps every level
// ever reached, and `ttalloc peaks` / `reset-peaks`, /metrics and the chart samples through a
// real server with a buffer that lives between two samples only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Tracker, KINDS } from '../src/state/tracker.js';
import { Checkpoints } from '../src/state/marks.js';
import { applyEvent, StateEvent } from '../src/state/events.js';
import { MsgType } from '../src/protocol/constants.js';
import { runCli, startServer } from './helpers/server.js';
import { frames, waitFrames } from './helpers/wire.js';
import { rawConnect } from './helpers/server.js';
import type { HistoryResponse, PeaksResponse } from '../src/report/types.js';

const DEVICES = 2;
const SLOTS = DEVICES * KINDS;

type Op =
  | { op: 'alloc'; device: number; type: number; id: number; size: number }
  | { op: 'free'; device: number; id: number }
  | { op: 'mark' | 'unmark'; name: string }
  | { op: 'reset' | 'sample' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant('alloc' as const),
      device: fc.nat(DEVICES - 1),
      type: fc.nat(4),
      id: fc.nat(3),
      size: fc.integer({ min: 1, max: 1 << 20 }),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('free' as const),
      device: fc.nat(DEVICES - 1),
      id: fc.nat(3),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constantFrom('mark' as const, 'unmark' as const),
      name: fc.constantFrom('a', 'b', 'c', 'd'),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constantFrom('reset' as const, 'sample' as const) }) },
);

const OWNER = 4242;

function apply(tr: Tracker, o: Op & { op: 'alloc' | 'free' }): void {
  const ev = new StateEvent();
  ev.code = o.op === 'alloc' ? MsgType.ALLOC : MsgType.FREE;
  ev.sub = o.op === 'alloc' ? o.type : 0;
  ev.device = o.device;
  ev.owner = OWNER;
  ev.lo = 0x1000 * (o.id + 1);
  ev.hi = 0;
  ev.sizeLo = o.op === 'alloc' ? o.size : 0;
  ev.sizeHi = 0;
  ev.bornMs = tr.stampOf(0);
  applyEvent(tr, ev, null);
}

const maxOver = (levels: Float64Array[], from: number): number[] =>
  Array.from({ length: SLOTS }, (_, k) => Math.max(...levels.slice(from).map((l) => l[k])));

test('peaks equal the maximum over every level reached: overall, per interval, since marks', () => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 120 }), (ops) => {
      const tr = new Tracker(16);
      const marks = new Checkpoints(tr);
      tr.seeDevice(DEVICES - 1);
      // Every level the counters took, and where each peak's window starts in that history.
      const levels: Float64Array[] = [tr.devBytes.slice(0, SLOTS)];
      let resetAt = 0,
        sampleAt = 0;
      const markAt = new Map<string, number>();
      for (const o of ops) {
        if (o.op === 'alloc' || o.op === 'free') apply(tr, o);
        levels.push(tr.devBytes.slice(0, SLOTS));
        const now = levels.length - 1;
        if (o.op === 'mark') {
          marks.mark(o.name);
          markAt.set(o.name, now);
        } else if (o.op === 'unmark' && markAt.delete(o.name)) marks.delete(o.name);
        else if (o.op === 'reset') {
          tr.peaks.reset(Date.now());
          resetAt = now;
        } else if (o.op === 'sample') {
          tr.peaks.endInterval();
          sampleAt = now;
        }
        const overall = Array.from({ length: SLOTS }, (_, k) => tr.peaks.overallPeak(k));
        assert.deepEqual(overall, maxOver(levels, resetAt), 'overall');
        const interval = Array.from({ length: SLOTS }, (_, k) => tr.peaks.intervalPeak(k));
        assert.deepEqual(interval, maxOver(levels, sampleAt), 'interval');
        for (const [name, at] of markAt) {
          const since = tr.peaks.since(marks.get(name).cutMs);
          assert.deepEqual(Array.from(since.peaks.slice(0, SLOTS)), maxOver(levels, at), name);
          assert.equal(since.complete, true);
        }
      }
    }),
    {
      numRuns: 500,
      // A burst between two marks, then the later mark deleted: the earlier one still sees it.
      examples: [
        [
          [
            { op: 'mark', name: 'a' },
            { op: 'mark', name: 'b' },
            { op: 'alloc', device: 0, type: 1, id: 0, size: 1000 },
            { op: 'free', device: 0, id: 0 },
            { op: 'mark', name: 'c' },
            { op: 'unmark', name: 'b' },
          ],
        ],
      ],
    },
  );
});

test('peaks, --since, reset-peaks, /metrics and chart samples via a real server', async () => {
  const srv = await startServer(['--sample-interval', '0.2']);
  const s = await rawConnect(srv.socket);
  const MiB = 1 << 20;
  const alloc = (id: number, size: number) => ({
    type: MsgType.ALLOC,
    deviceId: 1,
    size,
    bufferType: 1,
    pid: process.pid,
    bufferId: id,
  });
  const free = (id: number) => ({
    type: MsgType.FREE,
    deviceId: 1,
    pid: process.pid,
    bufferId: id,
  });
  let sent = 0;
  const send = async (list: Parameters<typeof frames>[0]) => {
    s.write(frames(list));
    sent += list.length;
    await waitFrames(srv, sent);
  };
  const cli = (...a: string[]) => runCli([...a, '--socket', srv.socket]);
  const peaks = async (...a: string[]) => {
    const r = await cli('peaks', '--json', ...a);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as PeaksResponse).devices.find((d) => d.device === 1)!;
  };
  try {
    // 3 MiB for a moment (one batch: no sample can see it as a level), then 1 MiB stays.
    await send([alloc(0x100, MiB), alloc(0x200, 2 * MiB), free(0x200)]);
    let d = await peaks();
    assert.equal(d.bytes.L1, MiB);
    assert.equal(d.peak_bytes.L1, 3 * MiB);
    const text = await cli('peaks');
    assert.match(text.stdout, /^Peak device memory since /);
    assert.match(text.stdout, /Device 1\n.*\n {2}L1 +1\.00 MiB +3\.00 MiB\n/);

    assert.equal((await cli('mark', 'm')).code, 0);
    await send([alloc(0x300, 512 * 1024), free(0x300)]);
    d = await peaks('--since', 'm');
    assert.equal(d.peak_bytes.L1, MiB + 512 * 1024, 'since the mark: its level plus the burst');
    assert.equal((await peaks()).peak_bytes.L1, 3 * MiB, 'overall still holds the first burst');

    const metrics = await srv.client.text('GET', '/metrics');
    assert.match(
      metrics,
      /ttalloc_device_peak_bytes\{device="1",arch="",serial="",type="L1"\} 3145728\n/,
    );

    const reset = await cli('reset-peaks', '--json');
    assert.equal(reset.code, 0, reset.stderr);
    const after = (JSON.parse(reset.stdout) as PeaksResponse).devices.find((x) => x.device === 1);
    assert.equal(after?.peak_bytes.L1, MiB, 'a reset starts again from the level now');
    assert.equal(
      (await peaks('--since', 'm')).peak_bytes.L1,
      MiB + 512 * 1024,
      'marks keep theirs',
    );

    // The chart sample after a burst carries the burst as its interval peak.
    await send([alloc(0x400, 4 * MiB), free(0x400)]);
    const burstAt = Date.now();
    let sample: HistoryResponse['samples'][number] | undefined;
    for (let i = 0; i < 100 && !sample; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const h = await srv.client.json<HistoryResponse>('GET', '/v1/history');
      sample = h.samples.find((x) => x.t >= burstAt);
    }
    assert.ok(sample, 'a sample after the burst');
    assert.equal(sample.d['1'][1], MiB, 'the level');
    assert.equal(sample.p['1'][1], 5 * MiB, 'the interval peak');
    const bad = await cli('peaks', '--since', 'nope');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /no mark named 'nope'/);
  } finally {
    s.destroy();
    await srv.stop();
  }
});
