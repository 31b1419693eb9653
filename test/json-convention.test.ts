// One JSON convention everywhere (docs/json.md): every reply of a live server and every `--json`
// output of the CLI is walked key by key. snake_case keys (data keys — buffer types, ids — keep
// theirs), schema_version on top, every time an ISO 8601 string with ms beside its `_ms` twin, no
// epoch time without one, no internals.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Reporter } from '../src/client/reporter.js';
import { BufferType } from '../src/protocol/constants.js';
import { SCHEMA_VERSION } from '../src/report/types.js';
import { runCli, settle, startServer, type TestServer } from './helpers/server.js';

const INDEX = JSON.stringify(new URL('../dist/index.js', import.meta.url).href);
const KiB = 1024;
const NAME = /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/;
/** Keys that are data: buffer and frame types (DRAM, L1_SMALL, ALLOC), device ids and PIDs. */
const DATA_KEY = /^([A-Z][A-Z0-9_]*|\d+)$/;
const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
/** An epoch time in ms (after 2001): a `_ms` key holding one is a time, not a duration. */
const EPOCH_MS = 1e12;

/** Every breach of the convention in `v`, as "path: what". */
function breaches(v: unknown, path = '$'): string[] {
  if (Array.isArray(v)) return v.flatMap((x, i) => breaches(x, `${path}[${i}]`));
  if (v === null || typeof v !== 'object') return [];
  const o = v as Record<string, unknown>;
  const out: string[] = [];
  for (const [k, x] of Object.entries(o)) {
    const at = `${path}.${k}`;
    if (!NAME.test(k) && !DATA_KEY.test(k)) out.push(`${at}: key not snake_case`);
    const timeKey = k.endsWith('_at') || k === 'time';
    if (!timeKey && typeof x === 'string' && ISO_MS.test(x))
      out.push(`${at}: a time under a key that does not say so (…_at)`);
    if (timeKey) {
      if (x !== null && !(typeof x === 'string' && ISO_MS.test(x)))
        out.push(`${at}: ${JSON.stringify(x)} is not ISO 8601 with ms`);
      if (!(`${k}_ms` in o)) out.push(`${at}: no ${k}_ms twin`);
      else if (x !== null && Date.parse(x as string) !== o[`${k}_ms`])
        out.push(`${at}: ${k}_ms disagrees`);
    }
    if (k.endsWith('_ms') && typeof x === 'number' && x > EPOCH_MS) {
      const twin = k.slice(0, -3);
      if (!(twin in o) && twin !== 'timestamp') out.push(`${at}: an epoch time with no ISO twin`);
    }
    out.push(...breaches(x, at));
  }
  return out;
}

function assertConvention(what: string, doc: unknown, versioned = true): void {
  assert.deepEqual(breaches(doc), [], what);
  if (versioned)
    assert.equal((doc as { schema_version?: number }).schema_version, SCHEMA_VERSION, what);
}

let srv: TestServer;
const reporter = () => new Reporter({ socketPath: srv.socket });

/** A client process that allocates and exits: what it holds is left behind. */
function exitedApp(): Promise<void> {
  const script = `import { Reporter } from ${INDEX};
    const r = new Reporter({ socketPath: process.argv[1] });
    r.alloc(1, 0x9000000, 64 * 1024, 0);
    r.alloc(1, 0x40000, 4096, 1);
    await r.close();`;
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--input-type=module', '-e', script, srv.socket], {
      stdio: 'inherit',
    });
    p.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`exit ${code}`))));
  });
}

before(async () => {
  srv = await startServer(['--devices', '2xwormhole_b0', '--sample-interval', '0.2']);
  await srv.client.json('POST', '/v1/marks', { name: 'start' });
  const r = reporter();
  r.alloc(0, 0x1000000, 36 * KiB, BufferType.DRAM);
  r.alloc(0, 0x20000, 8 * KiB, BufferType.L1);
  r.alloc(0, 0x30000, 2 * KiB, BufferType.SYSTEM_MEMORY);
  r.alloc(0, 0x1100000, 36 * KiB, BufferType.DRAM);
  r.free(0, 0x1100000);
  r.flush();
  await settle(srv);
  await srv.client.json('POST', '/v1/marks', { name: 'run-1' });
  await exitedApp();
  for (let i = 0; i < 100; i++) {
    await srv.client.json('POST', '/v1/reap');
    const st = await srv.client.json<{ reaped_processes: number }>('GET', '/v1/stats');
    if (st.reaped_processes > 0) break;
    await new Promise((res) => setTimeout(res, 50));
  }
  await srv.client.json('POST', '/v1/marks', { name: 'run-2' });
  await r.close();
});

after(async () => {
  await srv?.stop();
});

test('every control API reply follows the convention', async () => {
  const get = [
    '/v1/health',
    '/v1/stats',
    '/v1/devices',
    '/v1/processes',
    '/v1/clients',
    '/v1/kernels',
    '/v1/map?device=0&memory=L1',
    '/v1/map/view?device=0&memory=L1',
    '/v1/timeline?device=0&type=L1&limit=1',
    '/v1/reaped',
    '/v1/report?format=json',
    '/v1/report?format=json&all=1&since=start',
    '/v1/marks',
    '/v1/peaks',
    '/v1/peaks?since=run-1',
    '/v1/diff?a=start',
    '/v1/classify',
    '/v1/check?since=start',
    '/v1/buffers/page',
    '/v1/history',
  ];
  for (const path of get) {
    const doc = await srv.client.json('GET', path);
    assertConvention(path, doc, path !== '/v1/history' || 'schema_version' in (doc as object));
  }
  const reaped = await srv.client.json<{ reaped: { exited_at: string }[] }>('GET', '/v1/reaped');
  assert.equal(reaped.reaped.length, 1, 'the exited client is in the report');
  assertConvention('POST /v1/reap', await srv.client.json('POST', '/v1/reap'));
  assertConvention('POST /v1/peaks/reset', await srv.client.json('POST', '/v1/peaks/reset'));
  assertConvention('POST /v1/marks', await srv.client.json('POST', '/v1/marks', { name: 'x' }));
});

test('a report says what was asked, not the cut it compares against', async () => {
  const doc = await srv.client.json<{ filter: Record<string, unknown> }>(
    'GET',
    '/v1/report?format=json&since=run-1&type=DRAM,L1&device=1',
  );
  assert.deepEqual(Object.keys(doc.filter).sort(), ['devices', 'pids', 'since', 'state', 'types']);
  assert.deepEqual(doc.filter.types, ['DRAM', 'L1']);
  assert.deepEqual(doc.filter.devices, [1]);
  const since = doc.filter.since as { name: string; time: string };
  assert.equal(since.name, 'run-1');
  // The page's "born after the mark" link asks by the mark's name, not its cut.
  const page = (q: string) =>
    srv.client.json<{ total: number }>('GET', `/v1/buffers/page?${q}`).then((p) => p.total);
  assert.deepEqual([await page('since=start'), await page('since=run-1')], [3, 0]);
  await assert.rejects(page('since=nope'), /no mark named 'nope'/);
  const marks = await srv.client.json<{ marks: Record<string, unknown>[] }>('GET', '/v1/marks');
  assert.deepEqual(Object.keys(marks.marks[0]).sort(), ['name', 'pid', 'time', 'time_ms']);
});

test('every --json output of the CLI follows the convention', async () => {
  const s = ['--socket', srv.socket];
  const json = [
    ['stats', '--json'],
    ['dump', '--json'],
    ['dump', '--json', '--all'],
    ['dump-kernels', '--json'],
    ['marks', '--json'],
    ['peaks', '--json'],
    ['peaks', '--json', '--since', 'run-1'],
    ['map', '--json', '--device', '0', '--type', 'L1'],
    ['leaks', '--json'],
    ['diff', 'start', '--json'],
    ['check', '--since', 'start', '--json'],
    ['ps', '--json'],
    ['top', '--json'],
    ['doctor', '--json'],
    ['query', '--format', 'json'],
  ];
  for (const args of json) {
    const r = await runCli([...args, ...s]);
    assert.ok(r.stdout.trim(), `${args.join(' ')} printed JSON (stderr: ${r.stderr})`);
    assertConvention(args.join(' '), JSON.parse(r.stdout));
  }
  for (const args of [
    ['query', '--format', 'ndjson'],
    ['ps', '--format', 'ndjson'],
  ]) {
    const r = await runCli([...args, ...s]);
    const lines = r.stdout.trim().split('\n');
    assert.ok(lines.length >= 1 && lines[0], `${args.join(' ')} printed records`);
    for (const l of lines) assertConvention(args.join(' '), JSON.parse(l));
  }
});

test('the walker catches camelCase, a time without its twin, a bare epoch', () => {
  assert.deepEqual(breaches({ refCount: 1 }), ['$.refCount: key not snake_case']);
  assert.deepEqual(breaches({ a: [{ exited_at: '2026-01-01T00:00:00.000Z' }] }), [
    '$.a[0].exited_at: no exited_at_ms twin',
  ]);
  assert.deepEqual(breaches({ scanned_ms: 1_767_000_000_000 }), [
    '$.scanned_ms: an epoch time with no ISO twin',
  ]);
  assert.deepEqual(breaches({ at: '2026-01-01T00:00:00.000Z', at_ms: 0 }), [
    '$.at: a time under a key that does not say so (…_at)',
  ]);
  assert.deepEqual(breaches({ DRAM: 1, '42': { L1_SMALL: 2 }, age_ms: 5 }), []);
});
