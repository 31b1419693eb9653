// What exited processes left behind: every buffer a process still held when it was found gone,
// kept as a full record (the live table's 7-word row: address, size, type, ref_count, allocation
// time, PID) beside the process's identity and exit time, within a budget of records (the oldest
// exited processes are dropped first, and counted). The seed's workflow dumps *after* the
// application completes: these records are what that dump shows.
import {
  ROW_WORDS,
  rowBornMs,
  rowDevice,
  rowFlags,
  rowIdHex,
  rowPid,
  rowRef,
  rowSize,
  rowType,
} from './object-table.js';
import type { BufferNote, BufferNotes } from './buffer-notes.js';

/** Default budget of left-behind records (`--left-behind-budget`). */
export const DEFAULT_LEFT_BEHIND_BUDGET = 1_000_000;

/** Who a process was, as recorded while it ran (null fields: not known). */
export interface ProcessIdentity {
  ppid: number | null;
  /** The whole command line (NUL-separated arguments joined by spaces). */
  cmdline: string | null;
  /** When it started (ms since 1970), from /proc/PID/stat. */
  startMs: number | null;
}

/** An exited process's summary: counts and bytes per device and type (no rows). */
export interface ReapedReport extends ProcessIdentity {
  pid: number;
  /** When the server found it gone (its exit, within the detection latency). */
  reapedAtMs: number;
  buffers: number;
  bytes: number;
  cbs: number;
  cbBytes: number;
  kernels: number;
  kernelBytes: number;
  /** device → buffer type name → {count, bytes} */
  byDevice: Record<string, Record<string, { count: number; bytes: number }>>;
  /** Buffer records not kept (the budget was smaller than this one process's leftovers). */
  recordsDropped: number;
}

/** An exited process with the records of the buffers it left behind. */
export interface ExitedProcess extends ReapedReport {
  /** ROW_WORDS words per buffer, the live table's layout (rows.length / ROW_WORDS records). */
  rows: Int32Array;
  /**
   * Each record's note id (buffer-notes.ts; 0: none), one per record; absent when none has one.
   * The records hold a reference on each, released when they are dropped or forgotten.
   */
  notes?: Int32Array;
}

/** Read access to rows (the live ObjectTable and RowArray both have it): what reports read. */
export interface Rows {
  readonly count: number;
  device(e: number): number;
  type(e: number): number;
  size(e: number): number;
  pid(e: number): number;
  ref(e: number): number;
  bornMs(e: number): number;
  flags(e: number): number;
  idHex(e: number): string;
  /** The row's name and stack trace (648-byte clients), or null. */
  noteOf(e: number): BufferNote | null;
}

/** Rows in one flat array (an exited process's records). */
export class RowArray implements Rows {
  readonly count: number;
  /** `notes`: the records' note ids (ExitedProcess.notes), resolved by `strings`. */
  constructor(
    readonly rows: Int32Array,
    private readonly notes?: Int32Array,
    private readonly strings?: BufferNotes,
  ) {
    this.count = rows.length / ROW_WORDS;
  }
  noteOf(e: number): BufferNote | null {
    return this.notes && this.strings ? this.strings.get(this.notes[e]) : null;
  }
  device(e: number): number {
    return rowDevice(this.rows, e * ROW_WORDS);
  }
  type(e: number): number {
    return rowType(this.rows, e * ROW_WORDS);
  }
  size(e: number): number {
    return rowSize(this.rows, e * ROW_WORDS);
  }
  pid(e: number): number {
    return rowPid(this.rows, e * ROW_WORDS);
  }
  ref(e: number): number {
    return rowRef(this.rows, e * ROW_WORDS);
  }
  bornMs(e: number): number {
    return rowBornMs(this.rows, e * ROW_WORDS);
  }
  flags(e: number): number {
    return rowFlags(this.rows, e * ROW_WORDS);
  }
  idHex(e: number): string {
    return rowIdHex(this.rows, e * ROW_WORDS);
  }
}

/** What forget() removes: processes that exited before `beforeMs`, and/or PID `pid`. */
export interface ForgetFilter {
  beforeMs?: number;
  pid?: number;
}

export class LeftBehind {
  private readonly procs: ExitedProcess[] = [];
  /** Records kept (a process that left no buffer counts as one: the budget bounds the list). */
  private kept = 0;
  /** Exited processes and buffer records the budget dropped since start (or the last reset). */
  droppedProcesses = 0;
  droppedRecords = 0;

  constructor(
    private budgetRecords = DEFAULT_LEFT_BEHIND_BUDGET,
    private readonly notes: BufferNotes | null = null,
  ) {
    if (!Number.isInteger(budgetRecords) || budgetRecords < 1)
      throw new RangeError(`left-behind budget must be a whole number ≥ 1, not ${budgetRecords}`);
  }

  get budget(): number {
    return this.budgetRecords;
  }
  /** Exited processes, oldest first (read only). */
  get list(): readonly ExitedProcess[] {
    return this.procs;
  }
  /** Buffer records kept. */
  get records(): number {
    let n = 0;
    for (const p of this.procs) n += p.rows.length / ROW_WORDS;
    return n;
  }

  /** Keeps an exited process's records, dropping the oldest processes beyond the budget. */
  add(p: ExitedProcess): void {
    const max = this.budgetRecords * ROW_WORDS;
    if (p.rows.length > max) {
      // One process alone is over budget: its first records (table order) are kept.
      const cut = (p.rows.length - max) / ROW_WORDS;
      p.rows = p.rows.slice(0, max);
      if (p.notes) {
        this.releaseNotes(p.notes.subarray(this.budgetRecords));
        p.notes = p.notes.slice(0, this.budgetRecords);
      }
      p.recordsDropped += cut;
      this.droppedRecords += cut;
    }
    this.procs.push(p);
    this.kept += cost(p);
    let drop = 0;
    while (this.kept > this.budgetRecords && drop < this.procs.length - 1) {
      const old = this.procs[drop++];
      this.kept -= cost(old);
      this.droppedProcesses++;
      this.droppedRecords += old.rows.length / ROW_WORDS;
      if (old.notes) this.releaseNotes(old.notes);
    }
    if (drop > 0) this.procs.splice(0, drop);
  }

  /** Removes what matches `f` on purpose (`ttalloc forget`); returns what went. */
  forget(f: ForgetFilter): { processes: number; records: number } {
    let processes = 0,
      records = 0,
      w = 0;
    for (const p of this.procs) {
      const hit =
        (f.beforeMs === undefined || p.reapedAtMs < f.beforeMs) &&
        (f.pid === undefined || p.pid === f.pid);
      if (!hit) {
        this.procs[w++] = p;
        continue;
      }
      processes++;
      records += p.rows.length / ROW_WORDS;
      if (p.notes) this.releaseNotes(p.notes);
      this.kept -= cost(p);
    }
    this.procs.length = w;
    return { processes, records };
  }

  clear(): void {
    for (const p of this.procs) if (p.notes) this.releaseNotes(p.notes);
    this.procs.length = 0;
    this.kept = 0;
    this.droppedProcesses = 0;
    this.droppedRecords = 0;
  }

  private releaseNotes(ids: Int32Array): void {
    if (this.notes === null) return;
    for (const id of ids) this.notes.release(id);
  }

  /** Recovery from a snapshot: the drop counters it kept. */
  restoreDropped(processes: number, records: number): void {
    this.droppedProcesses = processes;
    this.droppedRecords = records;
  }
}

function cost(p: ExitedProcess): number {
  return Math.max(1, p.rows.length / ROW_WORDS);
}

/** The summary of an exited process (no rows), as JSON routes and snapshots carry it. */
export function summaryOf(p: ExitedProcess): ReapedReport {
  const { rows: _rows, notes: _notes, ...summary } = p;
  return summary;
}
