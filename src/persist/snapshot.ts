// Writing a snapshot: the whole state of a Tracker (objects as raw rows, epochs, marks, reaped
// reports, counters) as checksummed batches, to a temporary file that replaces snapshot.bin only
// once it is complete and on disk. The compactor worker writes it from its own replayed Tracker;
// the server writes one itself only to resume persistence after a full disk, from copies, in
// slices.
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import {
  KIND_CB,
  KIND_KERNEL,
  type ReapedReport,
  type Tracker,
  type TrackerCounters,
} from '../state/tracker.js';
import type { ObjectTable } from '../state/object-table.js';
import type { Checkpoints, Mark } from '../state/marks.js';
import {
  BATCH_HEADER,
  Ctl,
  FORMAT_VERSION,
  OBJECT_ROW_WORDS,
  controlEntry,
  jsonEntry,
  sealBatch,
} from './records.js';
import { SNAPSHOT } from './replay.js';

const TWO32 = 4294967296;
/** Objects per batch (1 MiB of rows). */
const ROWS = 32768;

function writeAll(fd: number, b: Uint8Array): void {
  for (let off = 0; off < b.length;) off += writeSync(fd, b, off, b.length - off);
}

function epochsEntry(epochStartMs: readonly number[], epoch: number): Buffer {
  const n = epochStartMs.length,
    d = Buffer.alloc(8 * n + 4);
  for (let i = 0; i < n; i++) d.writeDoubleLE(epochStartMs[i], 8 * i);
  d.writeUInt32LE(epoch, 8 * n);
  return controlEntry(Ctl.EPOCHS, d);
}

/** Fills `buf` (after the batch header) with one OBJECTS entry for entries [from, from + n). */
function objectsEntry(buf: Buffer, kind: number, t: ObjectTable, from: number, n: number): number {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
  let o = BATCH_HEADER;
  dv.setUint8(o, Ctl.OBJECTS);
  dv.setUint8(o + 1, 0);
  dv.setUint16(o + 2, 0);
  dv.setUint32(o + 4, 8 + n * OBJECT_ROW_WORDS * 4, true);
  dv.setInt32(o + 8, kind, true);
  dv.setUint32(o + 12, n, true);
  o += 16;
  for (let e = from; e < from + n; e++, o += OBJECT_ROW_WORDS * 4) {
    const size = t.size(e);
    dv.setUint32(o, t.addrLo(e), true);
    dv.setUint32(o + 4, t.addrHi(e), true);
    dv.setUint32(o + 8, size >>> 0, true);
    dv.setUint32(o + 12, ((Math.floor(size / TWO32) & 0xffff) | (t.device(e) << 16)) >>> 0, true);
    dv.setUint32(o + 16, (t.type(e) | t.flags(e)) >>> 0, true);
    dv.setInt32(o + 20, t.pid(e), true);
    dv.setUint32(o + 24, t.ref(e), true);
    dv.setUint32(o + 28, t.epoch(e), true);
  }
  return o - BATCH_HEADER;
}

/** What a snapshot holds; from a Tracker (worker) or from copies taken on the server's loop. */
export interface SnapshotSource {
  tables: readonly (readonly [kind: number, table: ObjectTable])[];
  epochStartMs: readonly number[];
  epoch: number;
  counters: TrackerCounters;
  reaped: readonly ReapedReport[];
  marks: readonly Mark[];
}

export function snapshotSource(
  tr: Tracker,
  marks: Checkpoints,
  copyTables = false,
): SnapshotSource {
  const t = (x: ObjectTable) => (copyTables ? x.snapshot() : x);
  return {
    tables: [
      [-1, t(tr.buffers)],
      [KIND_CB, t(tr.cbs)],
      [KIND_KERNEL, t(tr.kernels)],
    ],
    epochStartMs: copyTables ? tr.epochStartMs.slice() : tr.epochStartMs,
    epoch: tr.epoch,
    counters: tr.counters(),
    reaped: copyTables ? structuredClone(tr.reaped) : tr.reaped,
    marks: marks.list(),
  };
}

/**
 * Writes the snapshot of `src` covering journal segments up to `through`; returns its size and
 * the number of objects. The old snapshot stays in place until the new one is complete and
 * synced. `pace` runs between batches (a yield to the event loop when written from the server).
 */
export async function writeSnapshot(
  dir: string,
  src: SnapshotSource,
  through: number,
  pace?: () => Promise<void>,
): Promise<{ bytes: number; objects: number }> {
  const tmp = join(dir, `${SNAPSHOT}.tmp`);
  const fd = openSync(tmp, 'w', 0o600);
  let bytes = 0,
    objects = 0;
  try {
    const head = Buffer.concat([
      jsonEntry(Ctl.HEADER, {
        version: FORMAT_VERSION,
        through,
        createdAt: new Date().toISOString(),
      }),
      epochsEntry(src.epochStartMs, src.epoch),
      jsonEntry(Ctl.COUNTERS, src.counters),
      jsonEntry(Ctl.REAPED_LIST, src.reaped),
      ...src.marks.map((m) => jsonEntry(Ctl.MARK, m)),
    ]);
    const headBatch = Buffer.alloc(BATCH_HEADER + head.length);
    head.copy(headBatch, BATCH_HEADER);
    const first = sealBatch(headBatch, head.length);
    writeAll(fd, first);
    bytes += first.length;
    const buf = Buffer.alloc(BATCH_HEADER + 16 + ROWS * OBJECT_ROW_WORDS * 4);
    for (const [kind, t] of src.tables) {
      for (let from = 0; from < t.count; from += ROWS) {
        const n = Math.min(ROWS, t.count - from);
        const b = sealBatch(buf, objectsEntry(buf, kind, t, from, n));
        writeAll(fd, b);
        bytes += b.length;
        objects += n;
        if (pace) await pace();
      }
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(dir, SNAPSHOT));
  syncDir(dir);
  return { bytes, objects };
}

/** Makes a rename or unlink in `dir` durable. */
export function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
