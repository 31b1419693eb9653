// The record format (src/persist/records.ts): every record kind encoded and decoded back, torn
// and corrupt batches, and byte-level golden checks: against what FORMAT_VERSION 3 writes (the V3
// bytes below), and against what the format's first version (commit 885f8ca, FORMAT_VERSION 2)
// wrote: an existing state directory must keep loading.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MsgType } from '../src/protocol/constants.js';
import { StateEvent } from '../src/state/events.js';
import { Tracker } from '../src/state/tracker.js';
import { Checkpoints } from '../src/state/marks.js';
import { ROW_WORDS } from '../src/state/object-table.js';
import { RowArray, type ExitedProcess } from '../src/state/left-behind.js';
import {
  BATCH_HEADER,
  BIG_EVENT,
  Ctl,
  FORMAT_V2,
  FORMAT_VERSION,
  OBJECT_ROW_BYTES,
  ObjectRow,
  SMALL_EVENT,
  controlEntry,
  deviceEntry,
  entryBytes,
  epochEntry,
  jsonEntry,
  leftBehindEntry,
  readDevice,
  readEpoch,
  readEpochs,
  readEvent,
  readJson,
  readLeftBehind,
  readObjectRow,
  readObjectsHead,
  sealBatch,
  writeEvent,
  writeObjectRow,
  writeObjectsHead,
} from '../src/persist/records.js';
import { forEachBatch, loadState } from '../src/persist/replay.js';
import { snapshotSource, writeSnapshot } from '../src/persist/snapshot.js';
import { FIXTURE_NOW_MS, tableRows, writeFixture } from './helpers/state-fixture.js';

// Written by test/helpers/state-fixture.ts's writeFixture() at commit 885f8ca (FORMAT_VERSION 2).
const V2_JOURNAL = [
  'VFRKMfQAAADBF8N/iAAAABkAAAB7InZlcnNpb24iOjIsInNlZ21lbnQiOjF9AAAAgAAAAAwAAAAAAAAAAACYHy4j',
  'ekKMAAAABAAAAAAAAAABAAAAZAAAAAAQAAAAAAAAABAAAAAAAACMAAAABAAAAAEAAAABAQEAZQAAAAAgAAABAAAA',
  'BwAAAAABAAABAAAAZAAAAAAQAAAAAAAAABAAAAAAAACMAAAABAAAAAIAAAACAAMAZAAAAK3eAAAAAAAACAAAAGYA',
  'AAAAZgAAAAAAAACAAAAAAAAACgIBAGcAAABVVQAAAAAAAAAgAAAAAAAACwABAGcAAABERAAAAAAAAFRUSjFUAAAA',
  'Fq/6JoAAAAAMAAAAAQAAAAAAmB8uI3pCggAAADcAAAB7Im5hbWUiOiJtMSIsImVwb2NoIjoxLCJhdE1zIjoxNzk2',
  'MTUwMDAwMDAwLCJwaWQiOm51bGx9AFRUSjE8AAAAOQBiWAEDAABoAAAAAHAAAAAAAABkAAAAAAAAAIMAAAAaAAAA',
  'eyJwaWRzIjpbOTk5XSwiYXRNcyI6MTIzNH0AAA==',
].join('');
const V2_SNAPSHOT = [
  'VFRKMXABAABjPJxNiAAAAEAAAAB7InZlcnNpb24iOjIsInRocm91Z2giOjEsImNyZWF0ZWRBdCI6IjIwMjYtMTIt',
  'MDFUMTk6NDQ6MzcuMjQ0WiJ9iQAAABQAAAAAAJgfLiN6QgAAmB8uI3pCAQAAAIoAAAC2AAAAeyJ1bmtub3duRnJl',
  'ZXMiOjEsInVua25vd25DYkZyZWVzIjowLCJ1bmtub3duS2VybmVsVW5sb2FkcyI6MSwicmVzaXplZEFsbG9jcyI6',
  'MCwicmVhcGVkVG90YWwiOjAsImRldlVua25vd25GcmVlcyI6WzAsMCwwLDFdLCJwaWRVbmtub3duRnJlZXMiOltb',
  'MTAwLDAsMCwwLDFdXSwiZGV2aWNlc1NlZW4iOlswLDEsMiwzXX0AAIcAAAACAAAAW10AAIIAAAA3AAAAeyJuYW1l',
  'IjoibTEiLCJlcG9jaCI6MSwiYXRNcyI6MTc5NjE1MDAwMDAwMCwicGlkIjpudWxsfQBUVEoxcAAAAA4ARIOLAAAA',
  'aAAAAP////8DAAAAABAAAAAAAAAAEAAAAAAAAAAAAABkAAAAAgAAAAAAAAAAIAAAAQAAAAcAAAAAAQEAAQAAAGUA',
  'AAABAAAAAAAAAABwAAAAAAAAZAAAAAAAAAADAAAAaAAAAAEAAAABAAAAVFRKMTAAAABKkuBQiwAAACgAAAAFAAAA',
  'AQAAAABmAAAAAAAAAIAAAAAAAAAAAAAAZgAAAAEAAAAAAAAAVFRKMTAAAAAYocySiwAAACgAAAAGAAAAAQAAAFVV',
  'AAAAAAAAACAAAAAAAQACAAAAZwAAAAEAAAAAAAAA',
].join('');

// Written by test/helpers/state-fixture.ts's writeFixture() (as of commit 4813604) and recorded
// here by the commit that added these lines (`git log -S V3_JOURNAL -- test/records.test.ts`):
// FORMAT_VERSION 3, with allocation times in the records, a REAP that says who PID 105 was, and
// the buffer PID 105 left behind.
const V3_JOURNAL = [
  'VFRKMQgBAAAb76wviAAAABkAAAB7InZlcnNpb24iOjMsInNlZ21lbnQiOjF9AAAAjAAAAAQAAAAAAAAAAQAAAGQA',
  'AAAAEAAAAAAAAAAQAAAAAAAAgPnhMqIBAACMAAAABAAAAAEAAAABAQEAZQAAAAAgAAABAAAABwAAAAABAACA+eEy',
  'ogEAAAEAAABkAAAAABAAAAAAAAAAEAAAAAAAAID54TKiAQAAjAAAAAQAAAACAAAAAgADAGQAAACt3gAAAAAAAAgA',
  'AABmAAAAAGYAAAAAAAAAgAAAAAAAAID54TKiAQAACgIBAGcAAABVVQAAAAAAAAAgAAAAAAAAgPnhMqIBAAALAAEA',
  'ZwAAAEREAAAAAAAAVFRKMUwAAADLpS2lggAAAEMAAAB7Im5hbWUiOiJtMSIsImN1dE1zIjoxNzk2MTUwMDAwMDAx',
  'LCJhdE1zIjoxNzk2MTUwMDAwMDAwLCJwaWQiOm51bGx9AFRUSjHMAAAAWOpAJAEDAABoAAAAAHAAAAAAAABkAAAA',
  'AAAAAIH54TKiAQAAAQABAGkAAAAAgAAAAAAAAMgAAAAAAAAAgfnhMqIBAACDAAAAYAAAAHsicGlkcyI6WzEwNV0s',
  'ImF0TXMiOjEyMzQsImlkcyI6eyIxMDUiOnsicHBpZCI6MSwiY21kbGluZSI6InB5dGhvbjMgLW0gcHl0ZXN0Iiwi',
  'c3RhcnRNcyI6MTAwMH19fYMAAAAaAAAAeyJwaWRzIjpbOTk5XSwiYXRNcyI6MTIzNH0AAA==',
].join('');
const V3_SNAPSHOT = [
  'VFRKMYQBAADXLjEeiAAAAEAAAAB7InZlcnNpb24iOjMsInRocm91Z2giOjEsImNyZWF0ZWRBdCI6IjIwMjYtMTIt',
  'MDFUMjI6NTk6MjEuOTk0WiJ9igAAAOgAAAB7InVua25vd25GcmVlcyI6MSwidW5rbm93bkNiRnJlZXMiOjAsInVu',
  'a25vd25LZXJuZWxVbmxvYWRzIjoxLCJyZXNpemVkQWxsb2NzIjowLCJyZWFwZWRUb3RhbCI6MSwiZGV2VW5rbm93',
  'bkZyZWVzIjpbMCwwLDAsMV0sInBpZFVua25vd25GcmVlcyI6W1sxMDAsMCwwLDAsMV1dLCJkZXZpY2VzU2VlbiI6',
  'WzAsMSwyLDNdLCJsZWZ0QmVoaW5kRHJvcHBlZCI6WzAsMF0sImZsb29yTXMiOjE3OTYxNTAwMDAwMDF9ggAAAEMA',
  'AAB7Im5hbWUiOiJtMSIsImN1dE1zIjoxNzk2MTUwMDAwMDAxLCJhdE1zIjoxNzk2MTUwMDAwMDAwLCJwaWQiOm51',
  'bGx9AFRUSjFwAAAAzy4eKYsAAABoAAAA/////wMAAAAAEAAAAAAAAAAQAAAAAAAAAKIBAGQAAAACAAAAgPnhMgAg',
  'AAABAAAABwAAAAABAQABogEAZQAAAAEAAACA+eEyAHAAAAAAAABkAAAAAAAAAAOiAQBoAAAAAQAAAIH54TJUVEox',
  'MAAAAMFh1XuLAAAAKAAAAAUAAAABAAAAAGYAAAAAAAAAgAAAAAAAAACiAQBmAAAAAQAAAID54TJUVEoxMAAAAJNS',
  '+bmLAAAAKAAAAAYAAAABAAAAVVUAAAAAAAAAIAAAAAABAAKiAQBnAAAAAQAAAID54TJUVEoxCAEAAA4JeaiNAAAA',
  'AAEAAOAAAAB7InBpZCI6MTA1LCJwcGlkIjoxLCJjbWRsaW5lIjoicHl0aG9uMyAtbSBweXRlc3QiLCJzdGFydE1z',
  'IjoxMDAwLCJyZWFwZWRBdE1zIjoxMjM0LCJidWZmZXJzIjoxLCJieXRlcyI6MjAwLCJjYnMiOjAsImNiQnl0ZXMi',
  'OjAsImtlcm5lbHMiOjAsImtlcm5lbEJ5dGVzIjowLCJieURldmljZSI6eyIxIjp7IkRSQU0iOnsiY291bnQiOjEs',
  'ImJ5dGVzIjoyMDB9fX0sInJlY29yZHNEcm9wcGVkIjowfQCAAAAAAAAAAQAAAMgAAABpAIBoAQAAAIH54TI=',
].join('');

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const dv = (b: Buffer) => new DataView(b.buffer, b.byteOffset, b.length);

function event(f: Partial<StateEvent>): StateEvent {
  return Object.assign(new StateEvent(), f);
}

test('event records: literal bytes of an ALLOC and a FREE, as the wire orders them', () => {
  const words = new Int32Array(16);
  const bytes = Buffer.from(words.buffer);
  const alloc = event({
    code: MsgType.ALLOC,
    sub: 1,
    device: 1,
    owner: 101,
    lo: 0x2000,
    hi: 1,
    sizeLo: 7,
    sizeHi: 0x100,
    bornMs: FIXTURE_NOW_MS, // 0x1a2_32e1f980: both words of the time are used
  });
  assert.equal(writeEvent(words, 0, alloc), BIG_EVENT);
  const free = event({ code: MsgType.FREE, device: 1023, owner: -2, lo: -1, hi: 0x7fffffff });
  assert.equal(writeEvent(words, BIG_EVENT / 4, free), SMALL_EVENT);
  assert.equal(
    hex(bytes.subarray(0, BIG_EVENT + SMALL_EVENT)),
    '01010100' +
      '65000000' +
      '00200000' +
      '01000000' +
      '07000000' +
      '00010000' +
      '80f9e132' +
      'a2010000' +
      '0200ff03' +
      'feffffff' +
      'ffffffff' +
      'ffffff7f',
  );
});

test('event records: every code reads back as written, and steps by its size', () => {
  const words = new Int32Array(64);
  const b = Buffer.from(words.buffer);
  const codes = [
    MsgType.ALLOC,
    MsgType.FREE,
    MsgType.CB_ALLOC,
    MsgType.CB_FREE,
    MsgType.KERNEL_LOAD,
    MsgType.KERNEL_UNLOAD,
  ];
  const sized = new Set<number>([MsgType.ALLOC, MsgType.CB_ALLOC, MsgType.KERNEL_LOAD]);
  const written: StateEvent[] = [];
  let off = 0;
  for (const [i, code] of codes.entries()) {
    const e = event({
      code,
      sub: sized.has(code) && code !== MsgType.CB_ALLOC ? i + 1 : 0,
      device: 100 * i,
      owner: -1 - i,
      lo: 0x80000000 | i,
      hi: i,
      sizeLo: sized.has(code) ? -7 : 0,
      sizeHi: sized.has(code) ? 0xffff : 0,
      // the widest time (42 bits) and a 2026 one
      bornMs: sized.has(code) ? (i === 0 ? 2 ** 42 - 1 : FIXTURE_NOW_MS + i) : 0,
    });
    written.push(e);
    off += writeEvent(words, off >> 2, e);
  }
  assert.equal(off, 3 * BIG_EVENT + 3 * SMALL_EVENT);
  off = 0;
  for (const e of written) {
    const got = new StateEvent();
    readEvent(dv(b), off, got, FORMAT_VERSION);
    assert.deepEqual({ ...got }, { ...e, lo: e.lo | 0 }, `code ${e.code}`);
    off += entryBytes(b[off], 0);
  }
  assert.equal(written[0].size, 0xffff * 2 ** 32 + 2 ** 32 - 7);
});

test('event records: format 2 (no allocation time, 24-byte ALLOCs) still reads', () => {
  // An ALLOC and a FREE as format 2 wrote them (the golden journal below has more).
  const v2 = Buffer.from(
    '01010100' +
      '65000000' +
      '00200000' +
      '01000000' +
      '07000000' +
      '00010000' +
      '0200ff03' +
      'feffffff' +
      'ffffffff' +
      'ffffff7f',
    'hex',
  );
  assert.equal(entryBytes(v2[0], 0, FORMAT_V2), 24);
  const got = event({ bornMs: 42 });
  readEvent(dv(v2), 0, got, FORMAT_V2);
  assert.deepEqual(
    { ...got },
    {
      ...event({
        code: MsgType.ALLOC,
        sub: 1,
        device: 1,
        owner: 101,
        lo: 0x2000,
        hi: 1,
        sizeLo: 7,
        sizeHi: 0x100,
      }),
      bornMs: 42, // left for the reader (its epoch's start)
    },
  );
  assert.equal(entryBytes(v2[24], 0, FORMAT_V2), SMALL_EVENT);
  readEvent(dv(v2), 24, got, FORMAT_V2);
  assert.deepEqual(
    [got.code, got.device, got.owner, got.lo, got.hi],
    [MsgType.FREE, 1023, -2, -1, 0x7fffffff],
  );
});

/** A format-2 EPOCHS entry (snapshot): f64 start ms of every epoch, then u32 current epoch. */
function epochsEntryV2(times: number[], epoch: number): Buffer {
  const d = Buffer.alloc(8 * times.length + 4);
  times.forEach((t, i) => d.writeDoubleLE(t, 8 * i));
  d.writeUInt32LE(epoch, 8 * times.length);
  return controlEntry(Ctl.EPOCHS, d);
}

test('control entries: literal bytes, and each reads back', () => {
  assert.equal(hex(controlEntry(Ctl.RESET)), '8400000000000000');
  assert.equal(hex(deviceEntry(1023)), '8c00000004000000ff030000');
  assert.equal(hex(epochEntry(3, 1.5)), '800000000c00000003000000000000000000f83f');
  const mark = jsonEntry(Ctl.MARK, { name: 'a' });
  assert.equal(mark.toString('latin1'), '\x82\0\0\0\x0c\0\0\0{"name":"a"}');
  assert.equal(entryBytes(mark[0], mark.readUInt32LE(4)), mark.length);
  const odd = jsonEntry(Ctl.REAP, { pids: [1] });
  assert.equal(odd.length % 4, 0, 'padded to whole words');
  assert.equal(entryBytes(odd[0], odd.readUInt32LE(4)), odd.length);
  assert.deepEqual(readJson(odd, 8, odd.readUInt32LE(4)), { pids: [1] });
  assert.equal(readDevice(dv(deviceEntry(77)), 8), 77);
  // Format 2's epoch entries, still read.
  assert.deepEqual(readEpoch(dv(epochEntry(9, 1796150000000.25)), 8), {
    epoch: 9,
    startMs: 1796150000000.25,
  });
  const epochs = epochsEntryV2([1, 2.5, 1e12], 2);
  assert.deepEqual(readEpochs(dv(epochs), 8, epochs.readUInt32LE(4)), {
    times: [1, 2.5, 1e12],
    epoch: 2,
  });
});

test('LEFT_BEHIND entries: literal bytes, and an exited process with its rows reads back', () => {
  // One buffer: 0x8000 on device 1, 200 B of DRAM, PID 105, ref 1, born FIXTURE_NOW_MS + 1 (the
  // owner word holds the time's high bits above the 22-bit PID).
  const rows = Int32Array.from([0x8000, 0, 1, 200, 105 | (0x1a2 << 22), 1, 0x32e1f981]);
  const p: ExitedProcess = {
    pid: 105,
    ppid: 1,
    cmdline: 'a',
    startMs: 1000,
    reapedAtMs: 1234,
    buffers: 1,
    bytes: 200,
    cbs: 0,
    cbBytes: 0,
    kernels: 0,
    kernelBytes: 0,
    byDevice: { 1: { DRAM: { count: 1, bytes: 200 } } },
    recordsDropped: 0,
    rows,
  };
  const entry = leftBehindEntry(p);
  const json = JSON.stringify({ ...p, rows: undefined });
  const at = (4 + json.length + 3) & ~3; // the rows start on a word
  assert.equal(entry[0], Ctl.LEFT_BEHIND);
  assert.equal(entry.readUInt32LE(4), at + rows.byteLength);
  assert.equal(entry.readUInt32LE(8), json.length);
  assert.equal(entry.subarray(12, 12 + json.length).toString(), json);
  assert.equal(
    hex(entry.subarray(8 + at)),
    '00800000' + '00000000' + '01000000' + 'c8000000' + '69008068' + '01000000' + '81f9e132',
  );
  assert.equal(entryBytes(entry[0], entry.readUInt32LE(4)), entry.length);
  const back = readLeftBehind(entry, 8, entry.readUInt32LE(4));
  assert.deepEqual(back, p);
  const r = new RowArray(back.rows);
  assert.deepEqual(
    [r.count, r.device(0), r.idHex(0), r.size(0), r.type(0), r.pid(0), r.ref(0), r.bornMs(0)],
    [1, 1, '8000', 200, 0, 105, 1, FIXTURE_NOW_MS + 1],
  );
});

test('object rows: literal bytes, and the widest values read back', () => {
  const b = Buffer.alloc(16 + 2 * OBJECT_ROW_BYTES);
  const rowsAt = writeObjectsHead(dv(b), 0, -1, 2);
  assert.equal(rowsAt, 16);
  // `satisfies`: a renamed row field fails the typecheck instead of writing a stray property.
  const r = Object.assign(new ObjectRow(), {
    device: 1023,
    lo: 0xfffffff0,
    hi: 0x12345678,
    size: 2 ** 48 - 1,
    sub: 4,
    flags: 0xc0000000 | 0, // as the tables give it: a signed word
    owner: -5,
    ref: 70000,
    bornMs: 2 ** 42 - 1, // the widest time: its 10 high bits sit beside the type
  } satisfies Partial<ObjectRow>);
  writeObjectRow(dv(b), rowsAt, r);
  const small = Object.assign(new ObjectRow(), {
    size: 4096,
    sub: 1,
    owner: 100,
    ref: 1,
    bornMs: FIXTURE_NOW_MS,
  } satisfies Partial<ObjectRow>);
  writeObjectRow(dv(b), rowsAt + OBJECT_ROW_BYTES, small);
  assert.equal(
    hex(b.subarray(0, rowsAt + 2 * OBJECT_ROW_BYTES)),
    '8b000000' +
      '48000000' +
      'ffffffff' +
      '02000000' +
      // the widest row
      'f0ffffff' +
      '78563412' +
      'ffffffff' +
      'ffffff03' +
      '04ff03c0' +
      'fbffffff' +
      '70110100' +
      'ffffffff' +
      // a 2026 time
      '00000000' +
      '00000000' +
      '00100000' +
      '00000000' +
      '01a20100' +
      '64000000' +
      '01000000' +
      '80f9e132',
  );
  assert.deepEqual(readObjectsHead(dv(b), 8), { kind: -1, rows: 2 });
  const got = new ObjectRow();
  readObjectRow(dv(b), rowsAt, got);
  assert.deepEqual(got, r);
  readObjectRow(dv(b), rowsAt + OBJECT_ROW_BYTES, got);
  assert.deepEqual(got, small);
});

/** A file of three sealed batches; returns it and where each batch starts. */
function threeBatches(): { file: Buffer; starts: number[] } {
  const parts: Buffer[] = [];
  const starts: number[] = [];
  let at = 0;
  for (const entry of [deviceEntry(1), jsonEntry(Ctl.MARK, { name: 'x' }), controlEntry(0x84)]) {
    const b = Buffer.alloc(BATCH_HEADER + entry.length);
    entry.copy(b, BATCH_HEADER);
    starts.push(at);
    parts.push(sealBatch(b, entry.length));
    at += b.length;
  }
  return { file: Buffer.concat(parts), starts };
}

function readFile(bytes: Buffer) {
  const path = join(mkdtempSync(join(tmpdir(), 'ttalloc-records-')), 'f.bin');
  writeFileSync(path, bytes);
  const payloads: string[] = [];
  const r = forEachBatch(path, (p) => payloads.push(hex(p)));
  return { ...r, batches: payloads.length };
}

test('batches: whole ones are read; a torn or corrupt one ends the readable part', () => {
  const { file, starts } = threeBatches();
  assert.deepEqual(readFile(file), {
    goodBytes: file.length,
    size: file.length,
    problem: null,
    batches: 3,
  });
  const cut = (n: number) => readFile(file.subarray(0, n));
  const tornHead = cut(starts[2] + 5);
  assert.equal(tornHead.goodBytes, starts[2]);
  assert.equal(tornHead.batches, 2);
  assert.match(tornHead.problem!, /torn batch header at byte/);
  const torn = cut(file.length - 1);
  assert.equal(torn.batches, 2);
  assert.match(torn.problem!, /torn batch at byte \d+ \(8 bytes announced, 7 present\)/);
  const flipped = Buffer.from(file);
  flipped[starts[1] + BATCH_HEADER + 9] ^= 1;
  const bad = readFile(flipped);
  assert.equal(bad.goodBytes, starts[1]);
  assert.equal(bad.batches, 1);
  assert.match(bad.problem!, /checksum mismatch in batch at byte/);
  const magic = Buffer.from(file);
  magic[starts[1]] = 0;
  assert.match(readFile(magic).problem!, /bad batch magic at byte/);
  assert.equal(readFile(magic).batches, 1);
});

/** The first batch of a snapshot names when it was written: that text is set to `createdAt`. */
function withCreatedAt(snapshot: Buffer, createdAt: string): Buffer {
  const len = snapshot.readUInt32LE(4);
  const payload = snapshot.subarray(BATCH_HEADER, BATCH_HEADER + len).toString('latin1');
  const fixed = payload.replace(/"createdAt":"[^"]*"/, `"createdAt":"${createdAt}"`);
  const first = Buffer.alloc(BATCH_HEADER + len);
  first.write(fixed, BATCH_HEADER, 'latin1');
  return Buffer.concat([sealBatch(first, len), snapshot.subarray(BATCH_HEADER + len)]);
}

const v2Journal = Buffer.from(V2_JOURNAL, 'base64');
const v2Snapshot = Buffer.from(V2_SNAPSHOT, 'base64');
const v3Journal = Buffer.from(V3_JOURNAL, 'base64');
const v3Snapshot = Buffer.from(V3_SNAPSHOT, 'base64');
const createdAt = (s: Buffer) => /"createdAt":"([^"]*)"/.exec(s.toString('latin1'))![1];

/** Everything the state holds, comparable. */
function stateOf(tr: Tracker, marks: Checkpoints) {
  return {
    buffers: tableRows(tr.buffers),
    cbs: tableRows(tr.cbs),
    kernels: tableRows(tr.kernels),
    counters: tr.counters(),
    exited: tr.reaped.map((p) => ({ ...p, rows: [...p.rows] })),
    marks: marks.list(),
    floorMs: tr.floorMs,
  };
}

/** A state directory holding one file (`name`: a journal segment or the snapshot), loaded. */
function loadOne(name: string, bytes: Buffer): { tr: Tracker; marks: Checkpoints } {
  const dir = mkdtempSync(join(tmpdir(), 'ttalloc-golden-'));
  writeFileSync(join(dir, name), bytes);
  const tr = new Tracker(16);
  const marks = new Checkpoints(tr);
  const rec = loadState(dir, tr, marks, { repair: false });
  assert.deepEqual(rec.problems, [], name);
  return { tr, marks };
}

/** `fn` with Date.now() at the fixture's clock (format 2's replay dates an unknown epoch by it). */
async function atFixtureClock<T>(fn: () => Promise<T> | T): Promise<T> {
  const realNow = Date.now;
  Date.now = () => FIXTURE_NOW_MS;
  try {
    return await fn();
  } finally {
    Date.now = realNow;
  }
}

/** A snapshot of this state, as written now. */
async function snapshotOf(tr: Tracker, marks: Checkpoints): Promise<Buffer> {
  const out = mkdtempSync(join(tmpdir(), 'ttalloc-golden-'));
  await writeSnapshot(out, snapshotSource(tr, marks), 1);
  return readFileSync(join(out, 'snapshot.bin'));
}

const T0 = FIXTURE_NOW_MS;
/** The fixture's counters (an unknown free on device 3 by PID 100, an unknown kernel unload). */
const FIXTURE_COUNTERS = {
  unknownFrees: 1,
  unknownCbFrees: 0,
  unknownKernelUnloads: 1,
  resizedAllocs: 0,
  devUnknownFrees: [0, 0, 0, 1],
  pidUnknownFrees: [[100, 0, 0, 0, 1]],
  devicesSeen: [0, 1, 2, 3],
  leftBehindDropped: [0, 0],
};

test('golden: journal and snapshot are byte for byte what FORMAT_VERSION 3 wrote', async () => {
  const now = await writeFixture();
  assert.equal(hex(now.journal), hex(v3Journal));
  assert.equal(hex(withCreatedAt(now.snapshot, createdAt(v3Snapshot))), hex(v3Snapshot));
});

test('golden: a state directory FORMAT_VERSION 3 wrote loads into the same state', async () => {
  const states: ReturnType<typeof stateOf>[] = [];
  for (const [name, bytes] of [
    ['journal-00000001.bin', v3Journal],
    ['snapshot.bin', v3Snapshot],
  ] as const) {
    const { tr, marks } = loadOne(name, bytes);
    const st = stateOf(tr, marks);
    // Before the mark (cut at T0 + 1): PID 100's buffer (two references), PID 101's; after it:
    // PID 104's. PID 105's exited: it is left behind, not live.
    assert.deepEqual(
      st.buffers,
      [
        [0, '1000', 4096, 0, 100, 2, 0, T0],
        [0, '7000', 100, 3, 104, 1, 0, T0 + 1],
        [1, '100002000', 2 ** 40 + 7, 1, 101, 1, 0, T0],
      ],
      name,
    );
    assert.deepEqual(st.cbs, [[0, '6600', 32768, 0, 102, 1, 0, T0]], name);
    assert.deepEqual(st.kernels, [[1, '5555', 8192, 2, 103, 1, 0, T0]], name);
    assert.deepEqual(st.marks, [{ name: 'm1', cutMs: T0 + 1, atMs: T0, pid: null }], name);
    assert.deepEqual(st.counters, { ...FIXTURE_COUNTERS, reapedTotal: 1, floorMs: T0 + 1 }, name);
    // The LEFT_BEHIND record (snapshot) or the REAP replayed (journal): PID 105, who it was, and
    // its one buffer.
    assert.equal(tr.reaped.length, 1, name);
    const p = tr.reaped[0];
    assert.deepEqual(
      [p.pid, p.ppid, p.cmdline, p.startMs, p.reapedAtMs, p.buffers, p.bytes, p.recordsDropped],
      [105, 1, 'python3 -m pytest', 1000, 1234, 1, 200, 0],
      name,
    );
    assert.deepEqual(p.byDevice, { 1: { DRAM: { count: 1, bytes: 200 } } }, name);
    const r = new RowArray(p.rows);
    assert.equal(p.rows.length, ROW_WORDS);
    assert.deepEqual(
      [r.device(0), r.idHex(0), r.size(0), r.type(0), r.pid(0), r.ref(0), r.flags(0), r.bornMs(0)],
      [1, '8000', 200, 0, 105, 1, 0, T0 + 1],
      name,
    );
    // written again, it is the fixture's snapshot
    const again = await snapshotOf(tr, marks);
    assert.equal(hex(withCreatedAt(again, createdAt(v3Snapshot))), hex(v3Snapshot), name);
    states.push(st);
  }
  assert.deepEqual(states[0], states[1], 'the journal and the snapshot hold the same state');
});

test('golden: a state directory FORMAT_VERSION 2 wrote loads into the same state', async () => {
  const states: ReturnType<typeof stateOf>[] = [];
  for (const [name, bytes] of [
    ['journal-00000001.bin', v2Journal],
    ['snapshot.bin', v2Snapshot],
  ] as const) {
    await atFixtureClock(async () => {
      const { tr, marks } = loadOne(name, bytes);
      const st = stateOf(tr, marks);
      // Format 2 knew epochs, not times: every object gets its epoch's start (the fixture's clock
      // started both), and the mark's cut is the start of the epoch it began.
      assert.equal(tr.buffers.count, 3, name);
      assert.deepEqual(
        st.buffers,
        [
          [0, '1000', 4096, 0, 100, 2, 0, T0],
          [0, '7000', 100, 3, 104, 1, 0, T0],
          [1, '100002000', 2 ** 40 + 7, 1, 101, 1, 0, T0],
        ],
        name,
      );
      assert.deepEqual(st.cbs, [[0, '6600', 32768, 0, 102, 1, 0, T0]], name);
      assert.deepEqual(st.kernels, [[1, '5555', 8192, 2, 103, 1, 0, T0]], name);
      assert.deepEqual(st.marks, [{ name: 'm1', cutMs: T0, atMs: T0, pid: null }], name);
      assert.deepEqual(st.counters, { ...FIXTURE_COUNTERS, reapedTotal: 0, floorMs: T0 }, name);
      assert.deepEqual(st.exited, [], name);
      // Written again (format 3) and loaded back: the same state.
      const again = await snapshotOf(tr, marks);
      assert.match(again.toString('latin1'), /"version":3,/);
      const back = loadOne('snapshot.bin', again);
      assert.deepEqual(stateOf(back.tr, back.marks), st, `${name}, as format 3`);
      states.push(st);
    });
  }
  assert.deepEqual(states[0], states[1], 'the journal and the snapshot hold the same state');
});
