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
import { launchBrowser, watchPage, type TestBrowser } from './helpers/browser.js';
import { formatBytes } from '../src/report/format.js';
import type { MarksResponse, StatsResponse } from '../src/report/types.js';
import { runCli, settle, startServer, type TestServer } from './helpers/server.js';

// The screenshots: into test-output/, or with UPDATE_SCREENS=1 into docs/screens/ (the ones the
// docs show), so that a plain test run leaves the tracked files alone.
const SCREENS = process.env.UPDATE_SCREENS ? 'docs/screens' : 'test-output';
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

/** What a chart holds and draws, read from its uPlot instance and its legend. */
interface ChartView {
  last: Record<string, number>;
  peak: Record<string, number>;
  samples: number;
  /** Axes other than time, and the scales its series use. */
  valueAxes: number;
  seriesScales: string[];
  labels: string[];
  data: (number | null)[][];
  yticks: number[];
  legend: string;
  legendValue: Record<string, string>;
}
const chart = (dev: number, memory: 'DRAM' | 'L1' | 'HOST') =>
  page.evaluate(
    ([d, m]) => {
      const el = document.querySelector<HTMLElement>(
        `.chart[data-device="${d}"][data-memory="${m}"]`,
      );
      if (!el?.dataset.last) return null;
      const u = (el as unknown as { uplot: import('uplot') }).uplot;
      const legendValue: Record<string, string> = {};
      for (const i of Array.from(el.querySelectorAll<HTMLElement>('.legend .item[data-kind]')))
        legendValue[i.dataset.kind!] = i.querySelector('b')!.textContent!;
      return {
        last: JSON.parse(el.dataset.last),
        peak: JSON.parse(el.dataset.peak!),
        samples: Number(el.dataset.samples),
        valueAxes: u.axes.filter((a) => a.scale !== 'x').length,
        seriesScales: [...new Set(u.series.slice(1).map((s) => s.scale!))],
        labels: u.series.map((s) => String(s.label ?? '')),
        data: u.data.map((a) => [...a]) as (number | null)[][],
        yticks: JSON.parse(el.dataset.yticks ?? '[]') as number[],
        legend: el.querySelector('.legend')!.textContent!,
        legendValue,
      } satisfies ChartView;
    },
    [dev, memory] as const,
  );
const cell = (sel: string) => page.textContent(sel).then((t) => t!.trim());
const stats = () => server.client.json<StatsResponse>('GET', '/v1/stats').then((s) => s.devices);

/** A share as the page writes it ("<0.1%" below a tenth of a percent). */
const pct = (used: number, total: number) =>
  used > 0 && (100 * used) / total < 0.1 ? '<0.1%' : `${((100 * used) / total).toFixed(1)}%`;
const isPow2 = (n: number) => n > 0 && Number.isInteger(Math.log2(n));

/** One y-axis, binary ticks, the capacity line, legends with values, peaks ≥ levels. */
function assertChart(c: ChartView, capacity: number | null, what: string) {
  assert.equal(c.valueAxes, 1, `${what}: one y-axis`);
  assert.deepEqual(c.seriesScales, ['y'], `${what}: every series on that axis`);
  assert.ok(c.yticks.length >= 2, `${what}: ticks drawn`);
  const step = c.yticks[1] - c.yticks[0];
  assert.ok(isPow2(step), `${what}: tick step ${step} is a power of two`);
  for (const t of c.yticks) assert.equal(t % step, 0, `${what}: tick ${t} on the binary grid`);
  const cap = c.labels.indexOf('capacity');
  if (capacity !== null) {
    assert.ok(cap > 0, `${what}: a capacity line`);
    assert.ok(
      c.data[cap].length > 0 && c.data[cap].every((v) => v === capacity),
      `${what}: at the capacity`,
    );
    assert.ok(c.yticks.at(-1)! >= capacity - step, `${what}: the axis reaches the capacity`);
    // The legend adds the kinds up, over the same memory's capacity.
    const used = Object.values(c.last).reduce((a, b) => a + b, 0);
    const sum = `used ${formatBytes(used)} (${pct(used, capacity)})`;
    assert.ok(c.legend.endsWith(`${sum}capacity ${formatBytes(capacity)}`), c.legend);
  }
  // Each level has its interval's peak beside it, never below it.
  for (const kind of Object.keys(c.last)) {
    const level = c.labels.indexOf(kind === 'KERNEL' ? 'Kernels' : kind);
    const peak = c.labels.indexOf(`${kind === 'KERNEL' ? 'Kernels' : kind} peak`);
    assert.ok(level > 0 && peak > 0, `${what}: ${kind} has a peak series`);
    c.data[level].forEach((v, i) => assert.ok(c.data[peak][i]! >= v!, `${what}: peak ≥ level`));
    // The legend shows the latest value without a hover.
    assert.equal(c.legendValue[kind], formatBytes(c.last[kind]), `${what}: ${kind} in the legend`);
  }
  assert.doesNotMatch(c.legend, /–|--/, `${what}: no blank legend`);
}

test('dashboard shows live charts and tables, filters and pages buffers', async () => {
  const trouble = watchPage(page);
  await page.goto(`${url}?poll=300`);
  await page.waitForSelector('#status.on');
  // Empty server: a DRAM and an L1 chart for both declared devices, flat at zero; no buffers.
  await page.waitForSelector('.chart[data-device="1"][data-memory="L1"][data-samples]');
  assert.equal(await page.locator('.chart').count(), 4, 'no host chart without host memory');
  assert.equal((await chart(0, 'DRAM'))!.last.DRAM, 0);
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
  const dramPeak = dram;
  r.cbAlloc(1, 0x7000, 32 * KiB);
  r.flush();
  await settle(server);

  // The charts reach the workload's totals through the sample stream.
  await page.waitForFunction((want) => {
    const el = document.querySelector<HTMLElement>('.chart[data-device="0"][data-memory="DRAM"]');
    return !!el?.dataset.last && JSON.parse(el.dataset.last).DRAM === want;
  }, dram);
  const l1 = 20 * 64 * KiB;
  await page.waitForFunction((want) => {
    const el = document.querySelector<HTMLElement>('.chart[data-device="1"][data-memory="L1"]');
    return !!el?.dataset.last && JSON.parse(el.dataset.last).L1 === want;
  }, l1);
  const d1 = (await chart(1, 'L1'))!;
  assert.equal(d1.last.CB, 32 * KiB);
  assert.ok(d1.samples > 1, 'the chart has a history');

  // A buffer that lives shorter than a sampling interval shows in the L1 chart's peak series, not
  // in its level: allocated and freed in one batch.
  r.alloc(1, 0x900000, 512 * KiB, 1);
  r.free(1, 0x900000);
  r.flush();
  await settle(server);
  await page.waitForFunction(
    (want) => {
      const el = document.querySelector<HTMLElement>('.chart[data-device="1"][data-memory="L1"]');
      const u = (el as unknown as { uplot: import('uplot') }).uplot;
      return u.data[u.series.findIndex((s) => s.label === 'L1 peak')].some((v) => v === want);
    },
    l1 + 512 * KiB,
  );
  const withPeak = (await chart(1, 'L1'))!;
  assert.ok(
    withPeak.data[withPeak.labels.indexOf('L1')].every((v) => v === 0 || v === l1),
    'the level never held the short-lived buffer',
  );

  const devices = await stats();
  for (const dev of [0, 1]) {
    const s = devices.find((d) => d.device === dev)!;
    assertChart((await chart(dev, 'DRAM'))!, s.total_dram_bytes!, `device ${dev} DRAM`);
    assertChart((await chart(dev, 'L1'))!, s.total_l1_bytes!, `device ${dev} L1`);
  }
  // Hovering shows the values at that time; leaving shows the latest again.
  const when = '.chart[data-device="0"][data-memory="DRAM"] .legend .when';
  await page.hover('.chart[data-device="0"][data-memory="DRAM"] .u-over');
  await page.waitForFunction(
    (sel) => /\d:\d\d:\d\d/.test(document.querySelector(sel)!.textContent!),
    when,
  );
  await page.mouse.move(0, 0);
  await page.waitForFunction((sel) => document.querySelector(sel)!.textContent === 'now', when);
  // 250 MiB and more of DRAM on a 12 GiB device: ticks on binary steps, labelled as such.
  const dramTicks = (await chart(0, 'DRAM'))!.yticks;
  assert.ok(
    dramTicks.every((t) => t % (256 * MiB) === 0),
    `DRAM ticks ${dramTicks}`,
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

  // Buffer table: all 270, largest first, paged by 100; sizes as formatBytes writes them.
  await page.waitForFunction(() =>
    /^1–100 of 270 /.test(document.querySelector('#range')!.textContent!),
  );
  const firstSize = await page.textContent('#buffers tbody tr:first-child td[data-col=size]');
  assert.equal(firstSize, formatBytes(MiB + 249 * 4 * KiB));
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
      JSON.parse(
        document.querySelector<HTMLElement>('.chart[data-device="0"][data-memory="DRAM"]')!.dataset
          .last!,
      ).DRAM === want,
    dram,
  );

  // SYSTEM_MEMORY is host memory: its own chart and columns, never in L1_SMALL or L1 figures
  // (the wire's DEVICE_INFO still counts it in l1_small).
  r.alloc(1, 0x9000, 16 * KiB, BufferType.L1_SMALL);
  r.alloc(1, 0xa000, 4 * MiB, BufferType.SYSTEM_MEMORY);
  r.flush();
  await settle(server);
  await page.waitForSelector('.chart[data-device="1"][data-memory="HOST"][data-last]');
  await page.waitForFunction(() => {
    const el = document.querySelector<HTMLElement>('.chart[data-device="1"][data-memory="HOST"]');
    return JSON.parse(el!.dataset.last!).SYSTEM_MEMORY === 4 * 1024 * 1024;
  });
  const l1Chart = (await chart(1, 'L1'))!;
  assert.equal(l1Chart.last.L1_SMALL, 16 * KiB, 'the L1 chart leaves host memory out');
  assert.equal(l1Chart.legendValue.L1_SMALL, '16.0 KiB');
  const host = (await chart(1, 'HOST'))!;
  assert.equal(host.legendValue.SYSTEM_MEMORY, '4.00 MiB');
  assertChart(host, null, 'device 1 host');
  assert.match(host.legend, /^now/);
  assert.match(
    await cell('.chart[data-device="1"][data-memory="HOST"] h3'),
    /host \(SYSTEM_MEMORY\)/,
  );

  // The device table: each "used" is the sum of its memory's cells, over that memory's capacity.
  const l1Used = l1 + 16 * KiB + 32 * KiB; // L1 + L1_SMALL + CB (+ no kernels)
  const s1 = (await stats()).find((d) => d.device === 1)!;
  assert.equal(s1.bytes.L1 + s1.bytes.L1_SMALL + s1.bytes.CB + s1.bytes.KERNEL, l1Used);
  const row1 = '#devices tr[data-device="1"]';
  await page.waitForFunction(
    (sel) => document.querySelector(sel)?.querySelector('.host')?.textContent?.startsWith('4.00'),
    row1,
  );
  const want = `${formatBytes(l1Used)} (${pct(l1Used, s1.total_l1_bytes!)})`;
  assert.equal(await cell(`${row1} td.used[data-memory="L1"]`), want);
  assert.notEqual(pct(l1Used, s1.total_l1_bytes!), '<0.1%', 'a share the test can check');
  assert.equal(
    await cell(`${row1} td[data-kind=L1_SMALL]`),
    `${formatBytes(16 * KiB)}peak 16.0 KiB`,
  );
  assert.equal(await cell(`${row1} td.host`), `${formatBytes(4 * MiB)}peak 4.00 MiB`);
  // The L1 chart's legend adds the same figures up to the same share.
  const legend = (await chart(1, 'L1'))!.legend;
  assert.ok(legend.includes(`used ${want}capacity ${formatBytes(s1.total_l1_bytes!)}`), legend);
  const s0 = (await stats()).find((d) => d.device === 0)!;
  assert.equal(
    await cell('#devices tr[data-device="0"] td.used[data-memory="DRAM"]'),
    `${formatBytes(dram)} (${pct(dram, s0.total_dram_bytes!)})`,
  );
  // Peak since start: the 250 DRAM buffers before the frees.
  assert.equal(
    await cell('#devices tr[data-device="0"] td[data-kind=DRAM]'),
    `${formatBytes(dram)}peak ${formatBytes(dramPeak)}`,
  );
  // The process table: host memory in its column, L1_SMALL without it.
  const mine = `#processes tr[data-pid="${process.pid}"][data-device="1"]`;
  await page.waitForFunction(
    (sel) => document.querySelector(sel + ' td.host')?.textContent === '4.00 MiB',
    mine,
  );
  assert.equal(await cell(`${mine} td[data-kind=L1_SMALL]`), '16.0 KiB');
  r.free(1, 0x9000);
  r.free(1, 0xa000);
  r.flush();
  await settle(server);
  await page.waitForFunction(() => {
    const el = document.querySelector<HTMLElement>('.chart[data-device="1"][data-memory="HOST"]');
    return JSON.parse(el!.dataset.last!).SYSTEM_MEMORY === 0;
  });

  // The leak report's tables and the JSON download link follow the device/type/PID filters.
  await page.click('#refresh-report');
  await page.waitForSelector('#report tr[data-device="0"][data-type="DRAM"]');
  assert.deepEqual(await page.$$eval('#report tbody tr', (trs) => trs.map((t) => t.textContent)), [
    `0DRAM200${formatBytes(dram)}`,
  ]);
  const href = await page.getAttribute('#download-filtered', 'href');
  const json = (await page.evaluate(async (h) => (await fetch(h!)).json(), href)) as {
    total_buffers: number;
    buffers: unknown[];
  };
  assert.equal(json.total_buffers, 200);
  assert.equal(json.buffers.length, 200);

  // Zoomed to its data, the L1 chart's axis stops near its peak, far under the capacity.
  await page.check('.chart[data-device="1"][data-memory="L1"] .fit input');
  const zoomed = (await chart(1, 'L1'))!;
  assert.ok(zoomed.yticks.at(-1)! <= 2 * MiB, `zoomed ticks ${zoomed.yticks}`);
  assertChart(zoomed, null, 'device 1 L1, zoomed');
  mkdirSync(SCREENS, { recursive: true });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(SCREENS, 'dashboard-1280.png'), fullPage: true });
  assert.deepEqual(trouble.errors, []);
  assert.deepEqual(trouble.failed, []);
  // an inline icon: a browser then asks for no /favicon.ico (a 404 on every visit before)
  const icon = await page.evaluate(
    () => document.querySelector<HTMLLinkElement>('link[rel=icon]')?.href,
  );
  assert.match(icon ?? '', /^data:image\/svg\+xml,/);
  await r.close();
});

test('at 420 px wide nothing scrolls the page sideways and the charts fit', async () => {
  const narrow = await browser.context.newPage();
  try {
    const trouble = watchPage(narrow);
    await narrow.setViewportSize({ width: 420, height: 900 });
    await narrow.goto(`${url}?poll=300`);
    await narrow.waitForSelector('#status.on');
    await narrow.waitForSelector('.chart[data-device="1"][data-memory="L1"][data-samples]');
    await narrow.waitForSelector('#buffers tbody tr');
    await narrow.waitForSelector('#classes tbody tr');
    const widths = await narrow.evaluate(() => ({
      page: document.scrollingElement!.scrollWidth,
      charts: Array.from(document.querySelectorAll<HTMLElement>('.chart')).map((c) => ({
        box: c.getBoundingClientRect().right,
        canvas: c.querySelector('canvas')!.getBoundingClientRect().right,
      })),
    }));
    assert.ok(widths.page <= 420, `page ${widths.page} px wide`);
    for (const c of widths.charts) assert.ok(c.canvas <= c.box && c.box <= 420, JSON.stringify(c));
    await narrow.screenshot({ path: join(SCREENS, 'dashboard-420.png'), fullPage: true });
    // Widened, the charts grow with the page.
    await narrow.setViewportSize({ width: 1280, height: 900 });
    await narrow.waitForFunction(
      () => document.querySelector('.chart canvas')!.getBoundingClientRect().width > 500,
    );
    assert.deepEqual(trouble.errors, []);
    assert.deepEqual(trouble.failed, []);
  } finally {
    await narrow.close();
  }
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

test('leak report: classes, marks, diff since a mark, what exited processes left', async () => {
  const trouble = watchPage(page);
  const r = reporter();
  for (let run = 1; run <= 3; run++) {
    assert.equal((await runCli(['mark', `run-${run}`, '--socket', server.socket])).code, 0);
    for (const dev of [0, 1]) r.alloc(dev, 0x7e000000 + run * 0x9000, 36 * KiB, 0);
    r.flush();
    await settle(server);
  }
  // A process that exits holding a buffer.
  const gone = spawn('sleep', ['30'], { stdio: 'ignore' });
  const other = new Reporter({ socketPath: server.socket, pid: gone.pid });
  other.alloc(1, 0x5000000, 3 * MiB, 0);
  await other.close();
  await settle(server);
  gone.kill('SIGKILL');
  await new Promise((resolve) => gone.once('exit', resolve));
  const { marks } = await server.client.json<MarksResponse>('GET', '/v1/marks');
  // (a viewport lower than the page, so that the link has to scroll)
  await page.setViewportSize({ width: 1280, height: 700 });
  await page.goto(`${url}?poll=300`);

  // "show buffers born after it" filters the Buffers table to those born after the mark.
  const run2 = marks.find((m) => m.name === 'run-2')!;
  await page.waitForSelector('#marks tr[data-mark="run-2"] a[data-since]');
  await page.waitForSelector('#buffers tbody tr');
  assert.ok(
    await page.evaluate(
      () => document.querySelector('#buffers-box')!.getBoundingClientRect().top > innerHeight,
    ),
    'the buffers are out of sight before the click',
  );
  await page.click('#marks tr[data-mark="run-2"] a[data-since]');
  await page.waitForFunction(() =>
    /^1–4 of 4 .*born after mark run-2$/.test(document.querySelector('#range')!.textContent!),
  );
  const born = await page.$$eval('#buffers tbody tr', (trs) =>
    trs.map((t) => Number((t as HTMLElement).dataset.born)),
  );
  assert.equal(born.length, 4);
  // (born in the mark's own millisecond counts: the cut lies between two events, not two ms)
  assert.ok(
    born.every((b) => b >= run2.time_ms),
    `born after run-2: ${born}`,
  );
  const view = await page.evaluate(() => ({
    top: document.querySelector('#buffers-box')!.getBoundingClientRect().top,
    height: innerHeight,
  }));
  assert.ok(view.top >= -5 && view.top < view.height / 2, `scrolled to the buffers: ${view.top}`);
  // Whatever looks like a link goes somewhere.
  const dead = await page.$$eval('a', (as) =>
    as.filter((a) => !a.getAttribute('href') || a.getAttribute('href') === '#').map((a) => a.id),
  );
  assert.deepEqual(dead, []);
  assert.equal(await page.locator('#marks span.l').count(), 0);

  // The diff since run-1 as tables: each interval, and what accumulates every run.
  await page.click('#marks tr[data-mark="run-1"] a[data-diff]');
  await page.waitForSelector('#accumulating tbody tr:not(.none)');
  const intervals = await page.$$eval('#intervals tbody tr', (trs) =>
    trs.map((t) =>
      Array.from(t.querySelectorAll('td'))
        .slice(0, 4)
        .map((c) => c.textContent),
    ),
  );
  assert.deepEqual(intervals[0], ['run-1', 'run-2', '2', '72.0 KiB']);
  assert.deepEqual(intervals[1], ['run-2', 'run-3', '2', '72.0 KiB']);
  const acc = await page.$$eval('#accumulating tbody td', (tds) => tds.map((c) => c.textContent));
  // (per run on each of the devices)
  assert.deepEqual(acc, ['DRAM', '36.0 KiB', '1', '36.0 KiB', '3', '0, 1']);

  // Classes as a table, the suspicious buffers listed under it; what the exited process left.
  await page.click('#refresh-report');
  await page.waitForSelector(`#exited tr[data-pid="${gone.pid}"]`);
  const suspicious = await page.$$eval('#classes tr[data-class="suspicious"] td', (tds) =>
    tds.map((c) => c.textContent),
  );
  assert.equal(suspicious[0], 'suspicious');
  assert.ok(Number(suspicious[1]) >= 6, `suspicious: ${suspicious}`);
  const listed = await page.$$eval(
    '#class-details details[data-class="suspicious"] tbody tr',
    (t) => t.map((r) => r.textContent!),
  );
  assert.ok(!listed.join('').includes(' KB'), 'binary units in the reasons too');
  assert.ok(
    listed.some((t) => /^\dDRAM0x7e0\w+36\.0 KiB\d+accumulates across marks: \+36\.0 KiB/.test(t)),
    listed.join('\n'),
  );
  const exited = await page.$$eval(`#exited tr[data-pid="${gone.pid}"] td`, (tds) =>
    tds.map((c) => c.textContent),
  );
  assert.deepEqual([exited[3], exited[4]], ['1', '3.00 MiB']);
  assert.match(exited[5]!, /1 DRAM \(3\.00 MiB\) on 1/);
  assert.equal(
    await page.textContent('#classes tr[data-class="left_behind"] td:nth-child(2)'),
    // (and the sleeper of the first test's sort, with its 8 MiB of L1)
    String((await server.client.json<StatsResponse>('GET', '/v1/stats')).left_behind.records),
  );
  await page.screenshot({ path: 'test-output/dashboard-leaks.png', fullPage: true });
  assert.deepEqual(trouble.errors, []);
  assert.deepEqual(trouble.failed, []);
  await r.close();
});
