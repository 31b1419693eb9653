// Compactor worker: rebuilds the state from the snapshot and the closed journal segments up to
// `upTo` in a Tracker of its own, and writes it as the new snapshot. It runs beside the server on
// another thread, so neither replay nor writing ever holds up ingest; the server then deletes the
// segments the snapshot covers.
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { Tracker } from '../state/tracker.js';
import { Checkpoints } from '../state/marks.js';
import { loadState } from './replay.js';
import { snapshotSource, writeSnapshot } from './snapshot.js';
import { testPause } from './test-pause.js';

export interface CompactRequest {
  dir: string;
  upTo: number;
  expectedObjects: number;
  /** The server's left-behind budget: the snapshot keeps what the server keeps. */
  leftBehindBudget: number;
  /** The server's notes budget: the snapshot keeps the names and traces the server keeps. */
  notesBudget: number;
}
export interface CompactResult {
  through: number;
  bytes: number;
  objects: number;
  events: number;
  ms: number;
  problems: string[];
}

const req = workerData as CompactRequest;
// Lowest priority for this thread only (Linux schedules threads alone): ingest comes first.
try {
  setPriority(0, 19);
} catch {
  /* not permitted: run at normal priority */
}
const t0 = performance.now();
const tr = new Tracker(req.expectedObjects, undefined, req.leftBehindBudget, req.notesBudget);
const marks = new Checkpoints(tr);
const rec = loadState(req.dir, tr, marks, { upTo: req.upTo, repair: false });
const r = await writeSnapshot(req.dir, snapshotSource(tr, marks), rec.lastGen);
testPause('snapshot-before-cleanup', req.dir);
const result: CompactResult = {
  through: rec.lastGen,
  ...r,
  events: rec.journalEvents,
  ms: performance.now() - t0,
  problems: rec.problems,
};
parentPort!.postMessage(result);
