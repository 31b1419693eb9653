// Wire reply encoding (protocol/replies.ts) without a server: RESPONSE and DEVICE_INFO_RESPONSE
// at every frame size, filled from usage numbers and device facts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeReply, type ReplyRequest, type WireDevice } from '../src/protocol/replies.js';
import { readU64 } from '../src/protocol/codec.js';
import { LAYOUT_112, LAYOUT_144, MsgType, Off } from '../src/protocol/constants.js';

const GiB = 1 << 30;
const BLACKHOLE: WireDevice = {
  arch: 3,
  dramChannels: 8,
  dramPerChannel: 4 * GiB,
  l1PerCore: 1536 * 1024,
  totalDramBytes: 32 * GiB,
  totalL1Bytes: 140 * 1536 * 1024,
};
const USAGE = {
  dram: 5 * 2 ** 32 + 7,
  l1: 1024,
  l1Small: 96,
  trace: 4096,
  cb: 2 ** 33 + 1,
  kernel: 640,
};

function reply(size: number, r: Partial<ReplyRequest>): DataView {
  const dv = new DataView(new ArrayBuffer(size));
  encodeReply(dv, { query: true, device: 0, knownDevices: [0], info: null, usage: null, ...r });
  return dv;
}

test('RESPONSE at 72 bytes: type, device and the four usage counters, nothing else', () => {
  const dv = reply(72, { device: 2, knownDevices: [0, 2], usage: USAGE });
  assert.equal(dv.getUint8(Off.type), MsgType.RESPONSE);
  assert.equal(dv.getInt32(Off.deviceId, true), 2);
  assert.equal(readU64(dv, Off.dram), USAGE.dram);
  assert.equal(readU64(dv, Off.l1), USAGE.l1);
  assert.equal(readU64(dv, Off.l1Small), USAGE.l1Small);
  assert.equal(readU64(dv, Off.trace), USAGE.trace);
  for (let i = 8; i < Off.dram; i++) assert.equal(dv.getUint8(i), 0, `byte ${i}`);
});

test('RESPONSE at 144 bytes carries CB and kernel bytes and the device info', () => {
  const dv = reply(144, { device: 1, knownDevices: [0, 1], info: BLACKHOLE, usage: USAGE });
  const L = LAYOUT_144;
  assert.equal(readU64(dv, L.cb), USAGE.cb);
  assert.equal(readU64(dv, L.kernel), USAGE.kernel);
  assert.equal(dv.getUint32(L.numDevices, true), 2);
  assert.equal(dv.getUint32(L.isAvailable, true), 1);
  assert.equal(dv.getUint32(L.arch, true), 3);
  assert.equal(dv.getUint32(L.dramChannels, true), 8);
  // 4 GiB does not fit the 32-bit field: saturated; the total is exact.
  assert.equal(dv.getUint32(L.dramPerChannel, true), 0xffffffff);
  assert.equal(readU64(dv, L.totalDram), 32 * GiB);
  assert.equal(readU64(dv, L.totalL1), BLACKHOLE.totalL1Bytes);
});

test('RESPONSE at 112 bytes has no CB/kernel fields: the device info starts at 72', () => {
  const dv = reply(112, { info: BLACKHOLE, usage: USAGE });
  assert.equal(readU64(dv, LAYOUT_112.totalDram), 32 * GiB);
  assert.equal(dv.getUint32(LAYOUT_112.numDevices, true), 1);
  assert.equal(readU64(dv, Off.trace), USAGE.trace);
});

test('DEVICE_INFO_RESPONSE: no usage, even when usage is given', () => {
  const dv = reply(144, { query: false, info: BLACKHOLE, usage: USAGE });
  assert.equal(dv.getUint8(Off.type), MsgType.DEVICE_INFO_RESPONSE);
  assert.equal(readU64(dv, Off.dram), 0);
  assert.equal(readU64(dv, LAYOUT_144.cb), 0);
  assert.equal(dv.getUint32(LAYOUT_144.arch, true), 3);
});

test('a device of unknown capacity is counted, but its reply has no facts (not 0 B)', () => {
  const L = LAYOUT_144;
  const seen = reply(144, { query: false, device: 4, knownDevices: [0, 4] });
  assert.equal(seen.getUint32(L.numDevices, true), 2, 'the reported device is counted');
  assert.equal(seen.getUint32(L.isAvailable, true), 0, 'no capacity: no facts, not 0 B');
  assert.equal(seen.getUint32(L.arch, true), 0);
  assert.equal(readU64(seen, L.totalDram), 0);
  const unknown = reply(144, { query: false, device: 5, knownDevices: [0, 4] });
  assert.equal(unknown.getUint32(L.isAvailable, true), 0);
  // A declared architecture without capacities (Quasar's table row is empty) says its arch only.
  const quasar = { ...BLACKHOLE, arch: 4, dramChannels: 0, totalDramBytes: 0, totalL1Bytes: 0 };
  const q = reply(112, { query: false, device: 0, knownDevices: [0], info: quasar });
  assert.deepEqual(
    [q.getUint32(LAYOUT_112.isAvailable, true), q.getUint32(LAYOUT_112.arch, true)],
    [0, 4],
  );
  assert.equal(readU64(q, LAYOUT_112.totalL1), 0);
  assert.equal(q.getUint32(LAYOUT_112.l1PerCore, true), 0);
});

test('device -1 asks for the count only', () => {
  const none = reply(112, { query: false, device: -1, knownDevices: [] });
  assert.equal(none.getInt32(Off.deviceId, true), -1);
  assert.equal(none.getUint32(LAYOUT_112.numDevices, true), 0);
  assert.equal(none.getUint32(LAYOUT_112.isAvailable, true), 0);
  const three = reply(112, { query: false, device: -1, knownDevices: [0, 1, 2], info: BLACKHOLE });
  assert.equal(three.getUint32(LAYOUT_112.numDevices, true), 3);
  assert.equal(three.getUint32(LAYOUT_112.isAvailable, true), 1);
  assert.equal(three.getUint32(LAYOUT_112.arch, true), 0, 'no device facts for -1');
});

test('a 72-byte DEVICE_INFO_RESPONSE is type and device only', () => {
  const dv = reply(72, { query: false, device: 3, info: BLACKHOLE });
  const bytes = new Uint8Array(dv.buffer);
  const nonZero = [...bytes.keys()].filter((i) => bytes[i] !== 0);
  assert.deepEqual(nonZero, [Off.type, Off.deviceId]);
});
