// Connection limits over real sockets: refusals are logged, bounded, and harmless to the others.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { encodeFrame } from '../src/protocol/codec.js';
import { BufferType, MsgType } from '../src/protocol/constants.js';
import { rawConnect, sendAndSettle, startServer } from './helpers/server.js';

function closed(s: Socket): Promise<void> {
  return new Promise((r) => { if (s.destroyed) r(); else s.once('close', () => r()); s.resume(); });
}

test('--max-connections: hundreds of extra connections are refused with a log line; the open ones keep working', async () => {
  const srv = await startServer(['--max-connections', '20']);
  try {
    const kept: Socket[] = [];
    for (let i = 0; i < 20; i++) kept.push(await rawConnect(srv.socket));
    // Every connection beyond the limit is closed by the server.
    const extra = await Promise.all(Array.from({ length: 300 }, () => rawConnect(srv.socket).catch(() => null)));
    await Promise.all(extra.map((s) => (s ? closed(s) : undefined)));
    await srv.waitFor(/refusing data connection: 20 open, the limit \(--max-connections\)/);
    // Refusals are not printed one by one.
    assert.ok((srv.output().match(/refusing data connection/g) ?? []).length <= 1, srv.output());

    // One of the open ones holds half a frame and goes silent; another still gets its state applied.
    kept[1]!.write(encodeFrame({ type: MsgType.ALLOC, deviceId: 0, size: 64, pid: process.pid, bufferId: 1 }).subarray(0, 50));
    await sendAndSettle(kept[0]!, encodeFrame({ type: MsgType.ALLOC, deviceId: 0, size: 4096, bufferType: BufferType.DRAM, pid: process.pid, bufferId: 0x1000 }), srv);
    const st = await srv.client.json<{ live: { buffers: number }; connections: { open: number } }>('GET', '/v1/stats');
    assert.equal(st.live.buffers, 1);
    assert.equal(st.connections.open, 20);

    // Freed slots are usable again.
    kept.pop()!.destroy();
    for (let i = 0; i < 200 && (await srv.client.json<{ connections: { open: number } }>('GET', '/v1/stats')).connections.open !== 19; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const again = await rawConnect(srv.socket);
    await sendAndSettle(again, encodeFrame({ type: MsgType.ALLOC, deviceId: 0, size: 4096, bufferType: BufferType.DRAM, pid: process.pid, bufferId: 0x2000 }), srv);
    assert.equal((await srv.client.json<{ live: { buffers: number } }>('GET', '/v1/stats')).live.buffers, 2);
    for (const s of [...kept, again]) s.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});
