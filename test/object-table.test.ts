// ObjectTable's one API, case by case (the property tests in state-model.test.ts cover it at
// random): insert and find, references, removal, growth, bulk removal, a full table, restore.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ALLOC_FULL,
  ALLOC_NEW,
  ALLOC_REF,
  ALLOC_RESIZED,
  FLAG_RESIZED,
  ObjectTable,
  RELEASE_REF,
  RELEASE_REMOVED,
  RELEASE_UNKNOWN,
} from '../src/state/object-table.js';

const obj = (lo: number, size = 4096, device = 0, hi = 0) => ({
  device,
  lo,
  hi,
  size,
  sub: 3,
  owner: 42,
});

test('allocRef inserts, then counts references; a new size is flagged', () => {
  const t = new ObjectTable();
  assert.equal(t.allocRef(obj(0x1000), 5), ALLOC_NEW);
  const e = t.find(0, 0x1000, 0);
  assert.deepEqual(
    [t.count, t.device(e), t.addrLo(e), t.size(e), t.type(e), t.pid(e), t.ref(e), t.epoch(e)],
    [1, 0, 0x1000, 4096, 3, 42, 1, 5],
  );
  assert.equal(t.allocRef(obj(0x1000), 6), ALLOC_REF);
  assert.equal(t.ref(e), 2);
  assert.equal(t.flags(e), 0);
  assert.equal(t.allocRef(obj(0x1000, 8192), 6), ALLOC_RESIZED);
  assert.equal(t.ref(e), 3);
  assert.ok(t.flags(e) & FLAG_RESIZED);
  assert.equal(t.size(e), 4096, 'the first size stays');
  assert.equal(t.find(1, 0x1000, 0), -1, 'the device is part of the key');
  assert.equal(t.find(0, 0x1000, 1), -1, 'and the high half');
});

test('load inserts once and leaves a live object as it is', () => {
  const t = new ObjectTable();
  assert.equal(t.load(obj(7), 0), ALLOC_NEW);
  assert.equal(t.load(obj(7, 1), 0), ALLOC_REF);
  const e = t.find(0, 7, 0);
  assert.deepEqual([t.ref(e), t.size(e), t.flags(e)], [1, 4096, 0]);
});

test('release drops references, removes the last, says what it removed; unknown keys', () => {
  const t = new ObjectTable();
  t.allocRef(obj(1, 100), 0);
  t.allocRef(obj(1, 100), 0);
  t.allocRef(obj(2, 200), 0);
  assert.equal(t.release(0, 1, 0), RELEASE_REF);
  assert.equal(t.release(0, 1, 0), RELEASE_REMOVED);
  assert.deepEqual([t.gonePid, t.goneType, t.goneSize], [42, 3, 100]);
  assert.equal(t.release(0, 1, 0), RELEASE_UNKNOWN);
  assert.equal(t.count, 1);
  assert.equal(t.find(0, 2, 0), 0, 'the other entry moved into row 0: rows stay dense');
  t.allocRef(obj(2, 200), 0);
  assert.equal(t.release(0, 2, 0, true), RELEASE_REMOVED, 'whole: whatever the references');
  assert.equal(t.count, 0);
});

test('64-bit ids given signed or unsigned are the same key', () => {
  const t = new ObjectTable();
  t.allocRef(obj(0xfffff000, 1, 2, 0x80000001), 0);
  assert.ok(t.find(2, 0xfffff000 | 0, 0x80000001 | 0) >= 0);
  const e = t.find(2, 0xfffff000, 0x80000001);
  assert.equal(t.idBigInt(e), 0x80000001fffff000n);
  assert.equal(t.idHex(e), '80000001fffff000');
  assert.equal(t.release(2, 0xfffff000 | 0, 0x80000001), RELEASE_REMOVED);
});

test('growth: 200 k entries stay findable through shard rehashes, and removals shrink', () => {
  const t = new ObjectTable();
  const N = 200_000;
  for (let i = 0; i < N; i++) assert.equal(t.allocRef(obj(i * 4096, i + 1, i % 4), 0), ALLOC_NEW);
  assert.ok(t.rehashes > 1024, 'shards grew');
  assert.equal(t.count, N);
  for (let i = 0; i < N; i += 997) assert.equal(t.size(t.find(i % 4, i * 4096, 0)), i + 1);
  const big = t.memoryBytes();
  for (let i = 0; i < N; i++) if (i % 10) assert.equal(t.release(i % 4, i * 4096, 0), 2);
  assert.equal(t.count, N / 10);
  assert.ok(t.memoryBytes() < big, 'row pages are released as the table shrinks');
  for (let e = 0; e < t.count; e++) assert.equal(t.find(t.device(e), t.addrLo(e), 0), e);
});

test('removeMarked removes exactly the marked entries (in place, and with a rebuild)', () => {
  for (const every of [2, 50]) {
    const t = new ObjectTable();
    for (let i = 0; i < 5000; i++) t.allocRef(obj(i), 0);
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
    for (let i = 0; i < 5000; i += every) assert.equal(t.allocRef(obj(i), 0), ALLOC_NEW);
    for (let i = 1; i < 5000; i += 3) assert.equal(t.release(0, i, 0), RELEASE_REMOVED);
    for (let e = 0; e < t.count; e++) assert.equal(t.find(0, t.addrLo(e), 0), e);
  }
});

test('a full table refuses new keys but still counts references', () => {
  const t = new ObjectTable(0, 3);
  for (let i = 0; i < 3; i++) assert.equal(t.allocRef(obj(i), 0), ALLOC_NEW);
  assert.equal(t.allocRef(obj(9), 0), ALLOC_FULL);
  assert.equal(t.load(obj(9), 0), ALLOC_FULL);
  assert.equal(t.allocRef(obj(1), 0), ALLOC_REF);
  assert.equal(t.release(0, 0, 0), RELEASE_REMOVED);
  assert.equal(t.allocRef(obj(9), 0), ALLOC_NEW, 'room again');
});

test('append + reindex restore rows exactly; snapshot copies them; clear empties', () => {
  const t = new ObjectTable();
  for (let i = 0; i < 3000; i++)
    t.append({
      ...obj(i, 10 + i, i % 3),
      epoch: i,
      ref: 1 + (i % 4),
      flags: i % 2 ? FLAG_RESIZED : 0,
    });
  assert.equal(t.find(0, 0, 0), -1, 'not findable before reindex');
  t.reindex();
  for (let i = 0; i < 3000; i++) {
    const e = t.find(i % 3, i, 0);
    assert.deepEqual(
      [t.size(e), t.epoch(e), t.ref(e), t.flags(e) !== 0],
      [10 + i, i, 1 + (i % 4), i % 2 === 1],
    );
  }
  const s = t.snapshot();
  t.release(0, 0, 0, true);
  assert.equal(s.count, 3000);
  assert.equal(s.size(0), 10);
  t.clear();
  assert.equal(t.count, 0);
  assert.equal(t.find(1, 1, 0), -1);
});
