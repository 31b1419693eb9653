// Recovery, reading persisted state back: a snapshot (the whole state at the end of a journal
// segment) and the journal segments after it, applied to a Tracker in order; event records go
// through applyEvent (state/events.ts), the function live ingest uses. Used by the server at
// start-up and by the compactor worker that writes the next snapshot.
import {
  closeSync,
  existsSync,
  fstatSync,
  ftruncateSync,
  openSync,
  readSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { MsgType } from '../protocol/constants.js';
import { applyEvent, isStateEvent, StateEvent } from '../state/events.js';
import type { Tracker, TrackerCounters } from '../state/tracker.js';
import type { ForgetFilter, ReapedReport } from '../state/left-behind.js';
import type { Checkpoints, Mark } from '../state/marks.js';
import {
  BATCH_HEADER,
  Ctl,
  DEAD_EVENT,
  FORMAT_V2,
  FORMAT_VERSION,
  OBJECT_ROW_BYTES,
  OBJECTS_HEAD,
  ObjectRow,
  batchProblem,
  entryBytes,
  payloadIntact,
  readDevice,
  readEpoch,
  readEpochs,
  readEvent,
  readJson,
  readLeftBehindEntry,
  readNote,
  type NoteTriple,
  readObjectRow,
  readObjectsHead,
  type ReapEntry,
} from './records.js';
import { SNAPSHOT, listSegments } from './state-dir.js';

export interface FileReadResult {
  /** Bytes of verified batches from the start (where a torn tail would be cut). */
  goodBytes: number;
  size: number;
  problem: string | null;
}

/**
 * Calls `fn` with each verified batch payload of a file, in order, reading batch by batch (a
 * snapshot may be larger than one Buffer). Stops at the first torn or corrupt batch.
 */
export function forEachBatch(path: string, fn: (payload: Buffer) => void): FileReadResult {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(BATCH_HEADER);
    let buf = Buffer.alloc(1 << 20),
      off = 0;
    while (off < size) {
      if (size - off >= BATCH_HEADER) readSync(fd, head, 0, BATCH_HEADER, off);
      const problem = batchProblem(head, off, size);
      if (problem) return { goodBytes: off, size, problem };
      const len = head.readUInt32LE(4);
      if (len > buf.length) buf = Buffer.alloc(len);
      const payload = buf.subarray(0, len);
      for (let got = 0; got < len;)
        got += readSync(fd, payload, got, len - got, off + BATCH_HEADER + got);
      if (!payloadIntact(head, payload))
        return { goodBytes: off, size, problem: `checksum mismatch in batch at byte ${off}` };
      fn(payload);
      off += BATCH_HEADER + len;
    }
    return { goodBytes: off, size, problem: null };
  } finally {
    closeSync(fd);
  }
}

export interface Recovery {
  /** Journal segment the snapshot covers up to (0 = no snapshot). */
  snapshotThrough: number;
  snapshotObjects: number;
  journalEvents: number;
  /** Highest segment read (the next one to write is this + 1). */
  lastGen: number;
  /** Bytes of journal replayed. */
  journalBytes: number;
  truncatedBytes: number;
  problems: string[];
}

/** What a start with nothing to recover found. */
export function emptyRecovery(): Recovery {
  return {
    snapshotThrough: 0,
    snapshotObjects: 0,
    journalEvents: 0,
    lastGen: 0,
    journalBytes: 0,
    truncatedBytes: 0,
    problems: [],
  };
}

/**
 * Loads the snapshot and the segments after it (up to `upTo` when given) into the tracker.
 * `repair` cuts a torn tail off a segment (only the server does that, never a reader beside it).
 */
export function loadState(
  dir: string,
  tr: Tracker,
  marks: Checkpoints,
  o: { upTo?: number; repair: boolean },
): Recovery {
  const rec = emptyRecovery();
  const snap = join(dir, SNAPSHOT);
  if (existsSync(snap)) {
    const file = new FileContext();
    const r = forEachBatch(snap, (p) => {
      const got = replay(p, tr, marks, file);
      rec.snapshotObjects += got.objects;
      if (got.through >= 0) rec.snapshotThrough = got.through;
    });
    if (r.problem)
      rec.problems.push(`snapshot: ${r.problem}; state after that point in it is lost`);
    tr.restored();
  }
  rec.lastGen = rec.snapshotThrough;
  // Segments already in the snapshot (a compaction was cut short) are skipped.
  const segments = listSegments(dir).filter(
    (s) => s.gen > rec.snapshotThrough && (o.upTo === undefined || s.gen <= o.upTo),
  );
  reserveForJournal(dir, segments, tr);
  for (const s of segments) {
    const path = join(dir, s.name);
    const file = new FileContext();
    const r = forEachBatch(path, (p) => {
      rec.journalEvents += replay(p, tr, marks, file).events;
    });
    rec.journalBytes += r.goodBytes;
    rec.lastGen = s.gen;
    if (r.problem) {
      rec.truncatedBytes += r.size - r.goodBytes;
      const what = `${o.repair ? 'cut' : 'ignored'} ${r.size - r.goodBytes} bytes`;
      rec.problems.push(`journal ${s.name}: ${r.problem}; ${what} at the last good record`);
      if (o.repair) {
        const fd = openSync(path, 'r+');
        try {
          ftruncateSync(fd, r.goodBytes);
        } finally {
          closeSync(fd);
        }
      }
    }
  }
  return rec;
}

/**
 * Journals from this size on are counted before they are replayed (below it, growth costs little).
 */
const RESERVE_FROM_BYTES = 16 << 20;

/**
 * Sizes the buffer index for what a big journal holds before replaying it: growing 1024 shards on
 * the way rehashes every entry about twice (~18% of a 20 M-event restart). Counting the ALLOC and
 * FREE records is one more read of files the replay then finds in the page cache.
 */
function reserveForJournal(dir: string, segments: { name: string }[], tr: Tracker): void {
  let bytes = 0;
  for (const s of segments) bytes += statSync(join(dir, s.name)).size;
  if (bytes < RESERVE_FROM_BYTES) return;
  let net = 0;
  for (const s of segments) {
    const file = new FileContext();
    forEachBatch(join(dir, s.name), (p) => {
      net = netBuffers(p, net, file);
    });
  }
  if (net > 0) tr.buffers.reserve(tr.buffers.count + net);
}

/**
 * `net` plus ALLOC records minus FREE records in a batch (a hint: a RESET starts it over, reaps are
 * not counted).
 */
function netBuffers(p: Buffer, net: number, file: FileContext): number {
  for (
    let off = 0;
    off < p.length;
    off += entryBytes(p[off], p.readUInt32LE(off + 4), file.version)
  ) {
    const code = p[off];
    if (code === MsgType.ALLOC) net++;
    else if (code === MsgType.FREE) net--;
    else if (code === Ctl.RESET) net = 0;
    else if (code === Ctl.HEADER) file.header(readJson(p, off + 8, p.readUInt32LE(off + 4)));
  }
  return net;
}

/**
 * What replaying one file needs to remember between its batches: its format (from its HEADER
 * entry, first in every file) and, for format 2, the epochs that stood for allocation times.
 */
export class FileContext {
  version = FORMAT_VERSION;
  /** Format 2: start time of each epoch, and the current one. */
  epochStarts: number[] = [];
  epoch = 0;

  header(h: unknown): { version: number; through?: number } {
    const v = h as { version: number; through?: number };
    if (v.version !== FORMAT_VERSION && v.version !== FORMAT_V2)
      throw new Error(`state format ${v.version} is not this server's (${FORMAT_VERSION})`);
    this.version = v.version;
    return v;
  }

  /** Format 2: the time an object born in `epoch` got (its epoch's start). */
  epochMs(epoch: number): number {
    return this.epochStarts[epoch] ?? Date.now();
  }
}

/**
 * Applies one verified payload to the tracker. Returns the events and snapshot objects it held,
 * and the segment a snapshot header says it covers (-1 if none).
 */
/** The event being replayed (reused: replay allocates nothing per record). */
const ev = new StateEvent();

export function replay(
  p: Buffer,
  tr: Tracker,
  marks: Checkpoints,
  file = new FileContext(),
): { events: number; objects: number; through: number } {
  const dv = new DataView(p.buffer, p.byteOffset, p.length);
  let off = 0,
    events = 0,
    objects = 0,
    through = -1;
  // Replay decides nothing about other owners: a journal holds each reap before the event after it.
  const savedConflict = tr.onConflict;
  tr.onConflict = null;
  try {
    while (off < p.length) {
      const code = p[off];
      if (code < 0x80) {
        const bytes = entryBytes(code, 0, file.version);
        if (code === DEAD_EVENT) {
          // a cancelled record (never written, but harmless)
          off += bytes;
          continue;
        }
        if (!isStateEvent(code))
          throw new Error(`unknown event code ${code} at byte ${off} of a verified batch`);
        readEvent(dv, off, ev, file.version);
        if (file.version === FORMAT_V2) ev.bornMs = file.epochMs(file.epoch);
        applyEvent(tr, ev, null);
        off += bytes;
        events++;
        continue;
      }
      const len = dv.getUint32(off + 4, true);
      const at = off + 8;
      off += entryBytes(code, len);
      const json = () => readJson(p, at, len);
      switch (code) {
        case Ctl.EPOCH: {
          const e = readEpoch(dv, at);
          file.epochStarts[e.epoch] = e.startMs;
          file.epoch = e.epoch;
          break;
        }
        case Ctl.MARK:
          marks.load([json() as Mark]);
          break;
        case Ctl.UNMARK:
          marks.drop((json() as { name: string }).name);
          break;
        case Ctl.REAP: {
          const r = json() as ReapEntry;
          tr.releasePids(new Set(r.pids), r.atMs, (pid) => r.ids?.[pid]);
          break;
        }
        case Ctl.FORGET:
          tr.forget(json() as ForgetFilter);
          break;
        case Ctl.LEFT_BEHIND: {
          const { exited, notes } = readLeftBehindEntry(p, at, len);
          tr.restoreExited(exited, notes);
          break;
        }
        case Ctl.NOTE: {
          const n = readNote(p, at, len);
          tr.noteBuffer(n, n.name, n.trace);
          break;
        }
        case Ctl.NOTES:
          for (const [e, name, trace] of json() as NoteTriple[]) tr.restoreNote(e, name, trace);
          break;
        case Ctl.RESET:
          tr.reset();
          marks.clear();
          break;
        case Ctl.HEADER: {
          const h = file.header(json());
          if (h.through !== undefined) through = h.through;
          break;
        }
        case Ctl.EPOCHS: {
          const { times, epoch } = readEpochs(dv, at, len);
          file.epochStarts = times;
          file.epoch = epoch;
          break;
        }
        case Ctl.REAPED_LIST:
          // format 2 kept summaries only: they come back without records
          for (const r of json() as ReapedReport[])
            tr.restoreExited({ ...r, recordsDropped: r.buffers, rows: new Int32Array(0) });
          break;
        case Ctl.COUNTERS:
          tr.restoreCounters(json() as TrackerCounters);
          break;
        case Ctl.OBJECTS:
          objects += restoreObjects(dv, at, tr, file);
          break;
        case Ctl.DEVICE:
          tr.seeDevice(readDevice(dv, at));
          break;
        default:
          break; // unknown control entries (a newer version's) are skipped
      }
    }
  } finally {
    tr.onConflict = savedConflict;
  }
  return { events, objects, through };
}

/** The object row being restored (reused: a snapshot holds millions). */
const row = new ObjectRow();

function restoreObjects(dv: DataView, at: number, tr: Tracker, file: FileContext): number {
  const { kind, rows } = readObjectsHead(dv, at);
  const v2 = file.version === FORMAT_V2;
  for (let i = 0, o = at + OBJECTS_HEAD; i < rows; i++, o += OBJECT_ROW_BYTES) {
    readObjectRow(dv, o, row);
    if (v2) row.bornMs = file.epochMs(row.bornMs);
    tr.restoreObject(kind, row);
  }
  return rows;
}
