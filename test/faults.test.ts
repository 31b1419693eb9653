// Faults a new user meets (issue 14), through real processes: a --state-dir that cannot be used
// fails at once; `ttalloc stop` refuses while data clients are connected (naming them), --force
// stops anyway, and stop returns only once the server has exited; SIGTERM with clients connected
// stops but says whom it disconnects; the Node Reporter never keeps an application alive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI, rawConnect, runCli, settle, startServer, tempDir } from './helpers/server.js';
import { stats } from './helpers/wire.js';
import { startTicksOf } from '../src/platform/processes.js';
import type { ShutdownRefusal } from '../src/report/types.js';

const DIST = fileURLToPath(new URL('../dist/', import.meta.url));

/** The child's exit, or a SIGKILL (and a failure) after a generous bound: a hang fails the test. */
function exitOf(p: ChildProcess, boundMs = 30000): Promise<{ code: number | null; hung: boolean }> {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null)
      return resolve({ code: p.exitCode, hung: false });
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      resolve({ code: null, hung: true });
    }, boundMs);
    p.once('exit', (code) => {
      clearTimeout(t);
      resolve({ code, hung: false });
    });
  });
}

/** `ttalloc server` with this --state-dir (as `uid` if given): exit code, stderr, hung or not. */
async function serverWithStateDir(stateDir: string, uid?: number) {
  const dir = tempDir();
  if (uid !== undefined) chmodSync(dir, 0o777);
  const p = spawn(
    process.execPath,
    [CLI, 'server', '--socket', join(dir, 's.sock'), '--stats-interval', '0'].concat([
      '--state-dir',
      stateDir,
    ]),
    { stdio: ['ignore', 'pipe', 'pipe'], uid, gid: uid },
  );
  let stderr = '';
  p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const r = await exitOf(p);
  return { ...r, stderr };
}

test('a --state-dir that cannot be created or used fails at once with one clear line', async () => {
  const dir = tempDir();
  const file = join(dir, 'a-file');
  writeFileSync(file, 'x');
  const cases = [
    ['/proc/nope', /cannot create state directory \/proc\/nope: ENOENT/],
    [join(file, 'state'), /cannot create state directory .*a-file\/state: ENOTDIR/],
  ] as const;
  for (const [path, why] of cases) {
    const r = await serverWithStateDir(path);
    assert.equal(r.hung, false, `${path}: the server hung instead of failing`);
    assert.equal(r.code, 1, `${path}: ${r.stderr}`);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^ttalloc: /);
    assert.match(lines[0], why);
  }
});

test('a read-only --state-dir fails at once', async () => {
  // As root every directory is writable: then the server runs as nobody (65534).
  const uid = process.getuid?.() === 0 ? 65534 : undefined;
  const top = tempDir();
  chmodSync(top, 0o755);
  const ro = join(top, 'ro');
  mkdirSync(ro);
  chmodSync(ro, 0o555);
  const r = await serverWithStateDir(ro, uid);
  assert.equal(r.hung, false);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^ttalloc: cannot create state directory .*ro: EACCES.*\n$/);
});

test('stop refuses while a data client is connected, naming it; --force stops', async () => {
  const srv = await startServer();
  const s = await rawConnect(srv.socket);
  await settle(srv);
  assert.equal((await stats(srv)).connections.open, 1);
  const refused = await runCli(['stop', '--socket', srv.socket]);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /refusing to stop: 1 data client\(s\) connected/);
  const comm = readFileSync(`/proc/${process.pid}/comm`, 'utf8').trim();
  assert.match(refused.stderr, new RegExp(`PID ${process.pid} \\([^)]*${comm}`));
  assert.match(refused.stderr, /dies of SIGPIPE on its next report/);
  assert.match(refused.stderr, /`ttalloc restart` replaces the server without closing them/);
  assert.match(refused.stderr, /--force/);
  // the route: a 409 with the clients as JSON; the server keeps running
  const raw = await srv.client.raw('POST', '/v1/shutdown', {});
  assert.equal(raw.status, 409);
  const body = JSON.parse(raw.body) as ShutdownRefusal;
  assert.deepEqual(
    body.clients.map((c) => [c.pid, c.connections]),
    [[process.pid, 1]],
  );
  assert.match(body.error, /refusing to stop/);
  assert.match(await srv.client.text('GET', '/v1/health'), /"ok":true/);
  assert.equal(srv.proc.exitCode, null);

  const pid = srv.proc.pid!;
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  s.on('error', () => {});
  const forced = await runCli(['stop', '--force', '--socket', srv.socket]);
  assert.equal(forced.code, 0, forced.stderr);
  assert.match(forced.stdout, new RegExp(`closing the connections of PID ${process.pid} `));
  assert.match(forced.stdout, new RegExp(`server ${pid} has exited`));
  // returned only after the exit: the process is gone (or a zombie we have not reaped yet)
  assert.ok(startTicksOf(pid) < 0, 'the server process still runs after stop returned');
  await closed;
  const end = await exitOf(srv.proc);
  assert.equal(end.code, 0);
  assert.match(srv.output(), /!!! stopping with 1 data client connected: PID \d+/);
  await srv.stop();
});

test('stop with no clients returns once the server has exited', async () => {
  const srv = await startServer();
  const pid = srv.proc.pid!;
  const r = await runCli(['stop', '--socket', srv.socket]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`server ${pid} is stopping\\nserver ${pid} has exited\\n`));
  assert.ok(startTicksOf(pid) < 0, 'the server process still runs after stop returned');
  assert.equal((await exitOf(srv.proc)).code, 0);
  // the final log lines were written before the exit, and no SIGTERM arrived after it
  assert.match(srv.output(), /SIGTERM received, shutting down/);
  assert.doesNotMatch(srv.output(), /!!! stopping with/);
  await srv.stop();
});

test('SIGTERM with data clients connected stops, naming them loudly', async () => {
  const srv = await startServer();
  const holder = spawn(
    process.execPath,
    [
      '-e',
      `const s = require('node:net').connect(${JSON.stringify(srv.socket)});` +
        "s.on('connect', () => console.log('connected')); s.on('error', () => {});" +
        "s.on('close', () => process.exit(0));",
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((r) => holder.stdout!.once('data', () => r()));
  await settle(srv);
  assert.equal(srv.proc.kill('SIGTERM'), true);
  const end = await exitOf(srv.proc);
  assert.equal(end.code, 0);
  assert.match(srv.output(), /SIGTERM received, shutting down/);
  assert.match(
    srv.stderr(),
    new RegExp(`!!! stopping with 1 data client connected: PID ${holder.pid} \\(\\S*node -e`),
  );
  assert.match(srv.stderr(), /a C\+\+ client dies of SIGPIPE on its next report/);
  await exitOf(holder);
  await srv.stop();
});

test('the Reporter never keeps an application alive, and its frames still arrive', async () => {
  const srv = await startServer();
  const dir = tempDir();
  const app = join(dir, 'app.mjs');
  // Allocates, frees and returns without close(); more frames come from a timer callback.
  writeFileSync(
    app,
    `import { Reporter } from ${JSON.stringify(join(DIST, 'index.js'))};
const r = new Reporter({ socketPath: ${JSON.stringify(srv.socket)} });
for (let i = 0; i < 100; i++) r.alloc(0, 0x10000 + i * 4096, 4096, 0);
for (let i = 0; i < 40; i++) r.free(0, 0x10000 + i * 4096);
setTimeout(() => {
  for (let i = 0; i < 10; i++) r.alloc(0, 0x900000 + i * 4096, 4096, 0);
}, 20);
`,
  );
  const child = spawn(process.execPath, [app], { stdio: ['ignore', 'inherit', 'inherit'] });
  const end = await exitOf(child);
  assert.equal(end.hung, false, 'the application did not exit by itself');
  assert.equal(end.code, 0);
  await settle(srv);
  const st = await stats(srv);
  assert.equal(st.frames.total, 150);
  assert.equal(st.frames.rejected, 0);
  await srv.stop();
});
