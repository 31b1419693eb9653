// The live state of every device: buffers, circular buffers (CBs) and kernels, with counters kept
// incrementally so that queries, stats and metrics never scan the tables.
import {
  BUFFER_TYPE_NAMES,
  counterBytes,
  MAX_DEVICES,
  NUM_BUFFER_TYPES,
} from '../protocol/constants.js';
import type { WireUsage } from '../protocol/replies.js';
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
  type NewObject,
  type ObjectKey,
  type RestoredObject,
} from './object-table.js';

/**
 * Counter slots per device: one per buffer type (slot = BufferType value), then CBs, kernels, and
 * unknown frees.
 */
export const KIND_CB = NUM_BUFFER_TYPES;
export const KIND_KERNEL = NUM_BUFFER_TYPES + 1;
export const KIND_UNKNOWN_FREE = NUM_BUFFER_TYPES + 2;
export const KINDS = NUM_BUFFER_TYPES + 3;
/** restoreObject()'s kind for a buffer (CBs and kernels use KIND_CB / KIND_KERNEL). */
export const KIND_BUFFER = -1;

/** The key of a FREE: which buffer, and who sent it (unknown frees are counted per process). */
export interface FreedObject extends ObjectKey {
  readonly owner: number;
}

/** Tracker counters that are state, not ingest statistics (a snapshot keeps them). */
export interface TrackerCounters {
  unknownFrees: number;
  unknownCbFrees: number;
  unknownKernelUnloads: number;
  resizedAllocs: number;
  reapedTotal: number;
  devUnknownFrees: number[];
  /** Per process, only where there are some: [pid, count on device 0, 1, …]. */
  pidUnknownFrees: number[][];
  /** Devices that reported anything, live objects or not (older snapshots lack it). */
  devicesSeen?: number[];
}

/** Reaped-process reports kept for `ttalloc reaped` (the oldest are dropped beyond this). */
const MAX_REAPED_KEPT = 1000;

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
  private readonly devBytesArr = new Float64Array(MAX_DEVICES * KINDS);
  private readonly devCountsArr = new Float64Array(MAX_DEVICES * KINDS);
  private readonly devSeen = new Uint8Array(MAX_DEVICES);
  private maxDevice = -1;
  private readonly pidStats = new Map<number, ProcessStats>();
  private lastPid = -1;
  private lastStats: ProcessStats | null = null;

  /**
   * Epochs order time coarsely: a new one starts on every checkpoint and on a clock tick after
   * allocations happened, so "born after mark M" and "born at about time T" both come from one
   * 32-bit column.
   */
  private epochNo = 0;
  private readonly epochStarts: number[] = [];
  private allocsInEpoch = 0;

  // Ingest totals (frames accepted per message code), for stats and metrics.
  private readonly frames = new Float64Array(16);
  private unknownFreeCount = 0;
  private unknownCbFreeCount = 0;
  private unknownKernelUnloadCount = 0;
  private resizedAllocCount = 0;
  /** ALLOCs, CBs and kernels not tracked because their table held MAX_ENTRIES (~134 M) already. */
  private tableFullDropCount = 0;
  private readonly reapedList: ReapedReport[] = [];
  private reapedCount = 0;

  private now = Date.now();

  /** Persistence listens here so that epochs replay exactly (and with them, marks). */
  onEpoch: ((epoch: number, startMs: number) => void) | null = null;
  /** Called when a PID is first accounted (the server records who the process is). */
  onNewPid: ((pid: number) => void) | null = null;

  // ---------------------------------------------------------------- read-only views
  /** bytes per device × kind (index device * KINDS + kind); read only. */
  get devBytes(): Float64Array {
    return this.devBytesArr;
  }
  /** counts per device × kind; read only. */
  get devCounts(): Float64Array {
    return this.devCountsArr;
  }
  /** Highest device id that ever reported anything, -1 if none. */
  get maxDeviceSeen(): number {
    return this.maxDevice;
  }
  /** Per-process accounting of every PID seen; read only. */
  get pids(): ReadonlyMap<number, ProcessStats> {
    return this.pidStats;
  }
  get epoch(): number {
    return this.epochNo;
  }
  /** Start time of every epoch; read only. */
  get epochStartMs(): readonly number[] {
    return this.epochStarts;
  }
  /** Frames accepted per message code; read only (countFrames() writes). */
  get framesByType(): Float64Array {
    return this.frames;
  }
  get unknownFrees(): number {
    return this.unknownFreeCount;
  }
  get unknownCbFrees(): number {
    return this.unknownCbFreeCount;
  }
  get unknownKernelUnloads(): number {
    return this.unknownKernelUnloadCount;
  }
  get resizedAllocs(): number {
    return this.resizedAllocCount;
  }
  get tableFullDrops(): number {
    return this.tableFullDropCount;
  }
  /** The latest reaped-process reports (at most MAX_REAPED_KEPT). */
  get reaped(): ReapedReport[] {
    return this.reapedList;
  }
  get reapedTotal(): number {
    return this.reapedCount;
  }
  /** The cheap "now" (ms) of the latest tick() or setNow(). */
  get nowMs(): number {
    return this.now;
  }

  /** `maxEntries` (per table) below MAX_ENTRIES is for tests of a full table. */
  constructor(expectedBuffers = 0, maxEntries = MAX_ENTRIES) {
    this.buffers = new ObjectTable(expectedBuffers, maxEntries);
    this.cbs = new ObjectTable(0, maxEntries);
    this.kernels = new ObjectTable(0, maxEntries);
    this.epochStarts.push(this.now);
  }

  /** Ingest: `n` more frames of message code `code` were accepted. */
  countFrames(code: number, n: number): void {
    this.frames[code] += n;
  }

  /** Clears the frame counts (they are ingest statistics, not state). */
  resetFrameCounts(): void {
    this.frames.fill(0);
  }

  /** Sets the cheap "now" without starting an epoch (per received chunk; tests). */
  setNow(now: number): void {
    this.now = now;
  }

  // ---------------------------------------------------------------- hot path
  private stats(pid: number): ProcessStats {
    if (pid === this.lastPid && this.lastStats !== null) return this.lastStats;
    let s = this.pidStats.get(pid);
    if (s === undefined) {
      s = new ProcessStats(pid, this.now, this.maxDevice + 1);
      this.pidStats.set(pid, s);
      this.onNewPid?.(pid);
    }
    this.lastPid = pid;
    this.lastStats = s;
    return s;
  }

  /** Device `device` has reported something (recovery marks the devices a snapshot knew). */
  seeDevice(device: number): void {
    if (device > this.maxDevice) this.maxDevice = device;
    this.devSeen[device] = 1;
  }

  /** Has device `d` ever reported anything? */
  usageSeen(d: number): boolean {
    return this.devSeen[d] === 1;
  }

  /** Adds `bytes` and `count` to counter slot `k` (device * KINDS + kind) and `s`'s share. */
  private account(s: ProcessStats, k: number, bytes: number, count: number): void {
    this.devBytesArr[k] += bytes;
    this.devCountsArr[k] += count;
    if (k >= s.bytes.length) s.ensureDevice(Math.floor(k / KINDS));
    s.bytes[k] += bytes;
    s.counts[k] += count;
    s.live += count;
  }

  /**
   * ALLOC (the id halves may be signed or unsigned). Returns what it did: ALLOC_NEW, ALLOC_REF,
   * ALLOC_RESIZED or ALLOC_FULL (not tracked: MAX_ENTRIES live).
   */
  alloc(ev: NewObject): number {
    const device = ev.device;
    if (device > this.maxDevice) this.maxDevice = device;
    this.devSeen[device] = 1;
    const r = this.buffers.allocRef(ev, this.epochNo);
    if (r !== ALLOC_NEW) {
      if (r === ALLOC_RESIZED) this.resizedAllocCount++;
      else if (r === ALLOC_FULL) this.tableFullDropCount++;
      return r;
    }
    this.allocsInEpoch++;
    const s = this.stats(ev.owner);
    s.lastSeenMs = this.now;
    this.account(s, device * KINDS + ev.sub, ev.size, 1);
    return r;
  }

  /**
   * FREE: drops a reference; the last one releases the buffer from its owner's accounting.
   * Returns what it did: RELEASE_REMOVED, RELEASE_REF or RELEASE_UNKNOWN.
   */
  free(ev: FreedObject): number {
    const device = ev.device;
    if (device > this.maxDevice) this.maxDevice = device;
    this.devSeen[device] = 1;
    const t = this.buffers;
    const r = t.release(device, ev.lo, ev.hi);
    if (r === RELEASE_REMOVED)
      this.account(this.stats(t.gonePid), device * KINDS + t.goneType, -t.goneSize, -1);
    else if (r === RELEASE_UNKNOWN) {
      this.unknownFreeCount++;
      this.devCountsArr[device * KINDS + KIND_UNKNOWN_FREE]++;
      const s = this.stats(ev.owner);
      s.ensureDevice(device);
      s.counts[device * KINDS + KIND_UNKNOWN_FREE]++;
    }
    return r;
  }

  /** CB_ALLOC / KERNEL_LOAD: repeats of a live id refresh it and never add memory. */
  loadObject(kind: number, ev: NewObject): void {
    this.seeDevice(ev.device);
    const r = (kind === KIND_CB ? this.cbs : this.kernels).load(ev, this.epochNo);
    if (r === ALLOC_FULL) this.tableFullDropCount++;
    if (r !== ALLOC_NEW) return;
    const s = this.stats(ev.owner);
    s.lastSeenMs = this.now;
    this.account(s, ev.device * KINDS + kind, ev.size, 1);
  }

  /**
   * CB_FREE / KERNEL_UNLOAD: removes the live object; unknown ids are counted, never subtracted.
   * CBs and kernels are not reference counted: one unload removes them.
   */
  unloadObject(kind: number, ev: ObjectKey): void {
    this.seeDevice(ev.device);
    const t = kind === KIND_CB ? this.cbs : this.kernels;
    if (t.release(ev.device, ev.lo, ev.hi, true) === RELEASE_UNKNOWN) {
      if (kind === KIND_CB) this.unknownCbFreeCount++;
      else this.unknownKernelUnloadCount++;
      return;
    }
    this.account(this.stats(t.gonePid), ev.device * KINDS + kind, -t.goneSize, -1);
  }

  // ---------------------------------------------------------------- time
  /** Called on a coarse clock tick (and per received chunk) to keep a cheap "now". */
  tick(now: number): void {
    this.now = now;
    if (this.allocsInEpoch > 0 && now - this.epochStarts[this.epochNo] >= 1000) this.newEpoch();
  }

  /** Starts a new epoch (checkpoints call this) and returns its number. */
  newEpoch(): number {
    this.epochNo++;
    this.epochStarts.push(this.now);
    this.allocsInEpoch = 0;
    this.onEpoch?.(this.epochNo, this.now);
    return this.epochNo;
  }

  /** Replay: epoch `epoch` started at `startMs`. */
  restoreEpoch(epoch: number, startMs: number): void {
    this.epochNo = epoch;
    this.epochStarts[epoch] = startMs;
    this.allocsInEpoch = 0;
  }

  /** Replay of a snapshot: every epoch's start time. */
  restoreEpochTimes(times: number[]): void {
    this.epochStarts.length = 0;
    for (const t of times) this.epochStarts.push(t); // no spread: there may be many
  }

  /** Approximate wall time (ms) at which something born in `epoch` was allocated. */
  epochTimeMs(epoch: number): number {
    return this.epochStarts[epoch] ?? this.now;
  }

  /**
   * Recovery from a snapshot: one live object exactly as it was (kind KIND_BUFFER, KIND_CB or
   * KIND_KERNEL), counted like a fresh allocation. It is findable only after restored().
   */
  restoreObject(kind: number, o: RestoredObject): void {
    const t = kind === KIND_BUFFER ? this.buffers : kind === KIND_CB ? this.cbs : this.kernels;
    this.seeDevice(o.device);
    t.append(o);
    const slot = o.device * KINDS + (kind === KIND_BUFFER ? o.sub : kind);
    this.account(this.stats(o.owner), slot, o.size, 1);
  }

  /** The counters a snapshot keeps (restoreCounters() puts them back). */
  counters(): TrackerCounters {
    const devUnknownFrees: number[] = [];
    for (let d = 0; d <= this.maxDevice; d++)
      devUnknownFrees.push(this.deviceCount(d, KIND_UNKNOWN_FREE));
    const pidUnknownFrees: number[][] = [];
    for (const s of this.pidStats.values()) {
      const per: number[] = [];
      for (let d = 0; d < s.devices; d++) per.push(s.counts[d * KINDS + KIND_UNKNOWN_FREE]);
      if (per.some((n) => n > 0)) pidUnknownFrees.push([s.pid, ...per]);
    }
    // Devices that reported anything, live objects or not (unknown frees, unloads): they stay
    // listed.
    const devicesSeen: number[] = [];
    for (let d = 0; d <= this.maxDevice; d++) if (this.usageSeen(d)) devicesSeen.push(d);
    return {
      unknownFrees: this.unknownFreeCount,
      unknownCbFrees: this.unknownCbFreeCount,
      unknownKernelUnloads: this.unknownKernelUnloadCount,
      resizedAllocs: this.resizedAllocCount,
      reapedTotal: this.reapedCount,
      devUnknownFrees,
      pidUnknownFrees,
      devicesSeen,
    };
  }

  /** Recovery from a snapshot: the counters counters() returned. */
  restoreCounters(c: TrackerCounters): void {
    this.unknownFreeCount = c.unknownFrees;
    this.unknownCbFreeCount = c.unknownCbFrees;
    this.unknownKernelUnloadCount = c.unknownKernelUnloads;
    this.resizedAllocCount = c.resizedAllocs;
    this.reapedCount = c.reapedTotal;
    for (const d of c.devicesSeen ?? []) this.seeDevice(d);
    c.devUnknownFrees.forEach((n, d) => {
      this.devCountsArr[d * KINDS + KIND_UNKNOWN_FREE] = n;
    });
    for (const [pid, ...per] of c.pidUnknownFrees ?? [])
      per.forEach((n, d) => this.restoreUnknownFrees(pid, d, n));
  }

  /** Recovery from a snapshot: the reaped-process reports it kept. */
  restoreReaped(list: readonly ReapedReport[]): void {
    this.reapedList.length = 0;
    for (const r of list) this.reapedList.push(r); // no spread: there may be many
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
    return this.devBytesArr[device * KINDS + kind];
  }
  deviceCount(device: number, kind: number): number {
    return this.devCountsArr[device * KINDS + kind];
  }

  /** The four usage counters of the wire protocol (counterBytes: the SYSTEM_MEMORY rule). */
  usage(device: number): WireUsage {
    if (device < 0 || device >= MAX_DEVICES)
      return { dram: 0, l1: 0, l1Small: 0, trace: 0, cb: 0, kernel: 0 };
    const b = (k: number) => this.devBytesArr[device * KINDS + k];
    return {
      dram: counterBytes('DRAM', b),
      l1: counterBytes('L1', b),
      l1Small: counterBytes('L1_SMALL', b),
      trace: counterBytes('TRACE', b),
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
    for (const [pid, s] of this.pidStats) if (s.live > 0) out.push(pid);
    return out;
  }

  // ---------------------------------------------------------------- cleanup
  /**
   * Drops the stats of PIDs that own nothing and are gone (e.g. processes that only sent frees of
   * unknown buffers), so a server that sees thousands of short processes does not grow forever.
   */
  forgetIdlePids(alive: (pid: number) => boolean): void {
    for (const [pid, s] of this.pidStats) {
      if (s.live === 0 && !alive(pid)) {
        this.pidStats.delete(pid);
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
    // How many buffers, CBs and kernels the dead own: a table they own nothing in is not scanned,
    // and a scan stops once it has found them all.
    const owned = new Float64Array(KINDS);
    for (const pid of slots.pids) {
      const s = this.pidStats.get(pid);
      if (s !== undefined && s.live !== 0) addCounts(s.counts, owned);
    }
    let ownBuffers = 0;
    for (let type = 0; type < NUM_BUFFER_TYPES; type++) ownBuffers += owned[type];
    for (const kind of [KIND_BUFFER, KIND_CB, KIND_KERNEL]) {
      const t = kind === KIND_BUFFER ? this.buffers : kind === KIND_CB ? this.cbs : this.kernels;
      const own = kind === KIND_BUFFER ? ownBuffers : owned[kind];
      if (t.count === 0 || own === 0) continue;
      const mark = new Uint8Array(t.count);
      const marked =
        kind === KIND_BUFFER ? markBuffers(t, slots, mark, own) : markOwned(t, slots, mark, own);
      t.removeMarked(mark, marked);
    }
    const out: ReapedReport[] = [];
    for (let slot = 0; slot < n; slot++) {
      const pid = slots.pids[slot],
        s = this.pidStats.get(pid);
      if (s === undefined || s.live === 0) continue;
      out.push(this.settleDead(s, now, slots.largest[slot]));
    }
    // Only the PIDs reported here are forgotten: the journal records exactly them (a dead PID that
    // owned nothing keeps its unknown-free counts until forgetIdlePids()).
    for (const r of out) this.pidStats.delete(r.pid);
    this.lastPid = -1;
    this.lastStats = null;
    for (const r of out) this.reapedList.push(r); // no spread: there may be many
    this.reapedCount += out.length;
    if (this.reapedList.length > MAX_REAPED_KEPT)
      this.reapedList.splice(0, this.reapedList.length - MAX_REAPED_KEPT);
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
        this.devBytesArr[k] -= b;
        this.devCountsArr[k] -= c;
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
    this.devBytesArr.fill(0);
    this.devCountsArr.fill(0);
    this.pidStats.clear();
    this.lastPid = -1;
    this.lastStats = null;
    this.reapedList.length = 0;
    this.unknownFreeCount = 0;
    this.unknownCbFreeCount = 0;
    this.unknownKernelUnloadCount = 0;
    this.resizedAllocCount = 0;
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
  /** The five largest buffers of each slot's PID (markBuffers fills them). */
  readonly largest: ReapedReport['largest'][];
  constructor(set: Iterable<number>) {
    this.pids = [...set];
    this.largest = this.pids.map(() => []);
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
  for (let p = 0; p * PAGE_ROWS < t.count && marked < own; p++)
    marked += markOwnedPage(t, p, slots, mark);
  return marked;
}

// The scans run once per sweep, usually on code V8 has not optimised yet: one small function per
// page (quick to compile, optimised after its first pages) rather than one large loop whose
// on-stack compilation took ~30 ms while the rows went through the interpreter. Everything the
// loop reads is in locals before it starts.
function markOwnedPage(t: ObjectTable, p: number, slots: PidSlots, mark: Uint8Array): number {
  const pg = t.rowPage(p),
    e0 = p * PAGE_ROWS,
    end = Math.min(PAGE_ROWS, t.count - e0);
  const { keys, vals, mask } = slots;
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

/** A buffer sweep's marks and, per PID slot, its largest buffers so far (sizes and entries). */
class BufferScan {
  readonly topSize: Float64Array;
  readonly topEntry: Int32Array;
  readonly topCount: Uint8Array;
  constructor(
    readonly mark: Uint8Array,
    slots: number,
  ) {
    this.topSize = new Float64Array(slots * REAPED_LARGEST);
    this.topEntry = new Int32Array(slots * REAPED_LARGEST);
    this.topCount = new Uint8Array(slots);
  }
}

/**
 * Marks the buffers owned by a PID in `slots` (`own` of them: the scan stops at the page where it
 * has found them all) and fills `slots.largest` with each PID's five largest (ties: the earlier
 * entry), sizes and entries kept in typed arrays until the end.
 */
function markBuffers(t: ObjectTable, slots: PidSlots, mark: Uint8Array, own: number): number {
  const n = slots.pids.length,
    K = REAPED_LARGEST;
  const scan = new BufferScan(mark, n);
  let marked = 0;
  for (let p = 0; p * PAGE_ROWS < t.count && marked < own; p++)
    marked += markBufferPage(t, p, slots, scan);
  const { topEntry, topCount } = scan;
  for (let slot = 0; slot < n; slot++) {
    for (let j = 0; j < topCount[slot]; j++) {
      const e = topEntry[slot * K + j];
      slots.largest[slot].push({
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

function markBufferPage(t: ObjectTable, p: number, slots: PidSlots, scan: BufferScan): number {
  const pg = t.rowPage(p),
    e0 = p * PAGE_ROWS,
    end = Math.min(PAGE_ROWS, t.count - e0);
  const { keys, vals, mask } = slots;
  const { mark, topSize, topEntry, topCount } = scan;
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
