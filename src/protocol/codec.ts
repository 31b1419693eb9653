// Encoding of frames (replies, our own clients, tests). The server's hot path decodes nothing
// into objects: server/data-connection.ts reads fields straight from the received bytes, by the
// rules of messages.ts.
import { Off, TWO32, layoutFor, type FrameSize } from './constants.js';
import { writeFrameNotes } from './notes.js';

export function writeU64(dv: DataView, off: number, n: number): void {
  dv.setUint32(off, n >>> 0, true);
  dv.setUint32(off + 4, Math.floor(n / TWO32) >>> 0, true);
}
export function readU64(dv: DataView, off: number): number {
  return dv.getUint32(off, true) + dv.getUint32(off + 4, true) * TWO32;
}

/** A request frame's fields as writeFrame() takes them (reuse one: writing allocates nothing). */
export interface FrameWords {
  type: number;
  deviceId: number;
  size: number;
  bufferType: number;
  pid: number;
  /** The two 32-bit halves of buffer_id. */
  addrLo: number;
  addrHi: number;
  timestampNs: number;
}

/** Writes one request frame of `frameSize` bytes at `off`, zeroing what it does not set. */
export function writeFrame(dv: DataView, off: number, frameSize: number, f: FrameWords): void {
  for (let i = 0; i < frameSize; i += 4) dv.setUint32(off + i, 0, true);
  dv.setUint8(off + Off.type, f.type);
  dv.setInt32(off + Off.deviceId, f.deviceId, true);
  writeU64(dv, off + Off.size, f.size);
  dv.setUint8(off + Off.bufferType, f.bufferType);
  dv.setInt32(off + Off.processId, f.pid, true);
  dv.setUint32(off + Off.bufferId, f.addrLo >>> 0, true);
  dv.setUint32(off + Off.bufferId + 4, f.addrHi >>> 0, true);
  writeU64(dv, off + Off.timestamp, f.timestampNs);
}

export interface FrameFields {
  type: number;
  deviceId?: number;
  size?: number;
  bufferType?: number;
  pid?: number;
  /** Device address / CB address / kernel id. A bigint keeps all 64 bits. */
  bufferId?: number | bigint;
  timestampNs?: number;
  /** 648-byte frames only: the buffer name and the stack trace (cut to 63 and 511 bytes). */
  name?: string;
  stack?: string;
}

/** Convenience encoder for tools and tests (allocates; not for hot paths). */
export function encodeFrame(f: FrameFields, frameSize: FrameSize = 144): Buffer {
  const buf = Buffer.alloc(frameSize);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
  const id = BigInt(f.bufferId ?? 0);
  writeFrame(dv, 0, frameSize, {
    type: f.type,
    deviceId: f.deviceId ?? 0,
    size: f.size ?? 0,
    bufferType: f.bufferType ?? 0,
    pid: f.pid ?? 0,
    addrLo: Number(id & 0xffffffffn),
    addrHi: Number((id >> 32n) & 0xffffffffn),
    timestampNs: f.timestampNs ?? 0,
  });
  if (frameSize === 648) writeFrameNotes(buf, 0, f.name ?? '', f.stack ?? '');
  return buf;
}

export interface DecodedFrame {
  type: number;
  deviceId: number;
  size: number;
  bufferType: number;
  pid: number;
  bufferId: bigint;
  timestampNs: bigint;
  dram: number;
  l1: number;
  l1Small: number;
  trace: number;
  cb?: number;
  kernel?: number;
  totalDram?: number;
  totalL1?: number;
  arch?: number;
  dramChannels?: number;
  dramPerChannel?: number;
  l1PerCore?: number;
  isAvailable?: number;
  numDevices?: number;
  ringTotal?: number;
  ringUsed?: number;
  ringPrograms?: number;
}

/** Full decode into an object, for replies read by clients and tests (not the server hot path). */
export function decodeFrame(buf: Uint8Array): DecodedFrame {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
  const out: DecodedFrame = {
    type: dv.getUint8(Off.type),
    deviceId: dv.getInt32(Off.deviceId, true),
    size: readU64(dv, Off.size),
    bufferType: dv.getUint8(Off.bufferType),
    pid: dv.getInt32(Off.processId, true),
    bufferId: dv.getBigUint64(Off.bufferId, true),
    timestampNs: dv.getBigUint64(Off.timestamp, true),
    dram: readU64(dv, Off.dram),
    l1: readU64(dv, Off.l1),
    l1Small: readU64(dv, Off.l1Small),
    trace: readU64(dv, Off.trace),
  };
  const L = layoutFor(buf.length);
  if (L) {
    if (L.cb >= 0) {
      out.cb = readU64(dv, L.cb);
      out.kernel = readU64(dv, L.kernel);
    }
    out.totalDram = readU64(dv, L.totalDram);
    out.totalL1 = readU64(dv, L.totalL1);
    out.arch = dv.getUint32(L.arch, true);
    out.dramChannels = dv.getUint32(L.dramChannels, true);
    out.dramPerChannel = dv.getUint32(L.dramPerChannel, true);
    out.l1PerCore = dv.getUint32(L.l1PerCore, true);
    out.isAvailable = dv.getUint32(L.isAvailable, true);
    out.numDevices = dv.getUint32(L.numDevices, true);
    if (L.ringTotal >= 0) {
      out.ringTotal = dv.getUint32(L.ringTotal, true);
      out.ringUsed = dv.getUint32(L.ringUsed, true);
      out.ringPrograms = dv.getUint32(L.ringPrograms, true);
    }
  }
  return out;
}
