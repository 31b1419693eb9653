// Reading persisted state back: a snapshot (the whole state at the end of a journal segment) and
// the journal segments after it, applied to a Tracker in order. Used by the server at start-up and
// by the compactor worker that writes the next snapshot.
import {
  closeSync,
  existsSync,
  fstatSync,
  ftruncateSync,
  openSync,
  readdirSync,
  readSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { MsgType, TWO32 } from '../protocol/constants.js';
import { applyEvent, isStateEvent, StateEvent } from '../state/events.js';
import type { Tracker, ReapedReport, TrackerCounters } from '../state/tracker.js';
import type { Checkpoints, Mark } from '../state/marks.js';
import {
  BATCH_HEADER,
  Ctl,
  DEAD_EVENT,
  FORMAT_VERSION,
  MAGIC,
  OBJECT_ROW_WORDS,
  readEvent,
  entryBytes,
} from './records.js';

export const SNAPSHOT = 'snapshot.bin';
const SEGMENT = /^journal-(\d{8})\.bin$/;

export const segmentName = (gen: number): string => `journal-${String(gen).padStart(8, '0')}.bin`;

/** Journal segments in the directory, oldest first. */
export function listSegments(dir: string): { gen: number; name: string }[] {
  return readdirSync(dir)
    .flatMap((name) => {
      const m = SEGMENT.exec(name);
      return m ? [{ gen: Number(m[1]), name }] : [];
    })
    .sort((a, b) => a.gen - b.gen);
}

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
      if (size - off < BATCH_HEADER)
        return { goodBytes: off, size, problem: `torn batch header at byte ${off}` };
      readSync(fd, head, 0, BATCH_HEADER, off);
      if (head.readUInt32LE(0) !== MAGIC)
        return { goodBytes: off, size, problem: `bad batch magic at byte ${off}` };
      const len = head.readUInt32LE(4);
      if (off + BATCH_HEADER + len > size)
        return {
          goodBytes: off,
          size,
          problem: `torn batch at byte ${off} (${len} bytes announced, ${size - off - BATCH_HEADER} present)`,
        };
      if (len > buf.length) buf = Buffer.alloc(len);
      const payload = buf.subarray(0, len);
      for (let got = 0; got < len;)
        got += readSync(fd, payload, got, len - got, off + BATCH_HEADER + got);
      if (crc32(payload) !== head.readUInt32LE(8))
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
  const rec: Recovery = {
    snapshotThrough: 0,
    snapshotObjects: 0,
    journalEvents: 0,
    lastGen: 0,
    journalBytes: 0,
    truncatedBytes: 0,
    problems: [],
  };
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
      rec.problems.push(
        `journal ${s.name}: ${r.problem}; ${o.repair ? 'cut' : 'ignored'} ${r.size - r.goodBytes} bytes at the last good record`,
      );
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
      const data = p.subarray(at, at + len);
      off += entryBytes(code, len);
      const json = () => JSON.parse(data.toString()) as unknown;
      switch (code) {
        case Ctl.EPOCH:
          tr.restoreEpoch(dv.getUint32(at, true), dv.getFloat64(at + 4, true));
          break;
        case Ctl.MARK:
          marks.load([json() as Mark]);
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
          const n = (len - 4) / 8,
            times: number[] = [];
          for (let i = 0; i < n; i++) times.push(dv.getFloat64(at + 8 * i, true));
          tr.restoreEpochTimes(times);
          tr.restoreEpoch(dv.getUint32(at + 8 * n, true), times[times.length - 1]);
          break;
        }
        case Ctl.REAPED_LIST:
          tr.reaped.splice(0, tr.reaped.length, ...(json() as ReapedReport[]));
          break;
        case Ctl.COUNTERS:
          tr.restoreCounters(json() as TrackerCounters);
          break;
        case Ctl.OBJECTS:
          objects += restoreObjects(dv, at, tr);
          break;
        case Ctl.DEVICE:
          tr.seeDevice(dv.getUint32(at, true));
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

/** The snapshot row being restored (reused: no object per row). */
const row = { device: 0, lo: 0, hi: 0, size: 0, sub: 0, owner: 0, ref: 0, epoch: 0, flags: 0 };

function restoreObjects(dv: DataView, at: number, tr: Tracker): number {
  const kind = dv.getInt32(at, true),
    n = dv.getUint32(at + 4, true);
  for (let i = 0, o = at + 8; i < n; i++, o += OBJECT_ROW_WORDS * 4) {
    const w4 = dv.getUint32(o + 12, true),
      tf = dv.getUint32(o + 16, true);
    row.device = w4 >>> 16;
    row.lo = dv.getUint32(o, true);
    row.hi = dv.getUint32(o + 4, true);
    row.size = dv.getUint32(o + 8, true) + (w4 & 0xffff) * TWO32;
    row.sub = tf & 0xff;
    row.owner = dv.getInt32(o + 20, true);
    row.ref = dv.getUint32(o + 24, true);
    row.epoch = dv.getUint32(o + 28, true);
    row.flags = tf & 0xc0000000;
    tr.restoreObject(kind, row);
  }
  return n;
}
