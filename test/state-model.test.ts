// Correctness under speed: random event sequences through the REAL Tracker and ObjectTable,
// checked against a plain Map-based reference model after every sequence.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ObjectTable,
  FLAG_RESIZED,
  FLAG_SHARED,
  hash3,
  ALLOC_FULL,
  ALLOC_NEW,
  ALLOC_REF,
  ALLOC_RESIZED,
  PID_MASK,
  RELEASE_REF,
  RELEASE_REMOVED,
  RELEASE_UNKNOWN,
  ROW_WORDS,
  type NewObject,
  type ObjectKey,
} from '../src/state/object-table.js';
import { RowArray } from '../src/state/left-behind.js';
import { TWO32 } from '../src/protocol/constants.js';
import {
  Tracker,
  KINDS,
  KIND_CB,
  KIND_KERNEL,
  KIND_UNKNOWN_FREE,
  type ExitedProcess,
} from '../src/state/tracker.js';

// The table's one API, in the shapes the older tests below were written with (find() + insert,
// addRef, unref, remove of an entry).
/** Inserts an absent key (load() in one probe); returns its entry. */
function insertNew(t: ObjectTable, o: NewObject): number {
  assert.equal(t.load(o), ALLOC_NEW);
  return t.find(o.device, o.lo, o.hi, o.owner);
}
/** The key of live entry e (its owner's). */
function keyOf(t: ObjectTable, e: number): ObjectKey {
  return { device: t.device(e), lo: t.addrLo(e), hi: t.addrHi(e), owner: t.pid(e) };
}
/** One more reference to live entry e (by its owner); true when its size differs (then flagged). */
function addRef(t: ObjectTable, e: number, size: number): boolean {
  const o = { ...keyOf(t, e), size, sub: 0, bornMs: 0 };
  const r = t.allocRef(o);
  assert.ok(r === ALLOC_REF || r === ALLOC_RESIZED);
  return r === ALLOC_RESIZED;
}
/** Drops one reference to live entry e (by its owner); true when that removed it. */
function unref(t: ObjectTable, e: number): boolean {
  const r = t.release(keyOf(t, e));
  assert.ok(r === RELEASE_REF || r === RELEASE_REMOVED);
  return r === RELEASE_REMOVED;
}
/** Removes live entry e whatever its references. */
function remove(t: ObjectTable, e: number): void {
  assert.equal(t.release(keyOf(t, e), true), RELEASE_REMOVED);
}

// Few addresses, PIDs and devices, so repeats, re-use across devices and owners, and unknown frees
// are common.
const ADDRS: [number, number][] = [
  [0x1000, 0],
  [0x2000, 0],
  [0xfffff000, 0],
  [0x1000, 1],
  [0, 0x7fffffff],
  [0xdeadb000, 0xffffffff],
];
const PIDS = [101, 202, 303, 404];
const DEVICES = 5;
/** Owner PIDs from 0 (not said) to the largest a row holds. */
const EDGE_PIDS = [0, 1, 101, 32768, PID_MASK - 1, PID_MASK];
/** A 2026 allocation time (above 2^32 ms: both words of a row's time are used). */
const BORN0 = 1_790_000_000_123;
/** Allocation times: 2026-ish ones (above 2^32 ms) and anything the 42 bits of a row hold. */
const bornArb = fc.oneof(
  fc.integer({ min: 1_700_000_000_000, max: 1_900_000_000_000 }),
  fc.integer({ min: 0, max: 2 ** 42 - 1 }),
);

type Op =
  | {
      op: 'alloc' | 'cbAlloc' | 'kLoad';
      dev: number;
      a: number;
      size: number;
      type: number;
      pid: number;
      born: number;
    }
  | { op: 'free' | 'cbFree' | 'kUnload'; dev: number; a: number; pid: number }
  | { op: 'release'; pids: number[] };

const dev = fc.integer({ min: 0, max: DEVICES - 1 });
const addr = fc.integer({ min: 0, max: ADDRS.length - 1 });
const pid = fc.constantFrom(...PIDS);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constantFrom('alloc' as const, 'cbAlloc' as const, 'kLoad' as const),
      dev,
      a: addr,
      size: fc.oneof(fc.integer({ min: 1, max: 1 << 20 }), fc.integer({ min: 1, max: 2 ** 47 })),
      type: fc.integer({ min: 0, max: 4 }),
      pid,
      born: bornArb,
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constantFrom('free' as const, 'cbFree' as const, 'kUnload' as const),
      dev,
      a: addr,
      pid,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('release' as const),
      pids: fc.uniqueArray(pid, { maxLength: 3 }),
    }),
  },
);

const TYPE_NAMES = ['DRAM', 'L1', 'SYSTEM_MEMORY', 'L1_SMALL', 'TRACE'];

interface Obj {
  dev: number;
  a: number;
  size: number;
  type: number;
  pid: number;
  ref: number;
  born: number;
  resized: boolean;
  /** Another owner held the same (device, id) while this one lived. */
  shared: boolean;
}
/** A left-behind record as compared: [device, lo, hi, size, type, pid, ref, bornMs, flags]. */
type Rec = number[];
interface Released {
  pid: number;
  buffers: number;
  bytes: number;
  cbs: number;
  kernels: number;
  byDevice: Record<string, Record<string, { count: number; bytes: number }>>;
  records: Rec[];
}
const byRec = (x: Rec, y: Rec) => {
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return 0;
};
const flagsOf = (v: Obj) => (v.resized ? FLAG_RESIZED : 0) | (v.shared ? FLAG_SHARED : 0);

type TableName = 'buf' | 'cb' | 'k';

/**
 * The reference model. An object is keyed by (device, address, owner PID). Without a conflict
 * hook (replay, and the tracker's default) another owner's ALLOC / CB_ALLOC / KERNEL_LOAD of a live
 * (device, address) is a second object, and every object at that address is flagged shared. With
 * the hook (the server's), owners the hook says are gone are released first (as a dead-PID sweep
 * would, each one reported); when one of the other owners is alive, the tracker may stop asking at
 * it (the table's probe order decides), so the model accepts releasing any of the gone ones then,
 * and requires releasing all of them when none is alive. A FREE / CB_FREE / KERNEL_UNLOAD only
 * touches the sender's own object: anyone else's is an unknown free.
 */
class Model {
  tables = {
    buf: new Map<string, Obj>(),
    cb: new Map<string, Obj>(),
    k: new Map<string, Obj>(),
  };
  unknown = { buf: 0, cb: 0, k: 0 };
  unknownByDev = new Map<number, number>();
  unknownByPidDev = new Map<string, number>();
  pids = new Set<number>();
  /** Every process released so far, in order (what tr.reaped keeps within its budget). */
  released: Released[] = [];

  constructor(readonly gone: ReadonlySet<number> | null = null) {}

  /** Releases everything PID p owns; its report, or null when it owned nothing. */
  releasePid(p: number): Released | null {
    const r: Released = {
      pid: p,
      buffers: 0,
      bytes: 0,
      cbs: 0,
      kernels: 0,
      byDevice: {},
      records: [],
    };
    for (const [name, t] of Object.entries(this.tables))
      for (const [k, v] of t) {
        if (v.pid !== p) continue;
        t.delete(k);
        if (name === 'buf') {
          r.buffers++;
          r.bytes += v.size;
          const [lo, hi] = ADDRS[v.a];
          r.records.push([v.dev, lo, hi, v.size, v.type, v.pid, v.ref, v.born, flagsOf(v)]);
          const g = ((r.byDevice[v.dev] ??= {})[TYPE_NAMES[v.type]] ??= { count: 0, bytes: 0 });
          g.count++;
          g.bytes += v.size;
        } else if (name === 'cb') r.cbs++;
        else r.kernels++;
      }
    r.records.sort(byRec);
    // A released PID is forgotten when it owned something (what the journal records).
    if (r.buffers + r.cbs + r.kernels === 0) return null;
    this.pids.delete(p);
    for (let d = 0; d < DEVICES; d++) this.unknownByPidDev.delete(`${p}:${d}`);
    this.released.push(r);
    return r;
  }

  /** Objects of other owners at (device, address) in table `t`. */
  private others(t: Map<string, Obj>, dev: number, a: number, pid: number): Obj[] {
    return PIDS.filter((p) => p !== pid)
      .map((p) => t.get(`${dev}:${a}:${p}`))
      .filter((v): v is Obj => v !== undefined);
  }

  /**
   * Applies `o`; `releasedByHook` is what the tracker's conflict hook released during it (checked
   * against what the rule allows). Returns the release reports of a 'release' op.
   */
  apply(o: Op, releasedByHook: number[] = []): Released[] | void {
    if (o.op === 'release') {
      assert.deepEqual(releasedByHook, [], 'a sweep asks no hook');
      // Released in the order given (so they are kept in that order), reported by PID.
      const out: Released[] = [];
      for (const p of new Set(o.pids)) {
        const r = this.releasePid(p);
        if (r) out.push(r);
      }
      return out.sort((x, y) => x.pid - y.pid);
    }
    const name: TableName =
      o.op === 'alloc' || o.op === 'free'
        ? 'buf'
        : o.op === 'cbAlloc' || o.op === 'cbFree'
          ? 'cb'
          : 'k';
    const t = this.tables[name];
    const key = `${o.dev}:${o.a}:${o.pid}`;
    const cur = t.get(key);
    if (o.op === 'alloc' || o.op === 'cbAlloc' || o.op === 'kLoad') {
      if (cur) {
        assert.deepEqual(releasedByHook, [], 'a repeat of an own object asks no hook');
        if (o.op === 'alloc') {
          cur.ref++;
          if (cur.size !== o.size) cur.resized = true;
        }
        return;
      }
      let others = this.others(t, o.dev, o.a, o.pid);
      if (this.gone === null) assert.deepEqual(releasedByHook, [], 'no hook, nothing released');
      else {
        const goneOthers = others.filter((v) => this.gone!.has(v.pid)).map((v) => v.pid);
        const anyAlive = others.some((v) => !this.gone!.has(v.pid));
        const got = [...releasedByHook].sort();
        for (const p of got)
          assert.ok(goneOthers.includes(p), `hook released ${p}: not a gone owner`);
        if (!anyAlive)
          assert.deepEqual(
            got,
            [...goneOthers].sort(),
            'every gone owner released when none lives',
          );
        for (const p of releasedByHook) this.releasePid(p);
        others = this.others(t, o.dev, o.a, o.pid);
      }
      for (const v of others) v.shared = true;
      t.set(key, {
        dev: o.dev,
        a: o.a,
        size: o.size,
        type: o.op === 'alloc' ? o.type : o.op === 'kLoad' ? o.type % 3 : 0,
        pid: o.pid,
        ref: 1,
        born: o.born,
        resized: false,
        shared: others.length > 0,
      });
      this.pids.add(o.pid);
      return;
    }
    assert.deepEqual(releasedByHook, [], 'a free asks no hook');
    if (!cur) {
      if (o.op === 'free') {
        this.unknown.buf++;
        this.unknownByDev.set(o.dev, (this.unknownByDev.get(o.dev) ?? 0) + 1);
        this.unknownByPidDev.set(
          `${o.pid}:${o.dev}`,
          (this.unknownByPidDev.get(`${o.pid}:${o.dev}`) ?? 0) + 1,
        );
        this.pids.add(o.pid);
      } else if (o.op === 'cbFree') this.unknown.cb++;
      else this.unknown.k++;
      return;
    }
    // CBs and kernels are not reference counted: one unload removes them.
    if (name !== 'buf' || --cur.ref === 0) t.delete(key);
  }
}

/** An exited process's report as the model states it (its records decoded from the rows). */
function releasedOf(r: ExitedProcess): Released {
  const rows = new RowArray(r.rows),
    records: Rec[] = [];
  for (let e = 0; e < rows.count; e++)
    records.push([
      rows.device(e),
      r.rows[e * ROW_WORDS] >>> 0,
      r.rows[e * ROW_WORDS + 1] >>> 0,
      rows.size(e),
      rows.type(e),
      rows.pid(e),
      rows.ref(e),
      rows.bornMs(e),
      rows.flags(e),
    ]);
  records.sort(byRec);
  return {
    pid: r.pid,
    buffers: r.buffers,
    bytes: r.bytes,
    cbs: r.cbs,
    kernels: r.kernels,
    byDevice: r.byDevice,
    records,
  };
}

function applyTracker(tr: Tracker, o: Op) {
  if (o.op === 'release') {
    return tr
      .releasePids(new Set(o.pids))
      .map(releasedOf)
      .sort((x, y) => x.pid - y.pid);
  }
  const [lo, hi] = ADDRS[o.a];
  switch (o.op) {
    case 'alloc':
      return tr.alloc({
        device: o.dev,
        lo,
        hi,
        size: o.size,
        sub: o.type,
        owner: o.pid,
        bornMs: o.born,
      });
    case 'free':
      return tr.free({ device: o.dev, lo, hi, owner: o.pid });
    case 'cbAlloc':
      return tr.loadObject(KIND_CB, {
        device: o.dev,
        lo,
        hi,
        size: o.size,
        sub: 0,
        owner: o.pid,
        bornMs: o.born,
      });
    case 'kLoad':
      return tr.loadObject(KIND_KERNEL, {
        device: o.dev,
        lo,
        hi,
        size: o.size,
        sub: o.type % 3,
        owner: o.pid,
        bornMs: o.born,
      });
    case 'cbFree':
      return tr.unloadObject(KIND_CB, { device: o.dev, lo, hi, owner: o.pid });
    case 'kUnload':
      return tr.unloadObject(KIND_KERNEL, { device: o.dev, lo, hi, owner: o.pid });
  }
}

function check(tr: Tracker, m: Model): void {
  // Every remaining object, both ways.
  for (const [name, t] of [
    ['buf', tr.buffers],
    ['cb', tr.cbs],
    ['k', tr.kernels],
  ] as const) {
    const mt = m.tables[name];
    assert.equal(t.count, mt.size, `${name} count`);
    for (const v of mt.values()) {
      const [lo, hi] = ADDRS[v.a];
      const e = t.find(v.dev, lo, hi, v.pid);
      assert.ok(e >= 0, `${name} ${v.dev}:${v.a} of ${v.pid} missing`);
      assert.deepEqual(
        [
          t.device(e),
          t.addrLo(e),
          t.addrHi(e),
          t.size(e),
          t.type(e),
          t.pid(e),
          t.ref(e),
          t.bornMs(e),
          t.flags(e),
        ],
        [v.dev, lo, hi, v.size, v.type, v.pid, name === 'buf' ? v.ref : 1, v.born, flagsOf(v)],
        `${name} ${v.dev}:${v.a} of ${v.pid}`,
      );
      assert.equal(t.idBigInt(e), (BigInt(hi) << 32n) | BigInt(lo));
    }
    // No owner holds an object the model does not know (find() with an owner never answers
    // another owner's entry).
    for (let e = 0; e < t.count; e++)
      assert.equal(t.find(t.device(e), t.addrLo(e), t.addrHi(e), t.pid(e)), e, `${name} ${e}`);
  }
  // What exited processes left behind: every release the model made, in order.
  assert.deepEqual(tr.reaped.map(releasedOf), m.released, 'left-behind records');
  assert.equal(tr.reapedTotal, m.released.length);
  // Counters per device × kind, and per PID × device × kind.
  const expBytes = new Map<string, number>(),
    expCounts = new Map<string, number>();
  const add = (k: string, b: number) => {
    expBytes.set(k, (expBytes.get(k) ?? 0) + b);
    expCounts.set(k, (expCounts.get(k) ?? 0) + 1);
  };
  for (const v of m.tables.buf.values()) {
    add(`${v.dev}:${v.type}`, v.size);
    add(`${v.pid}:${v.dev}:${v.type}`, v.size);
  }
  for (const v of m.tables.cb.values()) {
    add(`${v.dev}:${KIND_CB}`, v.size);
    add(`${v.pid}:${v.dev}:${KIND_CB}`, v.size);
  }
  for (const v of m.tables.k.values()) {
    add(`${v.dev}:${KIND_KERNEL}`, v.size);
    add(`${v.pid}:${v.dev}:${KIND_KERNEL}`, v.size);
  }
  for (let d = 0; d < DEVICES; d++) {
    for (let k = 0; k < KIND_UNKNOWN_FREE; k++) {
      assert.equal(
        tr.deviceBytes(d, k),
        expBytes.get(`${d}:${k}`) ?? 0,
        `device ${d} kind ${k} bytes`,
      );
      assert.equal(
        tr.deviceCount(d, k),
        expCounts.get(`${d}:${k}`) ?? 0,
        `device ${d} kind ${k} count`,
      );
    }
    assert.equal(
      tr.deviceCount(d, KIND_UNKNOWN_FREE),
      m.unknownByDev.get(d) ?? 0,
      `device ${d} unknown frees`,
    );
  }
  assert.deepEqual(
    [tr.unknownFrees, tr.unknownCbFrees, tr.unknownKernelUnloads],
    [m.unknown.buf, m.unknown.cb, m.unknown.k],
  );
  assert.deepEqual([...tr.pids.keys()].sort(), [...m.pids].sort(), 'tracked PIDs');
  for (const [p, s] of tr.pids) {
    let live = 0;
    for (let d = 0; d < DEVICES; d++) {
      for (let k = 0; k < KIND_UNKNOWN_FREE; k++) {
        const i = d * KINDS + k;
        assert.equal(
          s.bytes[i] ?? 0,
          expBytes.get(`${p}:${d}:${k}`) ?? 0,
          `pid ${p} device ${d} kind ${k} bytes`,
        );
        assert.equal(
          s.counts[i] ?? 0,
          expCounts.get(`${p}:${d}:${k}`) ?? 0,
          `pid ${p} device ${d} kind ${k} count`,
        );
        live += expCounts.get(`${p}:${d}:${k}`) ?? 0;
      }
      assert.equal(
        s.counts[d * KINDS + KIND_UNKNOWN_FREE] ?? 0,
        m.unknownByPidDev.get(`${p}:${d}`) ?? 0,
        `pid ${p} device ${d} unknown frees`,
      );
    }
    assert.equal(s.live, live, `pid ${p} live`);
  }
}

test('Tracker matches a Map model over random ALLOC/FREE/CB/KERNEL/dead-PID sequences', () => {
  fc.assert(
    fc.property(
      // Long sequences (not only fast-check's small default): owners meet at addresses often.
      fc.array(opArb, { maxLength: 300, size: 'max' }),
      fc.integer({ min: 0, max: 2 }),
      // The PIDs a conflict hook finds gone (the server's rule), or no hook (replay's).
      fc.option(fc.subarray(PIDS), { nil: null }),
      (ops, presize, gone) => {
        const tr = new Tracker(presize * 1000),
          goneSet = gone === null ? null : new Set(gone),
          m = new Model(goneSet);
        let hooked: number[] = [];
        if (goneSet !== null)
          tr.onConflict = (other) => {
            if (!goneSet.has(other)) return false;
            hooked.push(other);
            return tr.releasePids(new Set([other])).length > 0;
          };
        for (const o of ops) {
          hooked = [];
          const got = applyTracker(tr, o),
            want = m.apply(o, hooked);
          if (o.op !== 'release') continue;
          assert.deepEqual(got, want, 'release reports');
          for (const r of tr.reaped)
            assert.equal(r.rows.length / ROW_WORDS, r.buffers, 'every buffer left is recorded');
        }
        check(tr, m);
      },
    ),
    { numRuns: 300 },
  );
});

test('Tracker releases dead PIDs the same way on the few-removals and the compaction paths', () => {
  // 2,000 buffers over 20 PIDs: one dead PID (5%) goes one by one, ten dead (50%) compact the
  // table.
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.integer({ min: 0, max: 19 }), { minLength: 1, maxLength: 12 }),
      fc.integer({ min: 0, max: 1 << 30 }),
      (dead, seed) => {
        // live: "device:lo:hi:i" (i gives the size) → owner
        const tr = new Tracker(),
          live = new Map<string, number>(),
          seen = new Set<string>();
        for (let i = 0; i < 2000; i++) {
          const d = i % 8,
            lo = (Math.imul(i + seed, 2654435761) & ~0xfff) >>> 0,
            hi = i % 3;
          const key = `${d}:${lo}:${hi}`;
          if (seen.has(key)) continue;
          seen.add(key);
          live.set(`${key}:${i}`, 100 + (i % 20));
          tr.alloc({
            device: d,
            lo,
            hi,
            size: 4096 + i,
            sub: i % 5,
            owner: 100 + (i % 20),
            bornMs: BORN0 + i,
          });
        }
        const deadPids = new Set(dead.map((x) => 100 + x));
        const reports = tr.releasePids(deadPids);
        for (const p of deadPids) {
          const sizes = [...live]
            .filter(([, q]) => q === p)
            .map(([key]) => 4096 + Number(key.split(':')[3]));
          const r = reports.find((x) => x.pid === p);
          assert.equal(r?.buffers ?? 0, sizes.length, `pid ${p} buffers`);
          if (!r) continue;
          assert.equal(
            r.bytes,
            sizes.reduce((a, b) => a + b, 0),
          );
          // Every buffer it left is recorded, with its own fields.
          const want = [...live]
            .filter(([, q]) => q === p)
            .map(([key]) => {
              const [d, lo, hi, i] = key.split(':').map(Number);
              return [d, lo, hi, 4096 + i, i % 5, p, 1, BORN0 + i];
            })
            .sort(byRec);
          assert.deepEqual(
            releasedOf(r).records.map((x) => x.slice(0, 8)),
            want,
            `pid ${p} records`,
          );
        }
        const left = [...live].filter(([, p]) => !deadPids.has(p));
        assert.equal(tr.buffers.count, left.length);
        for (const [key, p] of left) {
          const [d, lo, hi] = key.split(':').map(Number);
          const e = tr.buffers.find(d, lo, hi, p);
          assert.ok(e >= 0 && tr.buffers.pid(e) === p && tr.buffers.find(d, lo, hi) === e, key);
        }
        for (const p of deadPids) assert.equal(tr.pids.has(p), false);
        assert.deepEqual(
          tr.reaped.map((r) => r.pid),
          reports.map((r) => r.pid),
          'kept as left behind',
        );
      },
    ),
    { numRuns: 40 },
  );
});

test('ObjectTable insert/find/remove with many colliding keys matches a Map', () => {
  // Thousands of keys in shards that start at 32 slots: long probe runs, growth and backward
  // shifts.
  const key = fc.record({
    d: fc.integer({ min: 0, max: 3 }),
    lo: fc.integer({ min: 0, max: 4000 }),
    hi: fc.constantFrom(0, 1, 0xffffffff),
  });
  const op = fc.record({
    insert: fc.boolean(),
    k: key,
    size: fc.integer({ min: 1, max: 2 ** 40 }),
  });
  fc.assert(
    fc.property(fc.array(op, { minLength: 2000, maxLength: 6000 }), (ops) => {
      const t = new ObjectTable(),
        m = new Map<string, number>();
      for (const { insert, k, size } of ops) {
        const id = `${k.d}:${k.lo}:${k.hi}`,
          e = t.find(k.d, k.lo, k.hi);
        assert.equal(e >= 0, m.has(id));
        if (insert && e < 0) {
          insertNew(t, { device: k.d, lo: k.lo, hi: k.hi, size, sub: 1, owner: 7, bornMs: BORN0 });
          m.set(id, size);
        } else if (!insert && e >= 0) {
          remove(t, e);
          m.delete(id);
        }
      }
      assert.equal(t.count, m.size);
      for (const [id, size] of m) {
        const [d, lo, hi] = id.split(':').map(Number);
        const e = t.find(d, lo, hi);
        assert.ok(e >= 0);
        assert.equal(t.size(e), size);
        assert.equal(t.size(e) % TWO32, t.size(e) - Math.floor(size / TWO32) * TWO32);
      }
      // Bulk removal of a random-ish half, then everything must still be findable.
      const mark = new Uint8Array(t.count);
      let n = 0;
      for (let e = 0; e < t.count; e++)
        if ((t.addrLo(e) + e) % 2) {
          mark[e] = 1;
          n++;
          m.delete(`${t.device(e)}:${t.addrLo(e)}:${t.addrHi(e)}`);
        }
      t.removeMarked(mark, n);
      assert.equal(t.count, m.size);
      for (const id of m.keys()) {
        const [d, lo, hi] = id.split(':').map(Number);
        assert.ok(t.find(d, lo, hi) >= 0, id);
      }
    }),
    { numRuns: 25 },
  );
});

test('ObjectTable one-probe insert, ref counting and the newest-entry slot match a Map', () => {
  // Interleaves finds of other keys between a miss and its insert, reference counting, removals of
  // the newest and of older entries, growth, bulk removal; id halves given signed or unsigned.
  const key = fc.record({
    d: fc.integer({ min: 0, max: 2 }),
    lo: fc.integer({ min: 0, max: 3000 }),
    hi: fc.constantFrom(0, 1, 0x80000000, 0xffffffff),
  });
  const op = fc.oneof(
    fc.record({
      k: fc.constant('alloc' as const),
      key,
      other: fc.option(key, { nil: undefined }),
      size: fc.oneof(fc.integer({ min: 1, max: 1 << 20 }), fc.integer({ min: 1, max: 2 ** 47 })),
      signed: fc.boolean(),
    }),
    fc.record({ k: fc.constant('free' as const), key, signed: fc.boolean() }),
    fc.record({ k: fc.constant('sweep' as const), mod: fc.integer({ min: 2, max: 50 }) }),
  );
  const lo32 = (x: number, signed: boolean) => (signed ? x | 0 : x >>> 0);
  fc.assert(
    fc.property(fc.array(op, { minLength: 500, maxLength: 4000 }), (ops) => {
      const t = new ObjectTable(),
        m = new Map<
          string,
          { size: number; ref: number; pid: number; type: number; born: number }
        >();
      let n = 0;
      for (const o of ops) {
        if (o.k === 'sweep') {
          const mark = new Uint8Array(t.count);
          let c = 0;
          for (let e = 0; e < t.count; e++)
            if ((t.addrLo(e) + e) % o.mod === 0) {
              mark[e] = 1;
              c++;
              m.delete(`${t.device(e)}:${t.addrLo(e)}:${t.addrHi(e)}`);
            }
          t.removeMarked(mark, c);
          continue;
        }
        const { d, lo, hi } = o.key,
          id = `${d}:${lo}:${hi >>> 0}`;
        const e = t.find(d, lo32(lo, o.signed), lo32(hi, o.signed));
        assert.equal(e >= 0, m.has(id), `find ${id}`);
        if (o.k === 'alloc') {
          // a find of another key between miss and insert
          if (o.other) t.find(o.other.d, o.other.lo, o.other.hi);
          const cur = m.get(id);
          if (cur) {
            const resized = addRef(t, e, o.size);
            assert.equal(resized, cur.size !== o.size);
            cur.ref++;
            if (resized) assert.ok(t.flags(e) & FLAG_RESIZED);
          } else {
            // PIDs and times at the edges of the owner word they share (22 + 10 bits).
            const pid = EDGE_PIDS[n++ % EDGE_PIDS.length],
              type = n % 5,
              born = n % 2 ? BORN0 + n : 2 ** 42 - 1 - n;
            const ne = insertNew(t, {
              device: d,
              lo: lo32(lo, !o.signed),
              hi: lo32(hi, !o.signed),
              size: o.size,
              sub: type,
              owner: pid,
              bornMs: born,
            });
            // The new entry's index: the last row, or the row a removal just left (the pending
            // hole).
            assert.ok(ne >= 0 && ne < t.count && t.find(d, lo, hi) === ne);
            m.set(id, { size: o.size, ref: 1, pid, type, born });
          }
        } else if (e >= 0) {
          const cur = m.get(id)!;
          const removed = unref(t, e);
          assert.equal(removed, cur.ref === 1);
          if (removed) {
            assert.deepEqual([t.gonePid, t.goneType, t.goneSize], [cur.pid, cur.type, cur.size]);
            m.delete(id);
          } else cur.ref--;
        }
      }
      assert.equal(t.count, m.size);
      for (const [id, v] of m) {
        const [d, lo, hi] = id.split(':').map(Number);
        const e = t.find(d, lo, hi);
        assert.ok(e >= 0, id);
        assert.deepEqual(
          [
            t.device(e),
            t.addrLo(e),
            t.addrHi(e),
            t.size(e),
            t.ref(e),
            t.pid(e),
            t.type(e),
            t.bornMs(e),
          ],
          [d, lo, hi, v.size, v.ref, v.pid, v.type, v.born],
          id,
        );
        assert.equal(t.find(d, lo | 0, hi | 0), e);
        assert.equal(t.find(d, lo, hi, v.pid), e, 'found by its owner');
        assert.equal(t.find(d, lo, hi, (v.pid + 1) & PID_MASK), -1, 'not by another owner');
      }
      // The index maps every live entry to itself, and only live entries (no stale slot past the
      // end).
      for (let e = 0; e < t.count; e++)
        assert.equal(t.find(t.device(e), t.addrLo(e), t.addrHi(e)), e, `entry ${e}`);
    }),
    { numRuns: 40 },
  );
});

test('ObjectTable: removing an entry that shifts the newest one keeps the index exact', () => {
  // Keys with the same shard and home slot (shards start at 32 slots): A, B, X sit in a run of
  // three.
  // Removing A shifts B and X back; X is then the last entry and moves into A's place: the slot
  // remembered when X was inserted is stale and must not be used.
  const groups = new Map<number, number[]>();
  let keys: number[] | undefined;
  for (let lo = 0; !keys; lo++) {
    const h = hash3(0, lo, 0),
      g = ((h >>> 22) << 5) | (h & 31);
    const list = groups.get(g) ?? [];
    list.push(lo);
    groups.set(g, list);
    if (list.length === 4) keys = list;
  }
  for (const victim of [0, 1, 2]) {
    const t = new ObjectTable();
    for (const lo of keys) {
      assert.equal(t.find(0, lo, 0), -1);
      insertNew(t, { device: 0, lo, hi: 0, size: 100 + lo, sub: 0, owner: 1, bornMs: BORN0 });
    }
    remove(t, t.find(0, keys[victim], 0));
    for (let e = 0; e < t.count; e++)
      assert.equal(t.find(t.device(e), t.addrLo(e), t.addrHi(e)), e, `entry ${e}`);
    for (const [i, lo] of keys.entries()) assert.equal(t.find(0, lo, 0) >= 0, i !== victim);
  }
});

test('ObjectTable: bulk-removal tombstones survive frees, inserts, growth', () => {
  // Tens of thousands of entries so that shards (32 slots at first) grow, with repeated small
  // sweeps
  // (repaired in place: tombstones) and larger ones (index rebuilt) between frees and inserts.
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 2 ** 30 }),
      fc.array(fc.integer({ min: 3, max: 400 }), { minLength: 4, maxLength: 8 }),
      (seed, mods) => {
        const t = new ObjectTable(),
          m = new Map<string, number>();
        let next = 0;
        const key = (i: number): [number, number, number] => [
          i % 5,
          Math.imul(i + seed, 2654435761) >>> 0,
          (i >>> 3) % 3,
        ];
        const add = (count: number) => {
          for (let k = 0; k < count; k++, next++) {
            const [d, lo, hi] = key(next);
            if (m.has(`${d}:${lo}:${hi}`)) continue;
            // Both insertion paths: find() + insert(), and allocRef() in one probe.
            const o = {
              device: d,
              lo,
              hi,
              size: 1 + next,
              sub: next % 5,
              owner: next % 97,
              bornMs: BORN0,
            };
            if (next % 2) {
              assert.equal(t.find(d, lo, hi), -1);
              insertNew(t, o);
            } else assert.equal(t.allocRef(o), ALLOC_NEW);
            m.set(`${d}:${lo}:${hi}`, 1 + next);
          }
        };
        add(20_000);
        for (const mod of mods) {
          const mark = new Uint8Array(t.count);
          let n = 0;
          for (let e = 0; e < t.count; e++)
            if (t.addrLo(e) % mod === 0) {
              mark[e] = 1;
              n++;
              m.delete(`${t.device(e)}:${t.addrLo(e)}:${t.addrHi(e)}`);
            }
          t.removeMarked(mark, n);
          // Frees of every 7th live key (backward shifts across tombstones), then growth by
          // inserts.
          let i = 0;
          for (const id of [...m.keys()]) {
            if (i++ % 7 !== 0) continue;
            const [d, lo, hi] = id.split(':').map(Number);
            if (i % 2) {
              const e = t.find(d, lo, hi);
              assert.ok(e >= 0, id);
              assert.equal(unref(t, e), true);
            } else {
              const owner = (m.get(id)! - 1) % 97;
              assert.equal(
                t.release({ device: d, lo, hi, owner: (owner + 1) % 97 }),
                RELEASE_UNKNOWN,
              );
              assert.equal(t.release({ device: d, lo, hi, owner }), RELEASE_REMOVED, id);
            }
            m.delete(id);
          }
          add(6_000);
        }
        assert.equal(t.count, m.size);
        for (const [id, size] of m) {
          const [d, lo, hi] = id.split(':').map(Number);
          const e = t.find(d, lo, hi);
          assert.ok(e >= 0 && t.size(e) === size, id);
        }
        for (let e = 0; e < t.count; e++)
          assert.equal(t.find(t.device(e), t.addrLo(e), t.addrHi(e)), e, `entry ${e}`);
      },
    ),
    { numRuns: 8 },
  );
});

test('a full table refuses new objects, counts them, and keeps everything else exact', () => {
  const cap = 64,
    tr = new Tracker(0, cap);
  const size = (i: number) => 4096 * (i + 1);
  for (let i = 0; i < cap; i++)
    assert.equal(
      tr.alloc({
        device: i % 4,
        lo: 0x1000 * (i + 1),
        hi: 0,
        size: size(i),
        sub: 0,
        owner: 101,
        bornMs: BORN0,
      }),
      ALLOC_NEW,
    );
  assert.equal(
    tr.alloc({ device: 0, lo: 0xbad000, hi: 0, size: 999, sub: 0, owner: 101, bornMs: BORN0 }),
    ALLOC_FULL,
    'one more is refused',
  );
  assert.equal(tr.tableFullDrops, 1);
  assert.equal(
    tr.alloc({ device: 1, lo: 0x2000, hi: 0, size: size(1), sub: 0, owner: 101, bornMs: BORN0 }),
    ALLOC_REF,
    'a live buffer still takes references when full',
  );
  assert.equal(tr.buffers.count, cap);
  let bytes = 0;
  for (let d = 0; d < 4; d++) bytes += tr.deviceBytes(d, 0);
  assert.equal(
    bytes,
    Array.from({ length: cap }, (_, i) => size(i)).reduce((a, b) => a + b),
    'the refused ALLOC added nothing',
  );
  assert.equal(
    tr.free({ device: 0, lo: 0xbad000, hi: 0, owner: 101 }),
    RELEASE_UNKNOWN,
    'its FREE is an unknown free, as for any untracked buffer',
  );
  assert.equal(tr.free({ device: 2, lo: 0x3000, hi: 0, owner: 101 }), RELEASE_REMOVED);
  assert.equal(
    tr.alloc({ device: 0, lo: 0xbad000, hi: 0, size: 999, sub: 0, owner: 101, bornMs: BORN0 }),
    ALLOC_NEW,
    'room again after a FREE',
  );
  for (let i = 0; i < cap + 3; i++)
    tr.loadObject(KIND_CB, {
      device: 0,
      lo: 0x10 * (i + 1),
      hi: 0,
      size: 256,
      sub: 0,
      owner: 101,
      bornMs: BORN0,
    });
  assert.equal(tr.cbs.count, cap);
  assert.equal(tr.tableFullDrops, 4);
  // Every buffer still findable with its own size.
  for (let i = 0; i < cap; i++) {
    if (i === 2) continue;
    const e = tr.buffers.find(i % 4, 0x1000 * (i + 1), 0);
    assert.ok(e >= 0, `buffer ${i}`);
    assert.equal(tr.buffers.size(e), size(i));
  }
});

test('ObjectTable.reserve on a full-ish table keeps entries findable, later changes exact', () => {
  const t = new ObjectTable(),
    m = new Map<string, number>();
  const key = (i: number) => [i % 3, (i * 2654435761) | 0, i % 7] as const;
  for (let i = 0; i < 5000; i++) {
    const [d, lo, hi] = key(i);
    insertNew(t, { device: d, lo, hi, size: i + 1, sub: 0, owner: 1, bornMs: BORN0 });
    m.set(`${d}:${lo}:${hi}`, i + 1);
  }
  const before = t.memoryBytes(),
    rehashes = t.rehashes;
  t.reserve(200_000);
  assert.ok(t.memoryBytes() > before, 'the index grew');
  assert.equal(t.rehashes - rehashes, 1024, 'each shard rehashed once');
  t.reserve(1000);
  assert.equal(t.rehashes - rehashes, 1024, 'a smaller reserve changes nothing');
  for (let i = 0; i < 8000; i++) {
    const [d, lo, hi] = key(i),
      id = `${d}:${lo}:${hi}`,
      e = t.find(d, lo, hi);
    assert.equal(e >= 0, m.has(id), id);
    if (e >= 0 && i % 2 === 0) {
      remove(t, e);
      m.delete(id);
    } else if (e < 0) {
      insertNew(t, { device: d, lo, hi, size: i + 1, sub: 0, owner: 1, bornMs: BORN0 });
      m.set(id, i + 1);
    }
  }
  assert.equal(t.count, m.size);
  for (const [id, size] of m) {
    const [d, lo, hi] = id.split(':').map(Number);
    const e = t.find(d, lo, hi);
    assert.ok(e >= 0, id);
    assert.equal(t.size(e), size);
  }
});
