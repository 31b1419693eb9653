// Exit-detection latency with many real client processes: a real server (`ttalloc server`, the
// periodic sweep off, so only the exit watch releases), N C client processes that each connect and
// report B buffers, then exit at staggered times (close + exit, exit with the socket open, and
// SIGKILL, in turn). For each: from its exit (the parent's waitpid() returning, and the child's
// last instant) to the server's "process N is gone" line, all on CLOCK_MONOTONIC (process.hrtime
// is CLOCK_MONOTONIC on Linux, as the C side's clock_gettime).
//
//   npm run bench:exit [-- --clients 1000 --buffers 4 --stagger-ms 5]
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { ControlClient } from '../client/control-client.js';
import type { StatsResponse } from '../report/types.js';
import { removeDir, ROOT, sleep, workDir } from './harness.js';

const LIMIT_P99_MS = 100;
const CLI = join(ROOT, 'dist/cli/main.js');

function build(): string {
  const dir = join(ROOT, '.bench-build'),
    src = join(ROOT, 'src/bench/c/exit-clients.c'),
    bin = join(dir, 'exit-clients');
  mkdirSync(dir, { recursive: true });
  if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs)
    execFileSync('cc', ['-O2', '-Wall', '-o', bin, src], { stdio: 'inherit' });
  return bin;
}

interface Round {
  clients: number;
  buffers: number;
  staggerMs: number;
}

interface Exit {
  pid: number;
  mode: string;
  waitNs: bigint;
  childNs: bigint;
}

async function round(bin: string, r: Round): Promise<{ fromWait: number[]; fromChild: number[] }> {
  const dir = workDir();
  const socket = join(dir, 'alloc.sock');
  const server = spawn(
    process.execPath,
    [
      CLI,
      'server',
      '--socket',
      socket,
      '--stats-interval',
      '0',
      '--reap-interval',
      '0',
      '--state-dir',
      join(dir, 'state'),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const goneAt = new Map<number, bigint>();
  const serverLines = createInterface({ input: server.stdout! });
  serverLines.on('line', (l) => {
    const t = process.hrtime.bigint();
    const m = /process (\d+) is gone/.exec(l);
    if (m) goneAt.set(Number(m[1]), t);
  });
  const client = new ControlClient(socket);
  for (let i = 0; ; i++) {
    try {
      await client.json('GET', '/v1/health');
      break;
    } catch (e) {
      if (i > 400 || server.exitCode !== null) throw new Error(`server did not start: ${e}`);
      await sleep(25);
    }
  }
  const kids = spawn(
    bin,
    [socket, String(r.clients), String(r.buffers), String(Math.round(r.staggerMs * 1000))],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const exits: Exit[] = [];
  let ready = -1;
  const kidLines = createInterface({ input: kids.stdout! });
  const kidsDone = new Promise<void>((res) => kidLines.once('close', () => res()));
  kidLines.on('line', (l) => {
    const w = l.split(' ');
    if (w[0] === 'ready') ready = Number(w[1]);
    else if (w[0] === 'exit')
      exits.push({ pid: Number(w[1]), mode: w[2], waitNs: BigInt(w[3]), childNs: BigInt(w[4]) });
  });
  try {
    while (ready < 0) {
      if (kids.exitCode !== null) throw new Error('exit-clients failed');
      await sleep(10);
    }
    if (ready !== r.clients) throw new Error(`only ${ready} of ${r.clients} clients connected`);
    // Every buffer accounted before the first exit: the figure is detection, not ingest.
    const want = r.clients * r.buffers;
    for (;;) {
      const s = await client.json<StatsResponse>('GET', '/v1/stats');
      if (s.frames.total >= want) break;
      await sleep(10);
    }
    kids.stdin!.write('go\n');
    await kidsDone;
    const deadline = Date.now() + 30_000;
    while (goneAt.size < exits.length && Date.now() < deadline) await sleep(20);
  } finally {
    if (kids.exitCode === null) kids.kill('SIGKILL');
    server.kill('SIGTERM');
    await new Promise((res) => server.once('exit', res));
    removeDir(dir);
  }
  const missing = exits.filter((e) => !goneAt.has(e.pid));
  if (missing.length)
    throw new Error(`${missing.length} of ${exits.length} exits were not noticed within 30 s`);
  const ms = (a: bigint, b: bigint) => Number(a - b) / 1e6;
  return {
    fromWait: exits.map((e) => ms(goneAt.get(e.pid)!, e.waitNs)),
    fromChild: exits.map((e) => ms(goneAt.get(e.pid)!, e.childNs)),
  };
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function summary(xs: number[]): { p50: number; p99: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: pct(s, 50), p99: pct(s, 99), max: s[s.length - 1] };
}

const f = (x: number) => x.toFixed(1);

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      clients: { type: 'string', default: '1000' },
      buffers: { type: 'string', default: '4' },
      'stagger-ms': { type: 'string', default: '5' },
    },
  });
  const bin = build();
  const clients = Number(values.clients),
    buffers = Number(values.buffers);
  // The figure: exits spread in time, as a test suite's or a service's processes end. The second
  // round, all at one instant, is a stress case shown beside it (not judged).
  const rounds: [string, Round, boolean][] = [
    ['staggered', { clients, buffers, staggerMs: Number(values['stagger-ms']) }, true],
    ['all at once (stress, not judged)', { clients, buffers, staggerMs: 0 }, false],
  ];
  let ok = true;
  console.log(
    `exit-detection latency: ${clients} C client processes, ${buffers} buffers each, ` +
      'periodic sweep off (--reap-interval 0)',
  );
  for (const [name, r, judged] of rounds) {
    const { fromWait, fromChild } = await round(bin, r);
    const w = summary(fromWait),
      c = summary(fromChild);
    // Judged from the earlier instant (the child's last), the stricter of the two.
    const pass = Math.max(w.p99, c.p99) <= LIMIT_P99_MS;
    if (judged) ok &&= pass;
    const row = (label: string, x: typeof w) =>
      `    ${label.padEnd(30)} p50 ${f(x.p50)} ms, p99 ${f(x.p99)} ms, max ${f(x.max)} ms`;
    console.log(
      [
        `  ${name} (${r.staggerMs} ms apart), ${fromWait.length} exits:`,
        row('from waitpid():', w),
        row("from the child's last instant:", c),
        `    limit p99 ≤ ${LIMIT_P99_MS} ms: ${pass ? 'met' : 'NOT MET'}`,
      ].join('\n'),
    );
  }
  process.exitCode = ok ? 0 : 1;
}

await main();
