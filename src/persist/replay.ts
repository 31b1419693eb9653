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
import type { Tracker, ReapedReport, TrackerCounters } from '../state/tracker.js';
import type { Checkpoints, Mark } from '../state/marks.js';
import {
  BATCH_HEADER,
  Ctl,
  DEAD_EVENT,
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
  readObjectRow,
  readObjectsHead,
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
    const r = forEachBatch(snap, (p) => {
      const got = replay(p, tr, marks);
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
    const r = forEachBatch(path, (p) => {
      rec.journalEvents += replay(p, tr, marks).events;
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
  for (const s of segments)
    forEachBatch(join(dir, s.name), (p) => {
      net = netBuffers(p, net);
    });
  if (net > 0) tr.buffers.reserve(tr.buffers.count + net);
}

/**
 * `net` plus ALLOC records minus FREE records in a batch (a hint: a RESET starts it over, reaps are
 * not counted).
 */
function netBuffers(p: Buffer, net: number): number {
  for (let off = 0; off < p.length; off += entryBytes(p[off], p.readUInt32LE(off + 4))) {
    const code = p[off];
    if (code === MsgType.ALLOC) net++;
    else if (code === MsgType.FREE) net--;
    else if (code === Ctl.RESET) net = 0;
  }
  return net;
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
): { events: number; objects: number; through: number } {
  const dv = new DataView(p.buffer, p.byteOffset, p.length);
  let off = 0,
    events = 0,
    objects = 0,
    through = -1;
  const savedHook = tr.onEpoch;
  tr.onEpoch = null; // replaying an epoch must not journal it again
  try {
    while (off < p.length) {
      const code = p[off];
      if (code < 0x80) {
        const bytes = entryBytes(code, 0);
        if (code === DEAD_EVENT) {
          // a cancelled record (never written, but harmless)
          off += bytes;
          continue;
        }
        if (!isStateEvent(code))
          throw new Error(`unknown event code ${code} at byte ${off} of a verified batch`);
        readEvent(dv, off, ev);
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
          tr.restoreEpoch(e.epoch, e.startMs);
          break;
        }
        case Ctl.MARK:
          marks.load([json() as Mark]);
          break;
        case Ctl.UNMARK:
          marks.drop((json() as { name: string }).name);
          break;
        case Ctl.REAP: {
          const r = json() as { pids: number[]; atMs: number };
          tr.releasePids(new Set(r.pids), r.atMs);
          break;
        }
        case Ctl.RESET:
          tr.reset();
          marks.clear();
          break;
        case Ctl.HEADER: {
          const h = json() as { version: number; through?: number };
          if (h.version !== FORMAT_VERSION)
            throw new Error(`state format ${h.version} is not this server's (${FORMAT_VERSION})`);
          if (h.through !== undefined) through = h.through;
          break;
        }
        case Ctl.EPOCHS: {
          const { times, epoch } = readEpochs(dv, at, len);
          tr.restoreEpochTimes(times);
          tr.restoreEpoch(epoch, times[times.length - 1]);
          break;
        }
        case Ctl.REAPED_LIST:
          tr.restoreReaped(json() as ReapedReport[]);
          break;
        case Ctl.COUNTERS:
          tr.restoreCounters(json() as TrackerCounters);
          break;
        case Ctl.OBJECTS:
          objects += restoreObjects(dv, at, tr);
          break;
        case Ctl.DEVICE:
          tr.seeDevice(readDevice(dv, at));
          break;
        default:
          break; // unknown control entries (a newer version's) are skipped
      }
    }
  } finally {
    tr.onEpoch = savedHook;
  }
  return { events, objects, through };
}

/** The object row being restored (reused: a snapshot holds millions). */
const row = new ObjectRow();

function restoreObjects(dv: DataView, at: number, tr: Tracker): number {
  const { kind, rows } = readObjectsHead(dv, at);
  for (let i = 0, o = at + OBJECTS_HEAD; i < rows; i++, o += OBJECT_ROW_BYTES) {
    readObjectRow(dv, o, row);
    tr.restoreObject(kind, row);
  }
  return rows;
}
