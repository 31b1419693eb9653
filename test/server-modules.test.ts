// The server's parts without sockets: configuration defaults, the connection limit, the dead-owner
// sweep and its log lines, and --log-events lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { DEFAULTS, resolveConfig } from '../src/server/config.js';
import { Connections } from '../src/server/connections.js';
import { Reaper, reapedLine } from '../src/server/reaping.js';
import { ProcessRegistry } from '../src/server/process-registry.js';
import { formatEventLine } from '../src/server/event-log.js';
import type { DataConnection } from '../src/server/data-connection.js';
import { encodeFrame } from '../src/protocol/codec.js';
import { BufferType, MsgType } from '../src/protocol/constants.js';
import { Tracker, type ReapedReport } from '../src/state/tracker.js';

test('resolveConfig: every default from DEFAULTS; an undefined option never overrides one', () => {
  const c = resolveConfig({ socketPath: '/tmp/x.sock', reapIntervalMs: undefined, quiet: true });
  assert.equal(c.reapIntervalMs, 5000);
  assert.equal(c.statsIntervalMs, 10000);
  assert.equal(c.detectQuietMs, 5);
  assert.equal(c.flushIntervalMs, 100);
  assert.equal(c.compactBytes, 256 << 20);
  assert.equal(c.maxConnections, 4096);
  assert.equal(c.maxUnreadReplyBytes, DEFAULTS.maxUnreadReplyBytes);
  assert.equal(c.controlPath, '/tmp/x.sock.ctl');
  assert.equal(c.quiet, true);
  assert.equal(c.logEvents, false);
  assert.equal(c.stateDir, undefined, 'the default directory is chosen by persistence');
  const d = resolveConfig({ socketPath: '/s', reapIntervalMs: 0, stateDir: false, frameSize: 72 });
  assert.equal(d.reapIntervalMs, 0, 'zero turns the sweep off: it is not a missing value');
  assert.equal(d.stateDir, false);
  assert.equal(d.frameSize, 72);
});

function fakeConn(over: Partial<DataConnection>): DataConnection {
  return { ownBuffer: true, ownerPid: 0, claimedPid: 0, rejected: 0, ...over } as DataConnection;
}

test('connections: the limit refuses and logs the first and every 1000th refusal', () => {
  const logged: string[] = [];
  const cs = new Connections(2, (m) => logged.push(m));
  let destroyed = 0;
  const sock = { destroy: () => void destroyed++ } as unknown as Socket;
  cs.add(fakeConn({}));
  assert.equal(cs.admits(sock), true);
  cs.add(fakeConn({ ownBuffer: false }));
  for (let i = 0; i < 1001; i++) assert.equal(cs.admits(sock), false);
  assert.equal(destroyed, 1001);
  assert.equal(cs.refused, 1001);
  assert.equal(logged.length, 2);
  assert.match(logged[0], /2 open, the limit \(--max-connections\); 1 refused so far/);
  assert.equal(cs.total, 2);
  assert.equal(cs.perReadBuffer, 1);
});

test('connections: claimed PIDs and rejected frames outlive the connection', () => {
  const cs = new Connections(10, () => {});
  const a = fakeConn({ ownerPid: 100, claimedPid: 7, rejected: 2 });
  const b = fakeConn({ ownerPid: 200, claimedPid: 200, rejected: 1 });
  cs.add(a);
  cs.add(b);
  assert.deepEqual([...cs.claimedPids()], [[100, 7]]);
  assert.equal(cs.rejectedFrames(), 3);
  cs.closed(a);
  assert.equal(cs.size, 1);
  assert.deepEqual([...cs.claimedPids()], [[100, 7]], 'kept while PID 100 owns something');
  assert.equal(cs.rejectedFrames(), 3);
  cs.forgetClaims(new Set([200]));
  assert.deepEqual([...cs.claimedPids()], []);
});

test('reaper: releases dead owners, persists the PIDs, one line per PID', () => {
  const tr = new Tracker();
  tr.alloc({
    device: 0,
    lo: 0x1000,
    hi: 0,
    size: 4096,
    sub: BufferType.DRAM,
    owner: 111,
    bornMs: 1,
  });
  tr.alloc({ device: 0, lo: 0x2000, hi: 0, size: 2048, sub: BufferType.L1, owner: 222, bornMs: 1 });
  const persisted: number[][] = [];
  const logged: string[] = [];
  let swept = 0;
  const reaper = new Reaper({
    tracker: tr,
    registry: new ProcessRegistry({ isAlive: (pid) => pid === 222 }),
    persist: (exited) => void persisted.push(exited.map((p) => p.pid)),
    afterSweep: () => void swept++,
    log: (m) => logged.push(m),
  });
  const reports = reaper.reapDead();
  assert.deepEqual(
    reports.map((r) => r.pid),
    [111],
  );
  assert.deepEqual(persisted, [[111]]);
  assert.deepEqual(logged, ['process 111 is gone: released 1 buffer (4.00 KiB)']);
  assert.equal(swept, 1);
  assert.equal(tr.buffers.count, 1);
  assert.deepEqual(reaper.reapDead(), []);
  assert.equal(persisted.length, 1, 'nothing to persist when nobody died');
});

test('reapedLine: plurals, and CBs and kernels only when there were some', () => {
  const r = { pid: 9, buffers: 2, bytes: 3 << 20, cbs: 1, cbBytes: 65536 } as ReapedReport;
  assert.equal(
    reapedLine({ ...r, kernels: 3, kernelBytes: 3072 }),
    'process 9 is gone: released 2 buffers (3.00 MiB), 1 CB (64.0 KiB), 3 kernels (3.00 KiB)',
  );
  assert.equal(
    reapedLine({ ...r, cbs: 0, kernels: 0, kernelBytes: 0 }),
    'process 9 is gone: released 2 buffers (3.00 MiB)',
  );
});

test('formatEventLine: names, hex id, kernel types for KERNEL_LOAD', () => {
  const f = encodeFrame({
    type: MsgType.ALLOC,
    deviceId: 1,
    size: 4096,
    bufferType: BufferType.L1,
    pid: 42,
    bufferId: 0xabc,
  });
  const dv = new DataView(f.buffer, f.byteOffset, f.length);
  assert.equal(
    formatEventLine(dv, 0, 'connection #3'),
    '[event] ALLOC device=1 pid=42 id=0xabc size=4096 type=L1 (connection #3)\n',
  );
  const k = encodeFrame({ type: MsgType.KERNEL_LOAD, size: 8, bufferType: 99, bufferId: 1 });
  const line = formatEventLine(new DataView(k.buffer, k.byteOffset, k.length), 0, 'c');
  assert.match(line, /^\[event\] KERNEL_LOAD device=0 pid=0 id=0x1 size=8 type=99 \(c\)\n$/);
});
