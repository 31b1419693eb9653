// Persistence against the live state, in-process: random sequences of events (repeats, unknown
// frees, CBs, kernels, dead PIDs, marks, epochs, resets) go through the real Tracker and the real
// journal writer; replaying the journal, and a snapshot written from that replay, must each give
// back exactly the same state (every object with its ref count, flags and epoch; every counter).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { Tracker } from '../src/state/tracker.js';
import { Checkpoints } from '../src/state/marks.js';
import { StateStore } from '../src/persist/state-store.js';
import { loadState } from '../src/persist/replay.js';
import { snapshotSource, writeSnapshot } from '../src/persist/snapshot.js';
import { MsgType } from '../src/protocol/constants.js';
import { applyEvent, StateEvent } from '../src/state/events.js';

type Op =
  | {
      op: 'frame';
      type: number;
      dev: number;
      a: number;
      size: number;
      bt: number;
      sub: number;
      pid: number;
    }
  | { op: 'reap'; pids: number[] }
  | { op: 'mark'; name: string }
  | { op: 'epoch' }
  | { op: 'reset' };

const ADDRS = [0x1000, 0x2000, 0xfffff000, 2 ** 32 + 0x1000, 2 ** 52 + 7];
const PIDS = [11, 22, 33];
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 20,
    arbitrary: fc.record({
      op: fc.constant('frame' as const),
      type: fc.constantFrom(
        MsgType.ALLOC,
        MsgType.ALLOC,
        MsgType.FREE,
        MsgType.FREE,
        MsgType.CB_ALLOC,
        MsgType.CB_FREE,
        MsgType.KERNEL_LOAD,
        MsgType.KERNEL_UNLOAD,
      ),
      dev: fc.integer({ min: 0, max: 3 }),
      a: fc.constantFrom(...ADDRS),
      size: fc.oneof(fc.integer({ min: 1, max: 1 << 20 }), fc.integer({ min: 1, max: 2 ** 47 })),
      bt: fc.integer({ min: 0, max: 4 }),
      sub: fc.integer({ min: 0, max: 2 }),
      pid: fc.constantFrom(...PIDS),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('reap' as const),
      pids: fc.uniqueArray(fc.constantFrom(...PIDS), { maxLength: 2 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('mark' as const),
      name: fc.constantFrom('a', 'b', 'c'),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('epoch' as const) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'reset' as const }) },
);

/** Everything the state holds, in a comparable form. */
function view(tr: Tracker, marks: Checkpoints) {
  const table = (t: Tracker['buffers']) => {
    const rows: string[] = [];
    for (let e = 0; e < t.count; e++)
      rows.push(
        [
          t.device(e),
          t.idHex(e),
          t.size(e),
          t.type(e),
          t.pid(e),
          t.ref(e),
          t.flags(e),
          t.epoch(e),
        ].join(' '),
      );
    return rows.sort();
  };
  // Per-process arrays grow with the devices a process touched first; trailing zeros mean nothing.
  const trim = (a: Float64Array) => [...a].join(',').replace(/(,0)+$/, '');
  const pids = [...tr.pids.values()]
    .filter((s) => s.live > 0)
    .map((s) => [s.pid, s.live, trim(s.bytes), trim(s.counts)])
    .sort();
  return {
    buffers: table(tr.buffers),
    cbs: table(tr.cbs),
    kernels: table(tr.kernels),
    devBytes: [...tr.devBytes],
    devCounts: [...tr.devCounts],
    pids,
    devicesSeen: Array.from({ length: 4 }, (_, d) => tr.usageSeen(d)),
    counters: [
      tr.unknownFrees,
      tr.unknownCbFrees,
      tr.unknownKernelUnloads,
      tr.resizedAllocs,
      tr.reapedTotal,
    ],
    reaped: JSON.stringify(tr.reaped),
    epoch: tr.epoch,
    epochs: tr.epochStartMs.slice(0, tr.epoch + 1),
    marks: JSON.stringify(marks.list()),
  };
}

/** The data connection's part: the accepted event goes through the one event function. */
const ev = new StateEvent();
function apply(tr: Tracker, store: StateStore | null, o: Extract<Op, { op: 'frame' }>): void {
  const sized = ([MsgType.ALLOC, MsgType.CB_ALLOC, MsgType.KERNEL_LOAD] as number[]).includes(
    o.type,
  );
  setEvent({
    code: o.type,
    sub: o.type === MsgType.KERNEL_LOAD ? o.sub : o.type === MsgType.ALLOC ? o.bt : 0,
    device: o.dev,
    owner: o.pid,
    lo: o.a >>> 0,
    hi: Math.floor(o.a / 2 ** 32) >>> 0,
    size: sized ? o.size : 0,
  });
  applyEvent(tr, ev, store);
}

/** Fills the shared event (sizes below 2^48, as the wire validates). */
function setEvent(e: {
  code: number;
  sub: number;
  device: number;
  owner: number;
  lo: number;
  hi: number;
  size: number;
}): void {
  ev.code = e.code;
  ev.sub = e.sub;
  ev.device = e.device;
  ev.owner = e.owner;
  ev.lo = e.lo;
  ev.hi = e.hi;
  ev.sizeLo = e.size >>> 0;
  ev.sizeHi = Math.floor(e.size / 2 ** 32);
}

/** The state in `dir` read back into a fresh tracker, as a restarted server reads it. */
function reload(dir: string) {
  const tr = new Tracker(),
    marks = new Checkpoints(tr);
  return { tr, marks, rec: loadState(dir, tr, marks, { repair: false }) };
}

/** A fresh state directory for `fn`, removed afterwards. */
async function inStateDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ttalloc-model-'));
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A tracker journaling into `dir` (flushed by hand, never compacted), segments rotating at
 * `segmentBytes`.
 */
function journaled(
  dir: string,
  segmentBytes: number,
): { tr: Tracker; marks: Checkpoints; store: StateStore } {
  const tr = new Tracker(),
    marks = new Checkpoints(tr);
  const store = new StateStore({
    dir,
    flushIntervalMs: 60_000,
    segmentBytes,
    compactBytes: 1 << 30,
    warn: (m) => assert.fail(m),
    log: () => {},
    onState: () => {},
  });
  store.open(tr, marks);
  return { tr, marks, store };
}

test('journal replay and snapshot + replay give back exactly the live state', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(opArb, { minLength: 1, maxLength: 120 }),
      fc.integer({ min: 1, max: 4 }),
      async (ops, flushEvery) => {
        await inStateDir(async (dir) => {
          // batches of different sizes, segments rotate at 256 B
          const { tr, marks, store } = journaled(dir, 256);
          let n = 0;
          for (const o of ops) {
            tr.setNow(tr.nowMs + 7); // time moves, so epochs have distinct start times
            if (o.op === 'frame') apply(tr, store, o);
            else if (o.op === 'reap') {
              const now = tr.nowMs;
              const r = tr.releasePids(new Set(o.pids), now);
              if (r.length)
                store.reap(
                  r.map((x) => x.pid),
                  now,
                );
            } else if (o.op === 'mark') await store.mark(marks.mark(o.name));
            else if (o.op === 'epoch') tr.newEpoch();
            else {
              tr.reset();
              marks.clear();
              await store.reset();
            }
            if (++n % flushEvery === 0) store.flush();
          }
          await store.close(tr);
          const want = view(tr, marks);

          const { tr: tr2, marks: marks2, rec } = reload(dir);
          assert.deepEqual(rec.problems, []);
          assert.deepEqual(view(tr2, marks2), want, 'journal replay');

          await writeSnapshot(dir, snapshotSource(tr2, marks2), rec.lastGen);
          const { tr: tr3, marks: marks3, rec: rec3 } = reload(dir);
          assert.equal(rec3.snapshotThrough, rec.lastGen);
          assert.equal(rec3.journalEvents, 0, 'everything came from the snapshot');
          assert.deepEqual(view(tr3, marks3), want, 'snapshot');

          // The restored tables are indexed: the same events again change both states the same way.
          const none = null; // apply only
          for (const o of ops)
            if (o.op === 'frame') {
              apply(tr, none, o);
              apply(tr3, none, o);
            }
          assert.deepEqual(view(tr3, marks3), view(tr, marks), 'after more events');
        });
      },
    ),
    { numRuns: 150 },
  );
});

test('a buffer created and removed in one batch costs the journal nothing; others are kept', () =>
  inStateDir(async (dir) => {
    const { tr, marks, store } = journaled(dir, 64 << 20);
    const ev = (type: number, a: number, size = 0) =>
      apply(tr, store, { op: 'frame', type, dev: 1, a, size, bt: 0, sub: 0, pid: 11 });
    for (let i = 0; i < 1000; i++) {
      ev(MsgType.ALLOC, 0x1000 * i, 4096);
      if (i >= 8) ev(MsgType.FREE, 0x1000 * (i - 8));
    } // 8 in flight
    ev(MsgType.ALLOC, 0x1000 * 999, 4096); // a second reference: its pair is not a clean one
    ev(MsgType.FREE, 0x1000 * 999);
    ev(MsgType.FREE, 0x1000 * 999);
    ev(MsgType.FREE, 0xdead000); // unknown: kept, it counts
    await store.close(tr);
    const { tr: tr2, marks: marks2, rec } = reload(dir);
    // 7 live buffers: their ALLOCs; buffer 999: ALLOC, ALLOC, FREE, FREE; the unknown FREE.
    assert.equal(rec.journalEvents, 7 + 4 + 1);
    assert.deepEqual(view(tr2, marks2), view(tr, marks));
  }));

test('a journal of 16 MiB or more sizes the buffer index before replay, and replays exactly', () =>
  inStateDir(async (dir) => {
    const { tr, marks, store } = journaled(dir, 4 << 20);
    const N = 800_000; // 19 MB of ALLOC records
    for (let i = 0; i < N; i++) {
      const dev = i % 8,
        lo = (0x1000 * (i >> 3)) | 0,
        pid = 100 + (i % 5),
        size = 4096 + (i % 977);
      setEvent({ code: MsgType.ALLOC, sub: 0, device: dev, owner: pid, lo, hi: 1, size });
      applyEvent(tr, ev, store);
    }
    for (let i = 0; i < N; i += 9) {
      const dev = i % 8,
        lo = (0x1000 * (i >> 3)) | 0,
        pid = 100 + (i % 5);
      setEvent({ code: MsgType.FREE, sub: 0, device: dev, owner: pid, lo, hi: 1, size: 0 });
      applyEvent(tr, ev, store);
    }
    await store.close(tr);
    const want = view(tr, marks);

    const { tr: tr2, marks: marks2, rec } = reload(dir);
    assert.deepEqual(rec.problems, []);
    assert.ok(
      rec.journalBytes >= 16 << 20,
      `the journal is big enough to be counted first (${rec.journalBytes} B)`,
    );
    assert.deepEqual(view(tr2, marks2), want);
    // Sized once: one rehash per shard (1024), not one per doubling of each (~6 each from 32
    // slots).
    assert.ok(
      tr2.buffers.rehashes <= 1100,
      `${tr2.buffers.rehashes} shard rehashes during the replay`,
    );
  }));
