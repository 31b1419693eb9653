// Wire replies: RESPONSE (to QUERY) and DEVICE_INFO_RESPONSE (to DEVICE_INFO), filled from usage
// numbers and device facts into a zeroed frame. Pure: the server gathers the facts and sends.
import { MsgType, Off, layoutFor, type InfoLayout } from './constants.js';
import { writeU64 } from './codec.js';

/** The usage counters a RESPONSE carries (bytes; SYSTEM_MEMORY already folded into l1Small). */
export interface WireUsage {
  dram: number;
  l1: number;
  l1Small: number;
  trace: number;
  cb: number;
  kernel: number;
}

/** What a reply says about the asked device (112/144-byte frames only). */
export interface WireDevice {
  arch: number;
  dramChannels: number;
  dramPerChannel: number;
  l1PerCore: number;
  totalDramBytes: number;
  totalL1Bytes: number;
}

/** A request (QUERY or DEVICE_INFO) and the facts its reply carries. */
export interface ReplyRequest {
  /** QUERY (a RESPONSE with usage) or else DEVICE_INFO (a DEVICE_INFO_RESPONSE). */
  query: boolean;
  /** The asked device; -1 asks for the device count only. */
  device: number;
  /** Every device the server knows of (declared, or seen in a frame), ascending. */
  knownDevices: readonly number[];
  /** The asked device's capacities, or null when it was not declared (capacity unknown). */
  info: WireDevice | null;
  /** The asked device's usage (QUERY; null for DEVICE_INFO). */
  usage: WireUsage | null;
}

/** Fills `out` (zeroed, the connection's frame size long) with the reply to `r`. */
export function encodeReply(out: DataView, r: ReplyRequest): void {
  out.setInt32(Off.deviceId, r.device, true);
  out.setUint8(Off.type, r.query ? MsgType.RESPONSE : MsgType.DEVICE_INFO_RESPONSE);
  const L = layoutFor(out.byteLength);
  const u = r.query ? r.usage : null;
  if (u) {
    writeU64(out, Off.dram, u.dram);
    writeU64(out, Off.l1, u.l1);
    writeU64(out, Off.l1Small, u.l1Small);
    writeU64(out, Off.trace, u.trace);
    if (L && L.cb >= 0) {
      writeU64(out, L.cb, u.cb);
      writeU64(out, L.kernel, u.kernel);
    }
  }
  if (L) writeDeviceInfo(out, L, r);
}

/**
 * A device whose capacity nobody declared (it reported without being declared, or its
 * architecture has no capacities in our table) is answered is_available = 0 with every capacity
 * 0, and its arch_type when known (else 0 = Invalid); num_devices still counts it. The protocol
 * has no "unknown" value: is_available = 1 with capacities 0 would read as a real 0 B (the
 * second-generation monitor then prints "Device N (Unknown) 3.00 MB / 0.00 B 0.0%"), while
 * is_available = 0 says "no facts for this device", which is the truth. That monitor then shows
 * the device without an architecture against its own built-in default capacity (12 GB DRAM,
 * 75 MB L1), which is the monitor's assumption, not our claim (docs/sources.md).
 */
function writeDeviceInfo(o: DataView, L: InfoLayout, r: ReplyRequest): void {
  const ids = r.knownDevices,
    device = r.device;
  o.setUint32(L.numDevices, ids.length, true);
  // -1 asks for the device count only.
  if (device === -1) {
    o.setUint32(L.isAvailable, ids.length > 0 ? 1 : 0, true);
    return;
  }
  const d = r.info;
  if (!d || !capacityKnown(d)) {
    o.setUint32(L.arch, d?.arch ?? 0, true);
    return;
  }
  o.setUint32(L.isAvailable, 1, true);
  o.setUint32(L.arch, d.arch, true);
  o.setUint32(L.dramChannels, d.dramChannels, true);
  // The wire field is 32 bits; Blackhole's 4 GiB channels saturate it (total_dram_size is exact).
  o.setUint32(L.dramPerChannel, Math.min(d.dramPerChannel, 0xffffffff), true);
  o.setUint32(L.l1PerCore, d.l1PerCore, true);
  writeU64(o, L.totalDram, d.totalDramBytes);
  writeU64(o, L.totalL1, d.totalL1Bytes);
}

/** A declared device whose table gives no capacity (Quasar) is as unknown as an undeclared one. */
export function capacityKnown(d: WireDevice): boolean {
  return d.totalDramBytes > 0 || d.totalL1Bytes > 0;
}
