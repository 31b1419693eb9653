// Leak classification through a real server: every route that classifies (/v1/classify as JSON
// and text, `ttalloc leaks`, `ttalloc check` with class rules) answers in every state, and every
// class keeps its reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Reporter } from '../src/client/reporter.js';
import { classify } from '../src/analysis/classify.js';
import { renderClassified } from '../src/report/leak-text.js';
import { FLAG_SHARED } from '../src/state/object-table.js';
import { Tracker } from '../src/state/tracker.js';
import { runCli, settle, startServer, type TestServer } from './helpers/server.js';
import type { ClassifyResponse, ReportResponse } from '../src/report/types.js';

// A left-behind buffer's line says when its process exited in local wall-clock time: the texts
// below are UTC's (whatever zone the machine is in).
process.env.TZ = 'UTC';

const KiB = 1024;

async function flush(srv: TestServer, r: Reporter): Promise<void> {
  r.flush();
  await settle(srv);
}

/** When every buffer the server holds was born (ms). */
async function liveBirths(srv: TestServer): Promise<number[]> {
  const rep = await srv.client.json<ReportResponse>('GET', '/v1/report?format=json&all=1');
  return (rep.buffers ?? []).map((b) => b.allocated_at_ms);
}

/**
 * Allocates small L1 buffers, one per poll, until one is born more than 2 s after the first (so
 * past "device open", the first second of its process, whatever the clock ticks).
 */
async function allocateUntilLate(srv: TestServer, r: Reporter): Promise<number> {
  let addr = 0x100000;
  r.alloc(0, addr, 4 * KiB, 1);
  await flush(srv, r);
  const first = Math.min(...(await liveBirths(srv)));
  for (;;) {
    await new Promise((res) => setTimeout(res, 200));
    addr += 0x1000;
    r.alloc(0, addr, 4 * KiB, 1);
    await flush(srv, r);
    if (Math.max(...(await liveBirths(srv))) > first + 2000) return addr;
  }
}

test(
  'no marks and a small buffer allocated late in its process: /v1/classify and ' +
    'ttalloc leaks answer, the buffer is not called expected',
  async () => {
    const srv = await startServer(['--reap-interval', '0']);
    const r = new Reporter({ socketPath: srv.socket });
    try {
      const late = await allocateUntilLate(srv, r);
      const res = await srv.client.raw('GET', '/v1/classify');
      assert.equal(res.status, 200, res.body);
      const j = JSON.parse(res.body) as ClassifyResponse;
      const rows = j.classes.flatMap((c) => c.buffers);
      const row = rows.find((b) => b.address === `0x${late.toString(16)}`);
      assert.ok(row, 'the late buffer is listed');
      assert.equal(row.class, 'other');
      assert.match(row.reason, /no rule matched/);
      for (const b of rows) assert.ok(b.reason.length > 0, `${b.address} has a reason`);

      const text = await srv.client.raw('GET', '/v1/classify?format=text');
      assert.equal(text.status, 200, text.body);
      assert.match(text.body, /Total remaining buffers: \d+\n/);
      const cli = await runCli(['leaks', '--socket', srv.socket]);
      assert.equal(cli.code, 0, cli.stderr);
      assert.match(cli.stdout, /OTHER: /);
    } finally {
      await r.close();
      assert.equal(await srv.stop(), 0);
    }
  },
);

type Rows = ClassifyResponse['classes'][number]['buffers'];

/** A class's group of a /v1/classify reply. */
function group(j: ClassifyResponse, cls: string) {
  const g = j.classes.find((c) => c.class === cls);
  assert.ok(g, `class ${cls} is in the reply`);
  return g;
}

function byAddress(j: ClassifyResponse): Map<string, Rows[number]> {
  return new Map(j.classes.flatMap((c) => c.buffers).map((b) => [b.address, b]));
}

/**
 * Every route that classifies or analyses leaks, in the current state: none answers 5xx, every
 * listed buffer has a reason, the CLI exits 0 (or 23 for a failing check). With `mark`, the routes
 * that need one get it; without, they answer 400 with a clear error. Returns /v1/classify's JSON.
 */
async function everyRoute(srv: TestServer, mark: string | null): Promise<ClassifyResponse> {
  const ok = async (path: string) => {
    const res = await srv.client.raw('GET', path);
    assert.equal(res.status, 200, `${path}: ${res.body}`);
    return res.body;
  };
  const j = JSON.parse(await ok('/v1/classify')) as ClassifyResponse;
  assert.deepEqual(
    j.classes.map((c) => c.class),
    ['suspicious', 'left_behind', 'program_cache', 'model_state', 'infrastructure', 'other'],
  );
  for (const b of j.classes.flatMap((c) => c.buffers))
    assert.ok(b.reason.length > 0, `${b.address} keeps its reason`);
  for (const p of j.classes.flatMap((c) => c.processes ?? []))
    assert.ok(p.reason.length > 0, `PID ${p.pid} keeps its reason`);
  const all = JSON.parse(await ok('/v1/classify?all=1')) as ClassifyResponse;
  assert.equal(
    all.classes.reduce((n, c) => n + c.more, 0) -
      (all.classes.find((c) => c.class === 'left_behind')?.more ?? 0),
    0,
    'all=1 lists every live buffer',
  );
  assert.match(await ok('/v1/classify?format=text'), /Total remaining buffers: \d+/);
  assert.equal((await ok('/v1/marks')).length > 0, true);
  const leaks = await runCli(['leaks', '--socket', srv.socket]);
  assert.equal(leaks.code, 0, leaks.stderr);
  assert.match(leaks.stdout, /^Remaining buffers by class/);
  const leaksJson = await runCli(['leaks', '--json', '--all', '--socket', srv.socket]);
  assert.equal(leaksJson.code, 0, leaksJson.stderr);
  assert.equal((JSON.parse(leaksJson.stdout) as ClassifyResponse).schema_version, 2);
  const rules = join(srv.dir, 'classes.supp');
  writeFileSync(rules, 'class=infrastructure\nclass=left_behind\n');
  if (mark === null) {
    for (const path of ['/v1/diff', '/v1/check']) {
      const res = await srv.client.raw('GET', path);
      assert.equal(res.status, 400, `${path} without a mark: ${res.body}`);
      assert.match(res.body, /needs a mark name/);
    }
    const chk = await runCli(['check', '--since', 'nope', '--socket', srv.socket]);
    assert.equal(chk.code, 1);
    assert.match(chk.stderr, /no mark named 'nope'/);
    return j;
  }
  await ok(`/v1/diff?a=${mark}`);
  await ok(`/v1/diff?a=${mark}&format=text`);
  await ok(`/v1/check?since=${mark}`);
  await ok(`/v1/check?since=${mark}&rules=${encodeURIComponent('[{"class":"other"}]')}`);
  const diff = await runCli(['diff', mark, '--socket', srv.socket]);
  assert.equal(diff.code, 0, diff.stderr);
  const chk = await runCli(['check', '--since', mark, '--ignore', rules, '--socket', srv.socket]);
  assert.ok(chk.code === 0 || chk.code === 23, chk.stdout + chk.stderr);
  return j;
}

test('every leak route answers with no marks and no buffers', async () => {
  const srv = await startServer(['--reap-interval', '0']);
  try {
    const j = await everyRoute(srv, null);
    assert.equal(
      j.classes.reduce((n, c) => n + c.count, 0),
      0,
    );
    const text = await runCli(['leaks', '--socket', srv.socket]);
    assert.match(text.stdout, /Total remaining buffers: 0\n/);
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('every leak route answers with one buffer and no marks, then with marks', async () => {
  const srv = await startServer(['--reap-interval', '0']);
  const r = new Reporter({ socketPath: srv.socket });
  try {
    r.alloc(0, 0x8000, 64 * KiB, 3); // L1_SMALL at device open
    await flush(srv, r);
    let j = await everyRoute(srv, null);
    assert.equal(group(j, 'infrastructure').count, 1);
    assert.equal(
      group(j, 'infrastructure').buffers[0].reason,
      'allocated when its process opened the device',
    );
    await runCli(['mark', 'run-1', '--socket', srv.socket]);
    j = await everyRoute(srv, 'run-1');
    assert.equal(group(j, 'infrastructure').count, 1, 'a mark does not change setup');
  } finally {
    await r.close();
    assert.equal(await srv.stop(), 0);
  }
});

test('every leak route answers with marks but no buffers', async () => {
  const srv = await startServer(['--reap-interval', '0']);
  const r = new Reporter({ socketPath: srv.socket });
  try {
    for (const m of ['run-1', 'run-2', 'run-3']) {
      assert.equal((await runCli(['mark', m, '--socket', srv.socket])).code, 0);
      r.alloc(0, 0x10000, 4 * KiB, 1);
      r.free(0, 0x10000);
      await flush(srv, r);
    }
    const j = await everyRoute(srv, 'run-1');
    assert.equal(
      j.classes.reduce((n, c) => n + c.count, 0),
      0,
    );
    const chk = await runCli(['check', '--since', 'run-1', '--socket', srv.socket]);
    assert.equal(chk.code, 0, chk.stdout);
  } finally {
    await r.close();
    assert.equal(await srv.stop(), 0);
  }
});

test(
  'only exited processes: their leftovers are class left_behind, with PID, exit time and ' +
    'reason, in every route',
  async () => {
    const srv = await startServer(['--reap-interval', '0']);
    try {
      const index = JSON.stringify(new URL('../dist/index.js', import.meta.url).href);
      const script = `import { Reporter } from ${index};
      const r = new Reporter({ socketPath: process.argv[1] });
      r.alloc(0, 0x7f000000, 36 * 1024, 0);
      r.alloc(1, 0x7f000000, 36 * 1024, 0);
      await r.close();`;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script, srv.socket], {
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      const code = await new Promise<number | null>((res) => child.once('exit', res));
      assert.equal(code, 0);
      await settle(srv);
      assert.equal((await runCli(['mark', 'after', '--socket', srv.socket])).code, 0);
      for (const mark of [null, 'after']) {
        const j = await everyRoute(srv, mark);
        const g = group(j, 'left_behind');
        assert.deepEqual([g.count, g.bytes], [2, 2 * 36 * KiB]);
        assert.equal(g.processes?.length, 1);
        const p = g.processes![0];
        assert.deepEqual([p.pid, p.buffers, p.bytes], [child.pid, 2, 2 * 36 * KiB]);
        assert.match(p.reason, new RegExp(`^left behind by PID ${child.pid}, which exited at `));
        assert.equal(
          j.classes.filter((c) => c.class !== 'left_behind').reduce((n, c) => n + c.count, 0),
          0,
          'no live buffers',
        );
      }
      const text = await runCli(['leaks', '--socket', srv.socket]);
      assert.equal(text.code, 0, text.stderr);
      assert.match(
        text.stdout,
        new RegExp(
          String.raw`LEFT BEHIND BY EXITED PROCESSES: 2 buffers, 72\.0 KiB total — leaks: ` +
            String.raw`[^\n]*\n {4}- PID ${child.pid} \(exited \d\d:\d\d:\d\d\): 2 buffers, ` +
            String.raw`72\.0 KiB — left behind by PID ${child.pid}, which exited at `,
        ),
      );
      assert.match(
        text.stdout,
        /Total remaining buffers: 0 in running processes, 2 left behind by exited processes\n/,
      );
    } finally {
      assert.equal(await srv.stop(), 0);
    }
  },
);

test(
  '64 MiB of weights loaded in the first second are model state, never infrastructure; ' +
    'infrastructure is bounded per device and process',
  async () => {
    const srv = await startServer(['--reap-interval', '0']);
    const r = new Reporter({ socketPath: srv.socket });
    try {
      r.alloc(0, 0x1000, 4 * KiB, 2); // SYSTEM_MEMORY
      r.alloc(0, 0x8000, 64 * KiB, 3); // L1_SMALL
      r.alloc(0, 0x10000000, 14 * 1024 * KiB, 0); // command queues
      r.alloc(0, 0x20000000, 3 * 1024 * KiB, 0); // over the 16 MiB budget with the above
      r.alloc(0, 0x40000000, 64 * 1024 * KiB, 0); // weights
      r.alloc(1, 0x10000000, 14 * 1024 * KiB, 0); // device 1's own budget
      await flush(srv, r);
      for (const mark of [null, 'later']) {
        if (mark) assert.equal((await runCli(['mark', mark, '--socket', srv.socket])).code, 0);
        const j = await everyRoute(srv, mark);
        const rows = byAddress(j);
        const cls = (a: string, dev = 0) =>
          j.classes.find((c) => c.buffers.some((b) => b.address === a && b.device === dev))?.class;
        assert.equal(cls('0x40000000'), 'model_state');
        assert.match(rows.get('0x40000000')!.reason, /large buffer from the first part of PID/);
        assert.equal(cls('0x20000000'), 'model_state', 'beyond the per-device budget');
        for (const a of ['0x1000', '0x8000', '0x10000000']) assert.equal(cls(a), 'infrastructure');
        assert.equal(cls('0x10000000', 1), 'infrastructure');
        const infra = group(j, 'infrastructure');
        assert.equal(infra.bytes, 4 * KiB + 64 * KiB + 2 * 14 * 1024 * KiB);
      }
    } finally {
      await r.close();
      assert.equal(await srv.stop(), 0);
    }
  },
);

test('buffers born before the first mark are not expected: other, predating it', async () => {
  const srv = await startServer(['--reap-interval', '0']);
  const r = new Reporter({ socketPath: srv.socket });
  try {
    const late = `0x${(await allocateUntilLate(srv, r)).toString(16)}`;
    assert.equal((await runCli(['mark', 'run-1', '--socket', srv.socket])).code, 0);
    const j = await everyRoute(srv, 'run-1');
    const row = byAddress(j).get(late)!;
    assert.equal(row.class, 'other');
    assert.equal(row.reason, "allocated before the first mark 'run-1': it predates every mark");
    assert.equal(byAddress(j).get('0x100000')!.class, 'infrastructure', 'the first: device open');
    const text = await runCli(['leaks', '--socket', srv.socket]);
    assert.match(
      text.stdout,
      new RegExp(`Buffer ${late}: 4\\.00 KiB [^\\n]* — allocated before the first mark 'run-1'`),
    );
  } finally {
    await r.close();
    assert.equal(await srv.stop(), 0);
  }
});

test(
  'accumulation is judged on complete intervals: the open one after the last mark neither ' +
    'makes nor unmakes SUSPICIOUS',
  async () => {
    const srv = await startServer(['--reap-interval', '0']);
    const r = new Reporter({ socketPath: srv.socket });
    let addr = 0x7f000000;
    const leak = async (n: number) => {
      for (let i = 0; i < n; i++) r.alloc(0, (addr += 0x9000), 36 * KiB, 0);
      await flush(srv, r);
    };
    const suspicious = async () =>
      group(await srv.client.json<ClassifyResponse>('GET', '/v1/classify'), 'suspicious').count;
    try {
      r.alloc(0, 0x8000, 64 * KiB, 3);
      await flush(srv, r);
      await runCli(['mark', 'run-1', '--socket', srv.socket]);
      await leak(1);
      await runCli(['mark', 'run-2', '--socket', srv.socket]);
      await leak(1);
      assert.equal(await suspicious(), 0, 'one complete interval and an open one: not judged');
      await runCli(['mark', 'run-3', '--socket', srv.socket]);
      assert.equal(await suspicious(), 2, 'two complete intervals of one 36 KB buffer each');
      await leak(2);
      assert.equal(await suspicious(), 4, 'the open interval growing does not unmake it');
      const j = await srv.client.json<ClassifyResponse>('GET', '/v1/classify');
      const reasons = group(j, 'suspicious').buffers.map((b) => b.reason);
      assert.equal(
        reasons.filter((x) => x.startsWith('accumulates across marks: +36.0 KiB DRAM per run'))
          .length,
        2,
      );
      assert.equal(reasons.filter((x) => x.endsWith("born after the last mark 'run-3'")).length, 2);
    } finally {
      await r.close();
      assert.equal(await srv.stop(), 0);
    }
  },
);

test('classify(): a shared address is suspicious; left-behind rows are listed with reasons', () => {
  const tr = new Tracker();
  tr.buffers.append({
    device: 0,
    lo: 0x5000,
    hi: 0,
    size: 4096,
    sub: 0,
    owner: 42,
    bornMs: Date.now(),
    ref: 1,
    flags: FLAG_SHARED,
  });
  tr.buffers.reindex();
  const exitedAtMs = Date.UTC(2026, 0, 2, 3, 4, 5);
  const row = {
    state: 'exited' as const,
    device: 1,
    address: '0x7f000000',
    size: 36 * KiB,
    type: 'DRAM',
    pid: 77,
    ref_count: 1,
    allocated_at_ms: exitedAtMs - 1000,
    allocated_at: new Date(exitedAtMs - 1000).toISOString(),
    age_ms: 1000,
    resized: false,
    shared: false,
    exited_at_ms: exitedAtMs,
  };
  const j = classify(tr, [], {
    leftBehind: [
      { pid: 77, exitedAtMs, buffers: 3, bytes: 3 * 36 * KiB, rows: [row] },
      { pid: 78, exitedAtMs, buffers: 0, bytes: 0 },
    ],
  });
  const s = group(j, 'suspicious');
  assert.deepEqual(
    s.buffers.map((b) => [b.address, b.reason]),
    [['0x5000', 'address shared by two live processes']],
  );
  const lb = group(j, 'left_behind');
  assert.deepEqual([lb.count, lb.bytes, lb.more, lb.processes?.length], [3, 3 * 36 * KiB, 2, 1]);
  assert.equal(
    lb.buffers[0].reason,
    'left behind by PID 77, which exited at 2026-01-02T03:04:05.000Z',
  );
  const text = renderClassified(j);
  assert.match(
    text,
    new RegExp(
      String.raw`- Device 1 DRAM Buffer 0x7f000000: 36\.0 KiB ` +
        String.raw`\(PID 77, exited 03:04:05, ref_count=1\) — left behind by PID 77`,
    ),
  );
  assert.match(text, / {4}\.\.\. and 2 more\n/);
  assert.match(text, /SUSPICIOUS: 1 buffer, [\s\S]*— address shared by two live processes/);
  assert.match(text, /Total remaining buffers: 1 in running processes, 3 left behind/);
});
