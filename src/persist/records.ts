// The on-disk record format shared by journal segments and snapshots, each record's encoder next
// to its decoder.
//
// A file is a sequence of batches: [magic u32 'TTJ1'][payload length u32][crc32 of payload u32]
// [payload]. A payload is a sequence of entries, 4-byte aligned:
//  - an event: an accepted frame's fields that the state uses, in the wire's order and byte order:
//      ALLOC, CB_ALLOC, KERNEL_LOAD (32 B): code u8, buffer/kernel type u8, device u16, pid i32,
//        id lo u32, id hi u32, size lo u32, size hi u32, born ms lo u32, born ms hi u32
//      FREE, CB_FREE, KERNEL_UNLOAD (16 B): code u8, 0, device u16, pid i32, id lo u32, id hi u32
//    (device ids are validated ≤ 1023 and sizes < 2^48 before a frame is accepted). Format 2
//    had no allocation time (24 B records; times came from EPOCH entries): it is still read.
//  - a control entry: [code u8 ≥ 0x80][0 0 0][data length u32][data, padded to 4 bytes].
// A torn or corrupt batch (short, bad magic, bad checksum) ends the readable part of a file.
import { crc32 } from 'node:zlib';
import { MsgType, TWO32 } from '../protocol/constants.js';
import type { StateEvent } from '../state/events.js';
import {
  summaryOf,
  type ExitedProcess,
  type ProcessIdentity,
  type ReapedReport,
} from '../state/left-behind.js';

export const MAGIC = 0x314a5454; // 'TTJ1' little-endian
export const BATCH_HEADER = 12;
/** Bytes of an event record: allocations and loads carry a size, frees and unloads do not. */
export const BIG_EVENT = 32;
export const SMALL_EVENT = 16;
export const FORMAT_VERSION = 3;
/** The previous format (no allocation times), read but never written. */
export const FORMAT_V2 = 2;
const BIG_EVENT_V2 = 24;

/** Code of a cancelled ALLOC record inside a batch being filled; never written to disk. */
export const DEAD_EVENT = 0x7f;

/** Does an event record of this code carry a size (a BIG_EVENT)? */
function sized(code: number): boolean {
  return (
    code === MsgType.ALLOC ||
    code === MsgType.CB_ALLOC ||
    code === MsgType.KERNEL_LOAD ||
    code === DEAD_EVENT
  );
}

/**
 * Bytes of a payload entry from its first byte (`code`) and its second word (a control entry's
 * data length; for an event, unused): how every reader steps through a payload.
 */
export function entryBytes(code: number, word1: number, version = FORMAT_VERSION): number {
  if (code >= 0x80) return 8 + ((word1 + 3) & ~3); // a control entry: [code][len][data, padded]
  if (!sized(code)) return SMALL_EVENT;
  return version === FORMAT_V2 ? BIG_EVENT_V2 : BIG_EVENT;
}

// ---------------------------------------------------------------- event records
/**
 * Writes `ev` as an event record at word `w` of `a` (a batch buffer seen as little-endian words,
 * like the host); returns its bytes. Four or six word stores: the journal calls it per event.
 */
export function writeEvent(a: Int32Array, w: number, ev: StateEvent): number {
  const code = ev.code;
  a[w] = code | (ev.sub << 8) | (ev.device << 16);
  a[w + 1] = ev.owner;
  a[w + 2] = ev.lo;
  a[w + 3] = ev.hi;
  if (!sized(code)) return SMALL_EVENT;
  a[w + 4] = ev.sizeLo;
  a[w + 5] = ev.sizeHi;
  const born = ev.bornMs;
  a[w + 6] = born | 0; // the low 32 bits (ToInt32 is modulo 2^32)
  a[w + 7] = Math.floor(born / TWO32);
  return BIG_EVENT;
}

/**
 * Reads the event record at byte `off` into `ev` (the layout in the header above). A format-2
 * record has no allocation time: bornMs is left for the caller.
 */
export function readEvent(dv: DataView, off: number, ev: StateEvent, version: number): void {
  const code = dv.getUint8(off);
  ev.code = code;
  ev.sub = dv.getUint8(off + 1);
  ev.device = dv.getUint16(off + 2, true);
  ev.owner = dv.getInt32(off + 4, true);
  ev.lo = dv.getInt32(off + 8, true);
  ev.hi = dv.getInt32(off + 12, true);
  const big = sized(code);
  ev.sizeLo = big ? dv.getInt32(off + 16, true) : 0;
  ev.sizeHi = big ? dv.getInt32(off + 20, true) : 0;
  if (big && version !== FORMAT_V2)
    ev.bornMs = dv.getUint32(off + 24, true) + dv.getUint32(off + 28, true) * TWO32;
}

/** The first word of an ALLOC record of this buffer, whatever its type (mask: ALLOC_KEY_MASK). */
export function allocKeyWord(device: number): number {
  return MsgType.ALLOC | (device << 16);
}
/** The bits of an event record's first word that `allocKeyWord` compares: code and device. */
export const ALLOC_KEY_MASK = 0xffff00ff;

/** Marks the record whose first word is a[w] as cancelled (it is squeezed out before sealing). */
export function cancelEvent(a: Int32Array, w: number): void {
  a[w] = (a[w] & ~0xff) | DEAD_EVENT;
}

// ---------------------------------------------------------------- control entries
export const Ctl = {
  /** data: u32 epoch, f64 start ms — the tracker started this epoch (format 2 only). */
  EPOCH: 0x80,
  /** data: JSON Mark. */
  MARK: 0x82,
  /** data: JSON {name} — the mark was deleted (a snapshot simply no longer lists it). */
  UNMARK: 0x90,
  /** data: JSON ReapEntry — PIDs released as gone (what they held is kept as left behind). */
  REAP: 0x83,
  /** no data: state forgotten on request. */
  RESET: 0x84,
  /**
   * data: JSON {version, through, createdAt} first in a snapshot; {version, segment} first in a
   * journal segment.
   */
  HEADER: 0x88,
  /** data: f64 start ms of every epoch, then u32 current epoch (format-2 snapshot only). */
  EPOCHS: 0x89,
  /** data: JSON list of reaped-process summaries (format-2 snapshot only). */
  REAPED_LIST: 0x87,
  /**
   * data: u32 JSON length, JSON ReapedReport, padding to 4 bytes, then the rows (i32 words, the
   * live table's layout) — one exited process's left-behind records (snapshot).
   */
  LEFT_BEHIND: 0x8d,
  /** data: JSON ForgetFilter — left-behind records forgotten on request. */
  FORGET: 0x8e,
  /** data: JSON tracker counters (snapshot). */
  COUNTERS: 0x8a,
  /** data: i32 kind, u32 n, then n rows of OBJECT_ROW_WORDS u32 (snapshot). */
  OBJECTS: 0x8b,
  /**
   * data: u32 device — it reported (written once per device, before an ALLOC the journal may
   * cancel).
   */
  DEVICE: 0x8c,
  /**
   * data: u32 device, i32 owner, u32 id lo, u32 id hi, u32 name bytes, then the name and the
   * stack trace (UTF-8) — the buffer the ALLOC just before created has them (648-byte clients).
   */
  NOTE: 0x91,
  /**
   * data: JSON NoteTriple[] — the notes of the live buffers of the OBJECTS entries before it, by
   * their position in them (snapshot).
   */
  NOTES: 0x92,
} as const;

/** A buffer's note in a snapshot: [entry or record index, name, stack trace]. */
export type NoteTriple = [number, string, string];

/** A NOTE entry: the buffer of `ev`'s key has this name and stack trace. */
export function noteEntry(ev: StateEvent, name: string, trace: string): Buffer {
  const n = Buffer.from(name),
    t = Buffer.from(trace);
  const d = Buffer.alloc(20 + n.length + t.length);
  d.writeUInt32LE(ev.device, 0);
  d.writeInt32LE(ev.owner, 4);
  d.writeInt32LE(ev.lo | 0, 8);
  d.writeInt32LE(ev.hi | 0, 12);
  d.writeUInt32LE(n.length, 16);
  n.copy(d, 20);
  t.copy(d, 20 + n.length);
  return controlEntry(Ctl.NOTE, d);
}

/** A NOTE entry's data: the buffer's key, its name and its stack trace. */
export function readNote(
  p: Buffer,
  at: number,
  len: number,
): { device: number; owner: number; lo: number; hi: number; name: string; trace: string } {
  const n = p.readUInt32LE(at + 16);
  return {
    device: p.readUInt32LE(at),
    owner: p.readInt32LE(at + 4),
    lo: p.readInt32LE(at + 8),
    hi: p.readInt32LE(at + 12),
    name: p.toString('utf8', at + 20, at + 20 + n),
    trace: p.toString('utf8', at + 20 + n, at + len),
  };
}

/** A control entry as bytes. */
export function controlEntry(code: number, data: Uint8Array = new Uint8Array(0)): Buffer {
  const padded = (data.length + 3) & ~3;
  const out = Buffer.alloc(8 + padded);
  out[0] = code;
  out.writeUInt32LE(data.length, 4);
  out.set(data, 8);
  return out;
}

export function jsonEntry(code: number, value: unknown): Buffer {
  return controlEntry(code, Buffer.from(JSON.stringify(value)));
}

export function readJson(p: Buffer, at: number, len: number): unknown {
  return JSON.parse(p.subarray(at, at + len).toString());
}

export function epochEntry(epoch: number, startMs: number): Buffer {
  const d = Buffer.alloc(12);
  d.writeUInt32LE(epoch, 0);
  d.writeDoubleLE(startMs, 4);
  return controlEntry(Ctl.EPOCH, d);
}

export function readEpoch(dv: DataView, at: number): { epoch: number; startMs: number } {
  return { epoch: dv.getUint32(at, true), startMs: dv.getFloat64(at + 4, true) };
}

export function deviceEntry(device: number): Buffer {
  const d = Buffer.alloc(4);
  d.writeUInt32LE(device, 0);
  return controlEntry(Ctl.DEVICE, d);
}

export function readDevice(dv: DataView, at: number): number {
  return dv.getUint32(at, true);
}

/** A REAP entry's data: the PIDs, when, and who each was (absent in format 2). */
export interface ReapEntry {
  pids: number[];
  atMs: number;
  ids?: Record<string, ProcessIdentity>;
}

/**
 * One exited process's left-behind records (a snapshot's LEFT_BEHIND entry); `notes`: its records'
 * names and stack traces, by record index (kept in the JSON as `noteList`).
 */
export function leftBehindEntry(p: ExitedProcess, notes?: NoteTriple[] | null): Buffer {
  const summary = notes?.length ? { ...summaryOf(p), noteList: notes } : summaryOf(p);
  const json = Buffer.from(JSON.stringify(summary));
  const at = (4 + json.length + 3) & ~3;
  const d = Buffer.alloc(at + p.rows.byteLength);
  d.writeUInt32LE(json.length, 0);
  json.copy(d, 4);
  Buffer.from(p.rows.buffer, p.rows.byteOffset, p.rows.byteLength).copy(d, at);
  return controlEntry(Ctl.LEFT_BEHIND, d);
}

export function readLeftBehind(p: Buffer, at: number, len: number): ExitedProcess {
  return readLeftBehindEntry(p, at, len).exited;
}

/** A LEFT_BEHIND entry with its records' notes (null when it has none). */
export function readLeftBehindEntry(
  p: Buffer,
  at: number,
  len: number,
): { exited: ExitedProcess; notes: NoteTriple[] | null } {
  const n = p.readUInt32LE(at);
  const { noteList, ...summary } = readJson(p, at + 4, n) as ReapedReport & {
    noteList?: NoteTriple[];
  };
  const from = at + ((4 + n + 3) & ~3);
  const rows = new Int32Array((at + len - from) >> 2);
  new Uint8Array(rows.buffer).set(p.subarray(from, at + len));
  return { exited: { ...summary, rows }, notes: noteList ?? null };
}

export function readEpochs(
  dv: DataView,
  at: number,
  len: number,
): { times: number[]; epoch: number } {
  const n = (len - 4) / 8,
    times: number[] = [];
  for (let i = 0; i < n; i++) times.push(dv.getFloat64(at + 8 * i, true));
  return { times, epoch: dv.getUint32(at + 8 * n, true) };
}

// ---------------------------------------------------------------- snapshot object rows
/**
 * One live object in a snapshot: addrLo, addrHi, sizeLo, sizeHi (16 bits) | device << 16,
 * type | born ms high bits << 8 | flags, pid, ref, born ms low bits (format 2: type | flags and,
 * last, the epoch it was born in).
 */
export const OBJECT_ROW_WORDS = 8;
export const OBJECT_ROW_BYTES = OBJECT_ROW_WORDS * 4;
/** Bytes before the rows in an OBJECTS entry's data: kind i32, row count u32. */
export const OBJECTS_HEAD = 8;
/** The bits of the type|flags word that are flags (the low byte is the type). */
const FLAG_BITS = 0xc0000000;

/** An object row's fields (a reused struct: a snapshot writes and reads millions of rows). */
export class ObjectRow {
  device = 0;
  /** The id's halves (the tracker's ObjectKey names). */
  lo = 0;
  hi = 0;
  /** Bytes (< 2^48). */
  size = 0;
  /** Buffer type or kernel type (0 for CBs). */
  sub = 0;
  flags = 0;
  owner = 0;
  ref = 0;
  /** Allocation time, ms (format 2: the epoch number; replay turns it into a time). */
  bornMs = 0;
}

/** Writes `r` as the object row at byte `o` of `dv`. */
export function writeObjectRow(dv: DataView, o: number, r: ObjectRow): void {
  dv.setUint32(o, r.lo, true);
  dv.setUint32(o + 4, r.hi, true);
  dv.setUint32(o + 8, r.size >>> 0, true);
  dv.setUint32(o + 12, ((Math.floor(r.size / TWO32) & 0xffff) | (r.device << 16)) >>> 0, true);
  const bornHi = Math.floor(r.bornMs / TWO32) & BORN_HI_MASK;
  dv.setUint32(o + 16, (r.sub | (bornHi << 8) | r.flags) >>> 0, true);
  dv.setInt32(o + 20, r.owner, true);
  dv.setUint32(o + 24, r.ref, true);
  dv.setUint32(o + 28, r.bornMs >>> 0, true);
}

/** Bits of the born time above 32 kept in the type|flags word (10: good until 2109). */
const BORN_HI_MASK = 0x3ff;

/** Reads the object row at byte `o` of `dv` into `r`. */
export function readObjectRow(dv: DataView, o: number, r: ObjectRow): void {
  const w3 = dv.getUint32(o + 12, true),
    tf = dv.getUint32(o + 16, true);
  r.device = w3 >>> 16;
  r.lo = dv.getUint32(o, true);
  r.hi = dv.getUint32(o + 4, true);
  r.size = dv.getUint32(o + 8, true) + (w3 & 0xffff) * TWO32;
  r.sub = tf & 0xff;
  r.flags = tf & FLAG_BITS;
  r.owner = dv.getInt32(o + 20, true);
  r.ref = dv.getUint32(o + 24, true);
  r.bornMs = dv.getUint32(o + 28, true) + ((tf >>> 8) & BORN_HI_MASK) * TWO32;
}

/** Writes the head of an OBJECTS entry of `rows` rows at byte `o`; the rows follow it. */
export function writeObjectsHead(dv: DataView, o: number, kind: number, rows: number): number {
  dv.setUint8(o, Ctl.OBJECTS);
  dv.setUint8(o + 1, 0);
  dv.setUint16(o + 2, 0);
  dv.setUint32(o + 4, OBJECTS_HEAD + rows * OBJECT_ROW_BYTES, true);
  dv.setInt32(o + 8, kind, true);
  dv.setUint32(o + 12, rows, true);
  return o + 8 + OBJECTS_HEAD;
}

/** The head of an OBJECTS entry whose data starts at byte `at`; its rows start at `at + 8`. */
export function readObjectsHead(dv: DataView, at: number): { kind: number; rows: number } {
  return { kind: dv.getInt32(at, true), rows: dv.getUint32(at + 4, true) };
}

// ---------------------------------------------------------------- batches
/** Writes the batch header in front of `payloadLen` bytes already at buf[BATCH_HEADER…]. */
export function sealBatch(buf: Buffer, payloadLen: number): Buffer {
  const b = buf.subarray(0, BATCH_HEADER + payloadLen);
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt32LE(payloadLen, 4);
  b.writeUInt32LE(crc32(b.subarray(BATCH_HEADER)), 8);
  return b;
}

/**
 * Checks the batch header `head` of the batch at byte `off` of a file of `size` bytes: null if
 * its payload is all there, else why not (the payload's checksum is `payloadIntact`'s).
 */
export function batchProblem(head: Buffer, off: number, size: number): string | null {
  if (size - off < BATCH_HEADER) return `torn batch header at byte ${off}`;
  if (head.readUInt32LE(0) !== MAGIC) return `bad batch magic at byte ${off}`;
  const len = head.readUInt32LE(4);
  const present = size - off - BATCH_HEADER;
  if (len > present)
    return `torn batch at byte ${off} (${len} bytes announced, ${present} present)`;
  return null;
}

export function payloadIntact(head: Buffer, payload: Buffer): boolean {
  return crc32(payload) === head.readUInt32LE(8);
}
