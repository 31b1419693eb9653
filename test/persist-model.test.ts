// Persistence against the live state, in-process: random sequences of events (repeats, unknown
// frees, CBs, kernels, owners sharing an address, dead PIDs with what they left behind, gone owners
// released by a conflicting ALLOC, marks, forgets, resets) go through the real Tracker and the real
// journal writer; replaying the journal, and a snapshot written from that replay, must each give
// back exactly the same state (every object with its ref count, flags and allocation time; every
// left-behind record; every counter).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { Tracker, type ProcessIdentity } from '../src/state/tracker.js';
import { MAX_ENTRIES } from '../src/state/object-table.js';
import type { ForgetFilter } from '../src/state/left-behind.js';
import { Checkpoints } from '../src/state/marks.js';
import { tableRows } from './helpers/state-fixture.js';
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
      /** The frame's own time: 0 (none), ms before now (plausible), or -1 (in the future). */
      ago: number;
    }
  | { op: 'reap'; pids: number[] }
  | { op: 'mark'; name: string }
  | { op: 'forget'; pid: number | null; agoMs: number | null }
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
      ago: fc.oneof(fc.constant(0), fc.constant(-1), fc.integer({ min: 1, max: 10_000 })),
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
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('forget' as const),
      pid: fc.option(fc.constantFrom(...PIDS), { nil: null }),
      agoMs: fc.option(fc.integer({ min: 0, max: 300 }), { nil: null }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ op: 'reset' as const }) },
);

/** Everything the state holds, in a comparable form. */
function view(tr: Tracker, marks: Checkpoints) {
  // Per-process arrays grow with the devices a process touched first; trailing zeros mean nothing.
  const trim = (a: Float64Array) => [...a].join(',').replace(/(,0)+$/, '');
  const pids = [...tr.pids.values()]
    .filter((s) => s.live > 0)
    .map((s) => [s.pid, s.live, trim(s.bytes), trim(s.counts)])
    .sort();
  return {
    buffers: tableRows(tr.buffers),
    cbs: tableRows(tr.cbs),
    kernels: tableRows(tr.kernels),
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
    // Every exited process kept, in order, with its identity and every record it left.
    exited: tr.reaped.map((p) => ({ ...p, rows: [...p.rows] })),
    leftBehindDropped: [tr.leftBehind.droppedProcesses, tr.leftBehind.droppedRecords],
    floorMs: tr.floorMs,
    marks: JSON.stringify(marks.list()),
  };
}

/** The data connection's part: the accepted event goes through the one event function. */
const ev = new StateEvent();
/**
 * Applies a frame; its allocation time is `bornMs` when given, else the tracker's stamp of the
 * frame's own time (as ingest does). Returns the time used.
 */
function apply(
  tr: Tracker,
  store: StateStore | null,
  o: Extract<Op, { op: 'frame' }>,
  bornMs?: number,
): number {
  const sized = ([MsgType.ALLOC, MsgType.CB_ALLOC, MsgType.KERNEL_LOAD] as number[]).includes(
    o.type,
  );
  const frameMs = o.ago === 0 ? 0 : o.ago === -1 ? tr.nowMs + 60_000 : tr.nowMs - o.ago;
  const born = sized ? (bornMs ?? tr.stampOf(frameMs)) : 0;
  setEvent({
    code: o.type,
    sub: o.type === MsgType.KERNEL_LOAD ? o.sub : o.type === MsgType.ALLOC ? o.bt : 0,
    device: o.dev,
    owner: o.pid,
    lo: o.a >>> 0,
    hi: Math.floor(o.a / 2 ** 32) >>> 0,
    size: sized ? o.size : 0,
    bornMs: born,
  });
  applyEvent(tr, ev, store);
  return born;
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
  bornMs: number;
}): void {
  ev.code = e.code;
  ev.sub = e.sub;
  ev.device = e.device;
  ev.owner = e.owner;
  ev.lo = e.lo;
  ev.hi = e.hi;
  ev.sizeLo = e.size >>> 0;
  ev.sizeHi = Math.floor(e.size / 2 ** 32);
  ev.bornMs = e.bornMs;
}

/** Who each PID was, as the server's process registry says. */
const identityOf = (pid: number): ProcessIdentity => ({
  ppid: 1,
  cmdline: `python3 worker-${pid}.py`,
  startMs: 1_700_000_000_000 + pid,
});

/**
 * Releases `pids` as gone and journals it as the server does (with who they were); returns the
 * PIDs released.
 */
function reap(tr: Tracker, store: StateStore, pids: number[]): number[] {
  const now = tr.nowMs;
  const r = tr.releasePids(new Set(pids), now, identityOf);
  if (r.length) {
    const ids: Record<string, ProcessIdentity> = {};
    for (const x of r) ids[x.pid] = identityOf(x.pid);
    store.reap({ pids: r.map((x) => x.pid), atMs: now, ids });
  }
  return r.map((x) => x.pid);
}

/** The state in `dir` read back into a fresh tracker, as a restarted server reads it. */
function reload(dir: string, budget?: number) {
  const tr = new Tracker(0, MAX_ENTRIES, budget),
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
  budget?: number,
): { tr: Tracker; marks: Checkpoints; store: StateStore } {
  const tr = new Tracker(0, MAX_ENTRIES, budget),
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
      // PIDs the conflict hook finds gone (the server's rule: released, journalled, before the
      // ALLOC that met them), or no hook (every other owner is alive: the address is shared).
      fc.option(fc.subarray(PIDS), { nil: null }),
      // The left-behind budget: the default, or so small that the oldest processes are dropped.
      fc.constantFrom(undefined, 3),
      async (ops, flushEvery, gone, budget) => {
        await inStateDir(async (dir) => {
          // batches of different sizes, segments rotate at 256 B
          const { tr, marks, store } = journaled(dir, 256, budget);
          if (gone !== null)
            tr.onConflict = (other) => gone.includes(other) && reap(tr, store, [other]).length > 0;
          let n = 0;
          const borns: number[] = [];
          for (const o of ops) {
            tr.setNow(tr.nowMs + 7); // time moves: allocation and exit times differ
            if (o.op === 'frame') borns.push(apply(tr, store, o));
            else if (o.op === 'reap') reap(tr, store, o.pids);
            else if (o.op === 'mark') await store.mark(marks.mark(o.name));
            else if (o.op === 'forget') {
              const f: ForgetFilter = {};
              if (o.pid !== null) f.pid = o.pid;
              if (o.agoMs !== null) f.beforeMs = tr.nowMs - o.agoMs;
              tr.forget(f);
              await store.forget(f);
            } else {
              tr.reset();
              marks.clear();
              await store.reset();
            }
            if (++n % flushEvery === 0) store.flush();
          }
          await store.close();
          tr.onConflict = null;
          const want = view(tr, marks);

          const { tr: tr2, marks: marks2, rec } = reload(dir, budget);
          assert.deepEqual(rec.problems, []);
          assert.deepEqual(view(tr2, marks2), want, 'journal replay');

          await writeSnapshot(dir, snapshotSource(tr2, marks2), rec.lastGen);
          const { tr: tr3, marks: marks3, rec: rec3 } = reload(dir, budget);
          assert.equal(rec3.snapshotThrough, rec.lastGen);
          assert.equal(rec3.journalEvents, 0, 'everything came from the snapshot');
          assert.deepEqual(view(tr3, marks3), want, 'snapshot');

          // The restored tables are indexed: the same events again (at the same times) change
          // both states the same way.
          const none = null; // apply only
          let i = 0;
          for (const o of ops)
            if (o.op === 'frame') {
              const born = borns[i++];
              apply(tr, none, o, born);
              apply(tr3, none, o, born);
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
      apply(tr, store, { op: 'frame', type, dev: 1, a, size, bt: 0, sub: 0, pid: 11, ago: 0 });
    for (let i = 0; i < 1000; i++) {
      ev(MsgType.ALLOC, 0x1000 * i, 4096);
      if (i >= 8) ev(MsgType.FREE, 0x1000 * (i - 8));
    } // 8 in flight
    ev(MsgType.ALLOC, 0x1000 * 999, 4096); // a second reference: its pair is not a clean one
    ev(MsgType.FREE, 0x1000 * 999);
    ev(MsgType.FREE, 0x1000 * 999);
    ev(MsgType.FREE, 0xdead000); // unknown: kept, it counts
    await store.close();
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
      const bornMs = 1_790_000_000_000 + i;
      setEvent({ code: MsgType.ALLOC, sub: 0, device: dev, owner: pid, lo, hi: 1, size, bornMs });
      applyEvent(tr, ev, store);
    }
    for (let i = 0; i < N; i += 9) {
      const dev = i % 8,
        lo = (0x1000 * (i >> 3)) | 0,
        pid = 100 + (i % 5);
      setEvent({
        code: MsgType.FREE,
        sub: 0,
        device: dev,
        owner: pid,
        lo,
        hi: 1,
        size: 0,
        bornMs: 0,
      });
      applyEvent(tr, ev, store);
    }
    await store.close();
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

test(
  'a pair cancelled in the journal keeps the shared flag it left on the other owner’s ' + 'buffer',
  () =>
    inStateDir(async (dir) => {
      const { tr, marks, store } = journaled(dir, 64 << 20);
      const frame = (type: number, pid: number) =>
        apply(tr, store, {
          op: 'frame',
          type,
          dev: 0,
          a: 0x1000,
          size: 4096,
          bt: 0,
          sub: 0,
          pid,
          ago: 0,
        });
      frame(MsgType.ALLOC, 11);
      frame(MsgType.ALLOC, 22); // 11 is alive (no hook): both buffers are flagged shared
      frame(MsgType.FREE, 22); // in the same batch: the pair is cancelled
      await store.close();
      const { tr: tr2, marks: marks2 } = reload(dir);
      assert.deepEqual(view(tr2, marks2), view(tr, marks));
    }),
);
