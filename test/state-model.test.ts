// Correctness under speed: random event sequences through the REAL Tracker and ObjectTable,
// checked against a plain Map-based reference model after every sequence.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ObjectTable,
  FLAG_RESIZED,
  hash3,
  ALLOC_FULL,
  ALLOC_NEW,
  ALLOC_REF,
  RELEASE_REMOVED,
  RELEASE_UNKNOWN,
} from '../src/state/object-table.js';
import { TWO32 } from '../src/protocol/constants.js';
import { Tracker, KINDS, KIND_CB, KIND_KERNEL, KIND_UNKNOWN_FREE } from '../src/state/tracker.js';
import { ALLOC_RESIZED, RELEASE_REF, type NewObject } from '../src/state/object-table.js';

// The table's one API, in the shapes the older tests below were written with (find() + insert,
// addRef, unref, remove of an entry).
/** Inserts an absent key (load() in one probe); returns its entry. */
function insertNew(t: ObjectTable, o: NewObject, epoch: number): number {
  assert.equal(t.load(o, epoch), ALLOC_NEW);
  return t.find(o.device, o.lo, o.hi);
}
/** One more reference to live entry e; true when its size differs (then flagged). */
function addRef(t: ObjectTable, e: number, size: number): boolean {
  const o = { device: t.device(e), lo: t.addrLo(e), hi: t.addrHi(e), size, sub: 0, owner: 0 };
  const r = t.allocRef(o, 0);
  assert.ok(r === ALLOC_REF || r === ALLOC_RESIZED);
  return r === ALLOC_RESIZED;
}
/** Drops one reference to live entry e; true when that removed it. */
function unref(t: ObjectTable, e: number): boolean {
  const r = t.release(t.device(e), t.addrLo(e), t.addrHi(e));
  assert.ok(r === RELEASE_REF || r === RELEASE_REMOVED);
  return r === RELEASE_REMOVED;
}
/** Removes live entry e whatever its references. */
function remove(t: ObjectTable, e: number): void {
  assert.equal(t.release(t.device(e), t.addrLo(e), t.addrHi(e), true), RELEASE_REMOVED);
}

// Few addresses, PIDs and devices, so repeats, re-use across devices and unknown frees are common.
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

type Op =
  | {
      op: 'alloc' | 'cbAlloc' | 'kLoad';
      dev: number;
      a: number;
      size: number;
      type: number;
      pid: number;
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

interface Obj {
  dev: number;
  a: number;
  size: number;
  type: number;
  pid: number;
  ref: number;
}
class Model {
  tables = { buf: new Map<string, Obj>(), cb: new Map<string, Obj>(), k: new Map<string, Obj>() };
  unknown = { buf: 0, cb: 0, k: 0 };
  unknownByDev = new Map<number, number>();
  unknownByPidDev = new Map<string, number>();
  pids = new Set<number>();
  apply(o: Op):
    | {
        pid: number;
        buffers: number;
        bytes: number;
        cbs: number;
        kernels: number;
        largest: number[];
      }[]
    | void {
    if (o.op === 'release') {
      const dead = new Set(o.pids),
        out = [];
      for (const p of [...dead].sort()) {
        const r = {
          pid: p,
          buffers: 0,
          bytes: 0,
          cbs: 0,
          kernels: 0,
          largest: [] as number[],
          byDevice: {} as Record<string, Record<string, { count: number; bytes: number }>>,
        };
        for (const [name, t] of Object.entries(this.tables))
          for (const [k, v] of t) {
            if (v.pid !== p) continue;
            t.delete(k);
            if (name === 'buf') {
              r.buffers++;
              r.bytes += v.size;
              r.largest.push(v.size);
              const g = ((r.byDevice[v.dev] ??= {})[
                ['DRAM', 'L1', 'SYSTEM_MEMORY', 'L1_SMALL', 'TRACE'][v.type]
              ] ??= { count: 0, bytes: 0 });
              g.count++;
              g.bytes += v.size;
            } else if (name === 'cb') r.cbs++;
            else r.kernels++;
          }
        r.largest = r.largest.sort((x, y) => y - x).slice(0, 5);
        // A released PID is forgotten when it owned something (what the journal records).
        if (r.buffers + r.cbs + r.kernels > 0) {
          out.push(r);
          this.pids.delete(p);
        }
      }
      return out;
    }
    const key = `${o.dev}:${o.a}`;
    const t =
      o.op === 'alloc' || o.op === 'free'
        ? this.tables.buf
        : o.op === 'cbAlloc' || o.op === 'cbFree'
          ? this.tables.cb
          : this.tables.k;
    const cur = t.get(key);
    if (o.op === 'alloc' || o.op === 'cbAlloc' || o.op === 'kLoad') {
      if (cur) {
        if (o.op === 'alloc') cur.ref++;
        return;
      }
      t.set(key, {
        dev: o.dev,
        a: o.a,
        size: o.size,
        type: o.op === 'alloc' ? o.type : o.op === 'kLoad' ? o.type % 3 : 0,
        pid: o.pid,
        ref: 1,
      });
      this.pids.add(o.pid);
      return;
    }
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
    if (--cur.ref === 0) t.delete(key);
  }
}

function applyTracker(tr: Tracker, o: Op) {
  if (o.op === 'release') {
    return tr
      .releasePids(new Set(o.pids))
      .map((r) => ({
        pid: r.pid,
        buffers: r.buffers,
        bytes: r.bytes,
        cbs: r.cbs,
        kernels: r.kernels,
        largest: r.largest.map((x) => x.size),
        byDevice: r.byDevice,
      }))
      .sort((x, y) => x.pid - y.pid);
  }
  const [lo, hi] = ADDRS[o.a];
  switch (o.op) {
    case 'alloc':
      return tr.alloc({ device: o.dev, lo, hi, size: o.size, sub: o.type, owner: o.pid });
    case 'free':
      return tr.free({ device: o.dev, lo, hi, owner: o.pid });
    case 'cbAlloc':
      return tr.loadObject(KIND_CB, { device: o.dev, lo, hi, size: o.size, sub: 0, owner: o.pid });
    case 'kLoad':
      return tr.loadObject(KIND_KERNEL, {
        device: o.dev,
        lo,
        hi,
        size: o.size,
        sub: o.type % 3,
        owner: o.pid,
      });
    case 'cbFree':
      return tr.unloadObject(KIND_CB, { device: o.dev, lo, hi });
    case 'kUnload':
      return tr.unloadObject(KIND_KERNEL, { device: o.dev, lo, hi });
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
      const e = t.find(v.dev, lo, hi);
      assert.ok(e >= 0, `${name} ${v.dev}:${v.a} missing`);
      assert.deepEqual(
        [t.device(e), t.addrLo(e), t.addrHi(e), t.size(e), t.type(e), t.pid(e), t.ref(e)],
        [v.dev, lo, hi, v.size, v.type, v.pid, name === 'buf' ? v.ref : 1],
        `${name} ${v.dev}:${v.a}`,
      );
      assert.equal(t.idBigInt(e), (BigInt(hi) << 32n) | BigInt(lo));
    }
  }
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
    }
    assert.equal(s.live, live, `pid ${p} live`);
  }
}

test('Tracker matches a Map model over random ALLOC/FREE/CB/KERNEL/dead-PID sequences', () => {
  fc.assert(
    fc.property(
      fc.array(opArb, { maxLength: 300 }),
      fc.integer({ min: 0, max: 2 }),
      (ops, presize) => {
        const tr = new Tracker(presize * 1000),
          m = new Model();
        for (const o of ops) {
          const got = applyTracker(tr, o),
            want = m.apply(o);
          if (o.op !== 'release') continue;
          assert.deepEqual(got, want, 'release reports');
          for (const r of tr.reaped)
            assert.ok(
              r.largest.length <= 5 &&
                r.largest.every((x, i, a) => i === 0 || a[i - 1].size >= x.size),
              'largest sorted',
            );
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
          tr.alloc({ device: d, lo, hi, size: 4096 + i, sub: i % 5, owner: 100 + (i % 20) });
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
          assert.deepEqual(
            r.largest.map((x) => x.size),
            sizes.sort((a, b) => b - a).slice(0, 5),
          );
        }
        const left = [...live].filter(([, p]) => !deadPids.has(p));
        assert.equal(tr.buffers.count, left.length);
        for (const [key, p] of left) {
          const [d, lo, hi] = key.split(':').map(Number);
          const e = tr.buffers.find(d, lo, hi);
          assert.ok(e >= 0 && tr.buffers.pid(e) === p, key);
        }
        for (const p of deadPids) assert.equal(tr.pids.has(p), false);
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
          insertNew(t, { device: k.d, lo: k.lo, hi: k.hi, size, sub: 1, owner: 7 }, 0);
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
        m = new Map<string, { size: number; ref: number; pid: number; type: number }>();
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
            const pid = -5 + (n++ % 11),
              type = n % 5;
            const ne = insertNew(
              t,
              {
                device: d,
                lo: lo32(lo, !o.signed),
                hi: lo32(hi, !o.signed),
                size: o.size,
                sub: type,
                owner: pid,
              },
              n,
            );
            // The new entry's index: the last row, or the row a removal just left (the pending
            // hole).
            assert.ok(ne >= 0 && ne < t.count && t.find(d, lo, hi) === ne);
            m.set(id, { size: o.size, ref: 1, pid, type });
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
          [t.device(e), t.addrLo(e), t.addrHi(e), t.size(e), t.ref(e), t.pid(e), t.type(e)],
          [d, lo, hi, v.size, v.ref, v.pid, v.type],
          id,
        );
        assert.equal(t.find(d, lo | 0, hi | 0), e);
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
      insertNew(t, { device: 0, lo, hi: 0, size: 100 + lo, sub: 0, owner: 1 }, 0);
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
            if (next % 2) {
              assert.equal(t.find(d, lo, hi), -1);
              insertNew(
                t,
                { device: d, lo, hi, size: 1 + next, sub: next % 5, owner: next % 97 },
                0,
              );
            } else
              assert.equal(
                t.allocRef(
                  { device: d, lo, hi, size: 1 + next, sub: next % 5, owner: next % 97 },
                  0,
                ),
                ALLOC_NEW,
              );
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
            } else assert.equal(t.release(d, lo, hi), RELEASE_REMOVED, id);
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
      tr.alloc({ device: i % 4, lo: 0x1000 * (i + 1), hi: 0, size: size(i), sub: 0, owner: 101 }),
      ALLOC_NEW,
    );
  assert.equal(
    tr.alloc({ device: 0, lo: 0xbad000, hi: 0, size: 999, sub: 0, owner: 101 }),
    ALLOC_FULL,
    'one more is refused',
  );
  assert.equal(tr.tableFullDrops, 1);
  assert.equal(
    tr.alloc({ device: 1, lo: 0x2000, hi: 0, size: size(1), sub: 0, owner: 101 }),
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
    tr.alloc({ device: 0, lo: 0xbad000, hi: 0, size: 999, sub: 0, owner: 101 }),
    ALLOC_NEW,
    'room again after a FREE',
  );
  for (let i = 0; i < cap + 3; i++)
    tr.loadObject(KIND_CB, { device: 0, lo: 0x10 * (i + 1), hi: 0, size: 256, sub: 0, owner: 101 });
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
    insertNew(t, { device: d, lo, hi, size: i + 1, sub: 0, owner: 1 }, 0);
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
      insertNew(t, { device: d, lo, hi, size: i + 1, sub: 0, owner: 1 }, 0);
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
