// Checkpoints ("marks"): a name for a point in the event stream. Cheap by design: no copy of the
// state; every buffer already stores when it was born, and a mark's cut lies between what arrived
// before it and after it (Tracker.cut), so "born after mark M" is `bornMs >= M.cutMs`.
import type { Tracker } from './tracker.js';

export interface Mark {
  name: string;
  /** Objects born at or after this time (ms) were born after the mark. */
  cutMs: number;
  /** When it was taken. */
  atMs: number;
  /**
   * Set when a harness marks for one process: queries since this mark then see only its buffers.
   */
  pid: number | null;
}

export class MarkError extends Error {}

const NAME = /^[A-Za-z0-9_.:/@+-]{1,200}$/;

export class Checkpoints {
  private marks = new Map<string, Mark>();

  constructor(private tracker: Tracker) {}

  /** Records (or moves, when the name exists) a mark now. */
  mark(name: string, pid: number | null = null): Mark {
    if (!NAME.test(name))
      throw new MarkError(
        `bad mark name '${name}': use letters, digits and _ . : / @ + - (at most 200)`,
      );
    if (pid !== null && (!Number.isInteger(pid) || pid <= 0))
      throw new MarkError(`bad pid '${pid}'`);
    const cutMs = this.tracker.cut();
    const m: Mark = { name, cutMs, atMs: cutMs - 1, pid };
    const moved = this.marks.delete(name); // re-marking moves it to the end of the ordered list
    this.marks.set(name, m);
    if (moved) this.retainPeaks();
    return m;
  }

  get(name: string): Mark {
    const m = this.marks.get(name);
    if (!m) throw new MarkError(`no mark named '${name}' (ttalloc marks lists them)`);
    return m;
  }

  /** Forgets a mark (a test harness's mark once its test is over); throws when there is none. */
  delete(name: string): Mark {
    const m = this.get(name);
    this.marks.delete(name);
    this.retainPeaks();
    return m;
  }

  /** Marks in the order they were taken. */
  list(): Mark[] {
    return [...this.marks.values()].sort((a, b) => a.cutMs - b.cutMs);
  }

  clear(): void {
    this.marks.clear();
    this.retainPeaks();
  }

  /** The tracker's peaks keep a segment boundary only where a mark is. */
  private retainPeaks(): void {
    this.tracker.peaks.retain(new Set([...this.marks.values()].map((m) => m.cutMs)));
  }

  toJSON(): Mark[] {
    return this.list();
  }
  /** Recovery: marks as persisted (a v2 mark's epoch start is its cut). */
  load(marks: (Mark | (Omit<Mark, 'cutMs'> & { epoch: number }))[]): void {
    for (const m of marks) {
      const cutMs = 'cutMs' in m ? m.cutMs : m.atMs;
      this.marks.set(m.name, { name: m.name, cutMs, atMs: m.atMs, pid: m.pid });
      this.tracker.restoreFloor(cutMs);
    }
  }
  /** Replay's delete: a journal's UNMARK of a mark already gone is no error. */
  drop(name: string): void {
    if (this.marks.delete(name)) this.retainPeaks();
  }
}
