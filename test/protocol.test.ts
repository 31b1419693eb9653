// The wire protocol through a real server process on a real Unix socket: every message code, all
// three frame sizes at once, reassembly however the bytes arrive, ref counting, and bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeFrame, encodeFrame, type FrameFields } from '../src/protocol/codec.js';
import { BufferType, MsgType, Off, type FrameSize } from '../src/protocol/constants.js';
import { frameTimeMs } from '../src/protocol/messages.js';
import { rawConnect, startServer, type TestServer } from './helpers/server.js';
import {
  Inbox,
  frames,
  linesMatching,
  roundTrip,
  stats,
  waitFrames,
  write,
} from './helpers/wire.js';

const P = process.pid; // a live owner, so dead-PID cleanup rightly leaves these buffers alone
const {
  ALLOC,
  FREE,
  QUERY,
  DUMP_REMAINING,
  DEVICE_INFO_QUERY,
  CB_ALLOC,
  CB_FREE,
  KERNEL_LOAD,
  KERNEL_UNLOAD,
  DUMP_KERNELS,
} = MsgType;
const GiB = 2 ** 30;

interface JsonBuffer {
  device: number;
  address: string;
  size: number;
  type: string;
  pid: number;
  ref_count: number;
}
async function allBuffers(srv: TestServer): Promise<JsonBuffer[]> {
  const r = await srv.client.json<{ buffers: JsonBuffer[] }>('GET', '/v1/report?format=json&all=1');
  return r.buffers;
}

test('every message code 1-12 on a 144-byte connection', async () => {
  const srv = await startServer(['--devices', '2xwormhole_b0']);
  try {
    const s = await rawConnect(srv.socket);
    const inbox = new Inbox(s);
    await write(
      s,
      frames([
        {
          type: ALLOC,
          deviceId: 0,
          size: 4096,
          bufferType: BufferType.DRAM,
          pid: P,
          bufferId: 0x1000,
        },
        {
          type: ALLOC,
          deviceId: 0,
          size: 8192,
          bufferType: BufferType.L1,
          pid: P,
          bufferId: 0x2000,
        },
        {
          type: ALLOC,
          deviceId: 0,
          size: 100,
          bufferType: BufferType.SYSTEM_MEMORY,
          pid: P,
          bufferId: 0x3000,
        },
        {
          type: ALLOC,
          deviceId: 0,
          size: 200,
          bufferType: BufferType.L1_SMALL,
          pid: P,
          bufferId: 0x4000,
        },
        {
          type: ALLOC,
          deviceId: 0,
          size: 300,
          bufferType: BufferType.TRACE,
          pid: P,
          bufferId: 0x5000,
        },
        // Same address on another device is another buffer; a full 64-bit id survives.
        {
          type: ALLOC,
          deviceId: 1,
          size: 1 << 20,
          bufferType: BufferType.DRAM,
          pid: P,
          bufferId: 0x1000,
        },
        {
          type: ALLOC,
          deviceId: 0,
          size: 65536,
          bufferType: BufferType.DRAM,
          pid: P,
          bufferId: 0xdead00001000n,
        },
        { type: FREE, deviceId: 0, pid: P, bufferId: 0x1000 },
        { type: CB_ALLOC, deviceId: 0, size: 1024, pid: P, bufferId: 0x100 },
        { type: KERNEL_LOAD, deviceId: 0, size: 2048, bufferType: 1, pid: P, bufferId: 7 },
        { type: KERNEL_LOAD, deviceId: 1, size: 512, bufferType: 2, pid: P, bufferId: 8 },
        { type: KERNEL_LOAD, deviceId: 1, size: 256, bufferType: 0, pid: P, bufferId: 9 },
        { type: QUERY, deviceId: 0 },
      ]),
    );
    let r = decodeFrame(await inbox.take(144));
    assert.equal(r.type, MsgType.RESPONSE);
    assert.equal(r.deviceId, 0);
    // SYSTEM_MEMORY has always been counted in l1_small_allocated.
    assert.deepEqual(
      [r.dram, r.l1, r.l1Small, r.trace, r.cb, r.kernel],
      [65536, 8192, 300, 300, 1024, 2048],
    );

    const before = srv.output().length;
    await write(s, encodeFrame({ type: DUMP_KERNELS }));
    await srv.waitFor('Total loaded kernels: 3');
    const kernels = srv.output().slice(before);
    assert.match(kernels, /LOADED KERNELS/);
    assert.match(
      kernels,
      new RegExp(
        `Device 0:\\n  Fabric: 1 kernel, 2\\.00 KiB total\\n` +
          `    - Kernel 0x7: 2\\.00 KiB \\(PID ${P}\\)\\n`,
      ),
    );
    assert.match(
      kernels,
      new RegExp(
        `Device 1:\\n  Application: 1 kernel, 256 B total\\n` +
          `    - Kernel 0x9: 256 B \\(PID ${P}\\)\\n` +
          `  Dispatch: 1 kernel, 512 B total\\n`,
      ),
    );

    await write(s, encodeFrame({ type: DUMP_REMAINING }));
    await srv.waitFor('Total remaining buffers: 6');
    const dump = srv.output().slice(before);
    assert.match(
      dump,
      new RegExp(
        `Device 0:\\n  DRAM: 1 buffer, 0\\.065536 MB total\\n` +
          `    - Buffer 0xdead00001000: 64\\.0 KB \\(PID ${P}, ref_count=1\\)\\n`,
      ),
    );
    assert.match(
      dump,
      /Device 1:\n {2}DRAM: 1 buffer, 1\.05 MB total\n {4}- Buffer 0x1000: 1024\.0 KB/,
    );
    assert.doesNotMatch(dump, /Buffer 0x1000: 4\.0 KB/, 'the freed buffer is gone');

    await write(s, encodeFrame({ type: DEVICE_INFO_QUERY, deviceId: -1 }));
    r = decodeFrame(await inbox.take(144));
    assert.equal(r.type, MsgType.DEVICE_INFO_RESPONSE);
    assert.equal(r.deviceId, -1);
    assert.equal(r.numDevices, 2);
    assert.equal(r.isAvailable, 1);

    await write(s, encodeFrame({ type: DEVICE_INFO_QUERY, deviceId: 1 }));
    r = decodeFrame(await inbox.take(144));
    assert.equal(r.type, MsgType.DEVICE_INFO_RESPONSE);
    assert.equal(r.deviceId, 1);
    assert.deepEqual(
      [
        r.isAvailable,
        r.arch,
        r.dramChannels,
        r.dramPerChannel,
        r.l1PerCore,
        r.totalDram,
        r.totalL1,
      ],
      [1, 2, 12, GiB, 1464 * 1024, 12 * GiB, 1464 * 1024 * 64],
    );

    await write(
      s,
      frames([
        { type: CB_FREE, deviceId: 0, size: 1024, pid: P, bufferId: 0x100 },
        { type: KERNEL_UNLOAD, deviceId: 0, size: 2048, pid: P, bufferId: 7 },
        { type: QUERY, deviceId: 0 },
      ]),
    );
    r = decodeFrame(await inbox.take(144));
    assert.deepEqual(
      [r.dram, r.l1, r.l1Small, r.trace, r.cb, r.kernel],
      [65536, 8192, 300, 300, 0, 0],
    );

    const kj = await srv.client.json<{
      kernels: { device: number; kernel_id: string; kernel_type: string }[];
    }>('GET', '/v1/kernels');
    assert.deepEqual(kj.kernels.map((k) => `${k.device}:${k.kernel_id}:${k.kernel_type}`).sort(), [
      '1:0x8:Dispatch',
      '1:0x9:Application',
    ]);

    const st = await stats(srv);
    assert.deepEqual(st.frames.by_type, {
      ALLOC: 7,
      FREE: 1,
      QUERY: 2,
      DUMP_REMAINING: 1,
      DEVICE_INFO_QUERY: 2,
      CB_ALLOC: 1,
      CB_FREE: 1,
      KERNEL_LOAD: 3,
      KERNEL_UNLOAD: 1,
      DUMP_KERNELS: 1,
    });
    assert.equal(st.frames.rejected, 0);
    assert.equal(inbox.buf.length, 0, 'no reply beyond the three asked for');
    s.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('reply/unknown codes, invalid fields: rejected, counted, logged once', async () => {
  const srv = await startServer();
  try {
    const good = await rawConnect(srv.socket);
    const bad = await rawConnect(srv.socket);
    const inbox = new Inbox(bad);
    await write(
      good,
      encodeFrame({
        type: ALLOC,
        deviceId: 0,
        size: 1000,
        bufferType: BufferType.DRAM,
        pid: P,
        bufferId: 0xa000,
      }),
    );
    await write(
      bad,
      frames([
        {
          type: ALLOC,
          deviceId: 0,
          size: 2000,
          bufferType: BufferType.DRAM,
          pid: P,
          bufferId: 0xb000,
        },
        { type: 4 },
        { type: 7 },
        { type: 13 },
        { type: 255 },
        { type: ALLOC, deviceId: -1, size: 64, pid: P, bufferId: 0xb100 },
        { type: ALLOC, deviceId: 5000, size: 64, pid: P, bufferId: 0xb200 },
        { type: ALLOC, deviceId: 0, size: 64, bufferType: 5, pid: P, bufferId: 0xb300 },
        { type: ALLOC, deviceId: 0, size: 0, pid: P, bufferId: 0xb400 },
        { type: KERNEL_LOAD, deviceId: 0, size: 64, bufferType: 3, pid: P, bufferId: 0xb500 },
        { type: FREE, deviceId: -7, pid: P, bufferId: 0xb000 },
        {
          type: ALLOC,
          deviceId: 0,
          size: 3000,
          bufferType: BufferType.DRAM,
          pid: P,
          bufferId: 0xb600,
        },
        { type: QUERY, deviceId: 0 },
      ]),
    );
    // The connection survived its bad frames: it still gets its reply, with exact counters.
    const r = decodeFrame(await inbox.take(144));
    assert.equal(r.dram, 6000);
    await write(good, encodeFrame({ type: FREE, deviceId: 0, pid: P, bufferId: 0xa000 }));
    let st = await waitFrames(srv, 1 + 13 + 1);
    assert.equal(st.frames.rejected, 10);
    assert.equal(st.frames.by_type.ALLOC, 3);
    assert.equal(st.live.buffers, 2);
    assert.deepEqual(
      st.devices.map((d) => d.device),
      [0],
      'no device was created by a rejected frame',
    );
    assert.equal(st.devices[0].bytes.DRAM, 5000);
    const buffers = await allBuffers(srv);
    assert.deepEqual(buffers.map((b) => b.address).sort(), ['0xb000', '0xb600']);

    bad.destroy();
    good.destroy();
    for (;;) {
      // wait for both closes to be processed
      st = await stats(srv);
      if (st.connections.open === 0) break;
      await new Promise((res) => setTimeout(res, 10));
    }
    assert.equal(st.frames.rejected, 10, 'closed connections keep their rejections counted');
    const lines = linesMatching(srv.output(), /reject/);
    assert.equal(lines.length, 1, `one log line for the connection, got:\n${lines.join('\n')}`);
    assert.match(lines[0], /RESPONSE is a server reply/);
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('bytes that are not frames: closed with a logged reason, others unharmed', async () => {
  const srv = await startServer();
  try {
    const good = await rawConnect(srv.socket);
    await write(
      good,
      encodeFrame({
        type: ALLOC,
        deviceId: 0,
        size: 4096,
        bufferType: BufferType.L1,
        pid: P,
        bufferId: 0x10,
      }),
    );

    const http = await rawConnect(srv.socket);
    const closed = new Promise<void>((res) => http.once('close', () => res()));
    http.on('error', () => {});
    http.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await closed;
    await srv.waitFor(
      /closing: stream is not allocation-protocol frames .*"GET \/ HTTP\/1\.1\.\."/,
    );

    // Frames at first, then a run of unknown codes: the stream has lost its framing.
    const drift = await rawConnect(srv.socket);
    drift.on('error', () => {});
    const driftClosed = new Promise<void>((res) => drift.once('close', () => res()));
    drift.write(
      frames([
        { type: ALLOC, deviceId: 0, size: 8192, bufferType: BufferType.L1, pid: P, bufferId: 0x20 },
        ...Array.from({ length: 8 }, () => ({ type: 200 })),
      ]),
    );
    await driftClosed;
    await srv.waitFor(/closing: 8 consecutive frames with unknown codes/);

    await write(
      good,
      encodeFrame({
        type: ALLOC,
        deviceId: 0,
        size: 4096,
        bufferType: BufferType.L1,
        pid: P,
        bufferId: 0x30,
      }),
    );
    const st = await waitFrames(srv, 2 + 1 + 1 + 8);
    assert.equal(st.live.buffers, 3);
    assert.equal(st.devices[0].bytes.L1, 4096 + 8192 + 4096);
    assert.equal(
      st.frames.rejected,
      1 + 8,
      'the HTTP stream counts once, the 8 bad frames once each',
    );
    good.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

/** Sum of a field over frames, for expected counters. */
function allocs(n: number, f: (i: number) => FrameFields): FrameFields[] {
  return Array.from({ length: n }, (_, i) => f(i));
}

test('72-, 112- and 144-byte clients at once, each answered in its size', async () => {
  const srv = await startServer(['--devices', '2xwormhole_b0']);
  try {
    const sizes: FrameSize[] = [72, 112, 144];
    const conns = await Promise.all(sizes.map(() => rawConnect(srv.socket)));
    const inboxes = conns.map((c) => new Inbox(c));
    // Each generation owns one buffer type on device 0; the 144-byte client also has CBs and
    // kernels.
    const types = [BufferType.DRAM, BufferType.L1, BufferType.TRACE];
    const expected = [0, 0, 0];
    let sent = 0;
    for (let i = 0; i < 20; i++) {
      // Interleaved, one frame per write, so that connections are detected while the others run.
      await Promise.all(
        sizes.map((fs, c) => {
          const size = (c + 1) * 1000 + i;
          expected[c] += size;
          return write(
            conns[c],
            encodeFrame(
              {
                type: ALLOC,
                deviceId: 0,
                size,
                bufferType: types[c],
                pid: P,
                bufferId: 0x100000 * (c + 1) + i * 0x100,
              },
              fs,
            ),
          );
        }),
      );
      sent += 3;
    }
    await write(
      conns[2],
      frames([
        { type: CB_ALLOC, deviceId: 0, size: 4096, pid: P, bufferId: 0x500 },
        { type: KERNEL_LOAD, deviceId: 0, size: 8192, bufferType: 2, pid: P, bufferId: 0x42 },
      ]),
    );
    sent += 2;
    await waitFrames(srv, sent);
    for (let c = 0; c < 3; c++)
      await write(conns[c], encodeFrame({ type: QUERY, deviceId: 0 }, sizes[c]));
    const replies = await Promise.all(inboxes.map((ib, c) => ib.take(sizes[c])));
    for (let c = 0; c < 3; c++) {
      const r = decodeFrame(replies[c]);
      assert.equal(r.type, MsgType.RESPONSE, `size ${sizes[c]}`);
      assert.deepEqual(
        [r.dram, r.l1, r.trace, r.l1Small],
        [expected[0], expected[1], expected[2], 0],
        `counters in the ${sizes[c]}-byte reply`,
      );
    }
    const r72 = replies[0];
    assert.equal(r72.length, 72);
    const r112 = decodeFrame(replies[1]);
    assert.deepEqual(
      [r112.arch, r112.totalDram, r112.numDevices, r112.isAvailable],
      [2, 12 * GiB, 2, 1],
    );
    assert.equal(r112.cb, undefined, 'the 112-byte layout has no CB field');
    const r144 = decodeFrame(replies[2]);
    assert.deepEqual([r144.cb, r144.kernel, r144.arch, r144.totalDram], [4096, 8192, 2, 12 * GiB]);
    await roundTrip(srv);
    assert.deepEqual(
      inboxes.map((ib) => ib.buf.length),
      [0, 0, 0],
      'each reply is exactly the size of its request',
    );

    // Fresh connections whose only message is a query: the size comes from the byte count.
    for (const fs of sizes) {
      const q = await rawConnect(srv.socket);
      const ib = new Inbox(q);
      await write(q, encodeFrame({ type: QUERY, deviceId: 0 }, fs));
      const r = decodeFrame(await ib.take(fs));
      assert.deepEqual(
        [r.type, r.dram, r.l1, r.trace],
        [MsgType.RESPONSE, expected[0], expected[1], expected[2]],
      );
      await write(q, encodeFrame({ type: DEVICE_INFO_QUERY, deviceId: 1 }, fs));
      const d = decodeFrame(await ib.take(fs));
      assert.equal(d.type, MsgType.DEVICE_INFO_RESPONSE);
      assert.equal(d.deviceId, 1);
      if (fs !== 72)
        assert.deepEqual(
          [d.arch, d.dramChannels, d.l1PerCore, d.isAvailable],
          [2, 12, 1464 * 1024, 1],
        );
      await roundTrip(srv);
      assert.equal(ib.buf.length, 0, `${fs}-byte reply size`);
      q.destroy();
    }

    // The legacy script: one 72-byte DUMP_REMAINING, then close at once.
    const legacy = await rawConnect(srv.socket);
    legacy.end(encodeFrame({ type: DUMP_REMAINING }, 72));
    await srv.waitFor('Total remaining buffers: 60');
    assert.match(srv.output(), /DRAM: 20 buffers, 0\.02019 MB total/);
    for (const c of conns) c.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('--frame-size 112 forces the size, even if the first frame pauses at 72', async () => {
  const srv = await startServer(['--frame-size', '112']);
  try {
    assert.match(srv.output(), /frame size 112/);
    const s = await rawConnect(srv.socket);
    const ib = new Inbox(s);
    const a = encodeFrame(
      { type: ALLOC, deviceId: 3, size: 777, bufferType: BufferType.L1, pid: P, bufferId: 0x77 },
      112,
    );
    await write(s, a.subarray(0, 72));
    await roundTrip(srv);
    await write(s, a.subarray(72));
    await write(s, encodeFrame({ type: QUERY, deviceId: 3 }, 112));
    const r = decodeFrame(await ib.take(112));
    assert.equal(r.l1, 777);
    await roundTrip(srv);
    assert.equal(ib.buf.length, 0);
    s.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('detection: a first frame pausing at 72 or 112 bytes is applied, not misread', async () => {
  const srv = await startServer();
  try {
    for (const [fs, cut] of [
      [112, 72],
      [144, 72],
      [144, 112],
    ] as [FrameSize, number][]) {
      const s = await rawConnect(srv.socket);
      const ib = new Inbox(s);
      const dev = fs + cut; // one device per case
      const a = encodeFrame(
        {
          type: ALLOC,
          deviceId: dev % 1000,
          size: 4242,
          bufferType: BufferType.DRAM,
          pid: P,
          bufferId: 0x42,
        },
        fs,
      );
      await write(s, a.subarray(0, cut));
      // Quiet on an ambiguous length: the head is applied while the size is still unknown.
      for (let i = 0; ; i++) {
        const st = await stats(srv);
        if (st.devices.find((d) => d.device === dev % 1000)?.bytes.DRAM === 4242) break;
        assert.ok(i < 500, 'the first frame was never applied');
        await new Promise((r) => setTimeout(r, 10));
      }
      await write(s, a.subarray(cut));
      await write(s, encodeFrame({ type: QUERY, deviceId: dev % 1000 }, fs));
      const r = decodeFrame(await ib.take(fs));
      assert.deepEqual(
        [r.type, r.dram],
        [MsgType.RESPONSE, 4242],
        `${fs}-byte frame cut at ${cut}: applied once`,
      );
      await roundTrip(srv);
      assert.equal(ib.buf.length, 0, `${fs}-byte reply`);
      s.destroy();
    }
    assert.equal((await stats(srv)).frames.rejected, 0);
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('frames split at every byte, coalesced, or byte by byte keep the state exact', async () => {
  const srv = await startServer();
  try {
    let total = 0;
    const want = new Map<string, number>(); // "device:address" → size
    const sizes: FrameSize[] = [72, 112, 144];
    for (let c = 0; c < sizes.length; c++) {
      const fs = sizes[c];
      const s = await rawConnect(srv.socket);
      const alloc = (k: number) => {
        const size = 64 * (k + 1);
        want.set(`${c}:0x${(0x1000 * (k + 1)).toString(16)}`, size);
        return encodeFrame(
          {
            type: ALLOC,
            deviceId: c,
            size,
            bufferType: BufferType.DRAM,
            pid: P,
            bufferId: 0x1000 * (k + 1),
          },
          fs,
        );
      };
      await write(s, alloc(0));
      await waitFrames(srv, ++total);
      for (let k = 1; k < fs; k++) {
        const f = alloc(k);
        await write(s, f.subarray(0, k));
        await roundTrip(srv); // the server has read exactly the first k bytes of this frame
        await write(s, f.subarray(k));
      }
      total += fs - 1;
      // Coalesced: every odd buffer freed, plus many more allocated and freed, in one write.
      const batch: FrameFields[] = [];
      for (let k = 1; k < fs; k += 2) {
        batch.push({ type: FREE, deviceId: c, pid: P, bufferId: 0x1000 * (k + 1) });
        want.delete(`${c}:0x${(0x1000 * (k + 1)).toString(16)}`);
      }
      for (let k = 0; k < 500; k++)
        batch.push({
          type: ALLOC,
          deviceId: c,
          size: 8,
          bufferType: BufferType.L1,
          pid: P,
          bufferId: 0x9000000 + k,
        });
      for (let k = 0; k < 500; k++)
        batch.push({ type: FREE, deviceId: c, pid: P, bufferId: 0x9000000 + k });
      await write(s, frames(batch, fs));
      total += batch.length;
      await waitFrames(srv, total);
      s.destroy();
    }

    // One byte per read, through detection and two frames, for the smallest and largest size.
    for (const fs of [72, 144] as FrameSize[]) {
      const s = await rawConnect(srv.socket);
      const dev = fs === 72 ? 5 : 6;
      const bytes = frames(
        [
          {
            type: ALLOC,
            deviceId: dev,
            size: 5000,
            bufferType: BufferType.L1_SMALL,
            pid: P,
            bufferId: 0xabc,
          },
          {
            type: ALLOC,
            deviceId: dev,
            size: 6000,
            bufferType: BufferType.L1_SMALL,
            pid: P,
            bufferId: 0xdef,
          },
        ],
        fs,
      );
      for (let i = 0; i < bytes.length; i++) {
        await write(s, bytes.subarray(i, i + 1));
        await roundTrip(srv);
        // Stay quiet where a lone 72-byte frame could end, until the server has applied its head.
        if (i + 1 === 72) await waitFrames(srv, total + 1);
        if (i + 1 === 112) await new Promise((r) => setTimeout(r, 30));
      }
      want.set(`${dev}:0xabc`, 5000);
      want.set(`${dev}:0xdef`, 6000);
      total += 2;
      s.destroy();
    }

    const st = await waitFrames(srv, total);
    assert.equal(st.frames.rejected, 0);
    const got = new Map((await allBuffers(srv)).map((b) => [`${b.device}:${b.address}`, b.size]));
    assert.deepEqual([...got].sort(), [...want].sort());
    for (const d of st.devices) {
      const sum = [...want]
        .filter(([k]) => k.startsWith(`${d.device}:`))
        .reduce((a, [, v]) => a + v, 0);
      assert.equal(d.bytes.DRAM + d.bytes.L1_SMALL + d.bytes.L1, sum, `device ${d.device} bytes`);
    }
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('ref counts, unknown frees, CB/kernel repeats never inflate or underflow totals', async () => {
  // --trust-client-pid: the per-PID unknown-free count is checked for a second PID claimed over
  // this connection.
  const srv = await startServer(['--trust-client-pid']);
  try {
    const s = await rawConnect(srv.socket);
    const ib = new Inbox(s);
    const query = async (device = 0) => {
      await write(s, encodeFrame({ type: QUERY, deviceId: device }));
      const r = decodeFrame(await ib.take(144));
      return { dram: r.dram, cb: r.cb, kernel: r.kernel };
    };
    const dramAlloc = {
      type: ALLOC,
      deviceId: 0,
      size: 12288,
      bufferType: BufferType.DRAM,
      pid: P,
      bufferId: 0x40000000,
    };
    const dramFree = { type: FREE, deviceId: 0, pid: P, bufferId: 0x40000000 };
    await write(s, frames([dramAlloc, dramAlloc]));
    assert.deepEqual(await query(), { dram: 12288, cb: 0, kernel: 0 });
    let b = await allBuffers(srv);
    assert.deepEqual(
      b.map((x) => [x.address, x.size, x.ref_count]),
      [['0x40000000', 12288, 2]],
    );
    let st = await stats(srv);
    assert.equal(st.devices[0].buffers.DRAM, 1);

    await write(s, encodeFrame(dramFree));
    assert.deepEqual(await query(), { dram: 12288, cb: 0, kernel: 0 });
    b = await allBuffers(srv);
    assert.deepEqual(
      b.map((x) => x.ref_count),
      [1],
    );
    await write(s, encodeFrame(dramFree));
    assert.deepEqual(await query(), { dram: 0, cb: 0, kernel: 0 });
    assert.equal((await allBuffers(srv)).length, 0);

    // Unknown frees: counted per device and per PID, never below zero, never printed per event.
    const other = process.ppid; // a live PID that never allocated anything
    await write(
      s,
      frames([
        dramFree,
        ...allocs(3, (i) => ({ type: FREE, deviceId: 1, pid: other, bufferId: 0x7000 + i })),
      ]),
    );
    assert.deepEqual(await query(), { dram: 0, cb: 0, kernel: 0 });
    st = await stats(srv);
    assert.equal(st.unknown_frees.buffers, 4);
    assert.deepEqual(
      st.devices.map((d) => [d.device, d.unknown_frees]),
      [
        [0, 1],
        [1, 3],
      ],
    );
    assert.equal(st.devices[1].bytes.DRAM, 0);
    const procs = await srv.client.json<{ processes: { pid: number; unknown_frees: number }[] }>(
      'GET',
      '/v1/processes',
    );
    assert.equal(
      procs.processes.find((p) => p.pid === other)?.unknown_frees,
      3,
      'unknown frees are counted per PID',
    );
    assert.equal(procs.processes.find((p) => p.pid === P)?.unknown_frees, 1);

    // CB_ALLOC repeated while the CB lives, KERNEL_LOAD repeated on every dispatch.
    const cb = { type: CB_ALLOC, deviceId: 0, size: 1024, pid: P, bufferId: 0x300 };
    const kl = {
      type: KERNEL_LOAD,
      deviceId: 0,
      size: 2048,
      bufferType: 0,
      pid: P,
      bufferId: 0x55,
    };
    await write(s, frames([cb, cb, cb, cb, cb, kl, kl, kl, kl]));
    assert.deepEqual(await query(), { dram: 0, cb: 1024, kernel: 2048 });
    st = await stats(srv);
    assert.deepEqual(
      [st.devices[0].cbs, st.devices[0].kernels, st.live.cbs, st.live.kernels],
      [1, 1, 1, 1],
    );
    const cbFree = { type: CB_FREE, deviceId: 0, size: 1024, pid: P, bufferId: 0x300 };
    const ku = { type: KERNEL_UNLOAD, deviceId: 0, size: 2048, pid: P, bufferId: 0x55 };
    await write(s, frames([cbFree, cbFree, cbFree, ku, ku, ku]));
    assert.deepEqual(await query(), { dram: 0, cb: 0, kernel: 0 });
    // And after the underflow attempts, a new load counts from zero, not from below it.
    await write(s, frames([cb, kl]));
    assert.deepEqual(await query(), { dram: 0, cb: 1024, kernel: 2048 });
    st = await stats(srv);
    assert.deepEqual(st.unknown_frees, { buffers: 4, cbs: 2, kernels: 2 });
    assert.deepEqual(
      [
        st.devices[0].bytes.CB,
        st.devices[0].bytes.KERNEL,
        st.devices[0].cbs,
        st.devices[0].kernels,
      ],
      [1024, 2048, 1, 1],
    );
    assert.equal(
      linesMatching(srv.output(), /FREE|0x7000|0x40000000/).length,
      0,
      'no per-event output by default',
    );
    s.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('frameTimeMs: the frame timestamp in whole ms, exactly, though ns do not fit a double', () => {
  const dv = new DataView(new ArrayBuffer(40));
  for (const [ns, ms] of [
    [0n, 0],
    [1796150000123_999_999n, 1796150000123],
    [1796150000124_000_000n, 1796150000124],
    [(1n << 64n) - 1n, 18446744073709],
  ] as const) {
    dv.setBigUint64(Off.timestamp, ns, true);
    assert.equal(frameTimeMs(dv, 0), ms, String(ns));
  }
});

test('a connection stopped mid-frame is closed with its reason; others go on', async () => {
  const srv = await startServer(['--partial-frame-timeout', '0.5']);
  try {
    const ok = await rawConnect(srv.socket);
    ok.write(encodeFrame({ type: MsgType.ALLOC, size: 4096, bufferId: 0x1000 }, 144));
    // realtime_monitor.py's request: 24 bytes (BxxxIQQ, type 2), then it waits for an answer
    const monitor = await rawConnect(srv.socket);
    const closed = new Promise<string>((r) => monitor.once('close', () => r('closed')));
    const req = Buffer.alloc(24);
    req[0] = 2;
    monitor.write(req);
    const bound = new Promise<string>((r) => setTimeout(() => r('still open after 20 s'), 20_000));
    assert.equal(await Promise.race([closed, bound]), 'closed');
    await srv.waitFor(/closing: stopped in the middle of a frame for \d+\.\d s \(24 of /);
    const rep = await srv.client.text('GET', '/v1/report');
    assert.match(rep, /Buffer 0x1000: 4\.0 KB/, 'the other connection was not touched');
    assert.equal(ok.destroyed, false);
    ok.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});
