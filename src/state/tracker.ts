// The live state of every device: buffers, circular buffers (CBs) and kernels, with counters kept
// incrementally so that queries, stats and metrics never scan the tables.
import { BUFFER_TYPE_NAMES, MAX_DEVICES } from '../protocol/constants.js';
import {
  ALLOC_FULL,
  ALLOC_NEW,
  ALLOC_RESIZED,
  MAX_ENTRIES,
  ObjectTable,
  PAGE_ROWS,
  RELEASE_REMOVED,
  RELEASE_UNKNOWN,
  ROW_PID,
  ROW_WORDS,
  rowSize,
} from './object-table.js';

/** Counter slots per device: 0-4 buffer types, then CBs, kernels, and unknown frees. */
export const KIND_CB = 5;
export const KIND_KERNEL = 6;
export const KIND_UNKNOWN_FREE = 7;
export const KINDS = 8;

/** Per-process accounting, kept incrementally (per device × kind). */
export class ProcessStats {
  bytes: Float64Array;
  counts: Float64Array;
  /** Live objects (buffers + CBs + kernels) owned; 0 means nothing to reap. */
  live = 0;
  firstSeenMs: number;
  lastSeenMs: number;
  constructor(
    readonly pid: number,
    now: number,
    devices: number,
  ) {
    this.bytes = new Float64Array(devices * KINDS);
    this.counts = new Float64Array(devices * KINDS);
    this.firstSeenMs = now;
    this.lastSeenMs = now;
  }
  ensureDevice(device: number): void {
    if (device * KINDS < this.bytes.length) return;
    const n = (device + 1) * KINDS;
    const b = new Float64Array(n);
    b.set(this.bytes);
    this.bytes = b;
    const c = new Float64Array(n);
    c.set(this.counts);
    this.counts = c;
  }
  get devices(): number {
    return this.bytes.length / KINDS;
  }
}

export interface ReapedReport {
  pid: number;
  reapedAtMs: number;
  buffers: number;
  bytes: number;
  cbs: number;
  cbBytes: number;
  kernels: number;
  kernelBytes: number;
  /** device → buffer type name → {count, bytes} */
  byDevice: Record<string, Record<string, { count: number; bytes: number }>>;
  largest: { device: number; address: string; size: number; type: number; refCount: number }[];
}

const REAPED_LARGEST = 5;

export class Tracker {
  readonly buffers: ObjectTable;
  readonly cbs: ObjectTable;
  readonly kernels: ObjectTable;
  /** bytes / counts per device × kind */
  readonly devBytes = new Float64Array(MAX_DEVICES * KINDS);
  readonly devCounts = new Float64Array(MAX_DEVICES * KINDS);
  private readonly devSeen = new Uint8Array(MAX_DEVICES);
  /** Highest device id that ever reported anything, -1 if none. */
  maxDeviceSeen = -1;
  readonly pids = new Map<number, ProcessStats>();
  private lastPid = -1;
  private lastStats: ProcessStats | null = null;

  /**
   * Epochs order time coarsely: a new one starts on every checkpoint and on a clock tick after
   * allocations happened, so "born after mark M" and "born at about time T" both come from one
   * 32-bit column.
   */
  epoch = 0;
  readonly epochStartMs: number[] = [];
  private allocsInEpoch = 0;

  // Ingest totals (frames accepted per message code), for stats and metrics.
  readonly framesByType = new Float64Array(16);
  unknownFrees = 0;
  unknownCbFrees = 0;
  unknownKernelUnloads = 0;
  resizedAllocs = 0;
  /** ALLOCs, CBs and kernels not tracked because their table held MAX_ENTRIES (~134 M) already. */
  tableFullDrops = 0;
  readonly reaped: ReapedReport[] = [];
  reapedTotal = 0;
  maxReapedKept = 1000;

  nowMs = Date.now();

  /** `maxEntries` (per table) below MAX_ENTRIES is for tests of a full table. */
  constructor(expectedBuffers = 0, maxEntries = MAX_ENTRIES) {
    this.buffers = new ObjectTable(expectedBuffers, maxEntries);
    this.cbs = new ObjectTable(0, maxEntries);
    this.kernels = new ObjectTable(0, maxEntries);
    this.epochStartMs.push(this.nowMs);
  }

  // ---------------------------------------------------------------- hot path
  private stats(pid: number): ProcessStats {
    if (pid === this.lastPid && this.lastStats !== null) return this.lastStats;
    let s = this.pids.get(pid);
    if (s === undefined) {
      s = new ProcessStats(pid, this.nowMs, this.maxDeviceSeen + 1);
      this.pids.set(pid, s);
    }
    this.lastPid = pid;
    this.lastStats = s;
    return s;
  }

  /** Device `device` has reported something (recovery marks the devices a snapshot knew). */
  seeDevice(device: number): void {
    if (device > this.maxDeviceSeen) this.maxDeviceSeen = device;
    this.devSeen[device] = 1;
  }

  /** Has device `d` ever reported anything? */
  usageSeen(d: number): boolean {
    return this.devSeen[d] === 1;
  }

  private account(
    s: ProcessStats,
    device: number,
    kind: number,
    bytes: number,
    count: number,
  ): void {
    const k = device * KINDS + kind;
    this.devBytes[k] += bytes;
    this.devCounts[k] += count;
    if (k >= s.bytes.length) s.ensureDevice(device);
    s.bytes[k] += bytes;
    s.counts[k] += count;
    s.live += count;
  }

  /** ALLOC. The id halves may be given signed or unsigned (the wire decoder reads them signed). */
  /**
   * Returns what it did: ALLOC_NEW, ALLOC_REF, ALLOC_RESIZED or ALLOC_FULL (not tracked:
   * MAX_ENTRIES live).
   */
  alloc(device: number, lo: number, hi: number, size: number, type: number, pid: number): number {
    if (device > this.maxDeviceSeen) this.maxDeviceSeen = device;
    this.devSeen[device] = 1;
    const r = this.buffers.allocRef(device, lo, hi, size, type, pid, this.epoch);
    if (r !== ALLOC_NEW) {
      if (r === ALLOC_RESIZED) this.resizedAllocs++;
      else if (r === ALLOC_FULL) this.tableFullDrops++;
      return r;
    }
    this.allocsInEpoch++;
    const s = this.stats(pid);
    s.lastSeenMs = this.nowMs;
    this.account(s, device, type, size, 1);
    return r;
  }

  /** FREE: drops a reference; the last one releases the buffer from its owner's accounting. */
  /** Returns what it did: RELEASE_REMOVED, RELEASE_REF or RELEASE_UNKNOWN. */
  free(device: number, lo: number, hi: number, pid: number): number {
    if (device > this.maxDeviceSeen) this.maxDeviceSeen = device;
    this.devSeen[device] = 1;
    const t = this.buffers;
    const r = t.release(device, lo, hi);
    if (r === RELEASE_REMOVED)
      this.account(this.stats(t.gonePid), device, t.goneType, -t.goneSize, -1);
    else if (r === RELEASE_UNKNOWN) {
      this.unknownFrees++;
      this.devCounts[device * KINDS + KIND_UNKNOWN_FREE]++;
      const s = this.stats(pid);
      s.ensureDevice(device);
      s.counts[device * KINDS + KIND_UNKNOWN_FREE]++;
    }
    return r;
  }

  /** CB_ALLOC / KERNEL_LOAD: repeats of a live id refresh it and never add memory. */
  loadObject(
    kind: number,
    device: number,
    lo: number,
    hi: number,
    size: number,
    subtype: number,
    pid: number,
  ): void {
    this.seeDevice(device);
    const t = kind === KIND_CB ? this.cbs : this.kernels;
    if (t.find(device, lo, hi) >= 0) return;
    if (t.insert(device, lo, hi, size, subtype, pid, this.epoch) < 0) {
      this.tableFullDrops++;
      return;
    }
    const s = this.stats(pid);
    s.lastSeenMs = this.nowMs;
    this.account(s, device, kind, size, 1);
  }

  /**
   * CB_FREE / KERNEL_UNLOAD: removes the live object; unknown ids are counted, never subtracted.
   */
  unloadObject(kind: number, device: number, lo: number, hi: number): void {
    this.seeDevice(device);
    const t = kind === KIND_CB ? this.cbs : this.kernels;
    const e = t.find(device, lo, hi);
    if (e < 0) {
      if (kind === KIND_CB) this.unknownCbFrees++;
      else this.unknownKernelUnloads++;
      return;
    }
    t.setRef(e, 1); // CBs and kernels are not reference counted: one unload removes them
    t.unref(e);
    this.account(this.stats(t.gonePid), device, kind, -t.goneSize, -1);
  }

  // ---------------------------------------------------------------- time
  /** Called on a coarse clock tick (and per received chunk) to keep a cheap "now". */
  tick(now: number): void {
    this.nowMs = now;
    if (this.allocsInEpoch > 0 && now - this.epochStartMs[this.epoch] >= 1000) this.newEpoch();
  }

  /** Starts a new epoch (checkpoints call this) and returns its number. */
  newEpoch(): number {
    this.epoch++;
    this.epochStartMs.push(this.nowMs);
    this.allocsInEpoch = 0;
    this.onEpoch?.(this.epoch, this.nowMs);
    return this.epoch;
  }

  /** Persistence listens here so that epochs replay exactly (and with them, marks). */
  onEpoch: ((epoch: number, startMs: number) => void) | null = null;

  /** Replay: epoch `epoch` started at `startMs`. */
  restoreEpoch(epoch: number, startMs: number): void {
    this.epoch = epoch;
    this.epochStartMs[epoch] = startMs;
    this.allocsInEpoch = 0;
  }

  /** Replay of a snapshot: every epoch's start time. */
  restoreEpochTimes(times: number[]): void {
    this.epochStartMs.length = 0;
    for (const t of times) this.epochStartMs.push(t); // no spread: there may be many
  }

  /** Approximate wall time (ms) at which something born in `epoch` was allocated. */
  epochTimeMs(epoch: number): number {
    return this.epochStartMs[epoch] ?? this.nowMs;
  }

  /**
   * Recovery from a snapshot: one live object exactly as it was (kind -1 = buffer, KIND_CB,
   * KIND_KERNEL), counted like a fresh allocation. It is findable only after restored().
   */
  restoreObject(
    kind: number,
    device: number,
    lo: number,
    hi: number,
    size: number,
    type: number,
    pid: number,
    ref: number,
    epoch: number,
    flags: number,
  ): void {
    const t = kind === -1 ? this.buffers : kind === KIND_CB ? this.cbs : this.kernels;
    this.seeDevice(device);
    t.append(device, lo, hi, size, type, pid, epoch, ref, flags);
    this.account(this.stats(pid), device, kind === -1 ? type : kind, size, 1);
  }

  /** Recovery from a snapshot: a process's count of frees of unknown buffers on a device. */
  restoreUnknownFrees(pid: number, device: number, n: number): void {
    if (n === 0) return;
    this.seeDevice(device);
    const s = this.stats(pid);
    s.ensureDevice(device);
    s.counts[device * KINDS + KIND_UNKNOWN_FREE] = n;
  }

  /** After the last restoreObject(): every table indexed in one pass. */
  restored(): void {
    this.buffers.reindex();
    this.cbs.reindex();
    this.kernels.reindex();
  }

  // ---------------------------------------------------------------- queries
  deviceBytes(device: number, kind: number): number {
    return this.devBytes[device * KINDS + kind];
  }
  deviceCount(device: number, kind: number): number {
    return this.devCounts[device * KINDS + kind];
  }

  /**
   * The four usage counters of the wire protocol (SYSTEM_MEMORY counts as L1_SMALL, as it always
   * has).
   */
  usage(device: number): {
    dram: number;
    l1: number;
    l1Small: number;
    trace: number;
    cb: number;
    kernel: number;
  } {
    if (device < 0 || device >= MAX_DEVICES)
      return { dram: 0, l1: 0, l1Small: 0, trace: 0, cb: 0, kernel: 0 };
    const b = (k: number) => this.devBytes[device * KINDS + k];
    return {
      dram: b(0),
      l1: b(1),
      l1Small: b(2) + b(3),
      trace: b(4),
      cb: b(KIND_CB),
      kernel: b(KIND_KERNEL),
    };
  }

  totalBuffers(): number {
    return this.buffers.count;
  }

  /** PIDs that own at least one live object. */
  livePids(): number[] {
    const out: number[] = [];
    for (const [pid, s] of this.pids) if (s.live > 0) out.push(pid);
    return out;
  }

  // ---------------------------------------------------------------- cleanup
  /**
   * Drops the stats of PIDs that own nothing and are gone (e.g. processes that only sent frees of
   * unknown buffers), so a server that sees thousands of short processes does not grow forever.
   */
  forgetIdlePids(alive: (pid: number) => boolean): void {
    for (const [pid, s] of this.pids) {
      if (s.live === 0 && !alive(pid)) {
        this.pids.delete(pid);
        if (pid === this.lastPid) {
          this.lastPid = -1;
          this.lastStats = null;
        }
      }
    }
  }

  /**
   * Releases everything owned by `dead` PIDs; returns one report per PID that owned something.
   * The counts and bytes of each report are the PID's own running counters (kept exact per device
   * and kind on every ALLOC/FREE), so the pass over each table only marks the dead PIDs' entries
   * (a typed PID lookup per row, rows read page by page) and keeps the five largest buffers per
   * PID in typed arrays; then one bulk removal per table.
   */
  releasePids(dead: Set<number>, now = Date.now()): ReapedReport[] {
    if (dead.size === 0) return [];
    const slots = new PidSlots(dead);
    const n = slots.pids.length;
    const largest: ReapedReport['largest'][] = slots.pids.map(() => []);
    // How many buffers, CBs and kernels the dead own: a table they own nothing in is not scanned,
    // and a scan stops once it has found them all.
    const owned = new Float64Array(KINDS);
    for (const pid of slots.pids) {
      const s = this.pids.get(pid);
      if (s !== undefined && s.live !== 0) addCounts(s.counts, owned);
    }
    const ownBuffers = owned[0] + owned[1] + owned[2] + owned[3] + owned[4];
    for (const kind of [-1, KIND_CB, KIND_KERNEL]) {
      const t = kind === -1 ? this.buffers : kind === KIND_CB ? this.cbs : this.kernels;
      const own = kind === -1 ? ownBuffers : owned[kind];
      if (t.count === 0 || own === 0) continue;
      const mark = new Uint8Array(t.count);
      const marked =
        kind === -1 ? markBuffers(t, slots, mark, largest, own) : markOwned(t, slots, mark, own);
      t.removeMarked(mark, marked);
    }
    const out: ReapedReport[] = [];
    for (let slot = 0; slot < n; slot++) {
      const pid = slots.pids[slot],
        s = this.pids.get(pid);
      if (s === undefined || s.live === 0) continue;
      out.push(this.settleDead(s, now, largest[slot]));
    }
    // Only the PIDs reported here are forgotten: the journal records exactly them (a dead PID that
    // owned nothing keeps its unknown-free counts until forgetIdlePids()).
    for (const r of out) this.pids.delete(r.pid);
    this.lastPid = -1;
    this.lastStats = null;
    for (const r of out) this.reaped.push(r); // no spread: there may be many
    this.reapedTotal += out.length;
    if (this.reaped.length > this.maxReapedKept)
      this.reaped.splice(0, this.reaped.length - this.maxReapedKept);
    return out;
  }

  /** A dead PID's report from its counters, which are subtracted from the devices' and zeroed. */
  private settleDead(s: ProcessStats, now: number, largest: ReapedReport['largest']): ReapedReport {
    const r: ReapedReport = {
      pid: s.pid,
      reapedAtMs: now,
      buffers: 0,
      bytes: 0,
      cbs: 0,
      cbBytes: 0,
      kernels: 0,
      kernelBytes: 0,
      byDevice: {},
      largest,
    };
    for (let dev = 0; dev < s.devices; dev++) {
      for (let kind = 0; kind < KIND_UNKNOWN_FREE; kind++) {
        const k = dev * KINDS + kind,
          c = s.counts[k];
        if (c === 0) continue;
        const b = s.bytes[k];
        this.devBytes[k] -= b;
        this.devCounts[k] -= c;
        s.bytes[k] = 0;
        s.counts[k] = 0;
        if (kind === KIND_CB) {
          r.cbs += c;
          r.cbBytes += b;
        } else if (kind === KIND_KERNEL) {
          r.kernels += c;
          r.kernelBytes += b;
        } else {
          r.buffers += c;
          r.bytes += b;
          (r.byDevice[dev] ??= {})[typeName(kind)] = { count: c, bytes: b };
        }
      }
    }
    s.live = 0;
    return r;
  }

  /** Forgets everything (ttalloc reset). */
  reset(): void {
    this.buffers.clear();
    this.cbs.clear();
    this.kernels.clear();
    this.devBytes.fill(0);
    this.devCounts.fill(0);
    this.pids.clear();
    this.lastPid = -1;
    this.lastStats = null;
    this.reaped.length = 0;
    this.unknownFrees = 0;
    this.unknownCbFrees = 0;
    this.unknownKernelUnloads = 0;
    this.resizedAllocs = 0;
  }
}

/** Adds per-(device, kind) counts into per-kind totals. */
function addCounts(counts: Float64Array, into: Float64Array): void {
  for (let k = 0; k < counts.length; k++) into[k % KINDS] += counts[k];
}

/** Multiplier of the PID hash of PidSlots (the scans inline the lookup). */
const PID_HASH = 0x9e3779b1 | 0;

/** PID → dense slot for a sweep: open addressing on typed arrays, a few integer ops per lookup. */
class PidSlots {
  readonly pids: number[];
  readonly keys: Int32Array;
  /** slot + 1, 0 = empty */
  readonly vals: Int32Array;
  readonly mask: number;
  constructor(set: Iterable<number>) {
    this.pids = [...set];
    let cap = 16;
    while (cap < this.pids.length * 4) cap *= 2;
    this.keys = new Int32Array(cap);
    this.vals = new Int32Array(cap);
    this.mask = cap - 1;
    this.pids.forEach((pid, i) => {
      let h = Math.imul(pid, PID_HASH) & this.mask;
      while (this.vals[h] !== 0) h = (h + 1) & this.mask;
      this.keys[h] = pid;
      this.vals[h] = i + 1;
    });
  }
}

/** Marks the CBs or kernels owned by a PID in `slots` (`own` of them); returns how many. */
function markOwned(t: ObjectTable, slots: PidSlots, mark: Uint8Array, own: number): number {
  let marked = 0;
  for (let p = 0, e0 = 0; e0 < t.count && marked < own; p++, e0 += PAGE_ROWS) {
    marked += markOwnedPage(
      t.rowPage(p),
      Math.min(PAGE_ROWS, t.count - e0),
      e0,
      slots.keys,
      slots.vals,
      slots.mask,
      mark,
    );
  }
  return marked;
}

// The scans run once per sweep, usually on code V8 has not optimised yet: one small function per
// page (quick to compile, optimised after its first pages) rather than one large loop whose
// on-stack compilation took ~30 ms while the rows went through the interpreter.
function markOwnedPage(
  pg: Int32Array,
  end: number,
  e0: number,
  keys: Int32Array,
  vals: Int32Array,
  mask: number,
  mark: Uint8Array,
): number {
  let marked = 0;
  for (let i = 0, b = ROW_PID; i < end; i++, b += ROW_WORDS) {
    const pid = pg[b];
    for (let h = Math.imul(pid, PID_HASH) & mask; vals[h] !== 0; h = (h + 1) & mask) {
      if (keys[h] === pid) {
        mark[e0 + i] = 1;
        marked++;
        break;
      }
    }
  }
  return marked;
}

/**
 * Marks the buffers owned by a PID in `slots` (`own` of them: the scan stops at the page where it
 * has found them all) and fills `largest[slot]` with its five largest (ties: the earlier entry),
 * sizes and entries kept in typed arrays until the end.
 */
function markBuffers(
  t: ObjectTable,
  slots: PidSlots,
  mark: Uint8Array,
  largest: ReapedReport['largest'][],
  own: number,
): number {
  const n = slots.pids.length,
    K = REAPED_LARGEST;
  const topSize = new Float64Array(n * K),
    topEntry = new Int32Array(n * K),
    topCount = new Uint8Array(n);
  let marked = 0;
  for (let p = 0, e0 = 0; e0 < t.count && marked < own; p++, e0 += PAGE_ROWS) {
    marked += markBufferPage(
      t.rowPage(p),
      Math.min(PAGE_ROWS, t.count - e0),
      e0,
      slots.keys,
      slots.vals,
      slots.mask,
      mark,
      topSize,
      topEntry,
      topCount,
    );
  }
  for (let slot = 0; slot < n; slot++) {
    for (let j = 0; j < topCount[slot]; j++) {
      const e = topEntry[slot * K + j];
      largest[slot].push({
        device: t.device(e),
        address: '0x' + t.idHex(e),
        size: t.size(e),
        type: t.type(e),
        refCount: t.ref(e),
      });
    }
  }
  return marked;
}

function markBufferPage(
  pg: Int32Array,
  end: number,
  e0: number,
  keys: Int32Array,
  vals: Int32Array,
  mask: number,
  mark: Uint8Array,
  topSize: Float64Array,
  topEntry: Int32Array,
  topCount: Uint8Array,
): number {
  const K = REAPED_LARGEST;
  let marked = 0,
    lastPid = 0,
    slot = -1;
  for (let i = 0, b = 0; i < end; i++, b += ROW_WORDS) {
    const pid = pg[b + ROW_PID];
    if (pid !== lastPid || i === 0) {
      lastPid = pid;
      slot = -1;
      for (let h = Math.imul(pid, PID_HASH) & mask; vals[h] !== 0; h = (h + 1) & mask)
        if (keys[h] === pid) {
          slot = vals[h] - 1;
          break;
        }
    }
    if (slot < 0) continue;
    const e = e0 + i;
    mark[e] = 1;
    marked++;
    const size = rowSize(pg, b),
      at = slot * K,
      have = topCount[slot];
    if (have === K && size <= topSize[at + K - 1]) continue;
    // Insert after every kept entry of the same or larger size (the earlier one wins a tie).
    let j = have === K ? K - 1 : have;
    while (j > 0 && topSize[at + j - 1] < size) {
      topSize[at + j] = topSize[at + j - 1];
      topEntry[at + j] = topEntry[at + j - 1];
      j--;
    }
    topSize[at + j] = size;
    topEntry[at + j] = e;
    if (have < K) topCount[slot] = have + 1;
  }
  return marked;
}

export function typeName(type: number): string {
  return BUFFER_TYPE_NAMES[type] ?? `TYPE_${type}`;
}
