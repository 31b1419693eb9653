// The on-disk record format shared by journal segments and snapshots.
//
// A file is a sequence of batches: [magic u32 'TTJ1'][payload length u32][crc32 of payload u32]
// [payload]. A payload is a sequence of entries, 4-byte aligned:
//  - an event: an accepted frame's fields that the state uses, in the wire's order and byte order:
//      ALLOC, CB_ALLOC, KERNEL_LOAD (24 B): code u8, buffer/kernel type u8, device u16, pid i32,
//        id lo u32, id hi u32, size lo u32, size hi u32
//      FREE, CB_FREE, KERNEL_UNLOAD (16 B): code u8, 0, device u16, pid i32, id lo u32, id hi u32
//    (device ids are validated ≤ 1023 and sizes < 2^48 before a frame is accepted).
//  - a control entry: [code u8 ≥ 0x80][0 0 0][data length u32][data, padded to 4 bytes].
// A torn or corrupt batch (short, bad magic, bad checksum) ends the readable part of a file.
import { crc32 } from 'node:zlib';
import { MsgType } from '../protocol/constants.js';
import type { StateEvent } from '../state/events.js';

export const MAGIC = 0x314a5454; // 'TTJ1' little-endian
export const BATCH_HEADER = 12;
/** Bytes of an event record: allocations and loads carry a size, frees and unloads do not. */
export const BIG_EVENT = 24;
export const SMALL_EVENT = 16;
export const FORMAT_VERSION = 2;

/** Reads the event record at `off` into `ev` (the layout in the header above). */
export function readEvent(dv: DataView, off: number, ev: StateEvent): void {
  const code = dv.getUint8(off);
  ev.code = code;
  ev.sub = dv.getUint8(off + 1);
  ev.device = dv.getUint16(off + 2, true);
  ev.owner = dv.getInt32(off + 4, true);
  ev.lo = dv.getInt32(off + 8, true);
  ev.hi = dv.getInt32(off + 12, true);
  const sized = entryBytes(code, 0) === BIG_EVENT;
  ev.sizeLo = sized ? dv.getInt32(off + 16, true) : 0;
  ev.sizeHi = sized ? dv.getInt32(off + 20, true) : 0;
}

/** Code of a cancelled ALLOC record inside a batch being filled; never written to disk. */
export const DEAD_EVENT = 0x7f;

/**
 * Bytes of a payload entry from its first byte (`code`) and its second word (a control entry's
 * data length; for an event, unused): how every reader steps through a payload.
 */
export function entryBytes(code: number, word1: number): number {
  if (code >= 0x80) return 8 + ((word1 + 3) & ~3); // a control entry: [code][len][data, padded]
  return code === MsgType.ALLOC ||
    code === MsgType.CB_ALLOC ||
    code === MsgType.KERNEL_LOAD ||
    code === DEAD_EVENT
    ? BIG_EVENT
    : SMALL_EVENT;
}

export const Ctl = {
  /** data: u32 epoch, f64 start ms — the tracker started this epoch. */
  EPOCH: 0x80,
  /** data: JSON Mark. */
  MARK: 0x82,
  /** data: JSON {pids, atMs} — PIDs released as dead. */
  REAP: 0x83,
  /** no data: state forgotten on request. */
  RESET: 0x84,
  /**
   * data: JSON {version, through, createdAt} first in a snapshot; {version, segment} first in a
   * journal segment.
   */
  HEADER: 0x88,
  /** data: f64 start ms of every epoch, then u32 current epoch (snapshot). */
  EPOCHS: 0x89,
  /** data: JSON list of reaped-process reports (snapshot). */
  REAPED_LIST: 0x87,
  /** data: JSON tracker counters (snapshot). */
  COUNTERS: 0x8a,
  /** data: i32 kind, u32 n, then n rows of OBJECT_ROW_WORDS u32 (snapshot). */
  OBJECTS: 0x8b,
  /**
   * data: u32 device — it reported (written once per device, before an ALLOC the journal may
   * cancel).
   */
  DEVICE: 0x8c,
} as const;

/**
 * One live object in a snapshot: addrLo, addrHi, sizeLo, sizeHi (16 bits) | device << 16,
 * type | flags, pid, ref, epoch.
 */
export const OBJECT_ROW_WORDS = 8;

/** Writes the batch header in front of `payloadLen` bytes already at buf[BATCH_HEADER…]. */
export function sealBatch(buf: Buffer, payloadLen: number): Buffer {
  const b = buf.subarray(0, BATCH_HEADER + payloadLen);
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt32LE(payloadLen, 4);
  b.writeUInt32LE(crc32(b.subarray(BATCH_HEADER)), 8);
  return b;
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

export function epochEntry(epoch: number, startMs: number): Buffer {
  const d = Buffer.alloc(12);
  d.writeUInt32LE(epoch, 0);
  d.writeDoubleLE(startMs, 4);
  return controlEntry(Ctl.EPOCH, d);
}

export function deviceEntry(device: number): Buffer {
  const d = Buffer.alloc(4);
  d.writeUInt32LE(device, 0);
  return controlEntry(Ctl.DEVICE, d);
}
