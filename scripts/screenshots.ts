// Screenshots of the dashboard from real Chromium (the docs' pictures, and a look at what users
// see): a real server with --http, fed over its data socket a workload with peaks (per-op L1
// buffers alive 100 ms of every 200 ms), a fragmented L1 bank, DRAM that grows and is freed;
// then the whole page, the memory map and the timeline, each as a PNG.
//
//   npm run build && node --import tsx scripts/screenshots.ts [outdir]   (default docs/screens/)
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Reporter } from '../src/client/reporter.js';
import { ControlClient } from '../src/client/control-client.js';
import { BufferType } from '../src/protocol/constants.js';
import { launchBrowser } from '../test/helpers/browser.js';

const KiB = 1024,
  MiB = 1024 * KiB;
const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const out = resolve(process.argv[2] ?? 'docs/screens');
/** wormhole_b0: 64 L1 banks (one per worker core) of 1464 KiB, 12 DRAM channels. */
const L1_BANKS = 64,
  L1_BANK = 1464 * KiB;
/** Per-bank size of each of the two per-op L1 buffers. */
const OP = 28 * KiB;

const children: ChildProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), 'ttalloc-screens-'));

/** A process of its own for the page's process colours, named like a workload. */
function workloadProcess(title: string): number {
  const p = spawn(
    process.execPath,
    ['-e', `process.title=${JSON.stringify(title)};setInterval(()=>{},1e6)`],
    { stdio: 'ignore' },
  );
  children.push(p);
  return p.pid!;
}

async function startServer(): Promise<{ socket: string; url: string; proc: ChildProcess }> {
  const socket = join(dir, 'alloc.sock');
  const proc = spawn(
    process.execPath,
    [CLI, 'server', '--socket', socket, '--stats-interval', '0', '--no-persist']
      .concat(['--http', '127.0.0.1:0', '--devices', '2xwormhole_b0'])
      .concat(['--sample-interval', '0.2', '--trust-client-pid', '--reap-interval', '0']),
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, XDG_STATE_HOME: dir } },
  );
  children.push(proc);
  let text = '';
  const url = await new Promise<string>((ok, fail) => {
    proc.stdout!.on('data', (d: Buffer) => {
      text += d.toString();
      const m = /dashboard on (http:\/\/\S+\/)/.exec(text);
      if (m) ok(m[1]);
    });
    proc.once('exit', (code) => fail(new Error(`server exited (${code}):\n${text}`)));
  });
  return { socket, url, proc };
}

async function workload(socket: string): Promise<void> {
  const trainer = new Reporter({ socketPath: socket, pid: workloadProcess('llama-train') });
  const server = new Reporter({ socketPath: socket, pid: workloadProcess('vllm-serve') });
  const me = new Reporter({ socketPath: socket });
  // DRAM: weights of two processes, device 0 and 1
  for (let i = 0; i < 24; i++) trainer.alloc(0, 0x4000_0000 + i * 0x400_0000, (48 + i) * MiB, 0);
  for (let i = 0; i < 10; i++) server.alloc(0, 0x1_0000_0000 + i * 0x800_0000, 96 * MiB, 0);
  for (let i = 0; i < 6; i++) server.alloc(1, 0x4000_0000 + i * 0x800_0000, 128 * MiB, 0);
  // L1: CBs low in every core, then the bank filled with interleaved buffers of 20 KiB per bank
  // from two processes, every fourth freed part-way: hundreds of KiB free per bank in 20 KiB
  // gaps, the out-of-memory with free space left; per-op buffers at the top, L1_SMALL above
  for (let i = 0; i < 6; i++) me.cbAlloc(0, i * 0x8000, 32 * KiB);
  const fill: { r: Reporter; addr: number }[] = [];
  const OPS = L1_BANK - 16 * KiB - 2 * OP;
  for (let a = 6 * 0x8000, k = 0; a + 20 * KiB <= OPS; a += 20 * KiB, k++) {
    const r = k % 3 === 2 ? server : trainer;
    r.alloc(0, a, 20 * KiB * L1_BANKS, BufferType.L1);
    fill.push({ r, addr: a });
  }
  me.alloc(0, L1_BANK - 16 * KiB, 16 * KiB * L1_BANKS, BufferType.L1_SMALL);
  for (const r of [trainer, server, me]) r.flush();
  // 8 s of steps: per-op L1 buffers alive 100 ms of every 200 ms (the peaks), a KV cache that
  // grows in DRAM, the fragmentation freed part-way; it stops inside an op
  const opAddr = [OPS, OPS + OP];
  for (let step = 0; step < 40; step++) {
    for (const a of opAddr) trainer.alloc(0, a, OP * L1_BANKS, BufferType.L1);
    if (step % 4 === 0) server.alloc(0, 0x2_0000_0000 + step * 0x100_0000, 16 * MiB, 0);
    if (step === 12) for (let k = 0; k < fill.length; k += 4) fill[k].r.free(0, fill[k].addr);
    if (step === 20) for (let i = 0; i < 24; i += 3) trainer.free(0, 0x4000_0000 + i * 0x400_0000);
    trainer.flush();
    server.flush();
    await sleep(100);
    if (step === 39) break;
    for (const a of opAddr) trainer.free(0, a);
    trainer.flush();
    await sleep(100);
  }
  for (const r of [trainer, server, me]) r.flush();
  // the reporters' connections stay open until the pictures are taken: their processes live on
  void [trainer, server, me];
}

async function main(): Promise<void> {
  mkdirSync(out, { recursive: true });
  const srv = await startServer();
  const client = new ControlClient(srv.socket);
  await workload(srv.socket);
  await client.text('GET', '/v1/health');
  const browser = await launchBrowser({ width: 1360, height: 1000 });
  try {
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${srv.url}?poll=1000`);
    await page.waitForSelector('#status.on');
    await page.selectOption('#timeline-controls [name=type]', 'L1');
    await page.selectOption('#timeline-controls [name=range]', 'all');
    await page.waitForSelector('#map-bar[data-mode]');
    await page.waitForFunction(
      () => document.querySelector<HTMLElement>('#timeline-plot')!.dataset.shown !== undefined,
    );
    await sleep(1500); // a second of samples more in the charts
    await page.screenshot({ path: join(out, 'dashboard.png'), fullPage: true });
    // the map with its hover over the largest free block
    const bar = (await page.$('#map-bar canvas'))!;
    await bar.scrollIntoViewIfNeeded();
    const box = (await bar.boundingBox())!;
    const barY = await page.evaluate(
      () => (window as unknown as { ttallocMap: { barY: number } }).ttallocMap.barY,
    );
    const lfStart = await largestFreeStart(client);
    const x = await page.evaluate(
      (a) => (window as unknown as { ttallocMap: { xOf(a: number): number } }).ttallocMap.xOf(a),
      lfStart,
    );
    await page.mouse.move(box.x + x + 3, box.y + barY);
    await (await page.$('#map-box'))!.screenshot({ path: join(out, 'map.png') });
    const plot = (await page.$('#timeline-plot canvas'))!;
    await plot.scrollIntoViewIfNeeded();
    const pb = (await plot.boundingBox())!;
    await page.mouse.move(pb.x + pb.width * 0.8, pb.y + pb.height * 0.5);
    await (await page.$('#timeline-box'))!.screenshot({ path: join(out, 'timeline.png') });
    if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
    console.log(`wrote ${['dashboard.png', 'map.png', 'timeline.png'].join(', ')} to ${out}`);
  } finally {
    await browser.close();
    for (const c of children) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

async function largestFreeStart(client: ControlClient): Promise<number> {
  const m = await client.json<{ largest_free: { start: number } | null }>(
    'GET',
    '/v1/map?device=0&memory=L1&bins=1',
  );
  return m.largest_free?.start ?? 0;
}

await main();
