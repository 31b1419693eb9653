// Leak classification through a real server: every route that classifies (/v1/classify as JSON
// and text, `ttalloc leaks`, `ttalloc check` with class rules) answers in every state, and every
// class keeps its reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Reporter } from '../src/client/reporter.js';
import { runCli, settle, startServer, type TestServer } from './helpers/server.js';
import type { ClassifyResponse, ReportResponse } from '../src/report/types.js';

const KiB = 1024;

async function flush(srv: TestServer, r: Reporter): Promise<void> {
  r.flush();
  await settle(srv);
}

/** Every buffer the server holds, with the epoch it was born in. */
async function liveEpochs(srv: TestServer): Promise<number[]> {
  const rep = await srv.client.json<ReportResponse>('GET', '/v1/report?format=json&all=1');
  return (rep.buffers ?? []).map((b) => b.epoch);
}

/**
 * Allocates small L1 buffers, one per poll, until one is born three epochs after the first. A new
 * epoch starts on a tick at least 1 s after the previous one began, and only when something was
 * allocated in it; the first buffer's epoch ends after the process was first seen, so the third
 * epoch after it starts more than 1 s after the process was first seen (past "device open").
 */
async function allocateUntilLate(srv: TestServer, r: Reporter): Promise<number> {
  let addr = 0x100000;
  r.alloc(0, addr, 4 * KiB, 1);
  await flush(srv, r);
  const first = Math.min(...(await liveEpochs(srv)));
  for (;;) {
    await new Promise((res) => setTimeout(res, 200));
    addr += 0x1000;
    r.alloc(0, addr, 4 * KiB, 1);
    await flush(srv, r);
    if (Math.max(...(await liveEpochs(srv))) >= first + 3) return addr;
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
