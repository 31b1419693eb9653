// The on-disk record format shared by the journal and snapshots.
//
// A file is a sequence of batches: [magic u32 'TTJ1'][payload length u32][crc32 of payload u32]
// [payload]. A payload is a sequence of entries, 4-byte aligned:
//  - an event: the 40-byte common head of an accepted frame (type 1, 2, 8, 9, 10, 11). The wire
//    frames are already a compact record format; the head holds every field the state uses.
//  - a control entry: [code u8 ≥ 0x80][0 0 0][data length u32][data, padded to 4 bytes].
// A torn or corrupt batch (short, bad magic, bad checksum) ends the readable part of a file.
import { crc32 } from 'node:zlib';

export const MAGIC = 0x314a5454; // 'TTJ1' little-endian
export const BATCH_HEADER = 12;
export const EVENT_BYTES = 40;

export const Ctl = {
  /** data: u32 epoch, f64 start ms — the tracker started this epoch. */
  EPOCH: 0x80,
  /** data: u32 epoch — the epoch that following snapshot events were born in. */
  BORN: 0x81,
  /** data: JSON Mark. */
  MARK: 0x82,
  /** data: JSON number[] of PIDs released as dead. */
  REAP: 0x83,
  /** no data: state forgotten on request. */
  RESET: 0x84,
  /** data: u32 ref count for the preceding snapshot event (when > 1). */
  REF: 0x85,
  /** data: JSON array of epoch start times (snapshot header). */
  EPOCHS: 0x86,
  /** data: JSON list of reaped-process reports (snapshot). */
  REAPED_LIST: 0x87,
} as const;

export function encodeBatch(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(BATCH_HEADER + payload.length);
  out.writeUInt32LE(MAGIC, 0);
  out.writeUInt32LE(payload.length, 4);
  out.writeUInt32LE(crc32(payload), 8);
  out.set(payload, BATCH_HEADER);
  return out;
}

export interface ReadResult {
  /** Verified payloads, in file order. */
  payloads: Buffer[];
  /** Bytes of the file that hold verified batches (where a torn tail is cut). */
  goodBytes: number;
  /** Why reading stopped early, if it did. */
  problem: string | null;
}

export function readBatches(file: Buffer): ReadResult {
  const payloads: Buffer[] = [];
  let off = 0;
  while (off < file.length) {
    if (file.length - off < BATCH_HEADER) return { payloads, goodBytes: off, problem: `torn batch header at byte ${off}` };
    if (file.readUInt32LE(off) !== MAGIC) return { payloads, goodBytes: off, problem: `bad batch magic at byte ${off}` };
    const len = file.readUInt32LE(off + 4);
    if (off + BATCH_HEADER + len > file.length) return { payloads, goodBytes: off, problem: `torn batch at byte ${off} (${len} bytes announced, ${file.length - off - BATCH_HEADER} present)` };
    const payload = file.subarray(off + BATCH_HEADER, off + BATCH_HEADER + len);
    if (crc32(payload) !== file.readUInt32LE(off + 8)) return { payloads, goodBytes: off, problem: `checksum mismatch in batch at byte ${off}` };
    payloads.push(payload);
    off += BATCH_HEADER + len;
  }
  return { payloads, goodBytes: off, problem: null };
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

export function epochEntry(code: number, epoch: number, startMs?: number): Buffer {
  const d = Buffer.alloc(startMs === undefined ? 4 : 12);
  d.writeUInt32LE(epoch, 0);
  if (startMs !== undefined) d.writeDoubleLE(startMs, 4);
  return controlEntry(code, d);
}
