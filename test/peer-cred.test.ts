// Peer credentials from the kernel (SO_PEERCRED, the addon in native/): buffers belong to the
// connecting process, not to the PID its frames claim; the claim is kept for display; other users
// are refused unless allowed; without the addon the server still works and says so.
// Real server processes, real sockets, real client processes (some running as other users).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ControlClient } from '../src/client/control-client.js';
import { encodeFrame, type FrameFields } from '../src/protocol/codec.js';
import { BufferType, MsgType } from '../src/protocol/constants.js';
import { peerCredSource } from '../src/server/peer-cred.js';
import {
  CLI,
  rawConnect,
  runCli,
  serverAt,
  startServer,
  tempDir,
  type TestServer,
} from './helpers/server.js';
import { linesMatching, stats, waitFrames, write } from './helpers/wire.js';

const addon = peerCredSource();
// On CI the addon must have been built by `npm ci`: a missing one fails here instead of skipping.
const needsAddon =
  addon.available || process.env.CI
    ? {}
    : { skip: `addon not built here (${addon.available ? '' : addon.reason})` };
const asRoot =
  process.getuid?.() === 0 ? needsAddon : { skip: 'needs root to run processes as other users' };
const NOBODY = 65534;

const children = new Set<ChildProcess>();
const dirs: string[] = [];
after(() => {
  for (const c of children) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/**
 * A real client process (as another user with `uid`/`gid`). Modes:
 * - `send HEX`: connects, sends the bytes, prints "sent", stays until killed (prints "closed" if
 * the server closes it);
 * - `many N HEX`: N connections one after another, each sending the bytes; prints "closed N" once
 * the server closed them all;
 * - `http PATH`: one control-API request; prints "status CODE" or "error CODE".
 */
const CHILD = `
const net = require('node:net'), http = require('node:http');
const [sock, mode, a, b] = process.argv.slice(1);
if (mode === 'send') {
  const s = net.connect(sock, () => s.write(Buffer.from(a, 'hex'), () => console.log('sent')));
  s.on('error', (e) => console.log('error ' + e.code));
  s.on('close', () => console.log('closed'));
  setInterval(() => {}, 1000);
} else if (mode === 'many') {
  let closed = 0;
  const one = () => {
    const s = net.connect(sock, () => s.write(Buffer.from(b, 'hex')));
    s.on('error', () => {});
    s.on('close', () => {
      if (++closed !== Number(a)) return one();
      console.log('closed ' + closed);
      process.exit(0);
    });
  };
  one();
} else {
  http.get({ socketPath: sock, path: a }, (res) => {
    console.log('status ' + res.statusCode);
    process.exit(0);
  })
    .on('error', (e) => { console.log('error ' + e.code); process.exit(0); });
}
`;

interface Peer {
  child: ChildProcess;
  pid: number;
  lines: string[];
  waitLine(re: RegExp, timeoutMs?: number): Promise<string>;
}

function peer(socket: string, args: string[], o: { uid?: number; gid?: number } = {}): Peer {
  const child = spawn(process.execPath, ['-e', CHILD, socket, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    cwd: '/',
    uid: o.uid,
    gid: o.gid,
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    lines.push(l);
    for (const w of waiters) w();
  });
  return {
    child,
    pid: child.pid!,
    lines,
    waitLine(re, timeoutMs = 10000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const l = lines.find((x) => re.test(x));
          if (l !== undefined) {
            clearTimeout(t);
            resolve(l);
            return true;
          }
          return false;
        };
        const t = setTimeout(
          () =>
            reject(
              new Error(
                `client ${child.pid}: no line matching ${re} (got ${JSON.stringify(lines)})`,
              ),
            ),
          timeoutMs,
        );
        if (!check()) waiters.push(check);
      });
    },
  };
}

const hex = (list: FrameFields[]) => Buffer.concat(list.map((f) => encodeFrame(f))).toString('hex');
const alloc = (bufferId: number, size: number, pid: number, deviceId = 0): FrameFields => ({
  type: MsgType.ALLOC,
  deviceId,
  size,
  bufferType: BufferType.DRAM,
  pid,
  bufferId,
});
const exited = (c: ChildProcess) =>
  new Promise<void>((r) =>
    c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r()),
  );

interface Row {
  pid: number;
  address: string;
  size: number;
}
const buffers = async (srv: TestServer, query = '') =>
  (
    await srv.client.json<{ buffers: Row[] }>('GET', `/v1/report?format=json&all=1${query}`)
  ).buffers.map((b) => [b.address, b.pid]);
const processes = async (srv: TestServer) =>
  (
    await srv.client.json<{
      processes: { pid: number; claimed_pid?: number; unknown_frees: number; buffers: number }[];
    }>('GET', '/v1/processes')
  ).processes;
interface Peers {
  credentials: string;
  reason?: string;
  pid_source: string;
  trust_client_pid: boolean;
  admitted_uids: number[];
  group: string | null;
  refused: { total: number; by_uid: Record<string, number> };
}
const peers = async (srv: TestServer) =>
  (await srv.client.json<{ peers: Peers }>('GET', '/v1/stats')).peers;

/** `ttalloc server` as another user, on a socket in a directory that user can write. */
async function serverAs(uid: number, gid: number, args: string[]): Promise<TestServer> {
  const dir = tempDir();
  dirs.push(dir);
  chmodSync(dir, 0o777);
  const srv = await serverAt(join(dir, 'alloc.sock'), ['--no-persist', ...args], { uid, gid });
  await srv.waitFor('listening on');
  return srv;
}

test(
  "the addon is built from source and reads the kernel's credentials of a real peer " +
    '(loaded from src/ under tsx)',
  needsAddon,
  async () => {
    assert.equal(addon.available, true, addon.available ? '' : addon.reason);
    if (!addon.available) return;
    const dir = tempDir();
    dirs.push(dir);
    const path = join(dir, 's.sock');
    const got = await new Promise<{ pid: number; uid: number; gid: number }>((resolve, reject) => {
      const srv = createServer((c) => {
        try {
          resolve(addon.read(c));
        } catch (e) {
          reject(e as Error);
        }
        c.destroy();
        srv.close();
      });
      srv.listen(path, () => connect(path).on('error', () => {}));
    });
    assert.deepEqual(got, { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
  },
);

test(
  "a connection's buffers belong to the kernel's PID whatever its frames claim; the " +
    'claim is shown for display and the owner survives a kill -9 restart',
  needsAddon,
  async () => {
    const state = join(tempDir(), 'state');
    dirs.push(state);
    let srv = await startServer(['--reap-interval', '0', '--state-dir', state]);
    try {
      assert.equal(srv.output().includes('peer credentials unavailable'), false);
      // A lying client: its frames claim this test process's PID (alive, and not the sender).
      const me = process.pid;
      const c = peer(srv.socket, [
        'send',
        hex([
          alloc(0x1000, 4096, me),
          alloc(0x2000, 8192, me, 1),
          { type: MsgType.CB_ALLOC, deviceId: 0, size: 2048, pid: me, bufferId: 0x300 },
          {
            type: MsgType.KERNEL_LOAD,
            deviceId: 0,
            size: 1024,
            bufferType: 0,
            pid: me,
            bufferId: 0x9,
          },
          // unknown: counted for the sender
          { type: MsgType.FREE, deviceId: 0, pid: me, bufferId: 0xdead },
          { type: MsgType.DUMP_REMAINING, deviceId: 0, pid: me },
        ]),
      ]);
      await c.waitLine(/^sent$/);
      await waitFrames(srv, 6);
      assert.deepEqual(await buffers(srv), [
        ['0x1000', c.pid],
        ['0x2000', c.pid],
      ]);
      assert.deepEqual(
        await buffers(srv, `&pid=${me}`),
        [],
        'nothing was planted on the claimed PID',
      );
      const k = await srv.client.json<{ kernels: { pid: number }[] }>('GET', '/v1/kernels');
      assert.deepEqual(
        k.kernels.map((x) => x.pid),
        [c.pid],
      );
      const rows = await processes(srv);
      assert.deepEqual(
        rows.map((r) => [r.pid, r.claimed_pid, r.buffers, r.unknown_frees]),
        [[c.pid, me, 2, 1]],
        'listed under its real PID, with the claim',
      );
      await srv.waitFor(
        `buffer report printed on request of connection #1 (pid ${c.pid}, claims ${me})`,
      );
      const p = await peers(srv);
      assert.equal(p.credentials, 'kernel (SO_PEERCRED)');
      assert.equal(p.pid_source, 'kernel');
      const text = await runCli(['stats', '--socket', srv.socket]);
      assert.match(
        text.stdout,
        new RegExp(
          /^peers: UIDs from the kernel \(SO_PEERCRED\); PIDs from /.source +
            /the kernel; 0 connections from other users refused$/.source,
          'm',
        ),
      );

      // The journal holds the owner the server used: a kill -9 and restart replays the same
      // ownership.
      await new Promise((r) => setTimeout(r, 300)); // past the 100 ms flush interval
      srv.proc.kill('SIGKILL');
      await exited(srv.proc);
      await srv.stop();
      srv = await startServer(['--reap-interval', '0', '--state-dir', state]);
      assert.deepEqual(
        await buffers(srv),
        [
          ['0x1000', c.pid],
          ['0x2000', c.pid],
        ],
        srv.output(),
      );
      c.child.kill('SIGKILL');
      await exited(c.child);
      const reaped = await srv.client.json<{ reaped: { pid: number; buffers: number }[] }>(
        'POST',
        '/v1/reap',
      );
      assert.deepEqual(
        reaped.reaped.map((r) => [r.pid, r.buffers]),
        [[c.pid, 2]],
      );
    } finally {
      assert.equal(await srv.stop(), 0);
    }
  },
);

test(
  'buffers of a real child that claims a fake PID are released when the child dies',
  needsAddon,
  async () => {
    const srv = await startServer(['--reap-interval', '0.2']);
    try {
      // PID 1 never dies: had the claim been trusted, these buffers would stay forever.
      const c = peer(srv.socket, [
        'send',
        hex([alloc(0x1000, 4096, 1), alloc(0x2000, 4096, 1), alloc(0x3000, 8192, 1, 1)]),
      ]);
      await c.waitLine(/^sent$/);
      await waitFrames(srv, 3);
      assert.equal((await stats(srv)).live.buffers, 3);
      c.child.kill('SIGKILL');
      await exited(c.child);
      await srv.waitFor(`process ${c.pid} is gone: released 3 buffers (16.0 KiB)`);
      const st = await stats(srv);
      assert.equal(st.live.buffers, 0);
      assert.equal(st.reaped_processes, 1);
      assert.deepEqual(
        (await processes(srv)).map((r) => r.pid),
        [],
      );
      assert.equal(linesMatching(srv.output(), /process 1 /).length, 0);
    } finally {
      assert.equal(await srv.stop(), 0);
    }
  },
);

test(
  '--trust-client-pid: the PIDs in the messages own the buffers (relays, replays, simulators)',
  needsAddon,
  async () => {
    const srv = await startServer(['--reap-interval', '0', '--trust-client-pid']);
    try {
      await srv.waitFor('--trust-client-pid: buffers belong to the PIDs the messages claim');
      const c = peer(srv.socket, [
        'send',
        hex([
          alloc(0x1000, 4096, process.pid),
          alloc(0x2000, 4096, 1),
          { type: MsgType.DUMP_REMAINING, deviceId: 0, pid: 1 },
        ]),
      ]);
      await c.waitLine(/^sent$/);
      await waitFrames(srv, 3);
      assert.deepEqual(await buffers(srv), [
        ['0x1000', process.pid],
        ['0x2000', 1],
      ]);
      await srv.waitFor(`connection #1 (pid ${c.pid}, claims ${process.pid})`);
      const p = await peers(srv);
      assert.equal(p.credentials, 'kernel (SO_PEERCRED)');
      assert.deepEqual([p.pid_source, p.trust_client_pid], ['messages', true]);
      assert.match(
        (await runCli(['stats', '--socket', srv.socket])).stdout,
        new RegExp(
          /^peers: UIDs from the kernel \(SO_PEERCRED\); PIDs /.source +
            /from the messages \(--trust-client-pid\);/.source,
          'm',
        ),
      );
    } finally {
      assert.equal(await srv.stop(), 0);
    }
  },
);

test('without the addon the server works as before, says so once, and stats says so', async () => {
  const env = { TT_ALLOC_NO_PEER_CRED: '1' };
  const notice =
    'peer credentials unavailable: turned off by TT_ALLOC_NO_PEER_CRED=1; PIDs are taken ' +
    'from the messages';
  const srv = await startServer(['--reap-interval', '0'], env);
  try {
    await srv.waitFor(`[ttalloc] ${notice}\n`);
    const s = await rawConnect(srv.socket);
    await write(
      s,
      Buffer.from(hex([alloc(0x1000, 4096, 1), alloc(0x2000, 4096, process.pid)]), 'hex'),
    );
    await waitFrames(srv, 2);
    assert.deepEqual(
      await buffers(srv),
      [
        ['0x1000', 1],
        ['0x2000', process.pid],
      ],
      'the claimed PIDs own the buffers, as before',
    );
    const p = await peers(srv);
    assert.deepEqual(
      [p.credentials, p.reason, p.pid_source],
      ['unavailable', 'turned off by TT_ALLOC_NO_PEER_CRED=1', 'messages'],
    );
    const text = await runCli(['stats', '--socket', srv.socket]);
    assert.match(
      text.stdout,
      new RegExp(
        /^peers: credentials unavailable \(turned off by TT_ALLOC_NO_PEER_CRED=1\); /.source +
          /PIDs are taken from the messages/.source,
        'm',
      ),
    );
    s.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
  // --quiet prints no log lines, but this one still reaches stderr.
  const dir = tempDir();
  dirs.push(dir);
  const sock = join(dir, 'q.sock');
  const proc = spawn(
    process.execPath,
    [CLI, 'server', '--socket', sock, '--quiet', '--no-persist'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } },
  );
  children.add(proc);
  let err = '',
    out = '';
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const health = new ControlClient(sock);
  for (let i = 0; ; i++) {
    try {
      await health.json('GET', '/v1/health');
      break;
    } catch (e) {
      if (i > 500 || proc.exitCode !== null) throw e;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  proc.kill('SIGTERM');
  await exited(proc);
  assert.equal(err, `[ttalloc] ${notice}\n`);
  assert.equal(out, '');
});

test(
  "another user's connections are refused at once, counted and logged (first, then every " +
    "1000th); root and the server's own user are admitted",
  asRoot,
  async () => {
    const srv = await serverAs(NOBODY, NOBODY, ['--reap-interval', '0']);
    try {
      // Defence in depth: the sockets are 0600 (nobody); make them reachable, as a hand-made chmod
      // or a root-created setup would.
      chmodSync(srv.socket, 0o666);
      chmodSync(srv.socket + '.ctl', 0o666);
      const own = await rawConnect(srv.socket); // root
      await write(own, encodeFrame(alloc(0x10, 4096, process.pid)));
      await waitFrames(srv, 1);

      const ctl = peer(srv.socket + '.ctl', ['http', '/v1/stats'], { uid: 4242, gid: 4242 });
      assert.match(
        await ctl.waitLine(/^(status|error)/),
        /^error /,
        'the control API answered another user',
      );
      const many = peer(srv.socket, ['many', '1000', hex([alloc(0x20, 4096, 4242)])], {
        uid: 4242,
        gid: 4242,
      });
      await many.waitLine(/^closed 1000$/, 30000);
      const same = peer(srv.socket, ['send', hex([alloc(0x30, 8192, 1)])], {
        uid: NOBODY,
        gid: NOBODY,
      });
      await same.waitLine(/^sent$/);
      await waitFrames(srv, 2);

      assert.deepEqual(
        (await buffers(srv)).sort(),
        [
          ['0x10', process.pid],
          ['0x30', same.pid],
        ],
        'no frame of the refused user was applied',
      );
      const p = await peers(srv);
      assert.deepEqual(p.refused, { total: 1001, by_uid: { 4242: 1001 }, unreadable: 0 });
      assert.deepEqual(p.admitted_uids, [0, NOBODY]);
      const logged = linesMatching(
        srv.output(),
        /refusing (data|control) connection from uid 4242/,
      );
      assert.equal(logged.length, 2, logged.join('\n'));
      assert.match(
        logged[0]!,
        new RegExp(
          /^\[ttalloc\] refusing control connection from uid 4242 \(pid \d+\): /.source +
            /not this server's user \(uid 65534\) nor root; /.source +
            /admit it with --allow-uid 4242 \(1 refused from uid 4242 so far/.source,
        ),
      );
      assert.match(
        logged[1]!,
        /^\[ttalloc\] refusing data connection from uid 4242 .*\(1001 refused from uid 4242 so far/,
      );
      assert.match(
        (await runCli(['stats', '--socket', srv.socket])).stdout,
        /; 1001 connections from other users refused \(uid 4242: 1001\)$/m,
      );
      assert.equal(
        (await stats(srv)).connections.total,
        2,
        'refused connections are not data connections',
      );
      own.destroy();
    } finally {
      assert.equal(await srv.stop(), 0);
    }
  },
);

test(
  "--allow-uid admits another user; --group admits that group's members; others are still refused",
  asRoot,
  async () => {
    const srv = await serverAs(NOBODY, NOBODY, [
      '--reap-interval',
      '0',
      '--allow-uid',
      '4242',
      '--group',
      'nogroup',
    ]);
    try {
      chmodSync(srv.socket, 0o666); // so that 4244, in no shared group, reaches the server at all
      const allowed = peer(srv.socket, ['send', hex([alloc(0x1000, 4096, 1)])], {
        uid: 4242,
        gid: 4242,
      });
      const member = peer(srv.socket, ['send', hex([alloc(0x2000, 4096, 1)])], {
        uid: 4243,
        gid: NOBODY,
      });
      await allowed.waitLine(/^sent$/);
      await member.waitLine(/^sent$/);
      const other = peer(srv.socket, ['send', hex([alloc(0x3000, 4096, 1)])], {
        uid: 4244,
        gid: 4244,
      });
      await other.waitLine(/^closed$/);
      await waitFrames(srv, 2);
      assert.deepEqual((await buffers(srv)).sort(), [
        ['0x1000', allowed.pid],
        ['0x2000', member.pid],
      ]);
      const p = await peers(srv);
      assert.deepEqual(p.refused.by_uid, { 4244: 1 });
      assert.deepEqual([p.admitted_uids, p.group], [[0, 4242, NOBODY], 'nogroup']);
      assert.match(
        srv.output(),
        new RegExp(
          /refusing data connection from uid 4244 \(pid \d+\): not this server's user \(uid /
            .source +
            /65534\) nor root nor a member of group nogroup; admit it with --allow-uid 4244/.source,
        ),
      );
    } finally {
      assert.equal(await srv.stop(), 0);
    }
    const dir = tempDir();
    dirs.push(dir);
    const bad = await runCli([
      'server',
      '--socket',
      join(dir, 'x.sock'),
      '--allow-uid',
      'no-such-user-ttalloc',
    ]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--allow-uid no-such-user-ttalloc: not a number and no such user/);
  },
);
