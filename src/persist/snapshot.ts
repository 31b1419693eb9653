// Writing a snapshot: the whole state of a Tracker (objects as raw rows, marks, what exited
// processes left behind, counters) as checksummed batches, to a temporary file that replaces
// snapshot.bin only once it is complete and on disk. The compactor worker writes it from its own
// replayed Tracker; the server writes one itself only to resume persistence after a full disk,
// from copies, in slices.
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import {
  KIND_CB,
  KIND_KERNEL,
  type ExitedProcess,
  type Tracker,
  type TrackerCounters,
} from '../state/tracker.js';
import type { ObjectTable } from '../state/object-table.js';
import type { Checkpoints, Mark } from '../state/marks.js';
import {
  BATCH_HEADER,
  Ctl,
  FORMAT_VERSION,
  OBJECT_ROW_BYTES,
  OBJECTS_HEAD,
  ObjectRow,
  jsonEntry,
  leftBehindEntry,
  sealBatch,
  type NoteTriple,
  writeObjectRow,
  writeObjectsHead,
} from './records.js';
import { SNAPSHOT } from './state-dir.js';
import { testPause } from './test-pause.js';

/** Objects per batch (1 MiB of rows). */
const ROWS = 32768;

function writeAll(fd: number, b: Uint8Array): void {
  for (let off = 0; off < b.length;) off += writeSync(fd, b, off, b.length - off);
}

/** The object row being written (reused: a snapshot holds millions). */
const row = new ObjectRow();

/** Entries [from, from + n) of one table, as one OBJECTS entry. */
interface RowRange {
  kind: number;
  table: ObjectTable;
  from: number;
  n: number;
}

/** Fills `buf` (after the batch header) with the OBJECTS entry of `r`; returns its bytes. */
function objectsEntry(buf: Buffer, r: RowRange): number {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
  const t = r.table;
  let o = writeObjectsHead(dv, BATCH_HEADER, r.kind, r.n);
  for (let e = r.from; e < r.from + r.n; e++, o += OBJECT_ROW_BYTES) {
    row.device = t.device(e);
    row.lo = t.addrLo(e);
    row.hi = t.addrHi(e);
    row.size = t.size(e);
    row.sub = t.type(e);
    row.flags = t.flags(e);
    row.owner = t.pid(e);
    row.ref = t.ref(e);
    row.bornMs = t.bornMs(e);
    writeObjectRow(dv, o, row);
  }
  return o - BATCH_HEADER;
}

/** What a snapshot holds; from a Tracker (worker) or from copies taken on the server's loop. */
export interface SnapshotSource {
  tables: readonly (readonly [kind: number, table: ObjectTable])[];
  counters: TrackerCounters;
  /** Exited processes with their records (rows are never changed once kept: shared, not copied). */
  exited: readonly ExitedProcess[];
  /** The names and stack traces of the live buffers (by entry) and of each exited one's records. */
  liveNotes: NoteTriple[];
  exitedNotes: (NoteTriple[] | null)[];
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
    counters: tr.counters(),
    exited: tr.reaped.slice(),
    // As strings now: a note id may mean another string once the buffer is freed (copies are
    // written in slices, while ingest goes on).
    liveNotes: tr.liveNotes(),
    exitedNotes: tr.reaped.map((p) => tr.exitedNotes(p)),
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
      jsonEntry(Ctl.COUNTERS, src.counters),
      ...src.marks.map((m) => jsonEntry(Ctl.MARK, m)),
    ]);
    const headBatch = Buffer.alloc(BATCH_HEADER + head.length);
    head.copy(headBatch, BATCH_HEADER);
    const first = sealBatch(headBatch, head.length);
    writeAll(fd, first);
    bytes += first.length;
    const buf = Buffer.alloc(BATCH_HEADER + 8 + OBJECTS_HEAD + ROWS * OBJECT_ROW_BYTES);
    for (const [kind, table] of src.tables) {
      for (let from = 0; from < table.count; from += ROWS) {
        const n = Math.min(ROWS, table.count - from);
        const b = sealBatch(buf, objectsEntry(buf, { kind, table, from, n }));
        writeAll(fd, b);
        bytes += b.length;
        objects += n;
        if (from === 0 && n < table.count) testPause('snapshot-mid-write', dir);
        if (pace) await pace();
      }
    }
    if (src.liveNotes.length) {
      const b = batchOf(jsonEntry(Ctl.NOTES, src.liveNotes));
      writeAll(fd, b);
      bytes += b.length;
    }
    // Oldest first, as they were kept (the budget drops from the front).
    for (const [i, p] of src.exited.entries()) {
      const entry = leftBehindEntry(p, src.exitedNotes[i]);
      const batch = Buffer.alloc(BATCH_HEADER + entry.length);
      entry.copy(batch, BATCH_HEADER);
      const b = sealBatch(batch, entry.length);
      writeAll(fd, b);
      bytes += b.length;
      if (pace) await pace();
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(dir, SNAPSHOT));
  syncDir(dir);
  return { bytes, objects };
}

/** One entry as a sealed batch. */
function batchOf(entry: Buffer): Buffer {
  const batch = Buffer.alloc(BATCH_HEADER + entry.length);
  entry.copy(batch, BATCH_HEADER);
  return sealBatch(batch, entry.length);
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
