// Live objects (buffers, circular buffers, kernels) keyed by (device, 64-bit id).
//
// Why not a Map: a JS Map stops at 16.7 M entries and costs ~95 B per entry; this costs ~28 B of
// columns per entry plus a 4-byte index slot (≤ 0.75 load), allocates nothing per operation, and
// never copies the columns when it grows (they live in fixed-size pages).
//
// Layout: dense entries 0..count-1 in paged Uint32 columns, and an open-addressing index
// (linear probing, backward-shift deletion, no tombstones) holding entry+1 (0 = empty slot).
// Removing an entry moves the last entry into its place, so iteration is always dense.
//
// The index is split into 1024 shards by the hash's top 10 bits, each growing on its own: a growth
// rehashes 1/1024 of the entries (a few ms at 20 M live buffers) instead of all of them (2.1 s
// measured with one index), so ingest never stalls long while the table grows. Each shard grows at
// its own load (0.5–0.75): with one shared limit all shards, filled evenly by the hash, would
// grow within the same few thousand inserts and their pauses would add up again.

const PAGE_BITS = 13; // small pages: the partly used last page wastes < 1% at 1 M entries
const PAGE_SIZE = 1 << PAGE_BITS;
const PAGE_MASK = PAGE_SIZE - 1;
const SHARD_BITS = 10;
const SHARDS = 1 << SHARD_BITS;
const MIN_SHARD = 32;
/** Bulk removals above this share of the table compact the columns and rebuild the index. */
const COMPACT_SHARE = 1 / 64;

// meta column: device (bits 0-9) | type (10-13) | size high bits (14-29) | flags (30-31)
const DEV_MASK = 0x3ff;
const TYPE_SHIFT = 10;
const TYPE_MASK = 0xf;
const SIZE_HI_SHIFT = 14;
const SIZE_HI_MASK = 0xffff;
/** Set when a live key was ALLOCed again with a different size (a suspicious re-use). */
export const FLAG_RESIZED = 1 << 30;
const TWO32 = 4294967296;

/** Column names; every column is a paged Uint32 array. */
const COLUMNS = ['addrLo', 'addrHi', 'sizeLo', 'meta', 'pid', 'ref', 'epoch'] as const;
type Column = (typeof COLUMNS)[number];

function hash3(device: number, lo: number, hi: number): number {
  let h = Math.imul(lo ^ 0x9e3779b9, 0x85ebca6b);
  h ^= Math.imul(hi + (device << 20), 0xc2b2ae35);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 13;
  return h;
}

/** Entries shard `sh` may hold in `cap` slots before it doubles (load 0.5 to 0.75 across shards). */
function limitFor(sh: number, cap: number): number {
  return Math.floor(cap * (0.5 + (0.25 * sh) / SHARDS));
}

export class ObjectTable {
  count = 0;
  private cols: Record<Column, Uint32Array[]> = {
    addrLo: [], addrHi: [], sizeLo: [], meta: [], pid: [], ref: [], epoch: [],
  };
  /** Index shards (slot value = entry + 1, 0 = empty) and the number of entries in each. */
  private shards: Int32Array[] = [];
  private shardUsed = new Int32Array(SHARDS);
  private shardLimit = new Int32Array(SHARDS);
  /** Where the last successful find() stopped, so FREE's remove() does not probe again. */
  private foundEntry = -1;
  private foundHash = 0;
  private foundSlot = 0;

  constructor(expected = 0) {
    this.resetIndex(expected);
  }

  /** Empty shards sized for `expected` entries in all (10% slack for uneven shards). */
  private resetIndex(expected: number): void {
    let cap = MIN_SHARD;
    while (cap * 0.5 < (expected / SHARDS) * 1.1) cap *= 2;
    // Re-use shards of the right size: fresh pages cost a page fault each (slow in VMs).
    for (let i = 0; i < SHARDS; i++) {
      if (this.shards[i]?.length === cap) this.shards[i].fill(0); else this.shards[i] = new Int32Array(cap);
      this.shardLimit[i] = limitFor(i, cap);
    }
    this.shardUsed.fill(0);
  }

  // ---- column access (entry index e) ----
  addrLo(e: number): number { return this.cols.addrLo[e >>> PAGE_BITS][e & PAGE_MASK]; }
  addrHi(e: number): number { return this.cols.addrHi[e >>> PAGE_BITS][e & PAGE_MASK]; }
  device(e: number): number { return this.cols.meta[e >>> PAGE_BITS][e & PAGE_MASK] & DEV_MASK; }
  type(e: number): number { return (this.cols.meta[e >>> PAGE_BITS][e & PAGE_MASK] >>> TYPE_SHIFT) & TYPE_MASK; }
  flags(e: number): number { return this.cols.meta[e >>> PAGE_BITS][e & PAGE_MASK] & 0xc0000000; }
  size(e: number): number {
    const p = e >>> PAGE_BITS, i = e & PAGE_MASK;
    return this.cols.sizeLo[p][i] + ((this.cols.meta[p][i] >>> SIZE_HI_SHIFT) & SIZE_HI_MASK) * TWO32;
  }
  pid(e: number): number { return this.cols.pid[e >>> PAGE_BITS][e & PAGE_MASK] | 0; }
  ref(e: number): number { return this.cols.ref[e >>> PAGE_BITS][e & PAGE_MASK]; }
  epoch(e: number): number { return this.cols.epoch[e >>> PAGE_BITS][e & PAGE_MASK]; }
  /** The 64-bit id as a hex string (for reports only). */
  idHex(e: number): string {
    const hi = this.addrHi(e), lo = this.addrLo(e);
    return hi === 0 ? lo.toString(16) : hi.toString(16) + lo.toString(16).padStart(8, '0');
  }
  idBigInt(e: number): bigint { return (BigInt(this.addrHi(e)) << 32n) | BigInt(this.addrLo(e)); }

  setRef(e: number, r: number): void { this.cols.ref[e >>> PAGE_BITS][e & PAGE_MASK] = r; }
  setFlag(e: number, f: number): void { this.cols.meta[e >>> PAGE_BITS][e & PAGE_MASK] |= f; }

  /** Entry index of (device, lo, hi), or -1. */
  find(device: number, lo: number, hi: number): number {
    const h = hash3(device, lo, hi);
    const idx = this.shards[h >>> (32 - SHARD_BITS)], mask = idx.length - 1;
    const aLo = this.cols.addrLo, aHi = this.cols.addrHi, meta = this.cols.meta;
    let s = h & mask;
    for (;;) {
      const v = idx[s];
      if (v === 0) return -1;
      const e = v - 1, p = e >>> PAGE_BITS, i = e & PAGE_MASK;
      if (aLo[p][i] === lo && aHi[p][i] === hi && (meta[p][i] & DEV_MASK) === device) {
        this.foundEntry = e; this.foundHash = h; this.foundSlot = s;
        return e;
      }
      s = (s + 1) & mask;
    }
  }

  /** Inserts a new entry (caller has checked it is absent); returns its index. */
  insert(device: number, lo: number, hi: number, size: number, type: number, pid: number, epoch: number): number {
    this.foundEntry = -1;
    const h = hash3(device, lo, hi), sh = h >>> (32 - SHARD_BITS);
    if (++this.shardUsed[sh] > this.shardLimit[sh]) this.growShard(sh);
    const e = this.count++;
    const p = e >>> PAGE_BITS, i = e & PAGE_MASK;
    if (p === this.cols.addrLo.length) for (const c of COLUMNS) this.cols[c].push(new Uint32Array(PAGE_SIZE));
    const sizeHi = Math.floor(size / TWO32);
    this.cols.addrLo[p][i] = lo;
    this.cols.addrHi[p][i] = hi;
    this.cols.sizeLo[p][i] = size >>> 0;
    this.cols.meta[p][i] = (device & DEV_MASK) | ((type & TYPE_MASK) << TYPE_SHIFT) | ((sizeHi & SIZE_HI_MASK) << SIZE_HI_SHIFT);
    this.cols.pid[p][i] = pid;
    this.cols.ref[p][i] = 1;
    this.cols.epoch[p][i] = epoch;
    const idx = this.shards[sh], mask = idx.length - 1;
    let s = h & mask;
    while (idx[s] !== 0) s = (s + 1) & mask;
    idx[s] = e + 1;
    return e;
  }

  /** Removes entry e; the last entry moves into its place (iterating callers must walk backwards). */
  remove(e: number): void {
    this.unindex(e);
    const last = --this.count;
    if (e !== last) {
      const h = this.hashOf(last), idx = this.shards[h >>> (32 - SHARD_BITS)], mask = idx.length - 1;
      let s = h & mask;
      while (idx[s] !== last + 1) s = (s + 1) & mask;
      this.copyEntry(last, e);
      idx[s] = e + 1;
    }
    if ((this.count & PAGE_MASK) === 0) this.releasePages();
  }

  /**
   * Removes every entry e with mark[e] !== 0 (`n` of them). Few: one by one from the end (the entry
   * moved into a hole is always one already kept). Many: fill the holes with the last kept entries
   * and rebuild the index, which costs one cache-friendly insert per kept entry instead of a
   * removal (probe, backward shift with column reads, move) per removed one.
   */
  removeMarked(mark: Uint8Array, n: number): void {
    if (n === 0) return;
    this.foundEntry = -1;
    if (n < this.count * COMPACT_SHARE) {
      for (let e = this.count - 1; e >= 0; e--) if (mark[e] !== 0) this.remove(e);
      return;
    }
    // Fill each hole below the new end with a kept entry from above it: n moves, not a full copy.
    const w = this.count - n;
    for (let e = 0, tail = this.count - 1; e < w; e++) {
      if (mark[e] === 0) continue;
      while (mark[tail] !== 0) tail--;
      this.copyEntry(tail--, e);
    }
    this.count = w;
    const hashes = new Int32Array(w);
    for (let e = 0; e < w; e++) hashes[e] = this.hashOf(e);
    this.resetIndex(w);
    // Insert shard by shard (a counting sort on the shard byte first), so each shard's slots stay
    // in cache: random inserts over the whole index cost a cache miss each (~2x slower at 1 M).
    const start = new Int32Array(SHARDS + 1);
    for (let e = 0; e < w; e++) start[(hashes[e] >>> (32 - SHARD_BITS)) + 1]++;
    for (let i = 0; i < SHARDS; i++) start[i + 1] += start[i];
    const order = new Int32Array(w), orderHash = new Int32Array(w), fill = start.slice(0, SHARDS);
    for (let e = 0; e < w; e++) {
      const j = fill[hashes[e] >>> (32 - SHARD_BITS)]++;
      order[j] = e; orderHash[j] = hashes[e];
    }
    for (let sh = 0; sh < SHARDS; sh++) {
      const idx = this.shards[sh], mask = idx.length - 1;
      this.shardUsed[sh] = start[sh + 1] - start[sh];
      for (let j = start[sh]; j < start[sh + 1]; j++) {
        const e = order[j];
        let s = orderHash[j] & mask;
        while (idx[s] !== 0) s = (s + 1) & mask;
        idx[s] = e + 1;
      }
    }
    this.releasePages();
  }

  /** Removes all entries; keeps a small index. */
  clear(): void {
    this.count = 0;
    this.foundEntry = -1;
    for (const c of COLUMNS) this.cols[c].length = 0;
    this.resetIndex(0);
  }

  private copyEntry(from: number, to: number): void {
    const ps = from >>> PAGE_BITS, is = from & PAGE_MASK, pd = to >>> PAGE_BITS, id = to & PAGE_MASK;
    const c = this.cols;
    c.addrLo[pd][id] = c.addrLo[ps][is]; c.addrHi[pd][id] = c.addrHi[ps][is]; c.sizeLo[pd][id] = c.sizeLo[ps][is];
    c.meta[pd][id] = c.meta[ps][is]; c.pid[pd][id] = c.pid[ps][is]; c.ref[pd][id] = c.ref[ps][is]; c.epoch[pd][id] = c.epoch[ps][is];
  }

  /** Drops trailing pages once two pages of slack exist, so memory follows the live count. */
  private releasePages(): void {
    const need = Math.ceil(this.count / PAGE_SIZE) + 2;
    while (this.cols.addrLo.length > need) for (const c of COLUMNS) this.cols[c].pop();
  }

  /**
   * A consistent copy of the entries (columns only, no index) for long reads such as a streamed
   * dump: one memcpy per page, so ingest pauses only for the copy, not for the whole transfer.
   */
  snapshot(): ObjectTable {
    const s = new ObjectTable(0);
    s.count = this.count;
    const pages = Math.ceil(this.count / PAGE_SIZE);
    for (const c of COLUMNS) s.cols[c] = this.cols[c].slice(0, pages).map((p) => p.slice());
    return s;
  }

  /** Bytes held by columns and index (what the per-buffer memory figure counts). */
  memoryBytes(): number {
    let index = 0;
    for (const sh of this.shards) index += sh.byteLength;
    return this.cols.addrLo.length * PAGE_SIZE * 4 * COLUMNS.length + index;
  }

  private hashOf(e: number): number {
    const p = e >>> PAGE_BITS, i = e & PAGE_MASK;
    return hash3(this.cols.meta[p][i] & DEV_MASK, this.cols.addrLo[p][i], this.cols.addrHi[p][i]);
  }

  private unindex(e: number): void {
    const known = e === this.foundEntry;
    this.foundEntry = -1;
    const h = known ? this.foundHash : this.hashOf(e), sh = h >>> (32 - SHARD_BITS);
    const idx = this.shards[sh], mask = idx.length - 1;
    this.shardUsed[sh]--;
    let hole = known ? this.foundSlot : h & mask;
    while (idx[hole] !== e + 1) hole = (hole + 1) & mask;
    idx[hole] = 0;
    // Backward-shift: pull later members of the probe run into the hole.
    let s = (hole + 1) & mask;
    while (idx[s] !== 0) {
      const home = this.hashOf(idx[s] - 1) & mask;
      // Move if home is not cyclically in (hole, s].
      const between = hole <= s ? home > hole && home <= s : home > hole || home <= s;
      if (!between) { idx[hole] = idx[s]; idx[s] = 0; hole = s; }
      s = (s + 1) & mask;
    }
  }

  /** Doubles one shard, rehashing only the entries it holds. */
  private growShard(sh: number): void {
    const old = this.shards[sh];
    const idx = new Int32Array(old.length * 2), mask = idx.length - 1;
    for (let j = 0; j < old.length; j++) {
      const v = old[j];
      if (v === 0) continue;
      let s = this.hashOf(v - 1) & mask;
      while (idx[s] !== 0) s = (s + 1) & mask;
      idx[s] = v;
    }
    this.shards[sh] = idx;
    this.shardLimit[sh] = limitFor(sh, idx.length);
  }
}
