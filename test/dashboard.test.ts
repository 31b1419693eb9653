// The web dashboard in a real browser (headless Chromium from @sparticuz/chromium, driven by
// playwright-core; see helpers/browser.ts) against a real server with --http, fed by a real
// client (Reporter) over the data socket.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { request } from 'node:http';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { Reporter } from '../src/client/reporter.js';
import { BufferType } from '../src/protocol/constants.js';
import { launchBrowser, type TestBrowser } from './helpers/browser.js';
import { runCli, settle, startServer, type TestServer } from './helpers/server.js';

const MiB = 1 << 20,
  KiB = 1024;
let server: TestServer, browser: TestBrowser, page: Page, url: string;
const reporter = () => new Reporter({ socketPath: server.socket });

before(async () => {
  // --trust-client-pid: the sorting step reports for a `sleep` child (its PID in the messages) from
  // this process.
  server = await startServer([
    '--http',
    '127.0.0.1:0',
    '--devices',
    '2xwormhole_b0',
    '--sample-interval',
    '0.2',
    '--reap-interval',
    '0.3',
    '--trust-client-pid',
  ]);
  url = /dashboard on (http:\/\/\S+\/)/.exec(server.output())![1];
  browser = await launchBrowser({ width: 1280, height: 1600 });
  page = await browser.context.newPage();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const lastPoint = (dev: number) =>
  page.evaluate((d) => {
    const el = document.querySelector<HTMLElement>(`.chart[data-device="${d}"]`);
    return el?.dataset.last ? (JSON.parse(el.dataset.last) as Record<string, number>) : null;
  }, dev);

test('dashboard shows live charts and tables, filters and pages buffers', async () => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // no request of the page's load fails
  const failed: string[] = [];
  page.on('response', (res) => {
    if (res.status() >= 400) failed.push(`${res.status()} ${res.url()}`);
  });
  await page.goto(`${url}?poll=300`);
  await page.waitForSelector('#status.on');
  // Empty server: charts for both declared devices, flat at zero; no buffers.
  await page.waitForSelector('.chart[data-device="1"][data-samples]');
  assert.equal((await lastPoint(0))!.DRAM, 0);
  await page.waitForFunction(
    () => document.querySelector('#range')!.textContent === 'no matching buffers',
  );

  const r = reporter();
  let dram = 0;
  for (let i = 0; i < 250; i++) {
    const size = MiB + i * 4 * KiB;
    dram += size;
    r.alloc(0, 0x10000000 + i * 0x200000, size, 0);
  }
  for (let i = 0; i < 20; i++) r.alloc(1, 0x100000 + i * 0x10000, 64 * KiB, 1);
  r.cbAlloc(1, 0x7000, 32 * KiB);
  r.flush();
  await settle(server);

  // The charts reach the workload's totals through the sample stream.
  await page.waitForFunction((want) => {
    const el = document.querySelector<HTMLElement>('.chart[data-device="0"]');
    return !!el?.dataset.last && JSON.parse(el.dataset.last).DRAM === want;
  }, dram);
  const d1 = (await lastPoint(1))!;
  assert.equal(d1.L1, 20 * 64 * KiB);
  assert.equal(d1.CB, 32 * KiB);
  assert.ok(
    Number(await page.getAttribute('.chart[data-device="0"]', 'data-samples')) > 1,
    'the chart has a history',
  );

  // The header says the state survives a restart.
  await page.waitForFunction(
    () => document.querySelector('#persist')!.textContent === '· state saved to disk',
  );
  assert.match((await page.getAttribute('#persist', 'title'))!, /\/state, flushed every 100 ms$/);

  // Process table: this process on both devices.
  await page.waitForSelector(`#processes tr[data-pid="${process.pid}"][data-device="1"]`);
  const procRow = await page.textContent(
    `#processes tr[data-pid="${process.pid}"][data-device="0"]`,
  );
  assert.match(procRow!, new RegExp(`^${process.pid}`));
  assert.match(procRow!, /250$/);

  // Sorting the process table by clicking a column: a second process with more L1 comes first.
  const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    const other = new Reporter({ socketPath: server.socket, pid: sleeper.pid });
    other.alloc(0, 0x300000, 8 * MiB, 1);
    await other.close();
    const order = () =>
      page.$$eval('#processes tbody tr', (trs) => [
        ...new Set(trs.map((t) => Number((t as HTMLElement).dataset.pid))),
      ]);
    await page.waitForSelector(`#processes tr[data-pid="${sleeper.pid}"]`);
    assert.deepEqual(await order(), [process.pid, sleeper.pid], 'DRAM, largest first');
    await page.click('#processes th[data-sort="L1"]');
    assert.deepEqual(await order(), [sleeper.pid, process.pid], 'L1, largest first');
    assert.equal(await page.getAttribute('#processes th[data-sort="L1"]', 'data-dir'), '▼');
  } finally {
    sleeper.kill('SIGKILL');
  }
  await page.waitForFunction(
    (pid) => !document.querySelector(`#processes tr[data-pid="${pid}"]`),
    sleeper.pid,
  );

  // Buffer table: all 270, largest first, paged by 100.
  await page.waitForFunction(() =>
    /^1–100 of 270 /.test(document.querySelector('#range')!.textContent!),
  );
  const firstSize = await page.textContent('#buffers tbody tr:first-child td:nth-child(4)');
  assert.equal(firstSize, `${((MiB + 249 * 4 * KiB) / MiB).toFixed(2)} MiB`);
  await page.selectOption('#filters [name=type]', 'L1');
  await page.waitForFunction(() =>
    /^1–20 of 20 /.test(document.querySelector('#range')!.textContent!),
  );
  const types = await page.$$eval('#buffers tbody tr', (trs) =>
    trs.map((t) => (t as HTMLElement).dataset.type),
  );
  assert.deepEqual(new Set(types), new Set(['L1']));
  assert.equal(types.length, 20);
  await page.selectOption('#filters [name=type]', 'DRAM');
  await page.fill('#filters [name=minSize]', '1.5M');
  // Sizes ≥ 1.5 MiB: MiB + i*4 KiB ≥ 1.5 MiB ⇔ i ≥ 128 → 122 buffers.
  await page.waitForFunction(() =>
    /^1–100 of 122 /.test(document.querySelector('#range')!.textContent!),
  );
  await page.click('#next');
  await page.waitForFunction(() =>
    /^101–122 of 122 /.test(document.querySelector('#range')!.textContent!),
  );
  assert.equal(await page.$$eval('#buffers tbody tr', (t) => t.length), 22);
  assert.ok(await page.isDisabled('#next'));

  // Frees show up in the chart and in the table.
  for (let i = 200; i < 250; i++) {
    r.free(0, 0x10000000 + i * 0x200000);
    dram -= MiB + i * 4 * KiB;
  }
  r.flush();
  await settle(server);
  await page.waitForFunction(() =>
    /^1–72 of 72 /.test(document.querySelector('#range')!.textContent!),
  );
  await page.waitForFunction(
    (want) =>
      JSON.parse(document.querySelector<HTMLElement>('.chart[data-device="0"]')!.dataset.last!)
        .DRAM === want,
    dram,
  );

  // The L1_SMALL series counts SYSTEM_MEMORY, by the rule the history carries; and back to 0.
  r.alloc(1, 0x9000, 16 * KiB, BufferType.L1_SMALL);
  r.alloc(1, 0xa000, 8 * KiB, BufferType.SYSTEM_MEMORY);
  r.flush();
  await settle(server);
  await page.waitForFunction(() => {
    const el = document.querySelector<HTMLElement>('.chart[data-device="1"]');
    return JSON.parse(el!.dataset.last!).L1_SMALL === 24 * 1024;
  });
  r.free(1, 0x9000);
  r.free(1, 0xa000);
  r.flush();
  await settle(server);
  await page.waitForFunction(() => {
    const el = document.querySelector<HTMLElement>('.chart[data-device="1"]');
    return JSON.parse(el!.dataset.last!).L1_SMALL === 0;
  });

  // The leak report view and the JSON download link follow the device/type/PID filters (type DRAM).
  await page.click('#refresh-report');
  // (the report shown at page load was of the empty server: wait for the refreshed one)
  await page.waitForFunction(() =>
    document.querySelector('#report')!.textContent!.includes('Device 0:'),
  );
  const report = await page.textContent('#report');
  assert.match(report!, /DRAM: 200 buffers/);
  assert.doesNotMatch(report!, /L1:/);
  const href = await page.getAttribute('#download-filtered', 'href');
  const json = (await page.evaluate(async (h) => (await fetch(h!)).json(), href)) as {
    total_buffers: number;
    buffers: unknown[];
  };
  assert.equal(json.total_buffers, 200);
  assert.equal(json.buffers.length, 200);

  mkdirSync('test-output', { recursive: true });
  await page.screenshot({ path: 'test-output/dashboard.png', fullPage: true });
  assert.deepEqual(errors, []);
  assert.deepEqual(failed, []);
  // an inline icon: a browser then asks for no /favicon.ico (a 404 on every visit before)
  const icon = await page.evaluate(
    () => document.querySelector<HTMLLinkElement>('link[rel=icon]')?.href,
  );
  assert.match(icon ?? '', /^data:image\/svg\+xml,/);
  await r.close();
});

test('the TCP listener is read-only and also serves /metrics', async () => {
  const res = await page.evaluate(async () => {
    const post = await fetch('/v1/reset', { method: 'POST', body: '{"confirm":true}' });
    const metrics = await (await fetch('/metrics')).text();
    return { status: post.status, metrics };
  });
  assert.equal(res.status, 403);
  assert.match(
    res.metrics,
    /^ttalloc_device_buffers\{device="0",arch="Wormhole_B0",serial="",type="DRAM"\} 200$/m,
  );
  const stats = await server.client.json<{ live: { buffers: number } }>('GET', '/v1/stats');
  assert.equal(stats.live.buffers, 220, 'nothing was reset');
  // DNS rebinding: a page served under another name that resolves to 127.0.0.1 is refused.
  const status = (host: string) =>
    new Promise<number>((resolve, reject) => {
      request(`${url}v1/processes`, { headers: { host } }, (r) => {
        r.resume();
        resolve(r.statusCode!);
      })
        .on('error', reject)
        .end();
    });
  assert.equal(await status('evil.example:80'), 403);
  assert.equal(await status(`localhost:${new URL(url).port}`), 200);
});

test('a bad or busy --http address is refused before any socket is claimed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ttalloc-http-'));
  try {
    const busyPort = new URL(url).port;
    for (const [spec, msg] of [
      ['70000', /expected \[HOST:\]PORT/],
      [`127.0.0.1:${busyPort}`, /cannot listen \(EADDRINUSE\)/],
    ] as const) {
      const r = await runCli(['server', '--socket', join(dir, 's.sock'), '--http', spec]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, msg);
      assert.deepEqual(readdirSync(dir), [], 'no socket file left behind');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('buffer pages, largest first, concatenate to the full listing; filters combine', async () => {
  const r = reporter();
  const sizes: number[] = [];
  let seed = 7;
  for (let i = 0; i < 1500; i++) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    const size = 4096 * (1 + (seed % 300)); // many ties on purpose
    sizes.push(size);
    r.alloc(1, 0x80000000 + i * 0x100000, size, 4);
  }
  await r.close();
  await settle(server);
  type Page = {
    total: number;
    total_bytes: number;
    buffers: { size: number; address: string; type: string; device: number }[];
  };
  const got: Page['buffers'] = [];
  for (let offset = 0; ; offset += 97) {
    const p = await server.client.json<Page>(
      'GET',
      `/v1/buffers/page?device=1&type=TRACE&order=size&limit=97&offset=${offset}`,
    );
    assert.equal(p.total, 1500);
    assert.equal(
      p.total_bytes,
      sizes.reduce((a, b) => a + b, 0),
    );
    if (p.buffers.length === 0) break;
    got.push(...p.buffers);
  }
  assert.deepEqual(
    got.map((b) => b.size),
    [...sizes].sort((a, b) => b - a),
  );
  assert.equal(new Set(got.map((b) => b.address)).size, 1500, 'no buffer twice, none missing');
  assert.ok(got.every((b) => b.device === 1 && b.type === 'TRACE'));
  // Unfiltered table order (a slice, totals from the running counters) covers every buffer once.
  const all = await server.client.json<Page>(
    'GET',
    '/v1/buffers/page?order=size&limit=1000&offset=0',
  );
  const seen = new Set<string>();
  let bytes = 0,
    n = 0;
  for (let offset = 0; ; offset += 1000) {
    const p = await server.client.json<Page>('GET', `/v1/buffers/page?limit=1000&offset=${offset}`);
    assert.equal(p.total, all.total);
    assert.equal(p.total_bytes, all.total_bytes);
    if (p.buffers.length === 0) break;
    for (const b of p.buffers) {
      seen.add(`${b.device}:${b.address}`);
      bytes += b.size;
      n++;
    }
  }
  assert.equal(n, all.total);
  assert.equal(seen.size, all.total);
  assert.equal(bytes, all.total_bytes);
  // minSize and pid filters combine with the others.
  const big = await server.client.json<Page>(
    'GET',
    `/v1/buffers/page?device=1&type=TRACE&minSize=${4096 * 250}&pid=${process.pid}&limit=1000`,
  );
  assert.equal(big.total, sizes.filter((s) => s >= 4096 * 250).length);
  const none = await server.client.json<Page>('GET', `/v1/buffers/page?device=1&type=TRACE&pid=1`);
  assert.equal(none.total, 0);
  const bad = await server.client.raw('GET', '/v1/buffers/page?limit=5000');
  assert.equal(bad.status, 400);
});

test('leak report: classes, marks, and the diff since a mark with its accumulation', async () => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const r = reporter();
  for (let run = 1; run <= 3; run++) {
    assert.equal((await runCli(['mark', `run-${run}`, '--socket', server.socket])).code, 0);
    for (const dev of [0, 1]) r.alloc(dev, 0x7e000000 + run * 0x9000, 36 * KiB, 0);
    r.flush();
    await settle(server);
  }
  await page.goto(`${url}?poll=300`);
  await page.waitForSelector('#marks a[data-diff="run-1"]');
  await page.click('#marks a[data-diff="run-1"]');
  await page.waitForFunction(() =>
    document.querySelector('#diff')!.textContent!.includes('Accumulating'),
  );
  const diff = await page.textContent('#diff');
  assert.match(diff!, /run-1 → run-2: \+2 buffers/);
  assert.match(diff!, /\+36\.0 KB DRAM per run on every device \(0, 1\), 3 runs/);
  await page.click('#refresh-report');
  await page.waitForFunction(() =>
    document.querySelector('#classes')!.textContent!.includes('SUSPICIOUS'),
  );
  assert.match(
    (await page.textContent('#classes'))!,
    new RegExp(
      /- Device \d DRAM Buffer 0x7e0\w+: 36\.0 KB \(PID \d+, ref_count=1\)/.source +
        / — accumulates across marks/.source,
    ),
  );
  mkdirSync('test-output', { recursive: true });
  await page.screenshot({ path: 'test-output/dashboard-leaks.png', fullPage: true });
  assert.deepEqual(errors, []);
  await r.close();
});
