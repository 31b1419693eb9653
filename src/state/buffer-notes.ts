// Buffer names and stack traces (the 648-byte generation's notes), interned and bounded.
//
// Every distinct string is kept once, with a count of the buffers and left-behind records that
// refer to it (a model's traces repeat: the same few call sites allocate thousands of buffers). A
// buffer's note is one small integer, name id × 2^15 + trace id (0: no note), kept in a column
// beside its object-table row that exists only once a note was set (object-table.ts), so clients
// that send no notes cost nothing more per buffer. A string is released when its last buffer is
// freed, reaped and then forgotten, or dropped by the left-behind budget.
//
// Bounded: at most MAX_STRINGS distinct strings and `budgetBytes` of them at once
// (`--notes-budget`). A string that does not fit is not kept (the buffer gets no name, or no
// trace) and is counted.

/** Distinct strings at once (ids 1 … 2^15 - 1: two of them fit one positive int32). */
export const MAX_STRINGS = (1 << 15) - 1;
const ID_SHIFT = 15;
const ID_MASK = (1 << ID_SHIFT) - 1;
/** Default bytes of distinct strings kept (`--notes-budget`). */
export const DEFAULT_NOTES_BUDGET = 16 << 20;

/** A buffer's note as reports show it. */
export interface BufferNote {
  name: string;
  trace: string;
}

export class BufferNotes {
  private readonly ids = new Map<string, number>();
  /** id → string ('' for a free id). */
  private readonly strings: string[] = [''];
  private refs = new Int32Array(64);
  private readonly freeIds: number[] = [];
  /** Bytes (UTF-16 code units) of the strings kept. */
  private bytesKept = 0;
  /** Strings not kept because the budget or the id space was full, and their bytes. */
  dropped = 0;
  droppedBytes = 0;

  constructor(readonly budgetBytes = DEFAULT_NOTES_BUDGET) {
    if (!Number.isInteger(budgetBytes) || budgetBytes < 0)
      throw new RangeError(`notes budget must be a whole number of bytes, not ${budgetBytes}`);
  }

  /** Distinct strings kept. */
  get distinct(): number {
    return this.ids.size;
  }
  get bytes(): number {
    return this.bytesKept;
  }

  /**
   * The note of `name` and `trace`, with one reference taken on each (0: neither is kept, or both
   * are empty). The caller keeps the id with one buffer or record, and release()s it once.
   */
  noteOf(name: string, trace: string): number {
    const n = this.intern(name),
      t = this.intern(trace);
    return n * (1 << ID_SHIFT) + t;
  }

  /** One more holder of note `id` (a copy kept elsewhere). */
  retain(id: number): void {
    if (id === 0) return;
    this.refs[id >>> ID_SHIFT]++;
    this.refs[id & ID_MASK]++;
  }

  /** One holder of note `id` is gone: strings nobody refers to any more are dropped. */
  release(id: number): void {
    if (id === 0) return;
    this.unref(id >>> ID_SHIFT);
    this.unref(id & ID_MASK);
  }

  name(id: number): string {
    return this.strings[id >>> ID_SHIFT] ?? '';
  }
  trace(id: number): string {
    return this.strings[id & ID_MASK] ?? '';
  }
  /** The note as reports show it, or null for no note. */
  get(id: number): BufferNote | null {
    return id === 0 ? null : { name: this.name(id), trace: this.trace(id) };
  }

  /** Forgets every string (ttalloc reset); the drop counts stay (they are statistics). */
  clear(): void {
    this.ids.clear();
    this.strings.length = 1;
    this.refs.fill(0);
    this.freeIds.length = 0;
    this.bytesKept = 0;
  }

  private intern(s: string): number {
    if (s === '') return 0;
    let id = this.ids.get(s);
    if (id !== undefined) {
      this.refs[id]++;
      return id;
    }
    const cost = s.length * 2;
    if (this.bytesKept + cost > this.budgetBytes || this.ids.size >= MAX_STRINGS) {
      this.dropped++;
      this.droppedBytes += cost;
      return 0;
    }
    id = this.freeIds.pop() ?? this.strings.length;
    if (id >= this.refs.length) {
      const grown = new Int32Array(Math.min(this.refs.length * 2, MAX_STRINGS + 1));
      grown.set(this.refs);
      this.refs = grown;
    }
    this.strings[id] = s;
    this.refs[id] = 1;
    this.ids.set(s, id);
    this.bytesKept += cost;
    return id;
  }

  private unref(id: number): void {
    if (id === 0 || --this.refs[id] > 0) return;
    const s = this.strings[id];
    this.ids.delete(s);
    this.bytesKept -= s.length * 2;
    this.strings[id] = '';
    this.freeIds.push(id);
  }
}
