// The rules per message code (docs/protocol.md), as one table: what a frame of each code may carry,
// which fields the server uses, and what it does with it. The connection's hot loop for ALLOC and
// FREE inlines the same checks for speed; the limits it compares with are the constants below.
import {
  isDeviceId,
  MAX_DEVICE_ID,
  MsgType,
  MSG_NAMES,
  NUM_BUFFER_TYPES,
  NUM_KERNEL_TYPES,
  Off,
  PID_LIMIT,
  TWO32,
} from './constants.js';

/** Sizes are below 2^48 (no device has more memory): the high 32-bit half is at most this. */
export const MAX_SIZE_HI = 0xffff;
/** The largest size a frame may carry (2^48 - 1); larger ones are rejected as absurd. */
export const MAX_OBJECT_SIZE = MAX_SIZE_HI * TWO32 + 0xffffffff;

/** What the server does with an accepted frame. */
export const Action = {
  /** A state event (state/events.ts applies it). */
  EVENT: 1,
  /** A reply frame: RESPONSE to QUERY, DEVICE_INFO_RESPONSE to DEVICE_INFO_QUERY. */
  REPLY: 2,
  /** The server prints its buffer report. */
  DUMP_BUFFERS: 3,
  /** The server prints its kernel report. */
  DUMP_KERNELS: 4,
  /** Server → client only: a client sending it is rejected. */
  SERVER_ONLY: 5,
} as const;

export interface MessageRule {
  code: number;
  name: string;
  /** 'request': client → server; 'reply': server → client. */
  direction: 'request' | 'reply';
  action: number;
  /** The frame's head fields the server reads (documentation, and the tests check it). */
  fields: readonly string[];
  /** Reads buffer_type as the event's sub-type (buffer type or kernel type); else sub is 0. */
  sub: boolean;
  /** Reads size into the event; else the event's size is 0. */
  sized: boolean;
  /** Its process_id is the PID the connection claims, when it is the first to carry one. */
  claims: boolean;
  /** Why the frame at `off` is invalid, or null when it is valid. */
  check: (dv: DataView, off: number) => string | null;
}

/** The 64-bit size field (sizes are < 2^53 whatever a client sends: the high half is u32). */
export function frameSize64(dv: DataView, off: number): number {
  return dv.getUint32(off + Off.size, true) + dv.getUint32(off + Off.size + 4, true) * TWO32;
}

function deviceReason(dv: DataView, off: number): string | null {
  const device = dv.getInt32(off + Off.deviceId, true);
  return isDeviceId(device) ? null : `device_id ${device} out of range 0..${MAX_DEVICE_ID}`;
}

function checkAlloc(dv: DataView, off: number): string | null {
  const bad = deviceReason(dv, off);
  if (bad !== null) return bad;
  const bt = dv.getUint8(off + Off.bufferType);
  if (bt >= NUM_BUFFER_TYPES) return `buffer_type ${bt} is not 0..${NUM_BUFFER_TYPES - 1}`;
  const size = frameSize64(dv, off);
  if (size === 0) return 'size 0';
  if (size > MAX_OBJECT_SIZE) return `size ${size} is absurd`;
  return null;
}

function checkLoad(dv: DataView, off: number, kernel: boolean): string | null {
  const bad = deviceReason(dv, off);
  if (bad !== null) return bad;
  const sub = kernel ? dv.getUint8(off + Off.bufferType) : 0;
  if (sub >= NUM_KERNEL_TYPES) return `kernel type ${sub} is not 0..${NUM_KERNEL_TYPES - 1}`;
  const size = frameSize64(dv, off);
  if (size > MAX_OBJECT_SIZE) return `size ${size} is absurd`;
  return null;
}

const valid = (): string | null => null;
const HEAD = ['type'];
const KEY = ['type', 'device_id', 'process_id', 'buffer_id'];
const KEY_SIZED = ['type', 'device_id', 'size', 'process_id', 'buffer_id'];

type Row = Omit<MessageRule, 'code' | 'name' | 'direction' | 'sub' | 'sized' | 'claims'> &
  Partial<Pick<MessageRule, 'direction' | 'sub' | 'sized' | 'claims'>>;

function rule(code: number, r: Row): MessageRule {
  return {
    code,
    name: MSG_NAMES[code],
    direction: r.direction ?? 'request',
    action: r.action,
    fields: r.fields,
    sub: r.sub ?? false,
    sized: r.sized ?? false,
    claims: r.claims ?? false,
    check: r.check,
  };
}

const RULES: readonly MessageRule[] = [
  rule(MsgType.ALLOC, {
    action: Action.EVENT,
    fields: [...KEY_SIZED, 'buffer_type'],
    sub: true,
    sized: true,
    claims: true,
    check: checkAlloc,
  }),
  rule(MsgType.FREE, { action: Action.EVENT, fields: KEY, check: deviceReason }),
  rule(MsgType.QUERY, { action: Action.REPLY, fields: ['type', 'device_id'], check: valid }),
  rule(MsgType.RESPONSE, {
    direction: 'reply',
    action: Action.SERVER_ONLY,
    fields: HEAD,
    check: valid,
  }),
  rule(MsgType.DUMP_REMAINING, { action: Action.DUMP_BUFFERS, fields: HEAD, check: valid }),
  rule(MsgType.DEVICE_INFO_QUERY, {
    action: Action.REPLY,
    fields: ['type', 'device_id'],
    check: valid,
  }),
  rule(MsgType.DEVICE_INFO_RESPONSE, {
    direction: 'reply',
    action: Action.SERVER_ONLY,
    fields: HEAD,
    check: valid,
  }),
  rule(MsgType.CB_ALLOC, {
    action: Action.EVENT,
    fields: KEY_SIZED,
    sized: true,
    claims: true,
    check: (dv, off) => checkLoad(dv, off, false),
  }),
  rule(MsgType.CB_FREE, { action: Action.EVENT, fields: KEY, check: deviceReason }),
  rule(MsgType.KERNEL_LOAD, {
    action: Action.EVENT,
    fields: [...KEY_SIZED, 'buffer_type'],
    sub: true,
    sized: true,
    claims: true,
    check: (dv, off) => checkLoad(dv, off, true),
  }),
  rule(MsgType.KERNEL_UNLOAD, { action: Action.EVENT, fields: KEY, check: deviceReason }),
  rule(MsgType.DUMP_KERNELS, { action: Action.DUMP_KERNELS, fields: HEAD, check: valid }),
];

/** The rule of each code (index = code); undefined for unknown codes. */
export const MESSAGES: readonly (MessageRule | undefined)[] = (() => {
  const byCode: (MessageRule | undefined)[] = new Array(256).fill(undefined);
  for (const r of RULES) byCode[r.code] = r;
  return byCode;
})();

/** Why a frame with code `code` is refused before any check: a reply code, or an unknown one. */
export function refusedCodeReason(code: number): string {
  return MESSAGES[code]?.direction === 'reply'
    ? `${MSG_NAMES[code]} is a server reply, not a request`
    : `unknown message code ${code}`;
}

/**
 * The owner of what a frame creates or removes: the connection's kernel PID, or, when that is 0
 * (no peer credentials, or --trust-client-pid), the process_id the frame claims. The one place
 * that choice is made; a restart replays the same ownership from the journal.
 */
export function ownerOf(connectionPid: number, dv: DataView, off: number): number {
  if (connectionPid !== 0) return connectionPid;
  const claimed = dv.getInt32(off + Off.processId, true);
  // A claim no Linux PID can have (≥ 2^22, PID_MAX_LIMIT, or ≤ 0) is "did not say" (0).
  return claimed > 0 && claimed < PID_LIMIT ? claimed : 0;
}

/**
 * The frame's timestamp (the sender's wall clock, ns since 1970) in whole ms (0 when absent),
 * exactly: ns = hi × 2^32 + lo does not fit a double, but hi × 2^32 = hi × 4294 × 10^6 +
 * hi × 967296, and both parts do.
 */
export function frameTimeMs(dv: DataView, off: number): number {
  const lo = dv.getUint32(off + Off.timestamp, true),
    hi = dv.getUint32(off + Off.timestamp + 4, true);
  return hi * 4294 + Math.floor((hi * 967296 + lo) / 1e6);
}
