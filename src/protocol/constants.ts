// Wire facts (docs/protocol.md): message codes, enums and field offsets of the packed C structs.

export const MsgType = {
  ALLOC: 1,
  FREE: 2,
  QUERY: 3,
  RESPONSE: 4,
  DUMP_REMAINING: 5,
  DEVICE_INFO_QUERY: 6,
  DEVICE_INFO_RESPONSE: 7,
  CB_ALLOC: 8,
  CB_FREE: 9,
  KERNEL_LOAD: 10,
  KERNEL_UNLOAD: 11,
  DUMP_KERNELS: 12,
} as const;

export const MSG_NAMES: readonly string[] = [
  'INVALID',
  'ALLOC',
  'FREE',
  'QUERY',
  'RESPONSE',
  'DUMP_REMAINING',
  'DEVICE_INFO_QUERY',
  'DEVICE_INFO_RESPONSE',
  'CB_ALLOC',
  'CB_FREE',
  'KERNEL_LOAD',
  'KERNEL_UNLOAD',
  'DUMP_KERNELS',
];

/** The runtime's buffer_type enum, by numeric value. */
export const BufferType = { DRAM: 0, L1: 1, SYSTEM_MEMORY: 2, L1_SMALL: 3, TRACE: 4 } as const;
export const BUFFER_TYPE_NAMES: readonly string[] = [
  'DRAM',
  'L1',
  'SYSTEM_MEMORY',
  'L1_SMALL',
  'TRACE',
];
export const NUM_BUFFER_TYPES = 5;
/** Order in which the report lists types (the seed's order, SYSTEM_MEMORY last). */
export const REPORT_TYPE_ORDER: readonly number[] = [
  BufferType.DRAM,
  BufferType.L1,
  BufferType.L1_SMALL,
  BufferType.TRACE,
  BufferType.SYSTEM_MEMORY,
];

/** The wire's four usage counters (RESPONSE fields dram, l1, l1_small, trace), by name. */
export type UsageCounter = 'DRAM' | 'L1' | 'L1_SMALL' | 'TRACE';

/**
 * The buffer types each usage counter sums. `l1_small_allocated` has always included
 * SYSTEM_MEMORY (docs/protocol.md): this is the one place that rule is written.
 */
export const USAGE_COUNTER_TYPES: Readonly<Record<UsageCounter, readonly number[]>> = {
  DRAM: [BufferType.DRAM],
  L1: [BufferType.L1],
  L1_SMALL: [BufferType.L1_SMALL, BufferType.SYSTEM_MEMORY],
  TRACE: [BufferType.TRACE],
};

/** A usage counter's bytes, from the bytes of each buffer type. */
export function counterBytes(counter: UsageCounter, bytesOfType: (type: number) => number): number {
  let sum = 0;
  for (const t of USAGE_COUNTER_TYPES[counter]) sum += bytesOfType(t);
  return sum;
}

export const KERNEL_TYPE_NAMES: readonly string[] = ['Application', 'Fabric', 'Dispatch'];
export const NUM_KERNEL_TYPES = 3;

export const ArchType = {
  INVALID: 0,
  GRAYSKULL: 1,
  WORMHOLE_B0: 2,
  BLACKHOLE: 3,
  QUASAR: 4,
} as const;
export const ARCH_NAMES: readonly string[] = [
  'Invalid',
  'Grayskull',
  'Wormhole_B0',
  'Blackhole',
  'Quasar',
];

/**
 * Frame sizes that clients of every generation send: 72, 112, 144, and the abandoned 648-byte
 * variant (the 72-byte fields, then a buffer name and a Python stack trace).
 */
export const FRAME_SIZES = [72, 112, 144, 648] as const;
export type FrameSize = (typeof FRAME_SIZES)[number];
export const MAX_FRAME = 648;
/** The 648-byte variant: the 72-byte layout, then two NUL-terminated strings. */
export const FRAME_NOTES = 648;
export const Off648 = {
  /** char buffer_name[64] */
  name: 72,
  nameBytes: 64,
  /** char stack_trace[512], short form `file.py:line:func -> …` */
  trace: 136,
  traceBytes: 512,
} as const;

/**
 * PIDs are below 2^22 on Linux (PID_MAX_LIMIT on 64-bit): a claimed process_id at or above it is
 * no PID, and the state keeps 22 bits of owner per object.
 */
export const PID_LIMIT = 1 << 22;

/** The common 40-byte head. */
export const Off = {
  type: 0,
  deviceId: 4,
  size: 8,
  bufferType: 16,
  processId: 20,
  bufferId: 24,
  timestamp: 32,
  // 72-byte tail, shared by all sizes
  dram: 40,
  l1: 48,
  l1Small: 56,
  trace: 64,
} as const;

/** Device-info fields whose offsets differ between the 112- and 144-byte layouts. */
export interface InfoLayout {
  cb: number;
  kernel: number;
  totalDram: number;
  totalL1: number;
  arch: number;
  dramChannels: number;
  dramPerChannel: number;
  l1PerCore: number;
  isAvailable: number;
  numDevices: number;
  ringTotal: number;
  ringUsed: number;
  ringPrograms: number;
}
export const LAYOUT_112: InfoLayout = {
  cb: -1,
  kernel: -1,
  totalDram: 72,
  totalL1: 80,
  arch: 88,
  dramChannels: 92,
  dramPerChannel: 96,
  l1PerCore: 100,
  isAvailable: 104,
  numDevices: 108,
  ringTotal: -1,
  ringUsed: -1,
  ringPrograms: -1,
};
export const LAYOUT_144: InfoLayout = {
  cb: 72,
  kernel: 80,
  totalDram: 88,
  totalL1: 96,
  arch: 104,
  dramChannels: 108,
  dramPerChannel: 112,
  l1PerCore: 116,
  isAvailable: 120,
  numDevices: 124,
  ringTotal: 128,
  ringUsed: 132,
  ringPrograms: 136,
};
export function layoutFor(size: number): InfoLayout | null {
  return size === 144 ? LAYOUT_144 : size === 112 ? LAYOUT_112 : null;
}

/** 2^32: the high half of a 64-bit wire field is worth this much (fields are read as u32 pairs). */
export const TWO32 = 4294967296;

/** Device ids above this are rejected as absurd (no host has more than a few dozen devices). */
export const MAX_DEVICE_ID = 1023;
export const MAX_DEVICES = MAX_DEVICE_ID + 1;

/** Is `device` an id a frame may carry (0..MAX_DEVICE_ID)? */
export function isDeviceId(device: number): boolean {
  return device >= 0 && device <= MAX_DEVICE_ID;
}
