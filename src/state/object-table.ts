// Live objects (buffers, circular buffers, kernels) keyed by (device, 64-bit id).
//
// Why not a Map: a JS Map stops at 16.7 M entries and costs ~95 B per entry; this costs ~28 B of
// columns per entry plus a 4-byte index slot (≤ 0.75 load), allocates nothing per operation, and
// never copies the columns when it grows (they live in fixed-size pages).
//
// Layout: dense entries 0..count-1 in paged Uint32 columns, and an open-addressing index
// (linear probing, backward-shift deletion, no tombstones) holding entry+1 (0 = empty slot).
// Removing an entry moves the last entry into its place, so iteration is always dense.

const PAGE_BITS = 16;
const PAGE_SIZE = 1 << PAGE_BITS;
const PAGE_MASK = PAGE_SIZE - 1;
const MIN_INDEX = 1 << 10;

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

export class ObjectTable {
  count = 0;
  private cols: Record<Column, Uint32Array[]> = {
    addrLo: [], addrHi: [], sizeLo: [], meta: [], pid: [], ref: [], epoch: [],
  };
  private index: Int32Array;
  private mask: number;

  constructor(expected = 0) {
    let cap = MIN_INDEX;
    while (cap * 0.75 < expected) cap *= 2;
    this.index = new Int32Array(cap);
    this.mask = cap - 1;
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
    const idx = this.index, mask = this.mask;
    const aLo = this.cols.addrLo, aHi = this.cols.addrHi, meta = this.cols.meta;
    let s = hash3(device, lo, hi) & mask;
    for (;;) {
      const v = idx[s];
      if (v === 0) return -1;
      const e = v - 1, p = e >>> PAGE_BITS, i = e & PAGE_MASK;
      if (aLo[p][i] === lo && aHi[p][i] === hi && (meta[p][i] & DEV_MASK) === device) return e;
      s = (s + 1) & mask;
    }
  }

  /** Inserts a new entry (caller has checked it is absent); returns its index. */
  insert(device: number, lo: number, hi: number, size: number, type: number, pid: number, epoch: number): number {
    if ((this.count + 1) > this.index.length * 0.75) this.growIndex();
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
    const idx = this.index, mask = this.mask;
    let s = hash3(device, lo, hi) & mask;
    while (idx[s] !== 0) s = (s + 1) & mask;
    idx[s] = e + 1;
    return e;
  }

  /** Removes entry e; the last entry moves into its place (iterating callers must walk backwards). */
  remove(e: number): void {
    this.unindex(e);
    const last = --this.count;
    if (e !== last) {
      const ps = last >>> PAGE_BITS, is = last & PAGE_MASK, pd = e >>> PAGE_BITS, id = e & PAGE_MASK;
      const slot = this.slotOf(last);
      for (const c of COLUMNS) { const col = this.cols[c]; col[pd][id] = col[ps][is]; }
      this.index[slot] = e + 1;
    }
    // Release a trailing page once two pages of slack exist, so memory follows the live count.
    const pages = this.cols.addrLo.length;
    if (pages >= 2 && this.count < (pages - 2) * PAGE_SIZE) for (const c of COLUMNS) this.cols[c].pop();
  }

  /** Removes all entries; keeps one page and a small index. */
  clear(): void {
    this.count = 0;
    for (const c of COLUMNS) this.cols[c].length = 0;
    this.index = new Int32Array(MIN_INDEX);
    this.mask = MIN_INDEX - 1;
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
    return this.cols.addrLo.length * PAGE_SIZE * 4 * COLUMNS.length + this.index.byteLength;
  }

  private slotOf(e: number): number {
    const idx = this.index, mask = this.mask;
    let s = hash3(this.device(e), this.addrLo(e), this.addrHi(e)) & mask;
    while (idx[s] !== e + 1) s = (s + 1) & mask;
    return s;
  }

  private unindex(e: number): void {
    const idx = this.index, mask = this.mask;
    let hole = this.slotOf(e);
    idx[hole] = 0;
    // Backward-shift: pull later members of the probe run into the hole.
    let s = (hole + 1) & mask;
    while (idx[s] !== 0) {
      const m = idx[s] - 1;
      const home = hash3(this.device(m), this.addrLo(m), this.addrHi(m)) & mask;
      // Move if home is not cyclically in (hole, s].
      const between = hole <= s ? home > hole && home <= s : home > hole || home <= s;
      if (!between) { idx[hole] = idx[s]; idx[s] = 0; hole = s; }
      s = (s + 1) & mask;
    }
  }

  private growIndex(): void {
    const cap = this.index.length * 2;
    const idx = new Int32Array(cap), mask = cap - 1;
    for (let e = 0; e < this.count; e++) {
      let s = hash3(this.device(e), this.addrLo(e), this.addrHi(e)) & mask;
      while (idx[s] !== 0) s = (s + 1) & mask;
      idx[s] = e + 1;
    }
    this.index = idx;
    this.mask = mask;
  }
}
