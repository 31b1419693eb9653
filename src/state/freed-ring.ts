// The most recent buffer frees, each with its whole lifetime (allocated at, freed at), for the
// timeline (`ttalloc export --format perfetto`): live buffers are in the table with their
// allocation time; what was freed is gone from it, so the last N frees are kept here, like
// PyTorch's memory history (`_record_memory_history(max_entries=N)`). A ring of typed arrays
// written in place: a free costs a few stores and allocates nothing; the oldest entry is
// overwritten when it is full.

/** Words per entry: address lo, hi, device | type << 16, size lo, size hi, owner PID. */
const WORDS = 6;
const TWO32 = 2 ** 32;

/** What the table's last release() removed (ObjectTable's gone* fields). */
export interface Removed {
  readonly gonePid: number;
  readonly goneType: number;
  readonly goneSize: number;
  readonly goneBornMs: number;
}

/** One freed buffer's lifetime, as the export reads it. */
export interface Lifetime {
  device: number;
  lo: number;
  hi: number;
  type: number;
  size: number;
  pid: number;
  bornMs: number;
  endMs: number;
}

export class FreedRing {
  private words = new Int32Array(0);
  private times = new Float64Array(0);
  private next = 0;
  private held = 0;
  private cap: number;
  /** Frees recorded since start (the ring holds the last `capacity` of them). */
  recorded = 0;

  constructor(capacity = 0) {
    this.cap = Math.max(0, Math.floor(capacity));
  }

  get capacity(): number {
    return this.cap;
  }
  /** Entries held now (≤ capacity). */
  get count(): number {
    return this.held;
  }

  /** A new capacity forgets what is held (set at start, from the server's options). */
  resize(capacity: number): void {
    this.cap = Math.max(0, Math.floor(capacity));
    this.words = new Int32Array(0);
    this.times = new Float64Array(0);
    this.clear();
  }

  clear(): void {
    this.next = 0;
    this.held = 0;
  }

  /** Hot path: the buffer `r` just removed from (device, lo, hi) was freed at `nowMs`. */
  push(k: { device: number; lo: number; hi: number }, r: Removed, nowMs: number): void {
    if (this.cap === 0) return;
    if (this.words.length === 0) {
      // allocated on the first free, so a server that never frees holds nothing here
      this.words = new Int32Array(this.cap * WORDS);
      this.times = new Float64Array(this.cap * 2);
    }
    const i = this.next,
      w = i * WORDS,
      size = r.goneSize;
    this.words[w] = k.lo;
    this.words[w + 1] = k.hi;
    this.words[w + 2] = k.device | (r.goneType << 16);
    this.words[w + 3] = (size % TWO32) | 0;
    this.words[w + 4] = Math.floor(size / TWO32);
    this.words[w + 5] = r.gonePid;
    this.times[i * 2] = r.goneBornMs;
    this.times[i * 2 + 1] = nowMs;
    this.next = i + 1 === this.cap ? 0 : i + 1;
    if (this.held < this.cap) this.held++;
    this.recorded++;
  }

  /** The held lifetimes, oldest free first (one object, reused for each call of `fn`). */
  forEach(fn: (l: Readonly<Lifetime>) => void): void {
    const l: Lifetime = { device: 0, lo: 0, hi: 0, type: 0, size: 0, pid: 0, bornMs: 0, endMs: 0 };
    const first = this.held < this.cap ? 0 : this.next;
    for (let n = 0; n < this.held; n++) {
      const i = (first + n) % this.cap,
        w = i * WORDS;
      l.lo = this.words[w] >>> 0;
      l.hi = this.words[w + 1] >>> 0;
      l.device = this.words[w + 2] & 0xffff;
      l.type = this.words[w + 2] >>> 16;
      l.size = (this.words[w + 3] >>> 0) + (this.words[w + 4] >>> 0) * TWO32;
      l.pid = this.words[w + 5];
      l.bornMs = this.times[i * 2];
      l.endMs = this.times[i * 2 + 1];
      fn(l);
    }
  }

  /** When the oldest held free happened (the timeline is complete from there), or null. */
  oldestEndMs(): number | null {
    if (this.held === 0) return null;
    const first = this.held < this.cap ? 0 : this.next;
    return this.times[first * 2 + 1];
  }

  memoryBytes(): number {
    return this.words.byteLength + this.times.byteLength;
  }
}
