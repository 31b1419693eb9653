// Where each field of a tt-metal shared-memory tracking region lives, per layout
// (SHM-LAYOUT.md §1). The one place these offsets are written; the reader and the bench's
// region writer both use them.
import type { ShmLayout } from './types.js';

/** Size of v1b, v2, v3 and v4 regions. */
export const REGION_SIZE = 8576;
/** Size of v1a regions (six counters per entry, kernel included). */
export const V1A_SIZE = 9280;
/** The largest region: the reader's buffers are this big. */
export const MAX_REGION_SIZE = V1A_SIZE;
export const MAX_CHIPS = 16;
export const MAX_PROCESSES = 64;
/** chip_id of an unused chip entry (later v2, v3, v4). */
export const CHIP_UNUSED = 0xffffffff;
/** v4: init_state once the region is ready ("REDY"). */
export const INIT_READY = 0x52454459;
export const INIT_STATE_OFF = 8536;
/** v4: pid of a slot being released by its reaper. */
export const PID_RELEASING = -1;

/** Header fields, the same in every layout. */
export const HDR = {
  version: 0,
  activeProcesses: 4,
  updatedNs: 8,
  referenceCount: 16,
  boardSerial: 24,
  asicId: 32,
  deviceId: 40,
} as const;

/** The counters in the order every entry stores them (u64 each); `kernel` only in v1a. */
export const KINDS = ['dram', 'l1', 'l1_small', 'trace', 'cb', 'kernel'] as const;

export interface Geometry {
  size: number;
  /** Counters per entry: 5, or 6 with kernel (v1a). */
  kinds: 5 | 6;
  totals: number;
  chips: number;
  chipStride: number;
  procs: number;
  procStride: number;
  /** Offsets inside a process entry. */
  procUpdatedNs: number;
  procName: number;
}
/** Inside a chip entry: chip_id u32 +0, is_remote u32 +4, counters from +8. */
export const CHIP_ID = 0;
export const CHIP_REMOTE = 4;
export const ENTRY_COUNTERS = 8;
/** Inside a process entry: pid i32 +0, counters from +8. */
export const PROC_PID = 0;
export const PROC_NAME_LEN = 64;

export const V1A_GEOMETRY: Geometry = {
  size: V1A_SIZE,
  kinds: 6,
  totals: 48,
  chips: 96,
  chipStride: 56,
  procs: 992,
  procStride: 128,
  procUpdatedNs: 56,
  procName: 64,
};

export const V2_GEOMETRY: Geometry = {
  size: REGION_SIZE,
  kinds: 5,
  totals: 48,
  chips: 88,
  chipStride: 48,
  procs: 856,
  procStride: 120,
  procUpdatedNs: 48,
  procName: 56,
};

export function geometryOf(layout: ShmLayout): Geometry {
  return layout === 'v1a' ? V1A_GEOMETRY : V2_GEOMETRY;
}

/**
 * The layout from the version word and the file size: version 1 exists in two sizes (v1a, an
 * early branch; v1b, the review period, with v2's offsets). 'unknown' for anything else.
 */
export function layoutOf(version: number, size: number): ShmLayout {
  if (version === 1 && size === V1A_SIZE) return 'v1a';
  if (size !== REGION_SIZE) return 'unknown';
  if (version === 1) return 'v1b';
  if (version === 2) return 'v2';
  if (version === 3) return 'v3';
  if (version === 4) return 'v4';
  return 'unknown';
}

/** `tt_device_<id>_memory`: the id (a decimal u64, kept as a string), or null. */
export function regionId(fileName: string): string | null {
  const m = /^tt_device_(\d{1,20})_memory$/.exec(fileName);
  return m ? m[1] : null;
}
