// ObjectTable's one API, case by case (the property tests in state-model.test.ts cover it at
// random): insert and find, references, removal, growth, bulk removal, a full table, restore.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ALLOC_CONFLICT,
  ALLOC_FULL,
  ALLOC_NEW,
  ALLOC_REF,
  ALLOC_RESIZED,
  FLAG_RESIZED,
  FLAG_SHARED,
  ObjectTable,
  RELEASE_REF,
  RELEASE_REMOVED,
  RELEASE_UNKNOWN,
} from '../src/state/object-table.js';

const BORN = 1_790_000_000_123; // a 2026 time: above 2^32 ms, so both words of it are used
const obj = (lo: number, size = 4096, device = 0, hi = 0) => ({
  device,
  lo,
  hi,
  size,
  sub: 3,
  owner: 42,
  bornMs: BORN,
});
/** obj() of another owner. */
const objOf = (owner: number, lo: number, size = 4096) => ({ ...obj(lo, size), owner });
/** The key of owner 42's object (device, lo, hi). */
const key = (device: number, lo: number, hi: number, owner = 42) => ({ device, lo, hi, owner });

test('allocRef inserts, then counts references; a new size is flagged', () => {
  const t = new ObjectTable();
  assert.equal(t.allocRef(obj(0x1000)), ALLOC_NEW);
  const e = t.find(0, 0x1000, 0);
  assert.deepEqual(
    [t.count, t.device(e), t.addrLo(e), t.size(e), t.type(e), t.pid(e), t.ref(e), t.bornMs(e)],
    [1, 0, 0x1000, 4096, 3, 42, 1, BORN],
  );
  assert.equal(t.allocRef(obj(0x1000)), ALLOC_REF);
  assert.equal(t.ref(e), 2);
  assert.equal(t.flags(e), 0);
  assert.equal(t.allocRef(obj(0x1000, 8192)), ALLOC_RESIZED);
  assert.equal(t.ref(e), 3);
  assert.ok(t.flags(e) & FLAG_RESIZED);
  assert.equal(t.size(e), 4096, 'the first size stays');
  assert.equal(t.find(1, 0x1000, 0), -1, 'the device is part of the key');
  assert.equal(t.find(0, 0x1000, 1), -1, 'and the high half');
});

test('load inserts once and leaves a live object as it is', () => {
  const t = new ObjectTable();
  assert.equal(t.load(obj(7)), ALLOC_NEW);
  assert.equal(t.load(obj(7, 1)), ALLOC_REF);
  const e = t.find(0, 7, 0);
  assert.deepEqual([t.ref(e), t.size(e), t.flags(e)], [1, 4096, 0]);
});

test('release drops references, removes the last, says what it removed; unknown keys', () => {
  const t = new ObjectTable();
  t.allocRef(obj(1, 100));
  t.allocRef(obj(1, 100));
  t.allocRef(obj(2, 200));
  assert.equal(t.release(key(0, 1, 0)), RELEASE_REF);
  assert.equal(t.release(key(0, 1, 0)), RELEASE_REMOVED);
  assert.deepEqual([t.gonePid, t.goneType, t.goneSize], [42, 3, 100]);
  assert.equal(t.release(key(0, 1, 0)), RELEASE_UNKNOWN);
  assert.equal(t.count, 1);
  assert.equal(t.find(0, 2, 0), 0, 'the other entry moved into row 0: rows stay dense');
  t.allocRef(obj(2, 200));
  assert.equal(t.release(key(0, 2, 0), true), RELEASE_REMOVED, 'whole: whatever the references');
  assert.equal(t.count, 0);
});

test('64-bit ids given signed or unsigned are the same key', () => {
  const t = new ObjectTable();
  t.allocRef(obj(0xfffff000, 1, 2, 0x80000001));
  assert.ok(t.find(2, 0xfffff000 | 0, 0x80000001 | 0) >= 0);
  const e = t.find(2, 0xfffff000, 0x80000001);
  assert.equal(t.idBigInt(e), 0x80000001fffff000n);
  assert.equal(t.idHex(e), '80000001fffff000');
  assert.equal(t.release(key(2, 0xfffff000 | 0, 0x80000001)), RELEASE_REMOVED);
});

test('growth: 200 k entries stay findable through shard rehashes, and removals shrink', () => {
  const t = new ObjectTable();
  const N = 200_000;
  for (let i = 0; i < N; i++) assert.equal(t.allocRef(obj(i * 4096, i + 1, i % 4)), ALLOC_NEW);
  assert.ok(t.rehashes > 1024, 'shards grew');
  assert.equal(t.count, N);
  for (let i = 0; i < N; i += 997) assert.equal(t.size(t.find(i % 4, i * 4096, 0)), i + 1);
  const big = t.memoryBytes();
  for (let i = 0; i < N; i++) if (i % 10) assert.equal(t.release(key(i % 4, i * 4096, 0)), 2);
  assert.equal(t.count, N / 10);
  assert.ok(t.memoryBytes() < big, 'row pages are released as the table shrinks');
  for (let e = 0; e < t.count; e++) assert.equal(t.find(t.device(e), t.addrLo(e), 0), e);
});

test('removeMarked removes exactly the marked entries (in place, and with a rebuild)', () => {
  for (const every of [2, 50]) {
    const t = new ObjectTable();
    for (let i = 0; i < 5000; i++) t.allocRef(obj(i));
    const mark = new Uint8Array(t.count);
    let n = 0;
    for (let e = 0; e < t.count; e++)
      if (t.addrLo(e) % every === 0) {
        mark[e] = 1;
        n++;
      }
    t.removeMarked(mark, n);
    assert.equal(t.count, 5000 - n);
    for (let i = 0; i < 5000; i++) assert.equal(t.find(0, i, 0) >= 0, i % every !== 0, `${i}`);
    // Later inserts and frees across the tombstones stay exact.
    for (let i = 0; i < 5000; i += every) assert.equal(t.allocRef(obj(i)), ALLOC_NEW);
    for (let i = 1; i < 5000; i += 3) assert.equal(t.release(key(0, i, 0)), RELEASE_REMOVED);
    for (let e = 0; e < t.count; e++) assert.equal(t.find(0, t.addrLo(e), 0), e);
  }
});

test('a full table refuses new keys but still counts references', () => {
  const t = new ObjectTable(0, 3);
  for (let i = 0; i < 3; i++) assert.equal(t.allocRef(obj(i)), ALLOC_NEW);
  assert.equal(t.allocRef(obj(9)), ALLOC_FULL);
  assert.equal(t.load(obj(9)), ALLOC_FULL);
  assert.equal(t.allocRef(obj(1)), ALLOC_REF);
  assert.equal(t.release(key(0, 0, 0)), RELEASE_REMOVED);
  assert.equal(t.allocRef(obj(9)), ALLOC_NEW, 'room again');
});

test('append + reindex restore rows exactly; snapshot copies them; clear empties', () => {
  const t = new ObjectTable();
  for (let i = 0; i < 3000; i++)
    t.append({
      ...obj(i, 10 + i, i % 3),
      bornMs: BORN + i * 1000,
      ref: 1 + (i % 4),
      flags: i % 2 ? FLAG_RESIZED : 0,
    });
  assert.equal(t.find(0, 0, 0), -1, 'not findable before reindex');
  t.reindex();
  for (let i = 0; i < 3000; i++) {
    const e = t.find(i % 3, i, 0);
    assert.deepEqual(
      [t.size(e), t.bornMs(e), t.ref(e), t.flags(e) !== 0],
      [10 + i, BORN + i * 1000, 1 + (i % 4), i % 2 === 1],
    );
  }
  const s = t.snapshot();
  t.release(key(0, 0, 0), true);
  assert.equal(s.count, 3000);
  assert.equal(s.size(0), 10);
  t.clear();
  assert.equal(t.count, 0);
  assert.equal(t.find(1, 1, 0), -1);
});

test('one owner per object: another owner at the same key conflicts, then shares', () => {
  const t = new ObjectTable();
  assert.equal(t.allocRef(obj(0x1000, 100)), ALLOC_NEW);
  // PID 43 reports the address PID 42 holds: not a reference of 42's buffer
  assert.equal(t.allocRef(objOf(43, 0x1000, 200)), ALLOC_CONFLICT);
  assert.equal(t.pid(t.conflictEntry), 42);
  assert.equal(t.count, 1, 'a conflict inserts nothing');
  assert.equal(t.allocRef(objOf(43, 0x1000, 200), true), ALLOC_NEW);
  assert.equal(t.count, 2);
  const a = t.find(0, 0x1000, 0, 42),
    b = t.find(0, 0x1000, 0, 43);
  assert.deepEqual([t.size(a), t.ref(a), t.size(b), t.ref(b)], [100, 1, 200, 1]);
  assert.ok(t.flags(a) & FLAG_SHARED && t.flags(b) & FLAG_SHARED, 'both are flagged shared');
  // each owner's repeat is its own reference; each FREE releases the sender's own buffer
  assert.equal(t.allocRef(objOf(43, 0x1000, 200)), ALLOC_REF);
  assert.equal(t.release(key(0, 0x1000, 0, 44)), RELEASE_UNKNOWN, 'a third PID frees nothing');
  assert.equal(t.release(key(0, 0x1000, 0, 42)), RELEASE_REMOVED);
  assert.equal(t.gonePid, 42);
  assert.deepEqual([t.count, t.ref(t.find(0, 0x1000, 0, 43))], [1, 2]);
  assert.equal(t.release(key(0, 0x1000, 0, 43)), RELEASE_REF);
  assert.equal(t.release(key(0, 0x1000, 0, 43)), RELEASE_REMOVED);
  assert.equal(t.count, 0);
});

test('a row keeps a 42-bit allocation time and a 22-bit owner side by side', () => {
  const t = new ObjectTable();
  const late = 4_000_000_000_000; // year 2096: the high bits of the time are set
  t.allocRef({ ...objOf((1 << 22) - 1, 5, 1), bornMs: late });
  const e = t.find(0, 5, 0);
  assert.deepEqual([t.pid(e), t.bornMs(e)], [(1 << 22) - 1, late]);
  const copy = new Int32Array(7);
  t.copyRow(e, copy, 0);
  assert.ok(copy.some((w) => w !== 0));
});
