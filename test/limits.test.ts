// Connection limits over real sockets: refusals are logged, bounded, and harmless to the others.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { encodeFrame } from '../src/protocol/codec.js';
import { BufferType, MsgType } from '../src/protocol/constants.js';
import { rawConnect, sendAndSettle, startServer } from './helpers/server.js';

function closed(s: Socket): Promise<void> {
  return new Promise((r) => {
    if (s.destroyed) r();
    else s.once('close', () => r());
    s.resume();
  });
}

test('--max-connections: extras refused with a log line; the open ones keep working', async () => {
  const srv = await startServer(['--max-connections', '20']);
  try {
    const kept: Socket[] = [];
    for (let i = 0; i < 20; i++) kept.push(await rawConnect(srv.socket));
    // Every connection beyond the limit is closed by the server.
    const extra = await Promise.all(
      Array.from({ length: 300 }, () => rawConnect(srv.socket).catch(() => null)),
    );
    await Promise.all(extra.map((s) => (s ? closed(s) : undefined)));
    await srv.waitFor(/refusing data connection: 20 open, the limit \(--max-connections\)/);
    // Refusals are not printed one by one.
    assert.ok((srv.output().match(/refusing data connection/g) ?? []).length <= 1, srv.output());

    // One of the open ones holds half a frame and goes silent; another still gets its state
    // applied.
    kept[1]!.write(
      encodeFrame({
        type: MsgType.ALLOC,
        deviceId: 0,
        size: 64,
        pid: process.pid,
        bufferId: 1,
      }).subarray(0, 50),
    );
    await sendAndSettle(
      kept[0]!,
      encodeFrame({
        type: MsgType.ALLOC,
        deviceId: 0,
        size: 4096,
        bufferType: BufferType.DRAM,
        pid: process.pid,
        bufferId: 0x1000,
      }),
      srv,
    );
    const st = await srv.client.json<{
      live: { buffers: number };
      connections: { open: number };
    }>('GET', '/v1/stats');
    assert.equal(st.live.buffers, 1);
    assert.equal(st.connections.open, 20);

    // Freed slots are usable again.
    kept.pop()!.destroy();
    for (
      let i = 0;
      i < 200 &&
      (await srv.client.json<{ connections: { open: number } }>('GET', '/v1/stats')).connections
        .open !== 19;
      i++
    ) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const again = await rawConnect(srv.socket);
    await sendAndSettle(
      again,
      encodeFrame({
        type: MsgType.ALLOC,
        deviceId: 0,
        size: 4096,
        bufferType: BufferType.DRAM,
        pid: process.pid,
        bufferId: 0x2000,
      }),
      srv,
    );
    assert.equal(
      (await srv.client.json<{ live: { buffers: number } }>('GET', '/v1/stats')).live.buffers,
      2,
    );
    for (const s of [...kept, again]) s.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('a control client not reading a big JSON dump never stalls ingest for others', async () => {
  const { request } = await import('node:http');
  const srv = await startServer(['--reap-interval', '0']);
  try {
    const N = 100_000,
      FS = 144;
    const bulk = Buffer.alloc(N * FS);
    for (let i = 0; i < N; i++) {
      encodeFrame({
        type: MsgType.ALLOC,
        deviceId: i & 7,
        size: 4096,
        bufferType: BufferType.DRAM,
        pid: process.pid,
        bufferId: 0x10000000 + i * 4096,
      }).copy(bulk, i * FS);
    }
    const loader = await rawConnect(srv.socket);
    await sendAndSettle(loader, bulk, srv);
    // Read the first bytes of the full dump, then stop reading with the connection open.
    let got = 0;
    const req = request({
      socketPath: srv.socket + '.ctl',
      path: '/v1/report?format=json&all=1',
    });
    const res = await new Promise<import('node:http').IncomingMessage>((r, j) => {
      req.once('response', r);
      req.once('error', j);
      req.end();
    });
    await new Promise<void>((r) =>
      res.once('data', (d: Buffer) => {
        got += d.length;
        r();
      }),
    );
    res.pause();
    // Another client's frames are still applied while the dump is stuck.
    const other = await rawConnect(srv.socket);
    await sendAndSettle(
      other,
      encodeFrame({
        type: MsgType.ALLOC,
        deviceId: 0,
        size: 64,
        bufferType: BufferType.L1,
        pid: process.pid,
        bufferId: 0x1,
      }),
      srv,
    );
    const st = await srv.client.json<{ live: { buffers: number }; streaming_dumps: number }>(
      'GET',
      '/v1/stats',
    );
    assert.equal(st.live.buffers, N + 1);
    assert.equal(st.streaming_dumps, 1);
    assert.ok(got > 0 && got < N * 100, `the stuck reader got ${got} bytes`);
    // It hangs up mid-dump: the server lets go of the dump (and its copy of the table).
    res.destroy();
    req.destroy();
    let streaming = 1;
    for (let i = 0; i < 200 && streaming !== 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
      streaming = (await srv.client.json<{ streaming_dumps: number }>('GET', '/v1/stats'))
        .streaming_dumps;
    }
    assert.equal(streaming, 0, 'the abandoned dump ended');
    loader.destroy();
    other.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('a QUERY flooder that never reads replies is closed; others are still served', async () => {
  const srv = await startServer(['--reap-interval', '0']);
  try {
    const flood = await rawConnect(srv.socket);
    flood.pause(); // never reads
    const q = encodeFrame({ type: MsgType.QUERY, deviceId: 0 });
    const burst = Buffer.concat(Array.from({ length: 10_000 }, () => q));
    let wrote = 0;
    flood.on('error', () => {
      /* the server closes it */
    });
    for (let i = 0; i < 100 && !flood.destroyed; i++) {
      flood.write(burst);
      wrote += burst.length;
      await new Promise((r) => setTimeout(r, 5));
    }
    await srv.waitFor(/closing: it does not read its replies \(\d+ bytes unread\)/);
    const other = await rawConnect(srv.socket);
    await sendAndSettle(
      other,
      encodeFrame({
        type: MsgType.ALLOC,
        deviceId: 1,
        size: 4096,
        bufferType: BufferType.L1,
        pid: process.pid,
        bufferId: 0x3000,
      }),
      srv,
    );
    const st = await srv.client.json<{ live: { buffers: number }; memory: { rss_bytes: number } }>(
      'GET',
      '/v1/stats',
    );
    assert.equal(st.live.buffers, 1, 'another client is served');
    assert.ok(
      st.memory.rss_bytes < 400 * 2 ** 20,
      `RSS stays bounded (${st.memory.rss_bytes} bytes after ${wrote} bytes of QUERYs)`,
    );
    other.destroy();
    flood.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});
