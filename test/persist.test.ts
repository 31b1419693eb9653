// Persistence through real server processes: kill -9 and clean restarts resume the state; a torn
// journal tail, a full disk and a second server on the same directory are handled.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Reporter } from '../src/client/reporter.js';
import { runCli, settle, startServer, tempDir, type TestServer } from './helpers/server.js';

const KiB = 1024;

async function kill9(srv: TestServer): Promise<void> {
  const exited = new Promise((r) => srv.proc.once('exit', r));
  srv.proc.kill('SIGKILL');
  await exited;
}

/** A workload with everything the state holds: ref counts, CBs, kernels, frees, a mark. */
async function workload(srv: TestServer): Promise<void> {
  const r = new Reporter({ socketPath: srv.socket });
  for (let i = 0; i < 300; i++) r.alloc(i % 3, 0x10000000 + i * 0x1000, 4 * KiB + i, i % 5);
  r.alloc(0, 0x10000000, 4 * KiB, 0); // ref_count 2
  for (let i = 0; i < 30; i++) r.free(1, 0x10000000 + (3 * i + 1) * 0x1000);
  r.free(2, 0xdead0000); // unknown
  r.kernelLoad(2, 0x5555, 8 * KiB, 2); r.cbAlloc(1, 0x6600, 32 * KiB);
  r.alloc(0, 0x1_0000_0000_1000n, 12 * KiB, 0); // a 64-bit address
  await r.close();
  await settle(srv);
  assert.equal((await runCli(['mark', 'm1', '--socket', srv.socket])).code, 0);
  const r2 = new Reporter({ socketPath: srv.socket });
  r2.alloc(1, 0x7f000000, 36 * KiB, 0);
  await r2.close();
  await settle(srv);
}

const view = async (srv: TestServer) => ({
  dump: (await runCli(['dump', '--all', '--socket', srv.socket])).stdout,
  since: (await runCli(['dump', '--since', 'm1', '--socket', srv.socket])).stdout,
  devices: (await srv.client.json<{ devices: unknown }>('GET', '/v1/stats')).devices,
  kernels: (await runCli(['dump-kernels', '--json', '--socket', srv.socket])).stdout,
});

type Persist = { persistence: { enabled: boolean; failed: string | null; note: string | null; recovery: { previousStop: string; truncatedBytes: number; problems: string[] } } };

test('kill -9 then restart resumes exactly the journaled state; a clean stop restarts from a snapshot', async () => {
  const state = join(tempDir(), 'state');
  const a = await startServer(['--state-dir', state, '--reap-interval', '0']);
  await workload(a);
  const before = await view(a);
  assert.match(before.dump, /ref_count=2/);
  assert.match(before.since, /Buffer 0x7f000000: 36\.0 KB/);
  await new Promise((r) => setTimeout(r, 300)); // past one flush interval
  await kill9(a);

  const b = await startServer(['--state-dir', state, '--reap-interval', '0']);
  await b.waitFor(/restored 272 buffers, 1 CBs, 1 kernels, 1 marks from \d+ records after a crash stop/);
  assert.match(b.output(), /did not stop cleanly: up to 100 ms of events before it died may be missing/);
  assert.deepEqual(await view(b), before);
  const st = await b.client.json<Persist>('GET', '/v1/stats');
  assert.equal(st.persistence.recovery.previousStop, 'crash');
  assert.match(st.persistence.note!, /may be missing/);
  assert.equal(await b.stop(), 0); // clean: snapshot, empty journal, clean marker
  assert.ok(existsSync(join(state, 'snapshot.bin')) && existsSync(join(state, 'clean')));
  assert.equal(statSync(join(state, 'journal.bin')).size, 0);

  const c = await startServer(['--state-dir', state, '--reap-interval', '0']);
  await c.waitFor(/restored 272 buffers, 1 CBs, 1 kernels, 1 marks from \d+ records after a clean stop/);
  assert.deepEqual(await view(c), before);
  // Reset forgets the persisted state too.
  assert.equal((await runCli(['reset', '--yes', '--socket', c.socket])).code, 0);
  await kill9(c);
  const d = await startServer(['--state-dir', state]);
  assert.match((await runCli(['dump', '--socket', d.socket])).stdout, /Total remaining buffers: 0/);
  assert.equal((await runCli(['marks', '--json', '--socket', d.socket])).stdout.includes('m1'), false);
  await d.stop();
});

test('owners that died while no server ran are released after recovery; reaped reports persist', async () => {
  const state = join(tempDir(), 'state');
  const a = await startServer(['--state-dir', state, '--reap-interval', '0']);
  const child = spawn(process.execPath, ['--input-type=module', '-e',
    `import { Reporter } from ${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)};
     const r = new Reporter({ socketPath: process.argv[1] }); r.alloc(0, 0x4000, 8192, 0); await r.close(); console.log('ok'); setInterval(() => {}, 1000);`, a.socket],
  { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((r) => child.stdout!.once('data', r));
  await settle(a);
  await new Promise((r) => setTimeout(r, 300));
  await kill9(a);
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const b = await startServer(['--state-dir', state, '--reap-interval', '0']);
  await b.waitFor(`process ${child.pid} is gone: released 1 buffer (8.00 KiB)`);
  await b.stop();
  const c = await startServer(['--state-dir', state]);
  const reaped = JSON.parse((await runCli(['dump', '--reaped', '--json', '--socket', c.socket])).stdout) as { reaped: { pid: number; bytes: number }[] };
  assert.deepEqual(reaped.reaped.map((r) => [r.pid, r.bytes]), [[child.pid, 8192]]);
  await c.stop();
});

test('a torn or corrupt journal tail is cut at the last good record and reported; start-up goes on', async () => {
  const state = join(tempDir(), 'state');
  const a = await startServer(['--state-dir', state]);
  const r = new Reporter({ socketPath: a.socket });
  for (let i = 0; i < 50; i++) r.alloc(0, 0x1000 * (i + 1), 4096, 0);
  await r.close();
  await settle(a);
  await new Promise((res) => setTimeout(res, 300));
  await kill9(a);
  const good = statSync(join(state, 'journal.bin')).size;
  appendFileSync(join(state, 'journal.bin'), Buffer.from('TTJ1\x40\x00\x00\x00garbage-of-a-torn-write'));
  const b = await startServer(['--state-dir', state]);
  await b.waitFor(/state recovery: journal: torn batch at byte \d+ .*; cut 31 bytes at the last good record/);
  const st = await b.client.json<Persist>('GET', '/v1/stats');
  assert.equal(st.persistence.recovery.truncatedBytes, 31);
  assert.match((await runCli(['dump', '--socket', b.socket])).stdout, /DRAM: 50 buffers/);
  await b.stop();
  assert.ok(good > 0);
});

test('a full disk stops persistence with one loud warning; tracking goes on in memory', async () => {
  const state = join(tempDir(), 'state');
  const a = await startServer(['--state-dir', state, '--flush-interval', '20'], { TT_ALLOC_TEST_JOURNAL_LIMIT: '4096' });
  const r = new Reporter({ socketPath: a.socket });
  for (let i = 0; i < 2000; i++) r.alloc(1, 0x1000 * (i + 1), 4096, 1);
  await r.close();
  await settle(a);
  await a.waitFor('PERSISTENCE STOPPED: ENOSPC');
  assert.equal(a.output().split('PERSISTENCE STOPPED').length, 2, 'one warning');
  assert.match(a.stderr(), /PERSISTENCE STOPPED/);
  const r2 = new Reporter({ socketPath: a.socket });
  r2.alloc(1, 0xffff0000, 4096, 1);
  await r2.close();
  await settle(a);
  assert.match((await runCli(['dump', '--socket', a.socket])).stdout, /L1: 2001 buffers/);
  const st = await a.client.json<Persist>('GET', '/v1/stats');
  assert.match(st.persistence.failed!, /ENOSPC/);
  assert.equal(await a.stop(), 0);
});

test('a second server on the same state directory is refused; --no-persist writes nothing', async () => {
  const state = join(tempDir(), 'state');
  const a = await startServer(['--state-dir', state]);
  const other = join(tempDir(), 'b.sock');
  const second = await runCli(['server', '--socket', other, '--state-dir', state]);
  assert.notEqual(second.code, 0);
  assert.match(second.stderr, /state directory .* is in use by server pid \d+; use another --state-dir/);
  assert.equal(existsSync(other), false, 'it left no socket behind');
  await a.stop();

  const none = join(tempDir(), 'none');
  const b = await startServer(['--state-dir', none, '--no-persist']);
  const r = new Reporter({ socketPath: b.socket });
  r.alloc(0, 0x1000, 4096, 0);
  await r.close();
  await settle(b);
  assert.equal((await b.client.json<Persist>('GET', '/v1/stats')).persistence.enabled, false);
  await b.stop();
  assert.equal(existsSync(none) && readdirSync(none).length > 0, false);
});
