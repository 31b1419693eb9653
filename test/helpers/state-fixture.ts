// A small state directory with every kind of record, written through StateStore and
// writeSnapshot at a fixed clock: test/records.test.ts compares the bytes it writes with those
// the format's first version (commit 885f8ca) wrote, and loads the latter.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tracker } from '../../src/state/tracker.js';
import { Checkpoints } from '../../src/state/marks.js';
import { StateStore } from '../../src/persist/state-store.js';
import { snapshotSource, writeSnapshot } from '../../src/persist/snapshot.js';
import { MsgType, TWO32 } from '../../src/protocol/constants.js';
import { applyEvent, StateEvent } from '../../src/state/events.js';

export const FIXTURE_NOW_MS = 1796150000000;

/**
 * Every row of a table (device, id, size, type, PID, ref count, flags, allocation time), in a
 * fixed order: two states hold the same objects when these are deep-equal.
 */
export function tableRows(t: Tracker['buffers']): (number | string)[][] {
  const out: (number | string)[][] = [];
  for (let e = 0; e < t.count; e++)
    out.push([
      t.device(e),
      t.idHex(e),
      t.size(e),
      t.type(e),
      t.pid(e),
      t.ref(e),
      t.flags(e),
      t.bornMs(e),
    ]);
  return out.sort((x, y) => String(x).localeCompare(String(y)));
}

interface Ev {
  code: number;
  sub?: number;
  device: number;
  owner: number;
  lo: number;
  hi?: number;
  size?: number;
}

/**
 * The workload: ref counts, a cancelled pair, an unknown free, a CB, a kernel, a mark, reaps (one
 * leaving a buffer behind).
 */
export const FIXTURE_EVENTS: readonly Ev[] = [
  { code: MsgType.ALLOC, device: 0, owner: 100, lo: 0x1000, size: 4096 },
  { code: MsgType.ALLOC, sub: 1, device: 1, owner: 101, lo: 0x2000, hi: 1, size: 2 ** 40 + 7 },
  { code: MsgType.ALLOC, device: 0, owner: 100, lo: 0x1000, size: 4096 }, // a second reference
  { code: MsgType.ALLOC, sub: 2, device: 2, owner: 100, lo: 0x3000, size: 64 }, // cancelled…
  { code: MsgType.FREE, device: 2, owner: 100, lo: 0x3000 }, // …by this free
  { code: MsgType.FREE, device: 3, owner: 100, lo: 0xdead }, // unknown
  { code: MsgType.CB_ALLOC, device: 0, owner: 102, lo: 0x6600, size: 32768 },
  { code: MsgType.KERNEL_LOAD, sub: 2, device: 1, owner: 103, lo: 0x5555, size: 8192 },
  { code: MsgType.KERNEL_UNLOAD, device: 1, owner: 103, lo: 0x4444 },
];

function apply(tr: Tracker, store: StateStore | null, e: Ev): void {
  const ev = new StateEvent();
  const size = e.size ?? 0;
  ev.code = e.code;
  ev.sub = e.sub ?? 0;
  ev.device = e.device;
  ev.owner = e.owner;
  ev.lo = e.lo;
  ev.hi = e.hi ?? 0;
  ev.sizeLo = (size % TWO32) | 0;
  ev.sizeHi = Math.floor(size / TWO32) | 0;
  ev.bornMs = tr.stampOf(0); // no frame time: the arrival time (the fixed clock)
  applyEvent(tr, ev, store);
}

/** Writes the fixture: a journal segment in one directory, a snapshot of its state in another. */
export async function writeFixture(): Promise<{ journal: Buffer; snapshot: Buffer }> {
  const realNow = Date.now;
  Date.now = () => FIXTURE_NOW_MS;
  try {
    const dir = mkdtempSync(join(tmpdir(), 'ttalloc-fixture-'));
    const tr = new Tracker(16);
    const marks = new Checkpoints(tr);
    const store = new StateStore({
      dir,
      flushIntervalMs: 1e6,
      segmentBytes: 1 << 30,
      compactBytes: 1 << 30,
      warn: (m) => console.error(m),
      log: () => {},
      onState: () => {},
    });
    store.open(tr, marks);
    for (const e of FIXTURE_EVENTS) apply(tr, store, e);
    store.flush();
    await store.mark(marks.mark('m1'));
    apply(tr, store, { code: MsgType.ALLOC, sub: 3, device: 0, owner: 104, lo: 0x7000, size: 100 });
    apply(tr, store, { code: MsgType.ALLOC, sub: 0, device: 1, owner: 105, lo: 0x8000, size: 200 });
    // PID 105 exits: its buffer is kept as left behind (a LEFT_BEHIND entry in the snapshot)
    const id = { ppid: 1, cmdline: 'python3 -m pytest', startMs: 1000 };
    const gone = tr.releasePids(new Set([105]), 1234, () => id);
    store.reap({ pids: gone.map((p) => p.pid), atMs: 1234, ids: { 105: id } });
    store.reap({ pids: [999], atMs: 1234 });
    await store.close();
    const snapDir = mkdtempSync(join(tmpdir(), 'ttalloc-fixture-'));
    await writeSnapshot(snapDir, snapshotSource(tr, marks), 1);
    return {
      journal: readFileSync(join(dir, 'journal-00000001.bin')),
      snapshot: readFileSync(join(snapDir, 'snapshot.bin')),
    };
  } finally {
    Date.now = realNow;
  }
}
