// Crashes under a service manager (issue 14): socket activation, sd_notify and the descriptor store
// (src/server/systemd.ts), against test/c/fd_supervisor.c — a small manager speaking systemd's
// protocols exactly as packaging/systemd/ configures them (there is no systemd as PID 1 here) —
// with a client that sends like the runtime (test/c/steady_sender.c: blocking send(), no
// MSG_NOSIGNAL, SIGPIPE at its default). And what happens without a manager. The unit files are
// checked by systemd-analyze when it is installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI, startServer, tempDir } from './helpers/server.js';
import { loadNative } from '../src/platform/native.js';
import { stats, waitFrames } from './helpers/wire.js';
import {
  HAS_CC,
  Steady,
  Supervisor,
  liveBuffers,
  mapDiff,
  steadyKey,
  type SteadyMode,
} from './helpers/steady.js';

const SKIP = HAS_CC ? false : 'no C compiler (`cc`) on this machine (apt-get install gcc)';
const UNITS = fileURLToPath(new URL('../packaging/systemd/', import.meta.url));

/** A private socket path and state directory for a supervised server. */
function place(): { socket: string; args: string[] } {
  const dir = tempDir();
  return {
    socket: join(dir, 'alloc.sock'),
    args: ['--stats-interval', '0', '--state-dir', join(dir, 'state')],
  };
}

/** Everything accepted so far is on disk: a mark is journalled before its request is answered. */
async function sync(sup: Supervisor, name: string): Promise<void> {
  await sup.client.json('POST', '/v1/marks', { name });
}

/** Waits until the frame count stops moving (the server read all that was sent), then syncs. */
async function settled(sup: Supervisor): Promise<void> {
  let last = -1;
  for (;;) {
    const n = (await stats(sup)).frames.total;
    if (n === last) break;
    last = n;
    await new Promise((r) => setTimeout(r, 50));
  }
  await sync(sup, `settled-${Date.now()}`);
}

async function assertExact(sup: Supervisor, c: Steady, allocs: number): Promise<void> {
  const got = await liveBuffers(sup.client);
  const want = c.model(allocs);
  const d = mapDiff(want, got.rows);
  assert.deepEqual(
    { missing: d.missingCount, extra: d.extra, wrong: d.wrong },
    { missing: 0, extra: [], wrong: [] },
    `first missing: ${d.missing.join(' ')}`,
  );
  assert.equal(got.rows.size, want.size);
  assert.deepEqual(got.refs, [1]);
}

/** `notifyPath`: a path for $NOTIFY_SOCKET instead of the manager's "@name" (abstract). */
async function supervisedClient(mode: SteadyMode, notifyPath?: string) {
  const { socket, args } = place();
  const sup = await Supervisor.start(socket, args, CLI, notifyPath ? { NOTIFY: notifyPath } : {});
  const c = await Steady.start(socket, mode, 4);
  await sup.next(/^stored name=conn-\d+-1 n=1$/);
  return { sup, c };
}

test(
  'kill -9 under a supervisor: the runtime-like client stays connected, and the state is exact',
  { skip: SKIP },
  async () => {
    const { sup, c } = await supervisedClient('mix');
    await c.send(30000);
    await waitFrames(sup, c.framesFor(30000));
    await sync(sup, 'before-crash');
    const first = sup.serverPid;
    const mark = sup.lineCount;
    process.kill(first, 'SIGKILL');
    const died = await sup.next(new RegExp(`^exited pid=${first} signal=9$`), mark);
    // The client sends on at once; its send() blocks until the next server reads.
    const t0 = Date.now();
    const sent = await c.send(30000);
    const started = await sup.next(/^started pid=(\d+) fds=3 stored=1$/, died.i);
    const ready = await sup.next(/^ready pid=/, started.i);
    assert.notEqual(sup.serverPid, first);
    assert.equal(c.alive, true, 'the client survived the crash');
    await waitFrames(sup, c.framesFor(60000) - c.framesFor(30000));
    await assertExact(sup, c, 60000);
    const st = await stats(sup);
    assert.equal(st.frames.rejected, 0);
    assert.equal(st.connections.open, 1);
    assert.match(sup.out.text, /service manager: 2 listening socket\(s\) passed, 1 stored/);
    assert.match(sup.out.text, /restored 20000 buffers.* after a crash stop/);
    console.log(
      `# kill -9 → restarted and ready: ${ready.at - died.at} ms (RestartSec=100ms included); ` +
        `the client's 40,000 frames after the crash took ${sent.at - t0} ms to send`,
    );
    // A second crash right away: the adopted connection is in the store under its old name.
    const mark2 = sup.lineCount;
    process.kill(sup.serverPid, 'SIGKILL');
    await sup.next(/^started pid=\d+ fds=3 stored=1$/, mark2);
    await sup.next(/^ready pid=/, mark2);
    await c.send(3000);
    await waitFrames(sup, c.framesFor(63000) - c.framesFor(60000));
    await sync(sup, 'end');
    await assertExact(sup, c, 63000);
    assert.deepEqual(await c.end(), { code: 0, signal: null });
    await sup.next(/^removed name=conn-\d+-1 n=0$|^hup name=conn-\d+-1 n=0$/);
    await sup.stop();
  },
);

test(
  'kill -9 while the client sends flat out: it blocks and survives; what is lost is one run of ' +
    'frames the dead server had read and not yet journalled',
  { skip: SKIP },
  async () => {
    const { sup, c } = await supervisedClient('alloc');
    const total = 300000;
    c.sent = total;
    c.request(total);
    const first = sup.serverPid;
    let seen = 0;
    while ((seen = (await stats(sup)).frames.total) < 50000)
      await new Promise((r) => setTimeout(r, 5));
    const mark = sup.lineCount;
    process.kill(first, 'SIGKILL');
    const died = await sup.next(new RegExp(`^exited pid=${first} signal=9$`), mark);
    const ready = await sup.next(/^ready pid=/, died.i);
    const sent = await c.sentAll();
    assert.equal(sent.allocs, total);
    assert.equal(c.alive, true);
    await settled(sup);
    const st = await stats(sup);
    assert.equal(st.frames.rejected, 0, 'the stream resumed at a frame boundary');
    assert.doesNotMatch(sup.out.text, /partial frame|rejected a frame/);
    const got = (await liveBuffers(sup.client)).rows;
    const lost: number[] = [];
    for (let k = 0; k < total; k++) if (!got.has(steadyKey(4, k))) lost.push(k);
    assert.equal(got.size, total - lost.length, 'nothing but the sequence');
    if (lost.length > 0)
      assert.equal(lost.at(-1)! - lost[0] + 1, lost.length, 'the lost frames are one run');
    assert.ok(got.has(steadyKey(4, total - 1)), 'the last frame arrived');
    console.log(
      `# kill -9 after ${seen} frames seen: ready again in ${ready.at - died.at} ms; ` +
        `${lost.length} frames lost (read by the dead server, not yet journalled: ` +
        `--flush-interval 100 ms)${lost.length ? `, frames ${lost[0]}…${lost.at(-1)}` : ''}; ` +
        `all ${total} sent at ${sent.at - died.at} ms after the kill`,
    );
    assert.deepEqual(await c.end(), { code: 0, signal: null });
    await sup.stop();
  },
);

test(
  'a restart through the manager (systemctl restart) hands the connection on and loses nothing;' +
    ' a stop flushes the store and the client dies of SIGPIPE',
  { skip: SKIP },
  async () => {
    // $NOTIFY_SOCKET a file system path this time (the other tests: the abstract namespace)
    const { sup, c } = await supervisedClient('mix', join(tempDir(), 'notify'));
    await c.send(20000);
    await waitFrames(sup, c.framesFor(20000));
    const mark = sup.lineCount;
    const first = sup.serverPid;
    sup.command('restart');
    c.sent += 20000;
    c.request(20000); // sent while the server stops and starts again
    await sup.next(new RegExp(`^stopping pid=${first}$`), mark);
    await sup.next(new RegExp(`^exited pid=${first} code=0$`), mark);
    await sup.next(/^started pid=\d+ fds=3 stored=1$/, mark);
    await c.sentAll();
    await settled(sup);
    await assertExact(sup, c, 40000);
    assert.match(sup.out.text, /stay open in the service manager's descriptor store/);
    assert.match(sup.out.text, /after a clean stop/);
    assert.doesNotMatch(sup.out.text, /!!! stopping with/);
    // a stop: the store is flushed, the connection closes, the runtime's next send() dies
    await sup.stop();
    assert.match(sup.out.text, /^flushed name=conn-/m);
    c.sent += 1;
    c.request(1);
    assert.deepEqual(await c.exit(), { code: null, signal: 'SIGPIPE' });
  },
);

test(
  'without a manager holding the connections, kill -9 kills the runtime-like client with ' +
    'SIGPIPE on its next report',
  { skip: SKIP },
  async () => {
    const srv = await startServer();
    const c = await Steady.start(srv.socket, 'alloc');
    await c.send(100);
    await waitFrames(srv, 100);
    assert.equal((await stats(srv)).connections.open, 1);
    srv.proc.kill('SIGKILL');
    await new Promise((r) => srv.proc.once('exit', r));
    c.request(1);
    assert.deepEqual(await c.exit(), { code: null, signal: 'SIGPIPE' });
    await srv.stop();
  },
);

test('the unit files: what the test manager emulates, and systemd-analyze verify', () => {
  const socket = readFileSync(join(UNITS, 'ttalloc.socket'), 'utf8');
  const service = readFileSync(join(UNITS, 'ttalloc.service'), 'utf8');
  const set = (unit: string, key: string) =>
    unit
      .split('\n')
      .filter((l) => l.startsWith(`${key}=`))
      .map((l) => l.slice(key.length + 1).trim());
  // the runtime's path, and the control socket beside it, in this order (data first)
  assert.deepEqual(set(socket, 'ListenStream'), [
    '/tmp/tt_allocation_server.sock',
    '/tmp/tt_allocation_server.sock.ctl',
  ]);
  assert.deepEqual(set(socket, 'Accept'), ['no']);
  assert.deepEqual(set(service, 'Type'), ['notify']);
  assert.deepEqual(set(service, 'NotifyAccess'), ['main']);
  assert.deepEqual(set(service, 'Restart'), ['always']);
  assert.ok(Number(set(service, 'FileDescriptorStoreMax')[0]) >= 4096, '≥ --max-connections');
  assert.deepEqual(set(service, 'PrivateTmp'), ['no']);
  const analyze = spawnSync('systemd-analyze', ['--version']);
  if (analyze.status !== 0) {
    console.log('# systemd-analyze is not installed: unit files not verified by systemd');
    return;
  }
  // ExecStart must name an executable that exists here: a copy pointing at this checkout's CLI.
  const dir = tempDir();
  copyFileSync(join(UNITS, 'ttalloc.socket'), join(dir, 'ttalloc.socket'));
  const wrapper = join(dir, 'ttalloc');
  writeFileSync(wrapper, `#!/bin/sh\nexec ${process.execPath} ${CLI} "$@"\n`, { mode: 0o755 });
  const exec = set(service, 'ExecStart')[0];
  assert.match(exec, /^\/usr\/bin\/ttalloc server /);
  writeFileSync(
    join(dir, 'ttalloc.service'),
    service.replace(`ExecStart=${exec}`, `ExecStart=${exec.replace('/usr/bin/ttalloc', wrapper)}`),
  );
  const r = spawnSync(
    'systemd-analyze',
    ['verify', '--man=no', join(dir, 'ttalloc.socket'), join(dir, 'ttalloc.service')],
    { encoding: 'utf8' },
  );
  // Lines about the host's own units (no systemd runs here) are not ours.
  const ours = (r.stderr + r.stdout).split('\n').filter((l) => /ttalloc/.test(l));
  assert.deepEqual(ours, [], r.stderr);
  assert.equal(r.status, 0, r.stderr);
});

test('sdNotify: a clear error for a bad $NOTIFY_SOCKET, and no manager listening', (t) => {
  const addon = loadNative().addon;
  if (!addon) return t.skip('no native addon');
  const sdNotify = addon.sdNotify as (path: string, text: string, fds: number[]) => void;
  for (const bad of ['relative/path', '/' + 'x'.repeat(120), '@' + 'y'.repeat(120), '@'])
    assert.throws(() => sdNotify(bad, 'READY=1', []), /absolute path or @name/, bad);
  assert.throws(() => sdNotify('/nonexistent/notify', 'READY=1', []), /ENOENT|No such file/);
  assert.throws(
    () => sdNotify(`@ttalloc-nobody-${process.pid}`, 'READY=1', [0]),
    /Connection refused/,
  );
  assert.throws(() => sdNotify('@x', 'READY=1', [-1]), /non-negative/);
});
