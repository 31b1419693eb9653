// The one event function (state/events.ts): what each state event does to a real Tracker, and the
// effect it reports to the journal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferType, MsgType } from '../src/protocol/constants.js';
import {
  applyEvent,
  EFFECT_CREATED,
  EFFECT_OTHER,
  EFFECT_REMOVED,
  isStateEvent,
  StateEvent,
  type EventJournal,
} from '../src/state/events.js';
import { KIND_CB, KIND_KERNEL, KIND_UNKNOWN_FREE, Tracker } from '../src/state/tracker.js';

class Journal implements EventJournal {
  log: [code: number, effect: number][] = [];
  record(ev: StateEvent, effect: number): void {
    this.log.push([ev.code, effect]);
  }
}

interface Fields {
  code: number;
  device?: number;
  lo?: number;
  hi?: number;
  size?: number;
  sub?: number;
  owner?: number;
}
function event(f: Fields): StateEvent {
  const ev = new StateEvent();
  ev.code = f.code;
  ev.device = f.device ?? 0;
  ev.lo = f.lo ?? 0x1000;
  ev.hi = f.hi ?? 0;
  ev.sizeLo = (f.size ?? 0) % 2 ** 32;
  ev.sizeHi = Math.floor((f.size ?? 0) / 2 ** 32);
  ev.sub = f.sub ?? 0;
  ev.owner = f.owner ?? 100;
  return ev;
}

test('ALLOC creates a buffer, a repeat adds a reference, FREEs drop them; effects say so', () => {
  const tr = new Tracker(),
    j = new Journal();
  const alloc = event({ code: MsgType.ALLOC, size: 4096, sub: BufferType.L1 });
  assert.equal(applyEvent(tr, alloc, j), EFFECT_CREATED);
  assert.equal(applyEvent(tr, alloc, j), EFFECT_OTHER, 'a repeat: one more reference');
  const e = tr.buffers.find(0, 0x1000, 0);
  assert.equal(tr.buffers.ref(e), 2);
  assert.equal(tr.deviceBytes(0, BufferType.L1), 4096, 'counted once');
  assert.equal(tr.pids.get(100)!.live, 1);
  // A FREE releases the sender's own buffer: another PID's FREE of it is an unknown free.
  assert.equal(applyEvent(tr, event({ code: MsgType.FREE, owner: 999 }), j), EFFECT_OTHER);
  assert.equal(tr.buffers.ref(tr.buffers.find(0, 0x1000, 0)), 2, "999's FREE left it alone");
  assert.equal(tr.unknownFrees, 1);
  const free = event({ code: MsgType.FREE });
  assert.equal(applyEvent(tr, free, j), EFFECT_OTHER);
  assert.equal(tr.buffers.ref(tr.buffers.find(0, 0x1000, 0)), 1);
  assert.equal(applyEvent(tr, free, j), EFFECT_REMOVED);
  assert.equal(tr.buffers.count, 0);
  assert.equal(tr.deviceBytes(0, BufferType.L1), 0);
  assert.equal(tr.pids.get(100)!.live, 0);
  assert.deepEqual(j.log, [
    [MsgType.ALLOC, EFFECT_CREATED],
    [MsgType.ALLOC, EFFECT_OTHER],
    [MsgType.FREE, EFFECT_OTHER],
    [MsgType.FREE, EFFECT_OTHER],
    [MsgType.FREE, EFFECT_REMOVED],
  ]);
});

test('an ALLOC repeated with another size is flagged and counted, its bytes unchanged', () => {
  const tr = new Tracker();
  applyEvent(tr, event({ code: MsgType.ALLOC, size: 100 }), null);
  applyEvent(tr, event({ code: MsgType.ALLOC, size: 200 }), null);
  assert.equal(tr.resizedAllocs, 1);
  assert.equal(tr.deviceBytes(0, BufferType.DRAM), 100);
});

test('a FREE of an unknown buffer is counted per device and sender, and removes nothing', () => {
  const tr = new Tracker(),
    j = new Journal();
  applyEvent(tr, event({ code: MsgType.ALLOC, size: 64, lo: 0x2000 }), j);
  assert.equal(applyEvent(tr, event({ code: MsgType.FREE, device: 3, owner: 7 }), j), EFFECT_OTHER);
  assert.equal(tr.unknownFrees, 1);
  assert.equal(tr.deviceCount(3, KIND_UNKNOWN_FREE), 1);
  assert.equal(tr.pids.get(7)!.counts[3 * 8 + KIND_UNKNOWN_FREE], 1);
  assert.equal(tr.buffers.count, 1);
  assert.equal(tr.maxDeviceSeen, 3, 'the device reported something');
});

test('CB_ALLOC and KERNEL_LOAD repeats add no memory; one unload removes; unknowns count', () => {
  const tr = new Tracker(),
    j = new Journal();
  const cb = event({ code: MsgType.CB_ALLOC, size: 512, lo: 0x40 });
  const k = event({ code: MsgType.KERNEL_LOAD, size: 2048, lo: 9, sub: 2 });
  for (let i = 0; i < 3; i++) {
    assert.equal(applyEvent(tr, cb, j), EFFECT_OTHER);
    assert.equal(applyEvent(tr, k, j), EFFECT_OTHER);
  }
  assert.equal(tr.deviceBytes(0, KIND_CB), 512);
  assert.equal(tr.deviceBytes(0, KIND_KERNEL), 2048);
  assert.equal(tr.kernels.type(tr.kernels.find(0, 9, 0)), 2, 'the kernel type is kept');
  assert.equal(tr.cbs.ref(tr.cbs.find(0, 0x40, 0)), 1, 'not reference counted');
  applyEvent(tr, event({ code: MsgType.CB_FREE, lo: 0x40 }), j);
  applyEvent(tr, event({ code: MsgType.KERNEL_UNLOAD, lo: 9 }), j);
  assert.equal(tr.cbs.count + tr.kernels.count, 0);
  assert.equal(tr.deviceBytes(0, KIND_CB) + tr.deviceBytes(0, KIND_KERNEL), 0);
  assert.equal(tr.pids.get(100)!.live, 0);
  applyEvent(tr, event({ code: MsgType.CB_FREE, lo: 0x40 }), j);
  applyEvent(tr, event({ code: MsgType.KERNEL_UNLOAD, lo: 9 }), j);
  applyEvent(tr, event({ code: MsgType.KERNEL_UNLOAD, lo: 9 }), j);
  assert.deepEqual([tr.unknownCbFrees, tr.unknownKernelUnloads], [1, 2]);
  assert.equal(j.log.length, 11, 'every event is journaled, repeats and unknowns too');
});

test('only the six state codes are events; others are refused', () => {
  const codes = [];
  for (let c = 0; c < 16; c++) if (isStateEvent(c)) codes.push(c);
  assert.deepEqual(codes, [1, 2, 8, 9, 10, 11]);
  assert.throws(
    () => applyEvent(new Tracker(), event({ code: MsgType.QUERY }), null),
    /not a state/,
  );
});
