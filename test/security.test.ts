// Who can reach the server: owner-only sockets, no replacing paths that are not ours, and no
// state change through the TCP listener. Real server processes, real sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync, symlinkSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { encodeFrame } from '../src/protocol/codec.js';
import { BufferType, MsgType } from '../src/protocol/constants.js';
import { rawConnect, runCli, sendAndSettle, startServer, tempDir } from './helpers/server.js';

test('data and control sockets are owner-only even under a permissive umask', async () => {
  const old = process.umask(0);
  try {
    const srv = await startServer();
    try {
      assert.equal(statSync(srv.socket).mode & 0o777, 0o600);
      assert.equal(statSync(srv.socket + '.ctl').mode & 0o777, 0o600);
    } finally {
      assert.equal(await srv.stop(), 0);
    }
  } finally {
    process.umask(old);
  }
});

test('a symlink or a regular file at the socket path is never followed or replaced', async () => {
  const dir = tempDir();
  try {
    const target = join(dir, 'precious');
    writeFileSync(target, 'keep me');
    for (const [name, make] of [
      ['link.sock', (p: string) => symlinkSync(target, p)],
      ['file.sock', (p: string) => writeFileSync(p, 'x')],
    ] as const) {
      const p = join(dir, name);
      make(p);
      const r = await runCli(['server', '--socket', p, '--stats-interval', '0']);
      assert.notEqual(r.code, 0, `server started on ${name}`);
      assert.match(r.stderr + r.stdout, /not a socket; refusing to replace it/);
    }
    assert.equal(readFileSync(target, 'utf8'), 'keep me');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the --http listener binds loopback by default, refuses state-changing routes', async () => {
  const srv = await startServer(['--http', '0']);
  try {
    const url = /dashboard on (http:\/\/\S+\/)/.exec(srv.output())![1]!;
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const s = await rawConnect(srv.socket);
    await sendAndSettle(
      s,
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
    for (const [path, body] of [
      ['v1/reset', { confirm: true }],
      ['v1/shutdown', {}],
      ['v1/dump', {}],
    ] as const) {
      const res = await fetch(url + path, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      assert.equal(res.status, 403, `${path} answered ${res.status} over TCP`);
    }
    const st = await srv.client.json<{ live: { buffers: number } }>('GET', '/v1/stats');
    assert.equal(st.live.buffers, 1, 'state changed through the TCP listener');
    assert.equal(srv.proc.exitCode, null);
    s.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('--group shares both sockets (0660) with the group; unknown groups are errors', async () => {
  const gid = process.getgid!();
  const name =
    readFileSync('/etc/group', 'utf8')
      .split('\n')
      .map((l) => l.split(':'))
      .find((f) => f[2] === String(gid))?.[0] ?? String(gid);
  const srv = await startServer(['--group', name]);
  try {
    for (const p of [srv.socket, srv.socket + '.ctl']) {
      const st = statSync(p);
      assert.equal(st.mode & 0o777, 0o660, p);
      assert.equal(st.gid, gid, p);
    }
    // the server is past start-up (signal handlers installed)
    await srv.client.json('GET', '/v1/health');
  } finally {
    assert.equal(await srv.stop(), 0);
  }
  const dir = tempDir();
  try {
    const sock = join(dir, 'g.sock');
    const r = await runCli(['server', '--socket', sock, '--group', 'no-such-group-ttalloc']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr + r.stdout, /--group no-such-group-ttalloc: no such group/);
    assert.throws(() => statSync(sock), 'a socket was left behind');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
