// The control API's router and query parsing (src/control/), in-process on a loopback port: status
// codes, the read-only (untrusted) listener, bodies, and route modules that get only a context.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpError, Router } from '../src/control/router.js';
import { intList, intParam, parseTypes, reportQuery } from '../src/control/query.js';
import { registerLeakRoutes } from '../src/control/leak-routes.js';
import type { CheckResponse, MarkResponse, MarksResponse } from '../src/report/types.js';
import { Tracker } from '../src/state/tracker.js';
import { Checkpoints } from '../src/state/marks.js';

interface Reply {
  status: number;
  body: string;
}

async function serve(router: Router, trusted: boolean): Promise<{ srv: Server; port: number }> {
  const srv = createServer((req, res) => void router.handle(req, res, trusted));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { srv, port: (srv.address() as AddressInfo).port };
}

function call(port: number, method: string, path: string, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('router: JSON results, 404, 405, HttpError status, 500 for other errors', async () => {
  const r = new Router();
  r.get('/v1/ok', (c) => ({ q: c.url.searchParams.get('q') }));
  r.get('/v1/teapot', () => {
    throw new HttpError(418, 'short and stout');
  });
  r.get('/v1/bug', () => {
    throw new Error('oops');
  });
  const { srv, port } = await serve(r, true);
  try {
    assert.deepEqual(await call(port, 'GET', '/v1/ok?q=1'), { status: 200, body: '{"q":"1"}' });
    const missing = await call(port, 'GET', '/v1/nope');
    assert.equal(missing.status, 404);
    assert.deepEqual(JSON.parse(missing.body), { error: 'no such endpoint: /v1/nope' });
    const wrong = await call(port, 'POST', '/v1/ok');
    assert.equal(wrong.status, 405);
    assert.match(JSON.parse(wrong.body).error, /method POST not allowed on \/v1\/ok/);
    assert.deepEqual(await call(port, 'GET', '/v1/teapot'), {
      status: 418,
      body: '{"error":"short and stout"}',
    });
    assert.deepEqual(await call(port, 'GET', '/v1/bug'), { status: 500, body: '{"error":"oops"}' });
  } finally {
    srv.close();
  }
});

test('router: POST routes are refused untrusted, served trusted', async () => {
  const r = new Router();
  let calls = 0;
  r.post('/v1/change', async (c) => {
    calls++;
    return { got: await c.body() };
  });
  const open = await serve(r, false);
  const own = await serve(r, true);
  try {
    const refused = await call(open.port, 'POST', '/v1/change', '{"a":1}');
    assert.equal(refused.status, 403);
    assert.equal(calls, 0, 'the handler never ran');
    assert.deepEqual(await call(own.port, 'POST', '/v1/change', '{"a":1}'), {
      status: 200,
      body: '{"got":{"a":1}}',
    });
    assert.deepEqual(await call(own.port, 'POST', '/v1/change'), {
      status: 200,
      body: '{"got":{}}',
    });
    const bad = await call(own.port, 'POST', '/v1/change', '{not json');
    assert.deepEqual(bad, { status: 400, body: '{"error":"request body is not JSON"}' });
    const big = await call(own.port, 'POST', '/v1/change', 'x'.repeat((1 << 20) + 1)).catch(
      () => ({ status: 413, body: '' }), // the server may cut the upload off
    );
    assert.equal(big.status, 413);
  } finally {
    open.srv.close();
    own.srv.close();
  }
});

test('router: DELETE on a prefix takes the rest as a name; refused untrusted', async () => {
  const r = new Router();
  r.deletePrefix('/v1/things/', (c) => ({ name: c.url.pathname.slice('/v1/things/'.length) }));
  const open = await serve(r, false);
  const own = await serve(r, true);
  try {
    assert.equal((await call(open.port, 'DELETE', '/v1/things/a')).status, 403);
    assert.deepEqual(await call(own.port, 'DELETE', '/v1/things/a%3Ab'), {
      status: 200,
      body: '{"name":"a%3Ab"}',
    });
    assert.equal((await call(own.port, 'DELETE', '/v1/things/')).status, 404);
    assert.equal((await call(own.port, 'GET', '/v1/things/a')).status, 405);
  } finally {
    open.srv.close();
    own.srv.close();
  }
});

test('query parsing: integer lists, buffer types, ranges, report filters', () => {
  const u = (q: string) => new URL(`http://x/v1/report?${q}`);
  assert.deepEqual(intList(u('device=0, 2,3'), 'device'), [0, 2, 3]);
  assert.equal(intList(u('device='), 'device'), undefined);
  assert.throws(() => intList(u('pid=1,x'), 'pid'), { status: 400 });
  assert.deepEqual(parseTypes('dram,L1_SMALL,4'), [0, 3, 4]);
  assert.throws(() => parseTypes('HBM'), { status: 400, message: /unknown buffer type 'HBM'/ });
  assert.throws(() => parseTypes('5'), { status: 400 });
  const range = { dflt: 7, min: 0, max: 10 };
  assert.equal(intParam(u(''), 'limit', range), 7);
  assert.equal(intParam(u('limit=10'), 'limit', range), 10);
  assert.throws(() => intParam(u('limit=11'), 'limit', range), { status: 400 });
  assert.throws(() => intParam(u('limit=1.5'), 'limit', range), { status: 400 });
  assert.deepEqual(reportQuery(u('all=1&type=L1')), {
    filter: { devices: undefined, pids: undefined, types: [1], state: 'all' },
    limit: Infinity,
    all: true,
  });
  assert.equal(reportQuery(u('limit=3')).limit, 3);
  assert.throws(() => reportQuery(u('limit=-1')), { status: 400 });
  // Live buffers, what exited processes left behind (reaped=1: the old name), or both.
  assert.equal(reportQuery(u('live=1')).filter.state, 'live');
  assert.equal(reportQuery(u('exited=1')).filter.state, 'exited');
  assert.equal(reportQuery(u('reaped=1')).filter.state, 'exited');
  assert.throws(() => reportQuery(u('live=1&exited=1')), { status: 400 });
  // tree=PID: that process and its descendants, beside any pid= list.
  const kids = (root: number) => [root, root + 1, root + 2];
  assert.deepEqual(reportQuery(u('tree=40'), undefined, kids).filter.pids, [40, 41, 42]);
  assert.deepEqual(reportQuery(u('pid=7&tree=40'), undefined, kids).filter.pids, [7, 40, 41, 42]);
  assert.deepEqual(reportQuery(u('tree=40')).filter.pids, [40], 'no process tree known: the root');
  assert.throws(() => reportQuery(u('tree=x')), { status: 400, message: /tree: 'x'/ });
});

test('reportQuery ?since=MARK: the mark’s cut and PID; an unknown mark is a 404', () => {
  const tr = new Tracker();
  const marks = new Checkpoints(tr);
  const m = marks.mark('warm', 77);
  const q = reportQuery(new URL('http://x/?since=warm'), marks);
  assert.equal(q.filter.bornFromMs, m.cutMs);
  assert.deepEqual(q.filter.pids, [77]);
  const other = reportQuery(new URL('http://x/?since=warm&pid=5'), marks);
  assert.deepEqual(other.filter.pids, [5], 'an explicit pid wins');
  assert.throws(() => reportQuery(new URL('http://x/?since=cold'), marks), { status: 404 });
});

test('leak routes on their small context alone: marks set, persisted, listed, unset', async () => {
  const tr = new Tracker();
  const marks = new Checkpoints(tr);
  const persisted: string[] = [];
  const logged: string[] = [];
  let sweeps = 0;
  const r = new Router();
  registerLeakRoutes(r, {
    tracker: tr,
    marks,
    reapDead: () => void sweeps++,
    // PID 13 is PID 12's child (what the server records when it first sees a PID)
    treeOf: (root) => (root === 12 ? [12, 13] : [root]),
    persistMark: async (m) => void persisted.push(m.name),
    persistUnmark: async (name) => void persisted.push(`-${name}`),
    log: (m) => logged.push(m),
  });
  const { srv, port } = await serve(r, true);
  try {
    const set = await call(port, 'POST', '/v1/marks', '{"name":"before","pid":12}');
    assert.equal(set.status, 200);
    assert.equal((JSON.parse(set.body) as MarkResponse).mark.name, 'before');
    assert.deepEqual(persisted, ['before']);
    assert.deepEqual(logged, ["mark 'before' for pid 12 set"]);
    const list = JSON.parse((await call(port, 'GET', '/v1/marks')).body) as MarksResponse;
    assert.deepEqual(
      list.marks.map((m) => [m.name, m.pid]),
      [['before', 12]],
    );
    const diff = await call(port, 'GET', '/v1/diff?a=before');
    assert.equal(diff.status, 200);
    assert.equal(sweeps, 1, 'a diff sweeps dead owners first');
    assert.equal((await call(port, 'GET', '/v1/diff?a=nope')).status, 404);
    assert.equal((await call(port, 'POST', '/v1/marks', '{"name":""}')).status, 400);
    // After the mark: a buffer of PID 12's child and one of an unrelated PID; tree=12 counts the
    // child's only.
    for (const [owner, lo] of [
      [13, 0x1000],
      [99, 0x2000],
    ])
      tr.alloc({ device: 0, lo, hi: 0, size: 4096, sub: 0, owner, bornMs: tr.stampOf(0) });
    const check = await call(port, 'GET', '/v1/check?since=before&tree=12');
    assert.equal(check.status, 200);
    const got = JSON.parse(check.body) as CheckResponse;
    assert.deepEqual(
      [got.ok, got.leaked_buffers, got.leaked_bytes, got.buffers.map((b) => b.pid)],
      [false, 1, 4096, [13]],
    );
    assert.equal(sweeps, 3, 'a check sweeps dead owners first (so did both diffs)');
    assert.equal((await call(port, 'DELETE', '/v1/marks/before')).status, 200);
    assert.equal((await call(port, 'DELETE', '/v1/marks/before')).status, 404);
    assert.deepEqual(persisted, ['before', '-before']);
  } finally {
    srv.close();
  }
});
