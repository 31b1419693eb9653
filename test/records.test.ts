// The record format (src/persist/records.ts): every record kind encoded and decoded back, torn
// and corrupt batches, and byte-level golden checks against what the format's first version
// (commit 885f8ca, FORMAT_VERSION 2) wrote: an existing state directory must keep loading.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MsgType } from '../src/protocol/constants.js';
import { StateEvent } from '../src/state/events.js';
import { Tracker } from '../src/state/tracker.js';
import { Checkpoints } from '../src/state/marks.js';
import {
  BATCH_HEADER,
  BIG_EVENT,
  Ctl,
  OBJECT_ROW_BYTES,
  ObjectRow,
  SMALL_EVENT,
  controlEntry,
  deviceEntry,
  entryBytes,
  epochEntry,
  epochsEntry,
  jsonEntry,
  readDevice,
  readEpoch,
  readEpochs,
  readEvent,
  readJson,
  readObjectRow,
  readObjectsHead,
  sealBatch,
  writeEvent,
  writeObjectRow,
  writeObjectsHead,
} from '../src/persist/records.js';
import { forEachBatch, loadState } from '../src/persist/replay.js';
import { snapshotSource, writeSnapshot } from '../src/persist/snapshot.js';
import { FIXTURE_NOW_MS, writeFixture } from './helpers/state-fixture.js';

// Written by test/helpers/state-fixture.ts's writeFixture() at commit 885f8ca.
const BASE_JOURNAL = [
  'VFRKMfQAAADBF8N/iAAAABkAAAB7InZlcnNpb24iOjIsInNlZ21lbnQiOjF9AAAAgAAAAAwAAAAAAAAAAACYHy4j',
  'ekKMAAAABAAAAAAAAAABAAAAZAAAAAAQAAAAAAAAABAAAAAAAACMAAAABAAAAAEAAAABAQEAZQAAAAAgAAABAAAA',
  'BwAAAAABAAABAAAAZAAAAAAQAAAAAAAAABAAAAAAAACMAAAABAAAAAIAAAACAAMAZAAAAK3eAAAAAAAACAAAAGYA',
  'AAAAZgAAAAAAAACAAAAAAAAACgIBAGcAAABVVQAAAAAAAAAgAAAAAAAACwABAGcAAABERAAAAAAAAFRUSjFUAAAA',
  'Fq/6JoAAAAAMAAAAAQAAAAAAmB8uI3pCggAAADcAAAB7Im5hbWUiOiJtMSIsImVwb2NoIjoxLCJhdE1zIjoxNzk2',
  'MTUwMDAwMDAwLCJwaWQiOm51bGx9AFRUSjE8AAAAOQBiWAEDAABoAAAAAHAAAAAAAABkAAAAAAAAAIMAAAAaAAAA',
  'eyJwaWRzIjpbOTk5XSwiYXRNcyI6MTIzNH0AAA==',
].join('');
const BASE_SNAPSHOT = [
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
    });
    written.push(e);
    off += writeEvent(words, off >> 2, e);
  }
  assert.equal(off, 3 * BIG_EVENT + 3 * SMALL_EVENT);
  const got = new StateEvent();
  off = 0;
  for (const e of written) {
    readEvent(dv(b), off, got);
    assert.deepEqual({ ...got }, { ...e, lo: e.lo | 0 }, `code ${e.code}`);
    off += entryBytes(b[off], 0);
  }
  assert.equal(written[0].size, 0xffff * 2 ** 32 + 2 ** 32 - 7);
});

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
  assert.deepEqual(readEpoch(dv(epochEntry(9, 1796150000000.25)), 8), {
    epoch: 9,
    startMs: 1796150000000.25,
  });
  const epochs = epochsEntry([1, 2.5, 1e12], 2);
  assert.deepEqual(readEpochs(dv(epochs), 8, epochs.readUInt32LE(4)), {
    times: [1, 2.5, 1e12],
    epoch: 2,
  });
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
    epoch: 3,
  } satisfies Partial<ObjectRow>);
  writeObjectRow(dv(b), rowsAt, r);
  const small = Object.assign(new ObjectRow(), {
    size: 4096,
    sub: 1,
    owner: 100,
    ref: 1,
  } satisfies Partial<ObjectRow>);
  writeObjectRow(dv(b), rowsAt + OBJECT_ROW_BYTES, small);
  assert.equal(
    hex(b.subarray(0, rowsAt + OBJECT_ROW_BYTES)),
    '8b000000' +
      '48000000' +
      'ffffffff' +
      '02000000' +
      'f0ffffff' +
      '78563412' +
      'ffffffff' +
      'ffffff03' +
      '040000c0' +
      'fbffffff' +
      '70110100' +
      '03000000',
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

const baseJournal = Buffer.from(BASE_JOURNAL, 'base64');
const baseSnapshot = Buffer.from(BASE_SNAPSHOT, 'base64');
const createdAt = (s: Buffer) => /"createdAt":"([^"]*)"/.exec(s.toString('latin1'))![1];

test('golden: journal and snapshot are byte for byte what FORMAT_VERSION 2 wrote', async () => {
  const now = await writeFixture();
  assert.equal(hex(now.journal), hex(baseJournal));
  assert.equal(hex(withCreatedAt(now.snapshot, createdAt(baseSnapshot))), hex(baseSnapshot));
});

test('golden: a state directory FORMAT_VERSION 2 wrote loads into the same state', async () => {
  for (const [name, bytes] of [
    ['journal-00000001.bin', baseJournal],
    ['snapshot.bin', baseSnapshot],
  ] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'ttalloc-golden-'));
    writeFileSync(join(dir, name), bytes);
    const realNow = Date.now;
    Date.now = () => FIXTURE_NOW_MS;
    try {
      const tr = new Tracker(16);
      const marks = new Checkpoints(tr);
      const rec = loadState(dir, tr, marks, { repair: false });
      assert.deepEqual(rec.problems, []);
      assert.equal(tr.buffers.count, 3, name);
      assert.equal(marks.list()[0].name, 'm1');
      // written again, it is the snapshot of the state the fixture's events built
      const out = mkdtempSync(join(tmpdir(), 'ttalloc-golden-'));
      await writeSnapshot(out, snapshotSource(tr, marks), 1);
      const again = readFileSync(join(out, 'snapshot.bin'));
      assert.equal(hex(withCreatedAt(again, createdAt(baseSnapshot))), hex(baseSnapshot), name);
    } finally {
      Date.now = realNow;
    }
  }
});
