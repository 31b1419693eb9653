// Reading one tt-metal shared-memory region (SHM-LAYOUT.md §1), read-only: opened O_RDONLY and
// never mapped, so nothing we do can change what the runtime's processes see. There is no lock
// in the region: a snapshot is two reads that agree (one fstat, then one pread per read into
// buffers reused from call to call), retried a few times, else the region is reported 'torn'.
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readSync,
  type Stats,
} from 'node:fs';
import { basename } from 'node:path';
import {
  CHIP_ID,
  CHIP_REMOTE,
  CHIP_UNUSED,
  ENTRY_COUNTERS,
  HDR,
  INIT_READY,
  INIT_STATE_OFF,
  MAX_CHIPS,
  MAX_PROCESSES,
  MAX_REGION_SIZE,
  PROC_NAME_LEN,
  PROC_PID,
  REGION_SIZE,
  V1A_SIZE,
  geometryOf,
  layoutOf,
  regionId,
  type Geometry,
} from './shm-layout.js';
import { SlotJudge, type LivenessOptions } from './shm-liveness.js';
import { userName } from '../platform/processes.js';
import type { MemoryTotals, ShmChip, ShmLayout, ShmRegion, ShmSlot } from './types.js';

export interface ShmReadOptions extends LivenessOptions {
  /** Further reads after the first pair disagrees (default 8). */
  retries?: number;
  /** Shared by the regions of one scan (built from the options when absent). */
  judge?: SlotJudge;
}

export const DEFAULT_RETRIES = 8;

// Two buffers for the whole process: the reader is synchronous, so one read at a time.
let bufA = Buffer.alloc(MAX_REGION_SIZE);
let bufB = Buffer.alloc(MAX_REGION_SIZE);

/** ns timestamps outside [2015, now + 1 day] are not the epoch clock (or garbage). */
const EARLIEST_MS = Date.UTC(2015, 0, 1);
const DAY_MS = 86_400_000;

const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** One region file, as it is now. Never throws for what the file holds. */
export function readRegion(path: string, opts: ShmReadOptions = {}): ShmRegion {
  const asic = regionId(basename(path)) ?? '';
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (e) {
    return unopened(path, asic, e as NodeJS.ErrnoException);
  }
  try {
    const st = fstatSync(fd);
    const region = blank(path, asic, st);
    if (!st.isFile()) return fail(region, 'bad', 'not a regular file');
    // shm_open() then ftruncate(): a region seen between the two has no bytes yet
    if (st.size === 0) return fail(region, 'initialising', 'being created (no bytes yet)');
    if (st.size !== REGION_SIZE && st.size !== V1A_SIZE)
      return fail(region, 'bad', `${st.size} bytes: no layout has that size`);
    const got = snapshot(fd, st.size, opts.retries ?? DEFAULT_RETRIES);
    if (got === 'short') return fail(region, 'bad', 'shorter than its size when read');
    if (got === null) {
      region.layout = layoutOf(bufA.readUInt32LE(HDR.version), st.size);
      const n = (opts.retries ?? DEFAULT_RETRIES) + 2;
      return fail(region, 'torn', `changed between each of ${n} reads (a writer is busy)`);
    }
    parse(region, got, st.size, opts.judge ?? new SlotJudge(opts));
    return region;
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads until two successive reads are byte for byte the same: the buffer holding the agreed
 * bytes, null when they never agreed, 'short' when the file shrank under us.
 */
function snapshot(fd: number, size: number, retries: number): Buffer | null | 'short' {
  if (readSync(fd, bufA, 0, size, 0) !== size) return 'short';
  for (let i = 0; i <= retries; i++) {
    if (readSync(fd, bufB, 0, size, 0) !== size) return 'short';
    if (bufA.compare(bufB, 0, size, 0, size) === 0) return bufB;
    const t = bufA;
    bufA = bufB;
    bufB = t;
  }
  return null;
}

function parse(r: ShmRegion, buf: Buffer, size: number, judge: SlotJudge): void {
  const version = buf.readUInt32LE(HDR.version);
  const layout = layoutOf(version, size);
  r.layout = layout;
  // The creator writes the version while it initialises: zeros are a region being created.
  if (version === 0) return void fail(r, 'initialising', 'being created (version 0)');
  if (layout === 'unknown')
    return void fail(r, 'bad', `version ${version} in ${size} bytes: not a layout we know`);
  if (layout === 'v4') {
    const init = buf.readUInt32LE(INIT_STATE_OFF);
    if (init !== INIT_READY) {
      const what = init === 0 ? 'uninitialised' : init === 1 ? 'in progress' : `0x${hex(init)}`;
      return void fail(r, 'initialising', `init_state ${what}: not ready yet`);
    }
  }
  const now = Date.now();
  header(r, buf, layout, now);
  const g = geometryOf(layout);
  r.totals = counters(buf, g.totals, g.kinds);
  r.chips = chips(buf, g, layout);
  let used = 0;
  for (let j = 0; j < MAX_PROCESSES; j++) {
    const off = g.procs + j * g.procStride;
    const pid = buf.readInt32LE(off + PROC_PID);
    if (pid === 0) continue;
    used++;
    const slot: ShmSlot = {
      pid,
      name: cString(buf, off + g.procName, PROC_NAME_LEN),
      alive: false,
      updated_ms: epochMs(buf, off + g.procUpdatedNs, now),
      bytes: counters(buf, off + ENTRY_COUNTERS, g.kinds),
    };
    judge.judge(slot);
    if (slot.alive) add(r.live, slot.bytes);
    r.slots.push(slot);
  }
  r.slots_full = used === MAX_PROCESSES;
  // v4 takes a dead process's bytes out of the totals when it reaps the slot; v1 has no
  // reliable per-process figures (off by default in v1a).
  if (layout === 'v2' || layout === 'v3') r.ghost = ghost(r.totals, r.live);
}

function header(r: ShmRegion, buf: Buffer, layout: ShmLayout, now: number): void {
  r.active_processes = buf.readUInt32LE(HDR.activeProcesses);
  r.reference_count = buf.readUInt32LE(HDR.referenceCount);
  r.device_id = buf.readUInt32LE(HDR.deviceId);
  r.updated_ms = epochMs(buf, HDR.updatedNs, now);
  const serial = buf.readBigUInt64LE(HDR.boardSerial),
    asic = buf.readBigUInt64LE(HDR.asicId);
  // v1b stored the id split in two: board_serial = id >> 8, asic_id = id & 0xFF
  r.header_asic_id = (layout === 'v1b' ? (serial << 8n) | (asic & 0xffn) : asic).toString();
  r.board_serial = serial === 0n ? null : serial.toString();
}

function chips(buf: Buffer, g: Geometry, layout: ShmLayout): ShmChip[] {
  const out: ShmChip[] = [];
  for (let i = 0; i < MAX_CHIPS; i++) {
    const off = g.chips + i * g.chipStride;
    const id = buf.readUInt32LE(off + CHIP_ID);
    if (id === CHIP_UNUSED) continue;
    const remote = buf.readUInt32LE(off + CHIP_REMOTE) !== 0;
    const bytes = counters(buf, off + ENTRY_COUNTERS, g.kinds);
    // v1 and the first v2 marked unused entries with chip_id 0 (entry 0 is the gateway chip,
    // which may be chip 0): an entry 0 beyond the first that holds nothing is unused.
    if (id === 0 && i > 0 && layout !== 'v3' && layout !== 'v4' && !remote && isZero(bytes))
      continue;
    out.push({ chip_id: id, is_remote: remote, bytes });
  }
  return out;
}

function counters(buf: Buffer, off: number, kinds: 5 | 6): MemoryTotals {
  const t: MemoryTotals = {
    dram: u64(buf, off),
    l1: u64(buf, off + 8),
    l1_small: u64(buf, off + 16),
    trace: u64(buf, off + 24),
    cb: u64(buf, off + 32),
  };
  if (kinds === 6) t.kernel = u64(buf, off + 40);
  return t;
}

/** A u64 as a number: exact up to 2^53 bytes (8 PiB), which no device holds. */
function u64(buf: Buffer, off: number): number {
  return buf.readUInt32LE(off) + buf.readUInt32LE(off + 4) * 0x1_0000_0000;
}

function epochMs(buf: Buffer, off: number, now: number): number | null {
  const ms = Math.floor(u64(buf, off) / 1e6);
  return ms < EARLIEST_MS || ms > now + DAY_MS ? null : ms;
}

function cString(buf: Buffer, off: number, max: number): string {
  let end = buf.indexOf(0, off);
  if (end < 0 || end > off + max) end = off + max;
  return buf.toString('utf8', off, end);
}

export function zeroTotals(kernel = false): MemoryTotals {
  const t: MemoryTotals = { dram: 0, l1: 0, l1_small: 0, trace: 0, cb: 0 };
  if (kernel) t.kernel = 0;
  return t;
}

function add(into: MemoryTotals, b: MemoryTotals): void {
  into.dram += b.dram;
  into.l1 += b.l1;
  into.l1_small += b.l1_small;
  into.trace += b.trace;
  into.cb += b.cb;
  if (b.kernel !== undefined) into.kernel = (into.kernel ?? 0) + b.kernel;
}

function isZero(b: MemoryTotals): boolean {
  return b.dram + b.l1 + b.l1_small + b.trace + b.cb + (b.kernel ?? 0) === 0;
}

/** What the totals hold beyond the live slots, per kind, never below 0. */
function ghost(totals: MemoryTotals, live: MemoryTotals): MemoryTotals {
  return {
    dram: Math.max(0, totals.dram - live.dram),
    l1: Math.max(0, totals.l1 - live.l1),
    l1_small: Math.max(0, totals.l1_small - live.l1_small),
    trace: Math.max(0, totals.trace - live.trace),
    cb: Math.max(0, totals.cb - live.cb),
  };
}

const hex = (n: number) => n.toString(16).padStart(8, '0');

function blank(path: string, asic: string, st: Pick<Stats, 'uid' | 'mode'>): ShmRegion {
  return {
    path,
    asic_id: asic,
    header_asic_id: null,
    layout: 'unknown',
    status: 'ok',
    owner_uid: st.uid,
    owner_user: userName(st.uid),
    mode: st.mode & 0o7777,
    device_id: null,
    board_serial: null,
    reference_count: 0,
    active_processes: 0,
    updated_ms: null,
    totals: zeroTotals(),
    chips: [],
    slots: [],
    live: zeroTotals(),
    ghost: null,
    slots_full: false,
  };
}

function fail(r: ShmRegion, status: ShmRegion['status'], error: string): ShmRegion {
  r.status = status;
  r.error = error;
  return r;
}

/** A region we could not open: whose it is when the name says, never an empty region. */
function unopened(path: string, asic: string, e: NodeJS.ErrnoException): ShmRegion {
  let st: Stats | null = null;
  try {
    st = lstatSync(path);
  } catch {
    /* gone between the listing and the open */
  }
  const r = blank(path, asic, st ?? { uid: -1, mode: 0 });
  if (st === null) return fail(r, 'bad', `vanished before it could be read (${e.code})`);
  if (e.code === 'ELOOP') return fail(r, 'bad', 'a symbolic link: not followed');
  if (e.code === 'EACCES' || e.code === 'EPERM') {
    const who = r.owner_user ?? `uid ${st.uid}`;
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
    return fail(
      r,
      'unreadable',
      `owned by ${who} with mode ${mode}: only that user or root can read it`,
    );
  }
  return fail(r, 'bad', `cannot be opened (${e.code ?? e.message})`);
}
