import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFrame } from '../src/protocol/codec.js';
import { MsgType, BufferType } from '../src/protocol/constants.js';
import { rawConnect, runCli, sendAndSettle, startServer } from './helpers/server.js';

test('a 144-byte client allocates; dump lists it for the asker and on the server', async () => {
  const srv = await startServer();
  try {
    const s = await rawConnect(srv.socket);
    await sendAndSettle(
      s,
      encodeFrame({
        type: MsgType.ALLOC,
        deviceId: 0,
        size: 12288,
        bufferType: BufferType.DRAM,
        pid: process.pid,
        bufferId: 0x40000000,
      }),
      srv,
    );
    const r = await runCli(['dump', '--socket', srv.socket]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /- Buffer 0x40000000: 12\.0 KB \(PID \d+, ref_count=1\)/);
    await srv.waitFor('Total remaining buffers: 1');
    s.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});
