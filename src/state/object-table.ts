// Live objects (buffers, circular buffers, kernels) keyed by (device, 64-bit id).
import { PID_LIMIT, TWO32 } from '../protocol/constants.js';
import type { BufferNote, BufferNotes } from './buffer-notes.js';
//
// Why not a Map: a JS Map stops at 16.7 M entries and costs ~95 B per entry; this costs 28 B of
// row per entry plus a 4-byte index slot (≤ 0.75 load), allocates nothing per operation, and
// never copies the rows when it grows (they live in fixed-size pages).
//
// Layout: dense entries 0..count-1, each a row of 7 32-bit words in fixed-size pages (one page
// lookup reaches every field of an entry, and a row sits in one or two cache lines), and an
// open-addressing index (linear probing, backward-shift deletion) holding entry+1 (0 = empty slot)
// and, above it, 4 bits of the key's hash: a probe reads the row of an occupied slot only when
// those bits match, so in a big table (rows far apart in memory, each read a cache and TLB miss)
// an insert that misses reads ~0.04 rows instead of ~0.6. Removing an entry moves the last entry
// into its place, so iteration is always dense. To spare FREE/ALLOC pairs that move, the latest
// removal may leave its row as a pending hole, which the next insert fills; reading `count` first
// fills it with the last row, so every reader sees dense rows. A bulk removal (dead-PID sweep)
// leaves tombstones (-1) instead of shifting probe runs: they count toward the shard's load and
// vanish when the shard is next rehashed.
//
// The index is split into 1024 shards by the hash's top 10 bits, each growing on its own: a growth
// rehashes 1/1024 of the entries (a few ms at 20 M live buffers) instead of all of them (2.1 s
// measured with one index), so ingest never stalls long while the table grows. Each shard grows at
// its own load (0.5–0.75): with one shared limit all shards, filled evenly by the hash, would
// grow within the same few thousand inserts and their pauses would add up again.
//
// One API: allocRef() (ALLOC: insert or one more reference), load() (CB_ALLOC / KERNEL_LOAD:
// insert unless live), release() (FREE / CB_FREE / KERNEL_UNLOAD) each find their key in one probe;
// find() and the field accessors read; append() + reindex() restore a snapshot; removeMarked()
// removes in bulk. The one remembered position (verified before use, so a stale one only costs
// the normal probe): the newest insert's slot. A removal moves the last entry into the hole, and
// that is usually the newest one, whose slot is then known without hashing it (an ALLOC/FREE
// pair of the newest buffer is the commonest case on the hot path).

const PAGE_BITS = 13; // small pages: the partly used last page wastes < 1% at 1 M entries
const PAGE_SIZE = 1 << PAGE_BITS;
const PAGE_MASK = PAGE_SIZE - 1;
const SHARD_BITS = 10;
const SHARD_SHIFT = 32 - SHARD_BITS;
const SHARDS = 1 << SHARD_BITS;
const MIN_SHARD = 32;
/**
 * Index slot of an entry removed in bulk: occupied for probing, never matches (see removeMarked).
 */
const TOMB = -1;
/** Index slot = fingerprint | (entry + 1); an entry's slot value is positive. */
const ENTRY_BITS = 27;
const ENTRY_MASK = (1 << ENTRY_BITS) - 1;
const FP_MASK = 15 << ENTRY_BITS;
/** Entries a table can hold (entry + 1 must fit below the fingerprint): ~134 M, ~5 GB of rows. */
export const MAX_ENTRIES = ENTRY_MASK - 1;
/**
 * The fingerprint: hash bits 18-21, used neither for the shard (the top 10) nor for the slot (the
 * low log2(capacity) bits, below 18 until a shard holds ~100 k entries, ~100 M in the table).
 */
function fpOf(h: number): number {
  return ((h >>> 18) & 15) << ENTRY_BITS;
}

/**
 * Words per row and their meaning. W_OWNER holds the owner PID in its low 22 bits (Linux PIDs are
 * below 2^22, PID_MAX_LIMIT) and the high 10 bits of the allocation time; W_BORN its low 32 bits:
 * a 42-bit time in ms since 1970 (good until 2109) costs no extra word per buffer.
 */
const STRIDE = 7;
const W_LO = 0,
  W_HI = 1,
  W_META = 2,
  W_SIZE = 3,
  W_OWNER = 4,
  W_REF = 5,
  W_BORN = 6;
/** PIDs a row can hold: 1 … PID_LIMIT - 1 (0 = the sender did not say). */
export const PID_MASK = PID_LIMIT - 1;
const BORN_HI_SHIFT = 22;
/** The row layout, for bulk scans over rowPage() that must not pay a call per field. */
export const PAGE_ROWS = PAGE_SIZE;
export const ROW_WORDS = STRIDE;
/** The owner word (mask it with PID_MASK). */
export const ROW_OWNER = W_OWNER;

// meta word: device (bits 0-9) | type (10-13) | size high bits (14-29) | flags (30-31)
const DEV_MASK = 0x3ff;
const TYPE_SHIFT = 10;
const TYPE_MASK = 0xf;
const SIZE_HI_SHIFT = 14;
const SIZE_HI_MASK = 0xffff;
/** Set when a live key was ALLOCed again with a different size (a suspicious re-use). */
export const FLAG_RESIZED = 1 << 30;
/** Set on buffers whose address another live process also held when one of them was allocated. */
export const FLAG_SHARED = 1 << 31;
const FLAG_BITS = FLAG_RESIZED | FLAG_SHARED;

/** The key hash (exported for tests that need colliding keys). */
export function hash3(device: number, lo: number, hi: number): number {
  let h = Math.imul(lo ^ 0x9e3779b9, 0x85ebca6b);
  h ^= Math.imul(hi + (device << 20), 0xc2b2ae35);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 13;
  return h;
}

/** Slots per shard for `expected` entries in all without growing (10% slack for uneven shards). */
function shardCapacityFor(expected: number): number {
  let cap = MIN_SHARD;
  while (cap * 0.5 < (expected / SHARDS) * 1.1) cap *= 2;
  return cap;
}

/**
 * Entries shard `sh` may hold in `cap` slots before it doubles (load 0.5 to 0.75 across shards).
 */
function limitFor(sh: number, cap: number): number {
  return Math.floor(cap * (0.5 + (0.25 * sh) / SHARDS));
}

/** The owner and allocation-time words of the row at word `b` (see STRIDE). */
export function writeOwnerBorn(pg: Int32Array, b: number, owner: number, bornMs: number): void {
  pg[b + W_OWNER] = (owner & PID_MASK) | ((Math.floor(bornMs / TWO32) & 0x3ff) << BORN_HI_SHIFT);
  pg[b + W_BORN] = bornMs | 0; // the low 32 bits (ToInt32 is modulo 2^32)
}

function metaOf(device: number, type: number, size: number): number {
  // no division for the usual sizes
  const sizeHi = size > 0xffffffff ? Math.floor(size / TWO32) & SIZE_HI_MASK : 0;
  return (device & DEV_MASK) | ((type & TYPE_MASK) << TYPE_SHIFT) | (sizeHi << SIZE_HI_SHIFT);
}

/** Which object: (device, 64-bit id) of one owner (a process owns its own objects). */
export interface ObjectKey {
  readonly device: number;
  /** The 64-bit id as two 32-bit halves, signed or unsigned. */
  readonly lo: number;
  readonly hi: number;
  /** The owner PID (0 ≤ owner < PID_LIMIT). */
  readonly owner: number;
}

/** What a new entry holds. StateEvent (events.ts) has this shape: the hot path passes it as is. */
export interface NewObject extends ObjectKey {
  readonly size: number;
  /** Buffer type or kernel type (0 for CBs). */
  readonly sub: number;
  /** Allocation time, ms since 1970. */
  readonly bornMs: number;
}

/** A snapshot's row, restored exactly (append()). */
export interface RestoredObject extends NewObject {
  readonly ref: number;
  /** FLAG_RESIZED | FLAG_SHARED or 0. */
  readonly flags: number;
}

/**
 * allocRef() / load() results. ALLOC_FULL: not inserted, the table holds MAX_ENTRIES.
 * ALLOC_CONFLICT: not inserted, another owner holds the same (device, id): its entry is in
 * `conflictEntry` (the caller decides whether that owner is gone, then calls again with
 * `shared` set).
 */
export const ALLOC_NEW = 0,
  ALLOC_REF = 1,
  ALLOC_RESIZED = 2,
  ALLOC_FULL = 3,
  ALLOC_CONFLICT = 4;
/** release() results. */
export const RELEASE_UNKNOWN = 0,
  RELEASE_REF = 1,
  RELEASE_REMOVED = 2;

/** Marked entries among from..to-1. */
function countMarked(mark: Uint8Array, from: number, to: number): number {
  let n = 0;
  for (let e = from; e < to; e++) if (mark[e] !== 0) n++;
  return n;
}

/** Size of the row at word `b` of a row page. */
export function rowSize(pg: Int32Array, b: number): number {
  return (pg[b + W_SIZE] >>> 0) + ((pg[b + W_META] >>> SIZE_HI_SHIFT) & SIZE_HI_MASK) * TWO32;
}

/** Device of the row at word `b` of a row page. */
export function rowDevice(pg: Int32Array, b: number): number {
  return pg[b + W_META] & DEV_MASK;
}
/** Buffer type (or kernel type) of the row at word `b`. */
export function rowType(pg: Int32Array, b: number): number {
  return (pg[b + W_META] >>> TYPE_SHIFT) & TYPE_MASK;
}
export function rowFlags(pg: Int32Array, b: number): number {
  return pg[b + W_META] & FLAG_BITS;
}
export function rowPid(pg: Int32Array, b: number): number {
  return pg[b + W_OWNER] & PID_MASK;
}
export function rowRef(pg: Int32Array, b: number): number {
  return pg[b + W_REF];
}
/** The row's 64-bit id as a hex string (for reports only). */
export function rowIdHex(pg: Int32Array, b: number): string {
  const hi = pg[b + W_HI] >>> 0,
    lo = pg[b + W_LO] >>> 0;
  return hi === 0 ? lo.toString(16) : hi.toString(16) + lo.toString(16).padStart(8, '0');
}

/** The row's 64-bit id (a device address) as a number (exact below 2^53). */
export function rowAddr(pg: Int32Array, b: number): number {
  return (pg[b + W_HI] >>> 0) * TWO32 + (pg[b + W_LO] >>> 0);
}

/** Allocation time (ms) of the row at word `b` of a row page. */
export function rowBornMs(pg: Int32Array, b: number): number {
  return (pg[b + W_BORN] >>> 0) + (pg[b + W_OWNER] >>> BORN_HI_SHIFT) * TWO32;
}

export class ObjectTable {
  /**
   * Rows 0..end-1 hold entries, except `hole` (when ≥ 0): a removed entry's row, never the last.
   */
  private end = 0;
  private hole = -1;
  /** Live entries; rows 0..count-1 are dense once this has been read. */
  get count(): number {
    if (this.hole >= 0) this.settle();
    return this.end;
  }
  /**
   * Row pages: PAGE_SIZE rows of STRIDE words each. Int32, not Uint32: id halves ≥ 2^31 then stay
   * small integers in V8 instead of becoming heap numbers on every call (public accessors return
   * the unsigned values).
   */
  private pages: Int32Array[] = [];
  /**
   * Index shards (slot value = fingerprint | entry + 1, 0 = empty, TOMB) and the number of entries
   * in each.
   */
  private shards: Int32Array[] = [];
  private shardUsed = new Int32Array(SHARDS);
  /** Tombstones per shard (they lengthen probes until the shard is rehashed). */
  private shardDead = new Int32Array(SHARDS);
  private shardLimit = new Int32Array(SHARDS);
  /** Where the newest insert put its entry (a removal moves the last entry, usually that one). */
  private insEntry = -1;
  private insShard = 0;
  private insSlot = 0;
  /** Shard rehashes so far (growth, tombstone clean-up, reserve). */
  rehashes = 0;
  /** What the last release() that removed an entry removed (no object per call). */
  private removedPid = 0;
  /** The entry of another owner at the same (device, id) that the last place() met, or -1. */
  conflictEntry = -1;
  private removedType = 0;
  private removedSize = 0;
  private removedBornMs = 0;
  private removedNote = 0;
  /**
   * Each row's note (buffer-notes.ts: a name and a stack trace of 648-byte clients), one word per
   * row in pages like the rows' own; null until a note is first set, so a table of clients that
   * send none keeps 28 B per entry and its hot path never reads it.
   */
  private notes: Int32Array[] | null = null;
  /** What the note ids mean (the tracker's notes; null: this table has none). */
  noteStrings: BufferNotes | null = null;
  get gonePid(): number {
    return this.removedPid;
  }
  get goneType(): number {
    return this.removedType;
  }
  get goneSize(): number {
    return this.removedSize;
  }
  get goneBornMs(): number {
    return this.removedBornMs;
  }
  /** The note of what the last release() that removed an entry removed (0: none). */
  get goneNote(): number {
    return this.removedNote;
  }
  /** Has any row ever had a note (is the note column there)? */
  get hasNotes(): boolean {
    return this.notes !== null;
  }
  /** Entry e's note (0: none). */
  note(e: number): number {
    const np = this.notes;
    if (np === null) return 0;
    const pg = np[e >>> PAGE_BITS];
    return pg === undefined ? 0 : pg[e & PAGE_MASK];
  }
  /** Entry e's name and stack trace, or null. */
  noteOf(e: number): BufferNote | null {
    const id = this.note(e);
    return id === 0 || this.noteStrings === null ? null : this.noteStrings.get(id);
  }
  /** Sets entry e's note (the column is made on the first one). */
  setNote(e: number, id: number): void {
    const np = (this.notes ??= []);
    const p = e >>> PAGE_BITS;
    while (np.length <= p) np.push(new Int32Array(PAGE_SIZE));
    np[p][e & PAGE_MASK] = id;
  }
  /** The newest inserted entry (valid right after an allocRef() or load() that inserted). */
  get newestEntry(): number {
    return this.insEntry;
  }

  /** `maxEntries` below MAX_ENTRIES is for tests of a full table. */
  constructor(
    expected = 0,
    private readonly maxEntries = MAX_ENTRIES,
  ) {
    this.resetIndex(expected);
  }

  /** Empty shards sized for `expected` entries in all (10% slack for uneven shards). */
  private resetIndex(expected: number): void {
    const cap = shardCapacityFor(expected);
    // Re-use shards of the right size: fresh pages cost a page fault each (slow in VMs).
    for (let i = 0; i < SHARDS; i++) {
      if (this.shards[i]?.length === cap) this.shards[i].fill(0);
      else this.shards[i] = new Int32Array(cap);
      this.shardLimit[i] = limitFor(i, cap);
    }
    this.shardUsed.fill(0);
    this.shardDead.fill(0);
    this.forget();
  }

  /** Drops the remembered position (after anything that moves entries or slots in bulk). */
  private forget(): void {
    this.insEntry = -1;
  }

  // ---- field access (entry index e) ----
  private page(e: number): Int32Array {
    return this.pages[e >>> PAGE_BITS];
  }
  addrLo(e: number): number {
    return this.page(e)[(e & PAGE_MASK) * STRIDE + W_LO] >>> 0;
  }
  addrHi(e: number): number {
    return this.page(e)[(e & PAGE_MASK) * STRIDE + W_HI] >>> 0;
  }
  device(e: number): number {
    return rowDevice(this.page(e), (e & PAGE_MASK) * STRIDE);
  }
  type(e: number): number {
    return rowType(this.page(e), (e & PAGE_MASK) * STRIDE);
  }
  flags(e: number): number {
    return rowFlags(this.page(e), (e & PAGE_MASK) * STRIDE);
  }
  /** Sets FLAG_SHARED on entry e. */
  markShared(e: number): void {
    this.page(e)[(e & PAGE_MASK) * STRIDE + W_META] |= FLAG_SHARED;
  }
  size(e: number): number {
    return rowSize(this.page(e), (e & PAGE_MASK) * STRIDE);
  }
  pid(e: number): number {
    return rowPid(this.page(e), (e & PAGE_MASK) * STRIDE);
  }
  ref(e: number): number {
    return rowRef(this.page(e), (e & PAGE_MASK) * STRIDE);
  }
  /** Allocation time (ms since 1970). */
  bornMs(e: number): number {
    return rowBornMs(this.page(e), (e & PAGE_MASK) * STRIDE);
  }
  /** The 64-bit id as a hex string (for reports only). */
  idHex(e: number): string {
    return rowIdHex(this.page(e), (e & PAGE_MASK) * STRIDE);
  }
  idBigInt(e: number): bigint {
    return (BigInt(this.addrHi(e)) << 32n) | BigInt(this.addrLo(e));
  }
  /** Copies entry e's row (ROW_WORDS words) to `to` at word `at` (left-behind records). */
  copyRow(e: number, to: Int32Array, at: number): void {
    const pg = this.page(e),
      b = (e & PAGE_MASK) * STRIDE;
    for (let w = 0; w < STRIDE; w++) to[at + w] = pg[b + w];
  }

  /** Row page p: rows p * PAGE_ROWS … (read only; valid until the table changes). */
  rowPage(p: number): Int32Array {
    return this.pages[p];
  }

  /**
   * Entry index of (device, lo, hi) owned by `owner` (any owner's, the first found, when -1), or
   * -1. The id halves may be given signed or unsigned.
   */
  find(device: number, lo: number, hi: number, owner = -1): number {
    lo |= 0;
    hi |= 0;
    const h = hash3(device, lo, hi);
    const idx = this.shards[h >>> SHARD_SHIFT],
      mask = idx.length - 1,
      pages = this.pages,
      fp = fpOf(h);
    let s = h & mask;
    for (;;) {
      const v = idx[s];
      if (v === 0) return -1;
      if (v > 0 && (v & FP_MASK) === fp) {
        const e = (v & ENTRY_MASK) - 1,
          pg = pages[e >>> PAGE_BITS],
          b = (e & PAGE_MASK) * STRIDE;
        const same = pg[b + W_LO] === lo && pg[b + W_HI] === hi;
        if (same && (pg[b + W_META] & DEV_MASK) === device) {
          if (owner < 0 || (pg[b + W_OWNER] & PID_MASK) === owner) return e;
        }
      }
      s = (s + 1) & mask;
    }
  }

  /**
   * ALLOC in one probe: the owner's live key gets one more reference (ALLOC_REF, or ALLOC_RESIZED
   * when the size differs, which flags it); otherwise it is inserted at the empty slot where the
   * probe stopped (ALLOC_NEW) — unless another owner holds the same (device, id) and `shared` is
   * false (ALLOC_CONFLICT, see conflictEntry). With `shared`, both entries get FLAG_SHARED.
   */
  allocRef(o: NewObject, shared = false): number {
    return this.place(o, true, shared);
  }

  /**
   * CB_ALLOC / KERNEL_LOAD in one probe: the owner's live key is left as it is (ALLOC_REF: these
   * objects are not reference counted); otherwise it is inserted (ALLOC_NEW), with the same rule
   * for another owner's key as allocRef().
   */
  load(o: NewObject, shared = false): number {
    return this.place(o, false, shared);
  }

  private place(o: NewObject, counted: boolean, shared: boolean): number {
    const device = o.device,
      lo = o.lo | 0,
      hi = o.hi | 0,
      owner = o.owner;
    let other = -1;
    const h = hash3(device, lo, hi),
      sh = h >>> SHARD_SHIFT,
      pages = this.pages,
      fp = fpOf(h);
    let idx = this.shards[sh],
      mask = idx.length - 1,
      s = h & mask;
    for (;;) {
      const v = idx[s];
      if (v === 0) break;
      if (v > 0 && (v & FP_MASK) === fp) {
        const e = (v & ENTRY_MASK) - 1,
          pg = pages[e >>> PAGE_BITS],
          b = (e & PAGE_MASK) * STRIDE;
        if (pg[b + W_LO] === lo && pg[b + W_HI] === hi && (pg[b + W_META] & DEV_MASK) === device) {
          if ((pg[b + W_OWNER] & PID_MASK) !== owner) {
            if (other < 0) other = e;
            s = (s + 1) & mask;
            continue;
          }
          if (!counted) return ALLOC_REF;
          pg[b + W_REF]++;
          const m = pg[b + W_META];
          if ((pg[b + W_SIZE] >>> 0) + ((m >>> SIZE_HI_SHIFT) & SIZE_HI_MASK) * TWO32 === o.size)
            return ALLOC_REF;
          pg[b + W_META] = m | FLAG_RESIZED;
          return ALLOC_RESIZED;
        }
      }
      s = (s + 1) & mask;
    }
    this.conflictEntry = other;
    if (other >= 0 && !shared) return ALLOC_CONFLICT;
    if (this.hole < 0 && this.end >= this.maxEntries) return ALLOC_FULL;
    if (++this.shardUsed[sh] + this.shardDead[sh] > this.shardLimit[sh]) {
      this.growShard(sh);
      idx = this.shards[sh];
      mask = idx.length - 1;
      s = h & mask;
      while (idx[s] !== 0) s = (s + 1) & mask;
    }
    let e = this.hole;
    if (e >= 0) this.hole = -1;
    else e = this.end++;
    this.writeRow(e, o);
    idx[s] = fp | (e + 1);
    this.insEntry = e;
    this.insShard = sh;
    this.insSlot = s;
    if (other >= 0) {
      this.markShared(e);
      this.markShared(other);
    }
    return ALLOC_NEW;
  }

  /**
   * FREE in one probe: drops one reference to the owner's (device, lo, hi) (RELEASE_REF); the last
   * one removes it (RELEASE_REMOVED, with its owner, type and size in gonePid / goneType /
   * goneSize). RELEASE_UNKNOWN when the owner holds no such key (another owner's is never
   * touched). `whole` removes it whatever its reference count (CB_FREE, KERNEL_UNLOAD).
   */
  release(k: ObjectKey, whole = false): number {
    const device = k.device,
      lo = k.lo | 0,
      hi = k.hi | 0,
      owner = k.owner;
    const h = hash3(device, lo, hi),
      sh = h >>> SHARD_SHIFT,
      pages = this.pages,
      fp = fpOf(h);
    const idx = this.shards[sh],
      mask = idx.length - 1;
    for (let s = h & mask; ; s = (s + 1) & mask) {
      const v = idx[s];
      if (v === 0) return RELEASE_UNKNOWN;
      if (v <= 0 || (v & FP_MASK) !== fp) continue;
      const e = (v & ENTRY_MASK) - 1,
        pg = pages[e >>> PAGE_BITS],
        b = (e & PAGE_MASK) * STRIDE;
      if (pg[b + W_LO] !== lo || pg[b + W_HI] !== hi || (pg[b + W_META] & DEV_MASK) !== device)
        continue;
      if ((pg[b + W_OWNER] & PID_MASK) !== owner) continue; // another owner's: not the sender's
      const r = pg[b + W_REF];
      if (r > 1 && !whole) {
        pg[b + W_REF] = r - 1;
        return RELEASE_REF;
      }
      const m = pg[b + W_META];
      this.removedPid = pg[b + W_OWNER] & PID_MASK;
      this.removedType = (m >>> TYPE_SHIFT) & TYPE_MASK;
      this.removedSize = (pg[b + W_SIZE] >>> 0) + ((m >>> SIZE_HI_SHIFT) & SIZE_HI_MASK) * TWO32;
      this.removedBornMs = rowBornMs(pg, b);
      this.removedNote = this.notes === null ? 0 : this.note(e);
      this.unindexAt(sh, s);
      this.vacate(e);
      return RELEASE_REMOVED;
    }
  }

  /** Row e := a new entry with one reference (its page is added when e starts one). */
  private writeRow(e: number, o: NewObject): void {
    const p = e >>> PAGE_BITS;
    if (p === this.pages.length) this.pages.push(new Int32Array(PAGE_SIZE * STRIDE));
    const pg = this.pages[p],
      b = (e & PAGE_MASK) * STRIDE,
      size = o.size;
    pg[b + W_LO] = o.lo;
    pg[b + W_HI] = o.hi;
    pg[b + W_META] = metaOf(o.device, o.sub, size);
    pg[b + W_SIZE] = size | 0; // the low 32 bits (ToInt32 is modulo 2^32)
    writeOwnerBorn(pg, b, o.owner, o.bornMs);
    pg[b + W_REF] = 1;
    if (this.notes !== null) this.setNote(e, 0);
  }

  /**
   * Entry e just left the index: its row becomes the pending hole (a pending one is filled first),
   * or, when it is the last row, the rows just end before it.
   */
  private vacate(e: number): void {
    if (e !== this.end - 1 && this.hole >= 0) this.settle();
    if (e === this.end - 1) {
      this.end--;
      if (this.hole >= 0 && this.hole === this.end - 1) {
        this.end--;
        this.hole = -1;
      } // the hole is the last row now
    } else this.hole = e;
    if ((this.end & PAGE_MASK) === 0) this.releasePages();
  }

  /** Fills the pending hole with the last row (never the hole itself). */
  private settle(): void {
    const h = this.hole;
    this.hole = -1;
    const last = --this.end;
    let idx: Int32Array, s: number;
    if (
      last === this.insEntry &&
      (this.shards[this.insShard][this.insSlot] & ENTRY_MASK) === last + 1
    ) {
      idx = this.shards[this.insShard];
      s = this.insSlot;
      this.insEntry = h; // the newest entry now lives at h, in the same slot
    } else {
      const hash = this.hashOf(last);
      idx = this.shards[hash >>> SHARD_SHIFT];
      const mask = idx.length - 1,
        v = fpOf(hash) | (last + 1);
      s = hash & mask;
      while (idx[s] !== v) s = (s + 1) & mask;
    }
    this.copyEntry(last, h);
    idx[s] = (idx[s] & FP_MASK) | (h + 1);
    if ((this.end & PAGE_MASK) === 0) this.releasePages();
  }

  /**
   * Removes every entry e with mark[e] !== 0 (`n` of them); each hole below the new end is filled
   * with a kept entry from above it (n moves at most, not a full compaction). The index is then
   * either repaired in place, each removed entry's slot becoming a tombstone (no backward shift,
   * whose row reads for every following member of the probe run are cache misses in a big table)
   * and each moved entry's slot re-pointed, or, when that touches more than a quarter of the kept
   * entries, rebuilt from the rows (one cache-friendly insert per kept entry).
   */
  removeMarked(mark: Uint8Array, n: number): void {
    if (n === 0) return;
    this.forget();
    const count = this.count,
      w = count - n;
    if (w === 0) {
      // everything goes
      this.end = 0;
      this.resetIndex(0);
      this.releasePages();
      return;
    }
    // (The loops are in small methods: a sweep runs them once, before V8 has optimised anything,
    // and small functions are compiled, and leave the interpreter, much sooner.)
    const holes = n - countMarked(mark, w, count);
    if ((n + holes) * 4 < w) {
      this.buryMarked(mark, n, count);
      if (holes > 0) this.fillHoles(mark, w, count, true);
      this.end = w;
      this.releasePages();
      return;
    }
    this.fillHoles(mark, w, count, false);
    this.end = w;
    this.rebuildIndex();
    this.releasePages();
  }

  /**
   * Tombstones for the `n` marked entries among 0..count-1, shard by shard (a counting sort on the
   * shard first), so that each shard's slots are read from memory once rather than once per entry.
   */
  private buryMarked(mark: Uint8Array, n: number, count: number): void {
    const hashes = new Int32Array(n),
      start = new Int32Array(SHARDS + 1);
    this.hashMarked(mark, count, hashes, start);
    for (let i = 0; i < SHARDS; i++) start[i + 1] += start[i];
    const order = new Int32Array(n),
      orderHash = new Int32Array(n),
      fill = start.slice(0, SHARDS);
    let j = 0;
    for (let e = 0; e < count; e++) {
      if (mark[e] === 0) continue;
      const h = hashes[j++],
        k = fill[h >>> SHARD_SHIFT]++;
      order[k] = e;
      orderHash[k] = h;
    }
    for (let sh = 0; sh < SHARDS; sh++)
      if (start[sh + 1] > start[sh]) this.buryRange(sh, order, orderHash, start);
  }

  /** Tombstones in shard sh for order[start[sh]..start[sh + 1]-1] (their hashes in orderHash). */
  private buryRange(sh: number, order: Int32Array, orderHash: Int32Array, start: Int32Array): void {
    const from = start[sh],
      to = start[sh + 1];
    const idx = this.shards[sh],
      mask = idx.length - 1;
    for (let k = from; k < to; k++) {
      const v = fpOf(orderHash[k]) | (order[k] + 1);
      let s = orderHash[k] & mask;
      while (idx[s] !== v) s = (s + 1) & mask;
      idx[s] = TOMB;
    }
    this.shardUsed[sh] -= to - from;
    this.shardDead[sh] += to - from;
  }

  /** Hashes of the marked entries (in entry order) and, in start[shard + 1], how many per shard. */
  private hashMarked(mark: Uint8Array, count: number, hashes: Int32Array, start: Int32Array): void {
    let j = 0;
    for (let e = 0; e < count; e++) {
      if (mark[e] === 0) continue;
      const h = this.hashOf(e);
      hashes[j++] = h;
      start[(h >>> SHARD_SHIFT) + 1]++;
    }
  }

  /**
   * Moves the last unmarked entries into the marked rows below w (re-pointing their slots if
   * `relink`).
   */
  private fillHoles(mark: Uint8Array, w: number, count: number, relink: boolean): void {
    for (let e = 0, tail = count - 1; e < w; e++) {
      if (mark[e] === 0) continue;
      while (mark[tail] !== 0) tail--;
      if (relink) this.relink(tail, e);
      this.copyEntry(tail--, e);
    }
  }

  /** Points the index slot of entry `from` at entry `to` (the row is about to move there). */
  private relink(from: number, to: number): void {
    const h = this.hashOf(from),
      idx = this.shards[h >>> SHARD_SHIFT],
      mask = idx.length - 1,
      fp = fpOf(h);
    let s = h & mask;
    while (idx[s] !== (fp | (from + 1))) s = (s + 1) & mask;
    idx[s] = fp | (to + 1);
  }

  /**
   * Recovery from a snapshot: appends an entry without indexing it (a snapshot's keys are unique),
   * so that reindex() can build the whole index once, shard by shard, after the last one.
   */
  append(o: RestoredObject): void {
    if (this.hole >= 0) this.settle();
    if (this.end >= this.maxEntries) throw new Error(`more than ${this.maxEntries} entries`);
    const e = this.end++;
    this.writeRow(e, o);
    const pg = this.pages[e >>> PAGE_BITS],
      b = (e & PAGE_MASK) * STRIDE;
    pg[b + W_REF] = o.ref;
    pg[b + W_META] |= o.flags & FLAG_BITS;
  }

  /** Indexes every entry (after append()). */
  reindex(): void {
    this.rebuildIndex();
  }

  /** A fresh index for entries 0..count-1. */
  private rebuildIndex(): void {
    const w = this.count;
    const hashes = new Int32Array(w);
    for (let e = 0; e < w; e++) hashes[e] = this.hashOf(e);
    // Insert shard by shard (a counting sort on the shard byte first), so each shard's slots stay
    // in cache: random inserts over the whole index cost a cache miss each (~2x slower at 1 M).
    const start = new Int32Array(SHARDS + 1);
    for (let e = 0; e < w; e++) start[(hashes[e] >>> SHARD_SHIFT) + 1]++;
    for (let sh = 0; sh < SHARDS; sh++) this.sizeShard(sh, start[sh + 1]);
    this.forget();
    for (let i = 0; i < SHARDS; i++) start[i + 1] += start[i];
    const order = new Int32Array(w),
      orderHash = new Int32Array(w),
      fill = start.slice(0, SHARDS);
    for (let e = 0; e < w; e++) {
      const j = fill[hashes[e] >>> SHARD_SHIFT]++;
      order[j] = e;
      orderHash[j] = hashes[e];
    }
    for (let sh = 0; sh < SHARDS; sh++) {
      const idx = this.shards[sh],
        mask = idx.length - 1;
      this.shardUsed[sh] = start[sh + 1] - start[sh];
      for (let j = start[sh]; j < start[sh + 1]; j++) {
        const e = order[j];
        let s = orderHash[j] & mask;
        while (idx[s] !== 0) s = (s + 1) & mask;
        idx[s] = fpOf(orderHash[j]) | (e + 1);
      }
    }
  }

  /**
   * An empty shard `sh` for `n` entries, as dense as growth leaves one (`n` at most 0.8 of its
   * load limit): a rebuilt index then costs what the one built insert by insert did, not the
   * uniform 0.5 load resetIndex() gives every shard.
   */
  private sizeShard(sh: number, n: number): void {
    let cap = MIN_SHARD;
    while (n > limitFor(sh, cap) * 0.8) cap *= 2;
    if (this.shards[sh]?.length === cap) this.shards[sh].fill(0);
    else this.shards[sh] = new Int32Array(cap);
    this.shardLimit[sh] = limitFor(sh, cap);
    this.shardDead[sh] = 0;
  }

  /** Removes all entries; keeps a small index. */
  clear(): void {
    this.end = 0;
    this.hole = -1;
    this.pages.length = 0;
    this.notes = null;
    this.resetIndex(0);
  }

  private copyEntry(from: number, to: number): void {
    const ps = this.pages[from >>> PAGE_BITS],
      bs = (from & PAGE_MASK) * STRIDE;
    const pd = this.pages[to >>> PAGE_BITS],
      bd = (to & PAGE_MASK) * STRIDE;
    pd[bd] = ps[bs];
    pd[bd + 1] = ps[bs + 1];
    pd[bd + 2] = ps[bs + 2];
    pd[bd + 3] = ps[bs + 3];
    pd[bd + 4] = ps[bs + 4];
    pd[bd + 5] = ps[bs + 5];
    pd[bd + 6] = ps[bs + 6];
    if (this.notes !== null) this.setNote(to, this.note(from));
  }

  /** Drops trailing pages once two pages of slack exist, so memory follows the live count. */
  private releasePages(): void {
    const need = Math.ceil(this.end / PAGE_SIZE) + 2;
    if (this.pages.length > need) this.pages.length = need;
    if (this.notes !== null && this.notes.length > need) this.notes.length = need;
  }

  /**
   * A consistent copy of the entries (rows only, no index) for long reads such as a streamed
   * dump: one memcpy per page, so ingest pauses only for the copy, not for the whole transfer.
   */
  snapshot(): ObjectTable {
    const s = new ObjectTable(0),
      n = this.count;
    s.end = n;
    const pages = Math.ceil(n / PAGE_SIZE);
    s.pages = this.pages.slice(0, pages).map((p) => p.slice());
    if (this.notes !== null) s.notes = this.notes.slice(0, pages).map((p) => p.slice());
    s.noteStrings = this.noteStrings;
    return s;
  }

  /** Bytes held by rows and index (what the per-buffer memory figure counts). */
  memoryBytes(): number {
    let index = 0;
    for (const sh of this.shards) index += sh.byteLength;
    const notes = this.notes === null ? 0 : this.notes.length * PAGE_SIZE * 4;
    return this.pages.length * PAGE_SIZE * STRIDE * 4 + index + notes;
  }

  private hashOf(e: number): number {
    const pg = this.pages[e >>> PAGE_BITS],
      b = (e & PAGE_MASK) * STRIDE;
    return hash3(pg[b + W_META] & DEV_MASK, pg[b + W_LO], pg[b + W_HI]);
  }

  /**
   * Empties slot `hole` of shard `sh` and pulls later members of its probe run back (backward
   * shift).
   */
  private unindexAt(sh: number, hole: number): void {
    const idx = this.shards[sh],
      mask = idx.length - 1;
    this.shardUsed[sh]--;
    idx[hole] = 0;
    // Tombstones stay where they are: they hold no entry and count as occupied for every probe.
    for (let s = (hole + 1) & mask; ; s = (s + 1) & mask) {
      const v = idx[s];
      if (v === 0) break;
      // Move unless its home lies cyclically in (hole, s], i.e. it would then sit before its home.
      if (
        v > 0 &&
        ((s - (this.hashOf((v & ENTRY_MASK) - 1) & mask)) & mask) >= ((s - hole) & mask)
      ) {
        idx[hole] = v;
        idx[s] = 0;
        hole = s;
      }
    }
  }

  /**
   * Makes room for `n` entries in all without growing shards one by one on the way (a restart
   * replaying a big journal knows roughly how many are coming): each smaller shard is rehashed
   * once, at the size that holds its share.
   */
  reserve(n: number): void {
    const cap = shardCapacityFor(n);
    for (let sh = 0; sh < SHARDS; sh++) if (this.shards[sh].length < cap) this.growShard(sh, cap);
  }

  /**
   * Rehashes one shard that reached its load limit, dropping its tombstones: at the same size when
   * that leaves it at most 80% of the limit (tombstones were most of the load), else doubled; or at
   * capacity `to` (reserve).
   */
  private growShard(sh: number, to = 0): void {
    const old = this.shards[sh];
    this.rehashes++;
    let cap = old.length;
    if (to > cap) cap = to;
    else if (this.shardUsed[sh] > limitFor(sh, cap) * 0.8) cap *= 2;
    const idx = new Int32Array(cap),
      mask = cap - 1;
    for (let j = 0; j < old.length; j++) {
      const v = old[j];
      if (v <= 0) continue;
      let s = this.hashOf((v & ENTRY_MASK) - 1) & mask;
      while (idx[s] !== 0) s = (s + 1) & mask;
      idx[s] = v;
    }
    this.shards[sh] = idx;
    this.shardLimit[sh] = limitFor(sh, cap);
    this.shardDead[sh] = 0;
  }
}
