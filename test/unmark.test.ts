// Deletable marks: `ttalloc unmark NAME` / DELETE /v1/marks/NAME, persisted (kill -9 and a clean
// restart both come back without the mark), and a clear error for a mark that does not exist.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { runCli, startServer, tempDir, type TestServer } from './helpers/server.js';
import type { MarksResponse } from '../src/report/types.js';

async function kill9(srv: TestServer): Promise<void> {
  const exited = new Promise((r) => srv.proc.once('exit', r));
  srv.proc.kill('SIGKILL');
  await exited;
}

async function markNames(srv: TestServer): Promise<string[]> {
  const r = await srv.client.json<MarksResponse>('GET', '/v1/marks');
  return r.marks.map((m) => m.name);
}

async function cli(srv: TestServer, ...args: string[]) {
  return runCli([...args, '--socket', srv.socket]);
}

test('unmark deletes a mark; kill -9 and a restart keep it deleted', async () => {
  const state = join(tempDir(), 'state');
  const a = await startServer(['--state-dir', state]);
  for (const name of ['keep', 'test-1:a/b.py::t[x]', 'gone'])
    assert.equal((await cli(a, 'mark', name.replace(/[[\]]/g, '_'))).code, 0);
  const u = await cli(a, 'unmark', 'test-1:a/b.py::t_x_');
  assert.equal(u.code, 0, u.stderr);
  assert.match(u.stdout, /^mark 'test-1:a\/b\.py::t_x_' deleted \(it was set at /);
  const j = await cli(a, 'unmark', 'gone', '--json');
  assert.equal(j.code, 0, j.stderr);
  assert.equal((JSON.parse(j.stdout) as { deleted: { name: string } }).deleted.name, 'gone');
  assert.deepEqual(await markNames(a), ['keep']);
  // The journal carries the deletion: after kill -9 the replay drops the marks again.
  await kill9(a);
  const b = await startServer(['--state-dir', state]);
  assert.deepEqual(await markNames(b), ['keep']);
  // A clean stop writes a snapshot, which simply no longer lists a deleted mark.
  assert.equal((await cli(b, 'mark', 'later')).code, 0);
  assert.equal((await cli(b, 'unmark', 'keep')).code, 0);
  assert.equal(await b.stop(), 0);
  const c = await startServer(['--state-dir', state]);
  try {
    assert.deepEqual(await markNames(c), ['later']);
  } finally {
    await c.stop();
  }
});

test('unmark of an unknown mark: a clear error, exit 1; DELETE answers 404', async () => {
  const srv = await startServer();
  try {
    const r = await cli(srv, 'unmark', 'nope');
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /no mark named 'nope' \(ttalloc marks lists them\)/);
    const raw = await srv.client.raw('DELETE', '/v1/marks/nope');
    assert.equal(raw.status, 404);
    assert.match(raw.body, /"error":"no mark named 'nope'/);
    // A name with a slash, URL-encoded or not, is one name.
    assert.equal((await cli(srv, 'mark', 'a/b')).code, 0);
    assert.equal((await srv.client.raw('DELETE', '/v1/marks/a/b')).status, 200);
    assert.equal((await srv.client.raw('DELETE', '/v1/marks/a%2Fb')).status, 404);
    assert.equal((await srv.client.raw('GET', '/v1/marks/x')).status, 405);
    assert.deepEqual(await markNames(srv), []);
    const help = await runCli(['--help']);
    assert.match(help.stdout, /unmark/);
  } finally {
    await srv.stop();
  }
});
