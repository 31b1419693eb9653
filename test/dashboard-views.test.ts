// The dashboard's memory map and timeline: /v1/map/view and /v1/timeline's JSON (filters, caps,
// bad queries), and both views in real Chromium (helpers/browser.ts) against a real server with
// --http fed over its data socket: a known allocation pattern drawn and hovered, zooming, known
// lifetimes stacked, and a million buffers that the page shows capped while it stays usable.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import type { ElementHandle, Page } from 'playwright-core';
import { BufferType, MsgType } from '../src/protocol/constants.js';
import { writeFrame, type FrameFields } from '../src/protocol/codec.js';
import { formatBytes } from '../src/report/format.js';
import type { TimelineResponse } from '../src/report/timeline.js';
import type { MapViewResponse } from '../src/report/map-view.js';
import { launchBrowser, type TestBrowser } from './helpers/browser.js';
import { rawConnect, startServer, type TestServer } from './helpers/server.js';
import { frames, waitFrames } from './helpers/wire.js';

const KiB = 1024,
  MiB = 1024 * KiB;
/** wormhole_b0: 64 L1 banks (one per worker core). */
const BANKS = 64;
let server: TestServer, browser: TestBrowser, page: Page, url: string, data: Socket;
let sleeper: ChildProcess;
let sent = 0;
const me = process.pid;

async function send(list: FrameFields[]): Promise<void> {
  data.write(frames(list));
  sent += list.length;
  await waitFrames(server, sent);
}
const alloc = (o: { dev: number; type: number; addr: number; size: number; pid?: number }) => ({
  type: MsgType.ALLOC,
  deviceId: o.dev,
  bufferType: o.type,
  bufferId: o.addr,
  size: o.size,
  pid: o.pid ?? me,
});
const free = (dev: number, addr: number) => ({
  type: MsgType.FREE,
  deviceId: dev,
  bufferId: addr,
  pid: me,
});
const getJson = <T>(path: string) => server.client.json<T>('GET', path);
async function status(path: string): Promise<{ status: number; message: string }> {
  try {
    await server.client.json('GET', path);
    return { status: 200, message: '' };
  } catch (e) {
    return { status: (e as { status: number }).status, message: (e as Error).message };
  }
}

before(async () => {
  server = await startServer([
    '--http',
    '127.0.0.1:0',
    '--devices',
    '3xwormhole_b0',
    '--trust-client-pid',
    '--reap-interval',
    '0',
  ]);
  url = /dashboard on (http:\/\/\S+\/)/.exec(server.output())![1];
  data = await rawConnect(server.socket);
  // a second owner, alive: the map tells processes apart
  sleeper = spawn('sleep', ['300'], { stdio: 'ignore' });
  browser = await launchBrowser({ width: 1280, height: 1400 });
  page = await browser.context.newPage();
});

after(async () => {
  sleeper?.kill('SIGKILL');
  data?.destroy();
  await browser?.close();
  await server?.stop();
});

// Device 1: three L1 lifetimes, born 10 s, 9 s and 5 s ago (frame timestamps), the last two
// freed now; a DRAM buffer beside them.
const A = { addr: 0x1000, size: 64 * KiB },
  B = { addr: 0x20000, size: 128 * KiB },
  C = { addr: 0x40000, size: 32 * KiB };
let t0 = 0,
  freedFrom = 0,
  freedTo = 0;

test('GET /v1/timeline: lifetimes, peaks per column, filters, the cap, bad queries', async () => {
  t0 = Date.now();
  // ns as a double is exact to ~256 ns: half a ms more, so that the server's floor is `ms`
  const ns = (ms: number) => (ms + 0.5) * 1e6;
  await send([
    { ...alloc({ dev: 1, type: BufferType.L1, ...A }), timestampNs: ns(t0 - 10_000) },
    { ...alloc({ dev: 1, type: BufferType.L1, ...B }), timestampNs: ns(t0 - 9_000) },
    { ...alloc({ dev: 1, type: BufferType.L1, ...C }), timestampNs: ns(t0 - 5_000) },
    { ...alloc({ dev: 1, type: BufferType.DRAM, addr: 0x9000, size: MiB }), timestampNs: ns(t0) },
  ]);
  freedFrom = Date.now();
  await send([free(1, B.addr), free(1, C.addr)]);
  freedTo = Date.now();

  const from = t0 - 10_000,
    to = t0 + 10_000;
  const t = await getJson<TimelineResponse>(
    `/v1/timeline?device=1&type=L1&from=${from}&to=${to}&columns=20`,
  );
  assert.equal(t.type, 'L1');
  assert.equal(t.start_at_ms, from);
  assert.equal(t.start_at, new Date(from).toISOString());
  assert.equal(t.end_at, new Date(to).toISOString());
  assert.equal(t.column_ms, 1000);
  assert.equal(t.lifetimes_in_range, 3);
  assert.equal(t.capped, false);
  assert.equal(t.other, null);
  assert.deepEqual(
    t.lifetimes.map((l) => [l.address, l.size, l.pid, l.state, l.allocated_at_ms]),
    [
      ['0x1000', A.size, me, 'live', t0 - 10_000],
      ['0x20000', B.size, me, 'freed', t0 - 9_000],
      ['0x40000', C.size, me, 'freed', t0 - 5_000],
    ],
  );
  assert.equal(t.lifetimes[0].ended_at, null);
  assert.equal(t.lifetimes[1].allocated_at, new Date(t0 - 9_000).toISOString());
  const end = t.lifetimes[1].ended_at_ms!;
  assert.ok(end >= freedFrom && end <= freedTo, 'freed when the free arrived');
  assert.equal(t.lifetimes[1].ended_at, new Date(end).toISOString());
  // peaks: A alone in the first second, A+B from the second, all three from 5 s before t0
  // until the frees' column, A alone after it
  const endCol = Math.floor((end - from) / 1000);
  assert.deepEqual(t.peak_bytes.slice(0, 6), [
    A.size,
    A.size + B.size,
    A.size + B.size,
    A.size + B.size,
    A.size + B.size,
    A.size + B.size + C.size,
  ]);
  assert.equal(t.peak_bytes[endCol], A.size + B.size + C.size);
  assert.deepEqual(t.peak_bytes.slice(endCol + 1), Array(19 - endCol).fill(A.size));
  assert.deepEqual(t.owners, [{ pid: me, command: 'node' }]);

  // filters: device, type, the range
  const dram = await getJson<TimelineResponse>('/v1/timeline?device=1&type=DRAM');
  assert.deepEqual(
    dram.lifetimes.map((l) => [l.address, l.size]),
    [['0x9000', MiB]],
  );
  assert.equal(
    (await getJson<TimelineResponse>('/v1/timeline?device=0&type=L1')).lifetimes_in_range,
    0,
  );
  const later = await getJson<TimelineResponse>(
    `/v1/timeline?device=1&type=L1&from=${freedTo + 1}`,
  );
  assert.deepEqual(
    later.lifetimes.map((l) => l.address),
    ['0x1000'],
    'lifetimes that ended before the range are out',
  );
  const iso = await getJson<TimelineResponse>(
    `/v1/timeline?device=1&type=l1&from=${new Date(t0 - 6_000).toISOString()}&to=${t0 - 5_500}`,
  );
  assert.deepEqual(
    iso.lifetimes.map((l) => l.address),
    ['0x1000', '0x20000'],
    'C was born after this range',
  );

  // the cap: the largest lifetimes listed (by birth), the rest as one band with its peaks
  const capped = await getJson<TimelineResponse>(
    `/v1/timeline?device=1&type=L1&from=${from}&to=${to}&columns=20&limit=2`,
  );
  assert.equal(capped.capped, true);
  assert.equal(capped.lifetimes_in_range, 3);
  assert.deepEqual(
    capped.lifetimes.map((l) => l.address),
    ['0x1000', '0x20000'],
  );
  assert.equal(capped.other!.lifetimes, 1);
  assert.equal(Math.max(...capped.other!.peak_bytes), C.size);
  assert.equal(capped.other!.peak_bytes[4], 0);
  assert.equal(capped.other!.peak_bytes[5], C.size);
  assert.deepEqual(capped.peak_bytes, t.peak_bytes, 'the peaks count every lifetime');

  // bad queries: 400 with the reason
  const bad: [string, RegExp][] = [
    ['type=FOO', /unknown buffer type 'FOO'/],
    ['type=L1,DRAM', /one buffer type/],
    ['from=yesterday', /from: 'yesterday' is not a time/],
    [`from=${t0}&to=${t0 - 1}`, /from must be before to/],
    ['limit=0', /limit must be an integer from 1 to 5000/],
    ['limit=100000', /limit must be an integer from 1 to 5000/],
    ['device=-1', /device must be an integer/],
    ['columns=x', /columns must be an integer/],
  ];
  for (const [q, re] of bad) {
    const r = await status(`/v1/timeline?${q}`);
    assert.equal(r.status, 400, q);
    assert.match(r.message, re, q);
  }
});

// Device 0: a CB, an L1 buffer held twice, another process's L1 buffer, an L1_SMALL buffer.
// Per bank: [0, 32K) CB · [64K, 80K) L1 · [128K, 224K) L1 of the sleeper · [1M, 1M+8K) L1_SMALL
// of a bank of 1464 KiB: gaps of 32 K, 48 K, 800 K (the largest) and 432 K.
const LARGEST = { start: 0x38000, size: 800 * KiB };
const SUMMARY =
  '≈ free 1.28 MiB in 4 gaps, largest 800 KiB per bank (64 banks: an interleaved buffer of up ' +
  'to 50.0 MiB fits) · 4 objects, 152 KiB held';

async function mapPattern(): Promise<void> {
  const l1 = BufferType.L1;
  await send([
    { type: MsgType.CB_ALLOC, deviceId: 0, bufferId: 0, size: 32 * KiB, pid: me },
    alloc({ dev: 0, type: l1, addr: 0x10000, size: 16 * KiB * BANKS }),
    alloc({ dev: 0, type: l1, addr: 0x10000, size: 16 * KiB * BANKS }),
    alloc({ dev: 0, type: l1, addr: 0x20000, size: 96 * KiB * BANKS, pid: sleeper.pid }),
    alloc({ dev: 0, type: BufferType.L1_SMALL, addr: 0x100000, size: 8 * KiB * BANKS }),
  ]);
}

test('GET /v1/map/view: objects of a range, pixel columns, the limit, bad queries', async () => {
  await mapPattern();
  const v = await getJson<MapViewResponse>('/v1/map/view?device=0&memory=L1&columns=100');
  assert.deepEqual(v.range, { start: 0, end: 1464 * KiB });
  assert.equal(v.objects_in_view, 4);
  assert.deepEqual(
    v.objects!.map((o) => [o.address, o.kind, o.end - o.start, o.pid, o.ref_count]),
    [
      ['0x0', 'CB', 32 * KiB, me, 1],
      ['0x10000', 'L1', 16 * KiB, me, 2],
      ['0x20000', 'L1', 96 * KiB, sleeper.pid, 1],
      ['0x100000', 'L1_SMALL', 8 * KiB, me, 1],
    ],
  );
  assert.equal(v.columns.length, 100);
  // columns of 14.64 KiB: the first three are the CB's (the third in part), the fourth is free,
  // the 0x20000 buffer fills the 10th to the 15th
  assert.deepEqual(v.columns[0], { used: 1, pid: me });
  assert.deepEqual(v.columns[3], { used: 0, pid: null });
  for (let c = 9; c <= 14; c++) assert.equal(v.columns[c].pid, sleeper.pid, `column ${c}`);
  const held = v.columns.reduce((n, c) => n + c.used, 0) * ((1464 * KiB) / 100);
  assert.ok(Math.abs(held - 152 * KiB) < 1, 'the columns add up to the bytes held');

  const range = await getJson<MapViewResponse>(
    '/v1/map/view?device=0&memory=L1&from=0x14000&to=0x30000&columns=10&limit=1',
  );
  assert.deepEqual(range.view, { start: 0x14000, end: 0x30000 });
  assert.equal(range.objects_in_view, 1);
  assert.equal(range.objects![0].address, '0x20000');
  const over = await getJson<MapViewResponse>('/v1/map/view?device=0&memory=L1&limit=3');
  assert.equal(over.objects, null, 'more than the limit in view: columns only');
  assert.equal(over.objects_in_view, 4);
  const dram = await getJson<MapViewResponse>('/v1/map/view?device=1&memory=DRAM');
  assert.deepEqual(
    dram.objects!.map((o) => [o.address, o.end - o.start]),
    [['0x9000', Math.ceil(MiB / 12)]],
    'DRAM: interleaved over 12 channels',
  );

  const bad: [string, RegExp][] = [
    ['memory=L2', /memory must be L1 or DRAM/],
    ['from=0x30000&to=0x20000', /to must be above from/],
    ['from=-5', /from: '-5' is not an address/],
    ['columns=0', /columns must be an integer from 1 to 4096/],
  ];
  for (const [q, re] of bad) {
    const r = await status(`/v1/map/view?${q}`);
    assert.equal(r.status, 400, q);
    assert.match(r.message, re, q);
  }
});

/** Where an element is in the viewport, scrolled into it first (the mouse acts there). */
async function boxOf(el: ElementHandle) {
  await el.scrollIntoViewIfNeeded();
  return (await el.boundingBox())!;
}

/** The colour drawn at a CSS pixel of a canvas, as [r, g, b]. */
const pixel = (sel: string, x: number, y: number) =>
  page.evaluate(
    ([s, px, py]) => {
      const c = document.querySelector<HTMLCanvasElement>(s as string)!;
      const k = c.width / c.clientWidth;
      const d = c.getContext('2d')!.getImageData(Number(px) * k, Number(py) * k, 1, 1).data;
      return [d[0], d[1], d[2]];
    },
    [sel, x, y],
  );
const mapX = (addr: number) =>
  page.evaluate((a) => (window as unknown as MapHook).ttallocMap.xOf(a), addr);
interface MapHook {
  ttallocMap: { xOf(a: number): number; barY: number; barTop: number };
}
interface TimelineHook {
  ttallocTimeline: { xOf(ms: number): number; yOf(bytes: number): number };
}
const viewOf = async () => {
  const d = await page.$eval('#map-bar', (e) => ({ ...(e as HTMLElement).dataset }));
  return { start: Number(d.viewStart), end: Number(d.viewEnd), mode: d.mode, n: d.objects };
};

test('map view: buffers, gaps, largest free block of a known pattern; hover; zoom', async () => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${url}?poll=500`);
  await page.waitForFunction(
    (s) => document.querySelector('#map-summary')!.textContent === s,
    SUMMARY,
  );
  assert.match((await page.textContent('#map-note'))!, /^estimate: one L1 bank per worker core/);
  assert.equal(await page.$eval('#map-note', (e) => e.classList.contains('estimate')), true);
  assert.deepEqual(await viewOf(), { start: 0, end: 1464 * KiB, mode: 'objects', n: '4' });
  assert.match((await page.textContent('#map-legend'))!, new RegExp(`PID ${sleeper.pid} sleep`));

  // colours: the sleeper holds most bytes (the first colour), this process the second; the gaps
  // are free; the largest free block is outlined
  const y = await page.evaluate(() => (window as unknown as MapHook).ttallocMap.barY);
  const at = async (addr: number) => pixel('#map-bar canvas', Math.round(await mapX(addr)), y);
  assert.deepEqual(await at(0x2c000), [31, 119, 180]);
  assert.deepEqual(await at(0x12000), [214, 39, 40]);
  assert.deepEqual(await at(0x18000), [238, 241, 244], 'a gap');
  assert.deepEqual(await at(LARGEST.start + LARGEST.size / 2), [238, 241, 244]);
  const top = await page.evaluate(() => (window as unknown as MapHook).ttallocMap.barTop);
  const mid = Math.round(await mapX(LARGEST.start + LARGEST.size / 2));
  assert.deepEqual(await pixel('#map-bar canvas', mid, top + 1), [10, 143, 60], 'its outline');

  // hover: what is under the mouse
  const canvas = (await page.$('#map-bar canvas'))!;
  const hover = async (addr: number) => {
    const b = await boxOf(canvas);
    await page.mouse.move(b.x + (await mapX(addr)), b.y + y);
    return page.textContent('#map-bar .view-tip');
  };
  assert.equal(
    await hover(0x12000),
    `0x10000 L1 1.00 MiB (16.0 KiB per bank) · PID ${me} (node) · ref_count 2`,
  );
  assert.equal(
    await hover(0x30000),
    `0x20000 L1 6.00 MiB (96.0 KiB per bank) · PID ${sleeper.pid} (sleep) · ref_count 1`,
  );
  assert.equal(await hover(0x18000), 'free 0x14000–0x20000: 48.0 KiB');
  assert.equal(await hover(0x80000), 'the largest free block: 0x38000–0x100000, 800 KiB');

  // zoom: the wheel over 0x12000 narrows the range around it; a drag picks a range; reset
  const b = await boxOf(canvas);
  await page.mouse.move(b.x + (await mapX(0x12000)), b.y + y);
  await page.mouse.wheel(0, -100);
  await page.waitForFunction(
    () => document.querySelector<HTMLElement>('#map-bar')!.dataset.viewEnd !== String(1464 * 1024),
  );
  const wheeled = await viewOf();
  assert.ok(wheeled.start < 0x12000 && wheeled.end > 0x12000, 'around the mouse');
  assert.ok(Math.abs(wheeled.end - wheeled.start - 0.8 * 1464 * KiB) < 2, 'by a fifth');
  const x0 = await mapX(0x9000),
    x1 = await mapX(0x28000);
  await page.mouse.move(b.x + x0, b.y + y);
  await page.mouse.down();
  await page.mouse.move(b.x + (x0 + x1) / 2, b.y + y);
  await page.mouse.move(b.x + x1, b.y + y);
  await page.mouse.up();
  await page.waitForFunction(
    () => Number(document.querySelector<HTMLElement>('#map-bar')!.dataset.viewEnd) < 0x30000,
  );
  const dragged = await viewOf();
  const px = (wheeled.end - wheeled.start) / b.width;
  assert.ok(Math.abs(dragged.start - 0x9000) <= 2 * px, `start ${dragged.start}`);
  assert.ok(Math.abs(dragged.end - 0x28000) <= 2 * px, `end ${dragged.end}`);
  assert.equal(dragged.n, '2', 'the L1 buffer and the sleeper’s');
  const zoomed = /^0x\w+–0x\w+ \(\S+ KiB\) of 1.43 MiB \(zoomed/;
  assert.match((await page.textContent('#map-range'))!, zoomed);
  assert.equal(await hover(0x18000), 'free 0x14000–0x20000: 48.0 KiB', 'the gap, zoomed');
  assert.deepEqual(await at(0x12000), [214, 39, 40]);
  await page.click('#map-reset');
  await page.waitForFunction(
    () =>
      document.querySelector<HTMLElement>('#map-bar')!.dataset.viewStart === '0' &&
      document.querySelector<HTMLElement>('#map-bar')!.dataset.viewEnd === String(1464 * 1024),
  );
  assert.deepEqual(errors, []);
});

test('timeline view: known lifetimes stacked in birth order, hover tells each', async () => {
  await page.selectOption('#timeline-controls [name=device]', '1');
  await page.selectOption('#timeline-controls [name=type]', 'L1');
  await page.selectOption('#timeline-controls [name=range]', 'all');
  const want = `3 buffer lifetimes, peak ${formatBytes(A.size + B.size + C.size)}`;
  await page.waitForFunction(
    (w) => document.querySelector('#timeline-status')!.textContent!.includes(w),
    want,
  );
  assert.match((await page.textContent('#timeline-status'))!, /^L1 of device 1, /);
  const ds = await page.$eval('#timeline-plot', (e) => ({ ...(e as HTMLElement).dataset }));
  assert.equal(ds.shown, '3');
  assert.equal(ds.capped, 'false');
  const canvas = (await page.$('#timeline-plot canvas'))!;
  const hover = async (ms: number, bytes: number) => {
    const p = await page.evaluate(
      ([t, v]) => {
        const h = (window as unknown as TimelineHook).ttallocTimeline;
        return { x: h.xOf(t), y: h.yOf(v) };
      },
      [ms, bytes],
    );
    const bb = await boxOf(canvas);
    await page.mouse.move(bb.x + p.x, bb.y + p.y);
    return page.textContent('#timeline-plot .view-tip');
  };
  // at 7 s before t0: A at the bottom, B on it
  assert.match(
    (await hover(t0 - 7_000, A.size + B.size / 2))!,
    new RegExp(
      `^0x20000 L1 128 KiB · PID ${me} \\(node\\)\\n` +
        'allocated \\d\\d:\\d\\d:\\d\\d\\.\\d{3} · freed ',
    ),
  );
  assert.match(
    (await hover(t0 - 7_000, A.size / 2))!,
    /^0x1000 L1 64\.0 KiB .*\nallocated .* · live$/,
  );
  // at 3 s before t0 C is on top
  assert.match((await hover(t0 - 3_000, A.size + B.size + C.size / 2))!, /^0x40000 L1 32\.0 KiB/);
  // after the frees only A is left: above it nothing
  const afterFree = (freedTo + Date.now()) / 2;
  assert.match((await hover(afterFree, A.size / 2))!, /^0x1000 L1/);
  assert.match((await hover(afterFree, A.size + B.size / 2))!, /at this column's peak$/);
});

test('a million buffers: map columns, a timeline that says it is capped, both usable', async () => {
  const N = 1_000_000,
    FRAME = 72,
    CHANNELS = 12;
  const buf = Buffer.alloc(N * FRAME);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
  const f = { type: MsgType.ALLOC, deviceId: 2, size: 0, bufferType: BufferType.DRAM, pid: me };
  const w = { ...f, addrLo: 0, addrHi: 0, timestampNs: 0 };
  for (let i = 0; i < N; i++) {
    // 1 KiB apart in each channel, 256 B to 1 KiB of each: a 1 GiB channel full of small gaps
    w.size = 256 * CHANNELS * (1 + (i % 4));
    w.addrLo = i * 1024;
    writeFrame(dv, i * FRAME, FRAME, w);
  }
  const big = await rawConnect(server.socket);
  try {
    big.write(buf);
    await waitFrames(server, sent + N, 120_000);
    sent += N;

    await page.selectOption('#timeline-controls [name=limit]', '100');
    await page.selectOption('#timeline-controls [name=device]', '2');
    await page.selectOption('#timeline-controls [name=type]', 'DRAM');
    await page.waitForFunction(
      () => document.querySelector<HTMLElement>('#timeline-plot')!.dataset.total === '1000000',
      undefined,
      { timeout: 60_000 },
    );
    const st = (await page.textContent('#timeline-status'))!;
    assert.match(st, /1000000 buffer lifetimes, peak /);
    assert.match(st, /capped: the 100 largest drawn one by one, the other 999900 as one grey band/);
    assert.equal(await page.getAttribute('#timeline-plot', 'data-shown'), '100');
    assert.equal(await page.$eval('#timeline-status', (e) => e.classList.contains('capped')), true);

    await page.selectOption('#map-controls [name=device]', '2');
    await page.selectOption('#map-controls [name=type]', 'DRAM');
    await page.waitForFunction(
      () => document.querySelector<HTMLElement>('#map-bar')!.dataset.objects === '1000000',
      undefined,
      { timeout: 60_000 },
    );
    assert.equal((await viewOf()).mode, 'columns');
    assert.match(
      (await page.textContent('#map-range'))!,
      /1000000 objects in view, drawn as \d+ pixel columns \(height: the part held\); zoom in/,
    );
    // the page answers while it polls both views of the big state, and zooming in far enough
    // lists the buffers themselves
    assert.equal(await page.evaluate(() => document.readyState), 'complete');
    const canvas = (await page.$('#map-bar canvas'))!;
    const bb = await boxOf(canvas);
    const y = await page.evaluate(() => (window as unknown as MapHook).ttallocMap.barY);
    // two drags of 4 pixels: 1/300 of the channel, then 1/300 of that
    for (const step of [1, 2]) {
      const before = (await viewOf()).end;
      await page.mouse.move(bb.x + 100, bb.y + y);
      await page.mouse.down();
      await page.mouse.move(bb.x + 104, bb.y + y);
      await page.mouse.up();
      await page.waitForFunction(
        (e) => document.querySelector<HTMLElement>('#map-bar')!.dataset.viewEnd !== String(e),
        before,
        { timeout: 60_000 },
      );
      assert.ok((await viewOf()).end < before, `drag ${step} zooms in`);
    }
    await page.waitForFunction(
      () => document.querySelector<HTMLElement>('#map-bar')!.dataset.mode === 'objects',
      undefined,
      {
        timeout: 60_000,
      },
    );
    const v = await viewOf();
    assert.ok(Number(v.n) > 0 && Number(v.n) <= 2000, `${v.n} objects listed`);
  } finally {
    big.destroy();
  }
});
