// The new server of a restart reads the state directory while the old server still runs and
// writes it: the snapshot and the journal segments are loaded before the switch, then it follows
// the journal as it grows (each segment from where it stopped), so that at the switch only the
// last flush interval's events remain to be applied. That is what keeps the pause short however
// big the state is: loading 20 M buffers takes seconds, the tail a few milliseconds. The old
// server holds its compactions meanwhile (a compaction would fold and delete segments).
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import type { Tracker } from '../state/tracker.js';
import type { Checkpoints } from '../state/marks.js';
import { BATCH_HEADER, batchProblem, payloadIntact } from '../persist/records.js';
import { FileContext, loadState, replay, type Recovery } from '../persist/replay.js';
import { listSegments } from '../persist/state-dir.js';

interface Position {
  off: number;
  file: FileContext;
}

export class JournalFollower {
  private readonly at = new Map<number, Position>();
  private rec: Recovery;
  private head = Buffer.alloc(BATCH_HEADER);
  private buf = Buffer.alloc(1 << 20);

  /** Loads the snapshot (the segments follow in catchUp()). */
  constructor(
    private readonly dir: string,
    private readonly tr: Tracker,
    private readonly marks: Checkpoints,
  ) {
    // upTo 0: the snapshot only; a reader beside the writing server never repairs a file.
    this.rec = loadState(dir, tr, marks, { upTo: 0, repair: false });
  }

  /** The recovery as the store reports it (snapshot, events, last segment read). */
  get recovery(): Recovery {
    return this.rec;
  }

  /**
   * Applies every whole batch written since the last call. Returns the events applied and the
   * problem at a segment's end, if any (a batch being written while the old server runs; after
   * its final flush, damage).
   */
  catchUp(): { events: number; problem: string | null } {
    let events = 0,
      problem: string | null = null;
    for (const s of listSegments(this.dir)) {
      if (s.gen <= this.rec.snapshotThrough) continue;
      let p = this.at.get(s.gen);
      if (!p) this.at.set(s.gen, (p = { off: 0, file: new FileContext() }));
      const r = this.follow(join(this.dir, s.name), p);
      events += r.events;
      this.rec.lastGen = Math.max(this.rec.lastGen, s.gen);
      if (r.problem) problem = `${s.name}: ${r.problem}`;
    }
    this.rec.journalEvents += events;
    return { events, problem };
  }

  private follow(path: string, p: Position): { events: number; problem: string | null } {
    const fd = openSync(path, 'r');
    let events = 0;
    try {
      const size = fstatSync(fd).size;
      while (p.off < size) {
        if (size - p.off >= BATCH_HEADER) readSync(fd, this.head, 0, BATCH_HEADER, p.off);
        const problem = batchProblem(this.head, p.off, size);
        if (problem) return { events, problem };
        const len = this.head.readUInt32LE(4);
        if (len > this.buf.length) this.buf = Buffer.alloc(len);
        const payload = this.buf.subarray(0, len);
        for (let got = 0; got < len;)
          got += readSync(fd, payload, got, len - got, p.off + BATCH_HEADER + got);
        if (!payloadIntact(this.head, payload))
          return { events, problem: `checksum mismatch in batch at byte ${p.off}` };
        events += replay(payload, this.tr, this.marks, p.file).events;
        p.off += BATCH_HEADER + len;
        this.rec.journalBytes += BATCH_HEADER + len;
      }
      return { events, problem: null };
    } finally {
      closeSync(fd);
    }
  }
}
