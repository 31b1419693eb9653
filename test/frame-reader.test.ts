// The frame reader without sockets: every frame size, reassembly at every cut point, frame-size
// detection (including the quiet single-frame cases), garbage, and the message rules' reasons.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFrame } from '../src/protocol/codec.js';
import { FRAME_SIZES, MsgType, type FrameSize } from '../src/protocol/constants.js';
import {
  FrameReader,
  MAX_CONSECUTIVE_GARBAGE,
  type FrameSink,
  type QuietTimer,
} from '../src/protocol/frame-reader.js';
import { Action, MESSAGES, ownerOf, refusedCodeReason } from '../src/protocol/messages.js';
import { frameName, frameTrace } from '../src/protocol/notes.js';

/** A sink that records each frame as "code:bufferId", and how it arrived. */
class Recorder implements FrameSink {
  got: string[] = [];
  runs = 0;
  singles = 0;
  rejections: string[] = [];
  constructor(private readonly size: () => number) {}
  frameRun(dv: DataView, off: number, end: number): number {
    this.runs++;
    const fs = this.size();
    for (; off + fs <= end; off += fs) this.record(dv, off);
    return off;
  }
  frame(dv: DataView, off: number): void {
    this.singles++;
    this.record(dv, off);
  }
  reject(reason: string): void {
    this.rejections.push(reason);
  }
  private record(dv: DataView, off: number): void {
    this.got.push(`${dv.getUint8(off)}:${dv.getUint32(off + 24, true)}`);
  }
}

/** A timer that fires only when the test says so. */
class ManualTimer implements QuietTimer {
  fn: (() => void) | null = null;
  ms = -1;
  set(fn: () => void, ms: number): unknown {
    this.fn = fn;
    this.ms = ms;
    return fn;
  }
  clear(h: unknown): void {
    if (h === this.fn) this.fn = null;
  }
  fire(): void {
    const f = this.fn;
    this.fn = null;
    assert.ok(f, 'a quiet timer is armed');
    f();
  }
}

function setup(frameSize = 0): { r: FrameReader; sink: Recorder; timer: ManualTimer } {
  const timer = new ManualTimer();
  let reader: FrameReader | null = null;
  const sink = new Recorder(() => reader!.frameSize);
  reader = new FrameReader(sink, { frameSize, quietMs: 5, timer });
  return { r: reader, sink, timer };
}

const CODES = [
  MsgType.ALLOC,
  MsgType.FREE,
  MsgType.CB_ALLOC,
  MsgType.KERNEL_LOAD,
  MsgType.QUERY,
  MsgType.KERNEL_UNLOAD,
];
function stream(size: FrameSize, n: number): { bytes: Buffer; expect: string[] } {
  const parts: Buffer[] = [],
    expect: string[] = [];
  for (let i = 0; i < n; i++) {
    const type = CODES[i % CODES.length];
    // (648: each with a trace, as a Python allocation's; see the 144-byte case below for none)
    const stack = size === 648 ? 'gen.py:7:step -> ttnn.py:1:alloc' : undefined;
    parts.push(
      encodeFrame({ type, deviceId: i % 3, size: 4096, bufferId: 0x1000 + i, stack }, size),
    );
    expect.push(`${type}:${0x1000 + i}`);
  }
  return { bytes: Buffer.concat(parts), expect };
}

test('every frame size is detected and framed, whole or cut at every point', () => {
  for (const size of FRAME_SIZES) {
    const { bytes, expect } = stream(size, 5);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const { r, sink } = setup();
      r.push(bytes.subarray(0, cut), null, cut);
      r.push(bytes.subarray(cut), null, bytes.length - cut);
      assert.equal(r.end(), 0, `size ${size} cut ${cut}: nothing left`);
      assert.equal(r.frameSize, size, `size ${size} cut ${cut}`);
      assert.deepEqual(sink.got, expect, `size ${size} cut ${cut}`);
      assert.deepEqual(sink.rejections, []);
    }
  }
});

test('a forced frame size reassembles across three reads at every pair of cut points', () => {
  for (const size of FRAME_SIZES) {
    const { bytes, expect } = stream(size, 3);
    for (let a = 0; a <= bytes.length; a += 7) {
      for (let b = a; b <= bytes.length; b += 5) {
        const { r, sink } = setup(size);
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
        r.push(bytes.subarray(0, a), null, a);
        r.push(bytes.subarray(a, b), null, b - a);
        // The last read through a caller's DataView (the connection's one read buffer).
        const tail = Buffer.from(bytes.subarray(b));
        r.push(tail, new DataView(tail.buffer, tail.byteOffset, tail.length), tail.length);
        assert.deepEqual(sink.got, expect, `size ${size} cuts ${a}, ${b}`);
        assert.ok(view.byteLength > 0);
      }
    }
  }
});

test('a whole read of frames goes to the sink as one run; a partial frame is kept', () => {
  const { bytes } = stream(144, 10);
  const { r, sink } = setup(144);
  r.push(bytes, null, 144 * 4 + 100);
  assert.equal(sink.runs, 1);
  assert.equal(sink.singles, 0);
  assert.equal(sink.got.length, 4);
  assert.equal(r.partialBytes, 100);
  r.push(bytes.subarray(144 * 4 + 100), null, bytes.length - 144 * 4 - 100);
  assert.equal(sink.singles, 1, 'the reassembled frame arrives on its own');
  assert.equal(sink.got.length, 10);
  assert.equal(r.end(), 0);
});

test('144 bytes of one request decide at once (zero at 72 and 112: no shorter frame)', () => {
  const { r, sink, timer } = setup();
  const f = encodeFrame({ type: MsgType.ALLOC, size: 1, bufferId: 7 }, 144);
  r.push(f, null, f.length);
  assert.equal(r.frameSize, 144);
  assert.equal(timer.fn, null);
  assert.deepEqual(sink.got, [`${MsgType.ALLOC}:7`]);
});

test('144 bytes of a 648-byte frame with a trace: 648 (text at 136, zero in a request)', () => {
  const { r, sink } = setup();
  const named = encodeFrame({ type: MsgType.FREE, bufferId: 8, stack: 'a.py:1:f' }, 648);
  r.push(named.subarray(0, 144), null, 144);
  assert.equal(r.frameSize, 648);
  r.push(named.subarray(144), null, 648 - 144);
  r.push(named, null, 648);
  assert.deepEqual(sink.got, [`${MsgType.FREE}:8`, `${MsgType.FREE}:8`]);
  assert.equal(r.partialBytes, 0);
});

test('offsets 72, 136 and 144 decide 144 or 648: a name, a trace, or a zero for a code', () => {
  const named = encodeFrame({ type: MsgType.ALLOC, size: 1, bufferId: 9, name: 'w' }, 648);
  const bare = encodeFrame({ type: MsgType.FREE, bufferId: 9 }, 648);
  const traced = encodeFrame(
    { type: MsgType.ALLOC, size: 1, bufferId: 9, stack: 'model.py:12:forward -> ttnn.py:3:f' },
    648,
  );
  const two144 = Buffer.concat([
    encodeFrame({ type: MsgType.ALLOC, size: 1, bufferId: 9 }, 144),
    encodeFrame({ type: MsgType.FREE, bufferId: 9 }, 144),
  ]);
  for (const [what, bytes, len, size] of [
    ['a name at 72', named, 72, 648],
    ['no name, no trace: zero at 144', bare, 143, 648],
    ['no name, a trace: text at 136', traced, 136, 648],
    ['144-byte frames', two144, 143, 144],
  ] as [string, Buffer, number, number][]) {
    const { r, sink } = setup();
    r.push(bytes.subarray(0, len), null, len);
    assert.equal(r.frameSize, 0, `${what}: undecided at ${len}`);
    r.push(bytes.subarray(len), null, bytes.length - len);
    assert.equal(r.frameSize, size, what);
    assert.deepEqual(sink.rejections, [], what);
    assert.equal(sink.got.length, bytes.length / size, what);
  }
  // A bad code in the second 144-byte frame: still 144-byte frames (that frame is refused later),
  // as before 648 existed; in the second 72-byte frame: not frames, as before.
  for (const [size, want] of [
    [144, 144],
    [72, -1],
  ] as const) {
    const bytes = Buffer.concat([
      encodeFrame({ type: MsgType.ALLOC, size: 1, bufferId: 9 }, size),
      encodeFrame({ type: 200 }, size),
    ]);
    const x = setup();
    x.r.push(bytes, null, bytes.length);
    if (want > 0) assert.equal(x.r.frameSize, want, `${size}: decided`);
    else assert.equal(x.sink.rejections.length, 1, `${size}: rejected`);
  }
  // The one case taken wrongly: exactly 144 bytes of a 648-byte frame with neither name nor
  // trace, arriving alone (a real socket hands over a 648-byte send() whole).
  const alone = setup();
  alone.r.push(bare.subarray(0, 144), null, 144);
  assert.equal(alone.r.frameSize, 144);
  // A control byte (13–31) where a name or a type byte would be: not frames.
  const bad = Buffer.from(named);
  bad[72] = 0x1b;
  const b = setup();
  b.r.push(bad, null, bad.length);
  assert.equal(b.sink.rejections.length, 1);
});

test('648-byte frames with names and traces, cut at every point, keep their strings', () => {
  const parts: Buffer[] = [];
  for (let i = 0; i < 3; i++) {
    parts.push(
      encodeFrame(
        { type: MsgType.ALLOC, size: 64, bufferId: 0x100 + i, name: i ? `t${i}` : '', stack: 'a' },
        648,
      ),
    );
  }
  const bytes = Buffer.concat(parts);
  for (let cut = 0; cut <= bytes.length; cut += 3) {
    const { r, sink } = setup();
    r.push(bytes.subarray(0, cut), null, cut);
    r.push(bytes.subarray(cut), null, bytes.length - cut);
    assert.equal(r.frameSize, 648, `cut ${cut}`);
    assert.deepEqual(sink.got, ['1:256', '1:257', '1:258'], `cut ${cut}`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  assert.equal(dv.getUint8(648 + 72), 't'.charCodeAt(0));
  assert.equal(frameName(bytes, 648), 't1');
  assert.equal(frameTrace(bytes, 648), 'a');
  assert.equal(frameName(bytes, 0), '');
});

test('648-byte strings: NUL-terminated, cut to their fields, a full field without a NUL', () => {
  const long = 'x'.repeat(700);
  const f = encodeFrame({ type: MsgType.ALLOC, size: 1, name: long, stack: long }, 648);
  assert.equal(frameName(f, 0), 'x'.repeat(63));
  assert.equal(frameTrace(f, 0), 'x'.repeat(511));
  f.fill(0x41, 72, 136); // 64 bytes of name and no NUL: the field's end ends it
  assert.equal(frameName(f, 0), 'A'.repeat(64));
  const u = encodeFrame({ type: MsgType.ALLOC, size: 1, name: 'é'.repeat(40) }, 648);
  assert.equal(frameName(u, 0), 'é'.repeat(31), 'cut at a character boundary');
});

test('end of stream: an exact single frame decides; a partial frame is reported, dropped', () => {
  for (const size of [72, 112] as const) {
    const { r, sink } = setup();
    const f = encodeFrame({ type: MsgType.ALLOC, size: 1, bufferId: 7 }, size);
    r.push(f, null, f.length);
    assert.equal(r.frameSize, 0, 'one frame alone does not decide while the stream is open');
    assert.equal(r.end(), 0);
    assert.equal(r.frameSize, size);
    assert.deepEqual(sink.got, [`${MsgType.ALLOC}:7`]);
  }
  const { r, sink } = setup();
  const { bytes } = stream(72, 3);
  r.push(bytes, null, 72 * 2 + 30);
  assert.equal(r.end(), 30);
  assert.equal(sink.got.length, 2);
});

test('quiet on one QUERY: its length decides at once (the client waits for the reply)', () => {
  for (const type of [MsgType.QUERY, MsgType.DEVICE_INFO_QUERY]) {
    for (const size of [72, 112] as const) {
      const { r, sink, timer } = setup();
      r.push(encodeFrame({ type, bufferId: 3 }, size), null, size);
      assert.equal(timer.ms, 5, 'the wait is the configured one');
      timer.fire();
      assert.equal(r.frameSize, size);
      assert.deepEqual(sink.got, [`${type}:3`]);
    }
  }
});

test('one 648-byte QUERY decides at once: past 144 its zeros are no 144-byte frame', () => {
  const { r, sink, timer } = setup();
  r.push(encodeFrame({ type: MsgType.QUERY, bufferId: 3 }, 648), null, 648);
  assert.equal(timer.fn, null);
  assert.equal(r.frameSize, 648);
  assert.deepEqual(sink.got, [`${MsgType.QUERY}:3`]);
});

test('quiet on a non-query head: applied once, early; later bytes decide the size', () => {
  // A 144-byte client paused after 72 bytes: the head is applied, the size stays open, and the
  // rest does not apply the first frame again nor misread the stream as 72-byte frames.
  const { bytes, expect } = stream(144, 4);
  const { r, sink, timer } = setup();
  r.push(bytes.subarray(0, 72), null, 72);
  timer.fire();
  assert.equal(r.frameSize, 0);
  assert.deepEqual(sink.got, [expect[0]], 'the head applied from its 40 bytes');
  r.push(bytes.subarray(72, 112), null, 40);
  assert.equal(r.frameSize, 0);
  timer.fire(); // quiet again on 112 bytes: the head is not applied twice
  assert.deepEqual(sink.got, [expect[0]]);
  r.push(bytes.subarray(112), null, bytes.length - 112);
  assert.equal(r.frameSize, 144);
  assert.deepEqual(sink.got, expect);
  // The same with the size decided while the first frame is still incomplete.
  const b = setup();
  b.r.push(bytes.subarray(0, 72), null, 72);
  b.timer.fire();
  b.r.push(bytes.subarray(72, 130), null, 58);
  b.r.push(bytes.subarray(130), null, bytes.length - 130);
  assert.equal(b.r.frameSize, 144);
  assert.deepEqual(b.sink.got, expect);
});

test('a single frame followed by more bytes decides without waiting', () => {
  const { bytes, expect } = stream(112, 2);
  const { r, sink, timer } = setup();
  r.push(bytes.subarray(0, 112), null, 112);
  assert.ok(timer.fn, 'armed on the exact length');
  r.push(bytes.subarray(112), null, 112);
  assert.equal(timer.fn, null, 'decided: the wait is cancelled');
  assert.equal(r.frameSize, 112);
  assert.deepEqual(sink.got, expect);
});

test('bytes that are not frames are rejected, with the first bytes in the reason', () => {
  const { r, sink } = setup();
  const http = Buffer.from('GET / HTTP/1.1\r\n\r\n');
  r.push(http, null, http.length);
  assert.equal(sink.rejections.length, 1);
  assert.match(
    sink.rejections[0],
    /^stream is not allocation-protocol frames \(first bytes 474554/,
  );
  assert.match(sink.rejections[0], /"GET \/ HTTP\/1.1.."/);
  r.push(http, null, http.length);
  assert.equal(sink.got.length, 0);
  // A valid first code with a non-zero padding byte is not a frame either.
  const b = setup();
  const f = encodeFrame({ type: MsgType.ALLOC }, 72);
  f[2] = 1;
  b.r.push(f, null, f.length);
  assert.equal(b.sink.rejections.length, 1);
});

test('a run of unknown codes rejects the stream; an accepted frame ends the run', () => {
  const { r, sink } = setup(144);
  for (let i = 0; i < MAX_CONSECUTIVE_GARBAGE - 1; i++) r.unknownFrame();
  r.accepted();
  for (let i = 0; i < MAX_CONSECUTIVE_GARBAGE - 1; i++) r.unknownFrame();
  assert.deepEqual(sink.rejections, []);
  r.unknownFrame();
  assert.deepEqual(sink.rejections, [
    '8 consecutive frames with unknown codes: the stream is not 144-byte frames',
  ]);
  // A rejected reader frames nothing more.
  const { bytes } = stream(144, 2);
  r.push(bytes, null, bytes.length);
  assert.deepEqual(sink.got, []);
});

function frameDv(fields: Parameters<typeof encodeFrame>[0]): DataView {
  const b = encodeFrame(fields, 144);
  return new DataView(b.buffer, b.byteOffset, b.length);
}

test('message rules: validation reasons per code', () => {
  const why = (f: Parameters<typeof encodeFrame>[0]) => MESSAGES[f.type]!.check(frameDv(f), 0);
  const { ALLOC, FREE, CB_ALLOC, CB_FREE, KERNEL_LOAD, KERNEL_UNLOAD } = MsgType;
  assert.equal(why({ type: ALLOC, deviceId: 1023, size: 1, bufferType: 4 }), null);
  assert.equal(why({ type: ALLOC, deviceId: -1, size: 1 }), 'device_id -1 out of range 0..1023');
  assert.equal(
    why({ type: ALLOC, deviceId: 1024, size: 1 }),
    'device_id 1024 out of range 0..1023',
  );
  assert.equal(why({ type: ALLOC, size: 1, bufferType: 5 }), 'buffer_type 5 is not 0..4');
  assert.equal(why({ type: ALLOC, size: 0 }), 'size 0');
  assert.equal(why({ type: ALLOC, size: 2 ** 48 - 1 }), null);
  assert.equal(why({ type: ALLOC, size: 2 ** 48 }), `size ${2 ** 48} is absurd`);
  assert.equal(why({ type: KERNEL_LOAD, size: 0, bufferType: 2 }), null, 'kernels may be empty');
  assert.equal(why({ type: KERNEL_LOAD, bufferType: 3 }), 'kernel type 3 is not 0..2');
  assert.equal(why({ type: CB_ALLOC, bufferType: 9 }), null, 'a CB has no sub-type');
  assert.equal(why({ type: CB_ALLOC, size: 2 ** 49 }), `size ${2 ** 49} is absurd`);
  for (const type of [FREE, CB_FREE, KERNEL_UNLOAD]) {
    assert.equal(why({ type, deviceId: 5, size: 0, bufferType: 200 }), null);
    assert.equal(why({ type, deviceId: 4096 }), 'device_id 4096 out of range 0..1023');
  }
  assert.equal(refusedCodeReason(MsgType.RESPONSE), 'RESPONSE is a server reply, not a request');
  assert.equal(
    refusedCodeReason(MsgType.DEVICE_INFO_RESPONSE),
    'DEVICE_INFO_RESPONSE is a server reply, not a request',
  );
  assert.equal(refusedCodeReason(13), 'unknown message code 13');
  assert.equal(refusedCodeReason(0), 'unknown message code 0');
});

test('message rules: one per code 1..12, with its action and the fields it reads', () => {
  const actions = new Map<number, number>();
  for (let code = 0; code < 256; code++) {
    const r = MESSAGES[code];
    if (code < 1 || code > 12) {
      assert.equal(r, undefined, `code ${code}`);
      continue;
    }
    assert.equal(r!.code, code);
    actions.set(code, r!.action);
    if (r!.action === Action.EVENT) assert.ok(r!.fields.includes('buffer_id'), r!.name);
    assert.equal(r!.sub, r!.fields.includes('buffer_type'), r!.name);
    assert.equal(r!.sized, r!.fields.includes('size'), r!.name);
  }
  assert.deepEqual(
    [...actions].filter(([, a]) => a === Action.EVENT).map(([c]) => c),
    [1, 2, 8, 9, 10, 11],
  );
  assert.equal(actions.get(MsgType.QUERY), Action.REPLY);
  assert.equal(actions.get(MsgType.DEVICE_INFO_QUERY), Action.REPLY);
  assert.equal(actions.get(MsgType.DUMP_REMAINING), Action.DUMP_BUFFERS);
  assert.equal(actions.get(MsgType.DUMP_KERNELS), Action.DUMP_KERNELS);
  assert.equal(actions.get(MsgType.RESPONSE), Action.SERVER_ONLY);
});

test('the owner: the connection PID, or the frame claim when that is 0', () => {
  const dv = frameDv({ type: MsgType.ALLOC, pid: 4242 });
  assert.equal(ownerOf(77, dv, 0), 77);
  assert.equal(ownerOf(0, dv, 0), 4242);
});
