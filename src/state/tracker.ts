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
  ALLOC_CONFLICT,
  ALLOC_FULL,
  ALLOC_NEW,
  ALLOC_RESIZED,
  MAX_ENTRIES,
  ObjectTable,
  PAGE_ROWS,
  PID_MASK,
  RELEASE_REMOVED,
  RELEASE_UNKNOWN,
  ROW_OWNER,
  ROW_WORDS,
  type NewObject,
  type ObjectKey,
  type RestoredObject,
} from './object-table.js';
import {
  LeftBehind,
  type ExitedProcess,
  type ForgetFilter,
  type ProcessIdentity,
  type ReapedReport,
} from './left-behind.js';
import { Peaks } from './peaks.js';
import { FreedRing } from './freed-ring.js';
import { BufferNotes } from './buffer-notes.js';

export type { ExitedProcess, ProcessIdentity, ReapedReport };

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

/** The key of a FREE: which buffer of which sender (unknown frees are counted per process). */
export type FreedObject = ObjectKey;

/**
 * Frame timestamps older than this are not believed (a client clock far off, a replayed frame):
 * the arrival time is used instead.
 */
const PLAUSIBLE_PAST_MS = 3_600_000;

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
  /** Exited processes and records the left-behind budget dropped (older snapshots lack it). */
  leftBehindDropped?: [number, number];
  /** Buffer-note strings not kept (over the notes budget) and their bytes. */
  notesDropped?: [number, number];
  /** The earliest allocation time a new buffer may get (the latest mark's cut). */
  floorMs?: number;
}

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
   * Every object stores its allocation time (ms). A mark sets this floor just above its own time,
   * so that whatever arrives after the mark is born after it ("born after mark M" is `bornMs >=
   * M.cutMs`) and whatever arrived before is not, whatever the frames' own timestamps say.
   */
  private floor = 0;

  // Ingest totals (frames accepted per message code), for stats and metrics.
  private readonly frames = new Float64Array(16);
  private unknownFreeCount = 0;
  private unknownCbFreeCount = 0;
  private unknownKernelUnloadCount = 0;
  private resizedAllocCount = 0;
  /** ALLOCs, CBs and kernels not tracked because their table held MAX_ENTRIES (~134 M) already. */
  private tableFullDropCount = 0;
  private reapedCount = 0;
  /** Per-buffer records of what exited processes left behind. */
  readonly leftBehind: LeftBehind;
  /** High-water marks of devBytes: per sample interval, overall, since each mark. */
  readonly peaks: Peaks;
  /** The last frees with their lifetimes, for the timeline (off until resize()). */
  readonly freed = new FreedRing();
  /** Buffer names and stack traces (648-byte clients), interned; their ids sit beside the rows. */
  readonly notes: BufferNotes;
  /** Did the latest alloc() insert a buffer (so a note may be set on buffers.newestEntry)? */
  private allocInserted = false;

  private now = Date.now();

  /**
   * Called when an ALLOC, CB_ALLOC or KERNEL_LOAD finds its (device, id) held by another PID:
   * returns true when that PID was gone and has been released (the server checks and reaps it,
   * journalling the reap first); false when it is alive (both objects are then kept, flagged
   * shared). Null (replay, tests): alive — a replayed journal holds the reap before the event.
   */
  onConflict: ((otherPid: number) => boolean) | null = null;
  /** Called when a PID is first accounted (the server records who it is while it runs). */
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
  /** The earliest allocation time a new object gets (set by marks). */
  get floorMs(): number {
    return this.floor;
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
  /** Exited processes that left something behind, oldest first (within the budget). */
  get reaped(): readonly ExitedProcess[] {
    return this.leftBehind.list;
  }
  get reapedTotal(): number {
    return this.reapedCount;
  }
  /** The cheap "now" (ms) of the latest tick() or setNow(). */
  get nowMs(): number {
    return this.now;
  }

  /** `maxEntries` (per table) below MAX_ENTRIES is for tests of a full table. */
  constructor(
    expectedBuffers = 0,
    maxEntries = MAX_ENTRIES,
    leftBehindBudget?: number,
    notesBudget?: number,
  ) {
    this.buffers = new ObjectTable(expectedBuffers, maxEntries);
    this.cbs = new ObjectTable(0, maxEntries);
    this.kernels = new ObjectTable(0, maxEntries);
    this.leftBehind = new LeftBehind(leftBehindBudget);
    this.peaks = new Peaks(this.devBytesArr);
    this.notes = new BufferNotes(notesBudget);
    this.buffers.noteStrings = this.notes;
    this.leftBehind = new LeftBehind(leftBehindBudget, this.notes);
  }

  /** Ingest: `n` more frames of message code `code` were accepted. */
  countFrames(code: number, n: number): void {
    this.frames[code] += n;
  }

  /** Clears the frame counts (they are ingest statistics, not state). */
  resetFrameCounts(): void {
    this.frames.fill(0);
  }

  /** Sets the cheap "now" (per received chunk; tests). */
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
    const level = (this.devBytesArr[k] += bytes);
    if (bytes > 0) this.peaks.see(k, level);
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
    let r = this.buffers.allocRef(ev, this.onConflict === null);
    if (r === ALLOC_CONFLICT) r = this.settleConflict(this.buffers, ev, true);
    this.allocInserted = r === ALLOC_NEW;
    if (r !== ALLOC_NEW) {
      if (r === ALLOC_RESIZED) this.resizedAllocCount++;
      else if (r === ALLOC_FULL) this.tableFullDropCount++;
      return r;
    }
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
    const r = t.release(ev);
    if (r === RELEASE_REMOVED) {
      this.account(this.stats(t.gonePid), device * KINDS + t.goneType, -t.goneSize, -1);
      this.freed.push(ev, t, this.now);
      if (t.goneNote !== 0) this.notes.release(t.goneNote);
    } else if (r === RELEASE_UNKNOWN) {
      this.unknownFreeCount++;
      this.devCountsArr[device * KINDS + KIND_UNKNOWN_FREE]++;
      const s = this.stats(ev.owner);
      s.ensureDevice(device);
      s.counts[device * KINDS + KIND_UNKNOWN_FREE]++;
    }
    return r;
  }

  /**
   * The buffer the latest alloc() inserted gets `name` and `trace` (a 648-byte ALLOC; a repeated
   * ALLOC of a live buffer keeps the note of its first one). Returns whether it was set.
   */
  noteAlloc(name: string, trace: string): boolean {
    if (!this.allocInserted || (name === '' && trace === '')) return false;
    const id = this.notes.noteOf(name, trace);
    if (id === 0) return false;
    this.buffers.setNote(this.buffers.newestEntry, id);
    return true;
  }

  /** Recovery from a snapshot: live buffer entry `e` (in the order restored) has this note. */
  restoreNote(e: number, name: string, trace: string): void {
    if (e < 0 || e >= this.buffers.count) return;
    const id = this.notes.noteOf(name, trace);
    if (id !== 0) this.buffers.setNote(e, id);
  }

  /** Replay: the live buffer of this key gets its note (ignored when it is not live). */
  noteBuffer(key: ObjectKey, name: string, trace: string): void {
    const e = this.buffers.find(key.device, key.lo, key.hi, key.owner);
    if (e < 0 || this.buffers.note(e) !== 0) return;
    const id = this.notes.noteOf(name, trace);
    if (id !== 0) this.buffers.setNote(e, id);
  }

  /** CB_ALLOC / KERNEL_LOAD: repeats of a live id refresh it and never add memory. */
  loadObject(kind: number, ev: NewObject): void {
    this.seeDevice(ev.device);
    const t = kind === KIND_CB ? this.cbs : this.kernels;
    let r = t.load(ev, this.onConflict === null);
    if (r === ALLOC_CONFLICT) r = this.settleConflict(t, ev, false);
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
    if (t.release(ev, true) === RELEASE_UNKNOWN) {
      if (kind === KIND_CB) this.unknownCbFreeCount++;
      else this.unknownKernelUnloadCount++;
      return;
    }
    this.account(this.stats(t.gonePid), ev.device * KINDS + kind, -t.goneSize, -1);
  }

  /**
   * Another owner holds the (device, id) `ev` creates: when onConflict() finds it gone (and has
   * released it), `ev` is placed again; otherwise both are kept, flagged shared.
   */
  private settleConflict(t: ObjectTable, ev: NewObject, counted: boolean): number {
    const place = (shared: boolean) => (counted ? t.allocRef(ev, shared) : t.load(ev, shared));
    // Each round releases one gone owner; a few rounds cover several stale owners of one address.
    for (let round = 0; round < 4; round++) {
      const other = t.pid(t.conflictEntry);
      if (!this.onConflict!(other) || this.pidStats.get(other)?.live) return place(true);
      const r = place(false);
      if (r !== ALLOC_CONFLICT) return r;
    }
    return place(true);
  }

  // ---------------------------------------------------------------- time
  /** Called on a coarse clock tick (and per received chunk) to keep a cheap "now". */
  tick(now: number): void {
    this.now = now;
  }

  /**
   * The allocation time of an object whose frame says `frameMs` (ms since 1970, 0 when absent): the
   * frame's own time when it is plausible (not in the future, not hours old), else the arrival
   * time; never before the latest mark's cut.
   */
  stampOf(frameMs: number): number {
    const now = this.now;
    const t = frameMs <= now && frameMs > now - PLAUSIBLE_PAST_MS ? Math.floor(frameMs) : now;
    return t < this.floor ? this.floor : t;
  }

  /**
   * A mark is taken now: returns its cut (1 ms after now), below which every object already
   * received was born, and from which every later one will be.
   */
  cut(): number {
    const c = Math.max(Date.now(), this.now, this.floor) + 1;
    this.floor = c;
    this.peaks.cut(c, (this.maxDevice + 1) * KINDS);
    return c;
  }

  /** Replay: a mark's cut was `cutMs`. */
  restoreFloor(cutMs: number): void {
    if (cutMs > this.floor) this.floor = cutMs;
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
      leftBehindDropped: [this.leftBehind.droppedProcesses, this.leftBehind.droppedRecords],
      // only when there is something to say: a state without notes keeps its bytes
      ...(this.notes.dropped
        ? { notesDropped: [this.notes.dropped, this.notes.droppedBytes] }
        : {}),
      floorMs: this.floor,
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
    if (c.leftBehindDropped) this.leftBehind.restoreDropped(...c.leftBehindDropped);
    if (c.notesDropped) [this.notes.dropped, this.notes.droppedBytes] = c.notesDropped;
    this.restoreFloor(c.floorMs ?? 0);
    c.devUnknownFrees.forEach((n, d) => {
      this.devCountsArr[d * KINDS + KIND_UNKNOWN_FREE] = n;
    });
    for (const [pid, ...per] of c.pidUnknownFrees ?? [])
      per.forEach((n, d) => this.restoreUnknownFrees(pid, d, n));
  }

  /**
   * Recovery from a snapshot: an exited process's records (in the order they were kept), with its
   * records' names and stack traces as [record, name, trace].
   */
  restoreExited(p: ExitedProcess, notes?: readonly [number, string, string][] | null): void {
    if (notes?.length) {
      const ids = new Int32Array(p.rows.length / ROW_WORDS);
      for (const [i, name, trace] of notes)
        if (i >= 0 && i < ids.length) ids[i] = this.notes.noteOf(name, trace);
      p.notes = ids;
    }
    this.leftBehind.add(p);
  }

  /** The live buffers' notes as [entry, name, trace] (a snapshot keeps them by entry). */
  liveNotes(): [number, string, string][] {
    const t = this.buffers,
      out: [number, string, string][] = [];
    if (!t.hasNotes) return out;
    for (let e = 0; e < t.count; e++) {
      const id = t.note(e);
      if (id !== 0) out.push([e, this.notes.name(id), this.notes.trace(id)]);
    }
    return out;
  }

  /** An exited process's records' notes as [record, name, trace], or null when it has none. */
  exitedNotes(p: ExitedProcess): [number, string, string][] | null {
    if (!p.notes) return null;
    const out: [number, string, string][] = [];
    p.notes.forEach((id, i) => {
      if (id !== 0) out.push([i, this.notes.name(id), this.notes.trace(id)]);
    });
    return out;
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
   * Releases everything owned by `dead` PIDs and keeps, per PID that owned something, the records
   * of the buffers it left (the left-behind store); returns those exited processes. The counts
   * and bytes are the PID's own running counters (kept exact per device and kind on every
   * ALLOC/FREE), so the pass over each table only marks the dead PIDs' entries (a typed PID lookup
   * per row, rows read page by page) and copies each dead buffer's row; then one bulk removal per
   * table. `identityOf` says who each PID was (the server's process registry).
   */
  releasePids(
    dead: Set<number>,
    now = Date.now(),
    identityOf?: (pid: number) => ProcessIdentity | undefined,
  ): ExitedProcess[] {
    if (dead.size === 0) return [];
    const slots = new PidSlots(dead);
    const n = slots.pids.length;
    // How many buffers, CBs and kernels the dead own: a table they own nothing in is not scanned,
    // and a scan stops once it has found them all.
    const owned = new Float64Array(KINDS);
    const rows: Int32Array[] = [];
    // Each dead buffer's note moves with its record (the reference goes with it).
    const notes: Int32Array[] | null = this.buffers.hasNotes ? [] : null;
    for (const pid of slots.pids) {
      const s = this.pidStats.get(pid);
      let own = 0;
      if (s !== undefined && s.live !== 0) {
        addCounts(s.counts, owned);
        own = bufferCount(s);
      }
      rows.push(new Int32Array(own * ROW_WORDS));
      notes?.push(new Int32Array(own));
    }
    let ownBuffers = 0;
    for (let type = 0; type < NUM_BUFFER_TYPES; type++) ownBuffers += owned[type];
    for (const kind of [KIND_BUFFER, KIND_CB, KIND_KERNEL]) {
      const t = kind === KIND_BUFFER ? this.buffers : kind === KIND_CB ? this.cbs : this.kernels;
      const own = kind === KIND_BUFFER ? ownBuffers : owned[kind];
      if (t.count === 0 || own === 0) continue;
      const mark = new Uint8Array(t.count);
      const buffers = kind === KIND_BUFFER;
      const scan = {
        mark,
        rows: buffers ? rows : null,
        notes: buffers ? notes : null,
        fill: new Int32Array(n),
      };
      const marked = markOwned(t, slots, scan, own);
      t.removeMarked(mark, marked);
    }
    const out: ExitedProcess[] = [];
    for (let slot = 0; slot < n; slot++) {
      const pid = slots.pids[slot],
        s = this.pidStats.get(pid);
      if (s === undefined || s.live === 0) continue;
      const id = identityOf?.(pid);
      const p = this.settleDead(s, now, rows[slot]);
      if (notes !== null && notes[slot].some((id) => id !== 0)) p.notes = notes[slot];
      p.ppid = id?.ppid ?? null;
      p.cmdline = id?.cmdline ?? null;
      p.startMs = id?.startMs ?? null;
      out.push(p);
    }
    // Only the PIDs reported here are forgotten: the journal records exactly them (a dead PID that
    // owned nothing keeps its unknown-free counts until forgetIdlePids()).
    for (const r of out) this.pidStats.delete(r.pid);
    this.lastPid = -1;
    this.lastStats = null;
    for (const r of out) this.leftBehind.add(r);
    this.reapedCount += out.length;
    return out;
  }

  /** A dead PID's report from its counters, which are subtracted from the devices' and zeroed. */
  private settleDead(s: ProcessStats, now: number, rows: Int32Array): ExitedProcess {
    const r: ExitedProcess = {
      pid: s.pid,
      ppid: null,
      cmdline: null,
      startMs: null,
      reapedAtMs: now,
      buffers: 0,
      bytes: 0,
      cbs: 0,
      cbBytes: 0,
      kernels: 0,
      kernelBytes: 0,
      byDevice: {},
      recordsDropped: 0,
      rows,
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

  /** Forgets left-behind records on purpose (`ttalloc forget`). */
  forget(f: ForgetFilter): { processes: number; records: number } {
    return this.leftBehind.forget(f);
  }

  /** Forgets everything (ttalloc reset). */
  reset(): void {
    this.buffers.clear();
    this.cbs.clear();
    this.kernels.clear();
    this.devBytesArr.fill(0);
    this.devCountsArr.fill(0);
    this.peaks.clear(Date.now());
    this.freed.clear();
    this.pidStats.clear();
    this.lastPid = -1;
    this.lastStats = null;
    this.leftBehind.clear();
    this.notes.clear();
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

/** Live buffers (all types, all devices) in a process's counters. */
function bufferCount(s: ProcessStats): number {
  let n = 0;
  for (let k = 0; k < s.counts.length; k++) if (k % KINDS < NUM_BUFFER_TYPES) n += s.counts[k];
  return n;
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
  /** The slot of `pid`, or -1. */
  slotOf(pid: number): number {
    const { keys, vals, mask } = this;
    for (let h = Math.imul(pid, PID_HASH) & mask; vals[h] !== 0; h = (h + 1) & mask)
      if (keys[h] === pid) return vals[h] - 1;
    return -1;
  }
}

/** What a sweep scan writes: marks, and (buffers only) each dead PID's copied rows. */
interface Scan {
  mark: Uint8Array;
  /** Per PID slot, its rows (sized from its counters); null: CBs and kernels, marks only. */
  rows: Int32Array[] | null;
  /** Per PID slot, its records' notes (null: no buffer has a note). */
  notes: Int32Array[] | null;
  /** Words filled in each slot's rows. */
  fill: Int32Array;
}

/**
 * Marks the objects owned by a PID in `slots` (`own` of them: the scan stops at the page where it
 * has found them all) and, for buffers, copies each one's row into its PID's `scan.rows`.
 */
function markOwned(t: ObjectTable, slots: PidSlots, scan: Scan, own: number): number {
  let marked = 0;
  for (let p = 0; p * PAGE_ROWS < t.count && marked < own; p++)
    marked += markPage(t, p, slots, scan);
  return marked;
}

// The scans run once per sweep, usually on code V8 has not optimised yet: one small function per
// page (quick to compile, optimised after its first pages) rather than one large loop whose
// on-stack compilation took ~30 ms while the rows went through the interpreter. Everything the
// loop reads is in locals before it starts; consecutive rows of one PID skip the lookup.
function markPage(t: ObjectTable, p: number, slots: PidSlots, scan: Scan): number {
  const pg = t.rowPage(p),
    e0 = p * PAGE_ROWS,
    end = Math.min(PAGE_ROWS, t.count - e0);
  const { mark, rows, notes, fill } = scan;
  let marked = 0,
    lastPid = -1,
    slot = -1;
  for (let i = 0, b = 0; i < end; i++, b += ROW_WORDS) {
    const pid = pg[b + ROW_OWNER] & PID_MASK;
    if (pid !== lastPid) {
      lastPid = pid;
      slot = slots.slotOf(pid);
    }
    if (slot < 0) continue;
    mark[e0 + i] = 1;
    marked++;
    if (rows === null) continue;
    const to = rows[slot],
      at = fill[slot];
    if (at >= to.length) continue; // (counters and rows disagree: never expected)
    for (let w = 0; w < ROW_WORDS; w++) to[at + w] = pg[b + w];
    if (notes !== null) notes[slot][at / ROW_WORDS] = t.note(e0 + i);
    fill[slot] = at + ROW_WORDS;
  }
  return marked;
}

export function typeName(type: number): string {
  return BUFFER_TYPE_NAMES[type] ?? `TYPE_${type}`;
}
