// Pause figures of `ttalloc restart` (issue 14): a real server filled with N live buffers by the
// C load generators, one runtime-like client (test/c/steady_client.c: one blocking send() per
// frame, an ALLOC/FREE pair every PACE µs) sending throughout, and a restart. Prints the longest
// time between two consecutive send()s the client saw over the run (the restart's pause, as the
// application feels it), the same client's longest gap over a run of the same length without a
// restart, what the new server says of its switch, and whether the state is exact afterwards.
// Usage: npm run takeover-bench [-- N ...]   (default: 1000000 5000000)
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  BenchServer,
  ROOT,
  buildTools,
  generators,
  removeDir,
  sleep,
  workDir,
  allocSpecs,
} from '../src/bench/harness.js';

const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const PACE_US = 10;
const RUN_MS = 3000;
const sizes = process.argv
  .slice(2)
  .map(Number)
  .filter((n) => n > 0);
const tools = buildTools();

/** The runtime-like client for `ms` ms; `during` runs meanwhile. Its longest gap (ms), frames. */
async function client(
  bin: string,
  socket: string,
  ms: number,
  during: () => Promise<void>,
): Promise<{ maxGapMs: number; frames: number; held: number }> {
  const p = spawn(bin, [socket, '144', '1000', String(PACE_US), '0x7000000000'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  createInterface({ input: p.stdout! }).on('line', (l) => lines.push(l));
  while (!lines.includes('ready')) await sleep(5);
  const t0 = Date.now();
  await during();
  await sleep(Math.max(0, ms - (Date.now() - t0)));
  p.stdin!.write('stop\n');
  while (!lines.some((l) => l.startsWith('held'))) {
    if (p.exitCode !== null || p.signalCode !== null)
      throw new Error(`the client died (${p.exitCode ?? p.signalCode})`);
    await sleep(5);
  }
  const w = lines.find((l) => l.startsWith('held'))!.split(' ');
  p.stdin!.end();
  await new Promise((r) => p.once('exit', r));
  if (p.exitCode !== 0) throw new Error(`the client exited with ${p.exitCode ?? p.signalCode}`);
  return { maxGapMs: Number(w[9]) / 1000, frames: Number(w[7]), held: Number(w[1]) };
}

async function figures(n: number, bin: string): Promise<void> {
  const dir = workDir();
  const srv = await BenchServer.start(dir, ['--expected-buffers', String(n)]);
  try {
    // Live owners: this process's PID (--trust-client-pid), so no sweep releases them.
    const specs = allocSpecs(n, { clients: 4, pidBase: process.pid });
    const g = await generators(tools.loadgen, srv.socket, specs);
    g.go();
    await g.results();
    await srv.drained(n);
    // A quiet journal: the background compaction (if the fill started one) is done.
    const compacting = async () => {
      const p = (await srv.stats()).persistence;
      return p.enabled && p.compacting;
    };
    while (await compacting()) await sleep(100);
    const base = await client(bin, srv.socket, RUN_MS, async () => {});
    let said = '';
    const t0 = performance.now();
    const withRestart = await client(bin, srv.socket, RUN_MS, async () => {
      said = execFileSync(process.execPath, [CLI, 'restart', '--socket', srv.socket], {
        encoding: 'utf8',
      });
    });
    const restartMs = performance.now() - t0;
    // The client's buffers are left behind once it exits (its connection closes): the fill's stay
    // live, the two runs' are records; every frame was counted once.
    const held = base.held + withRestart.held;
    let s = await srv.stats();
    for (let i = 0; i < 100 && s.left_behind.records < held; i++) {
      await sleep(20);
      s = await srv.stats();
    }
    const frames = n + base.frames + withRestart.frames;
    const exact =
      s.live.buffers === n && s.left_behind.records === held && s.frames.total === frames
        ? 'exact'
        : `NOT EXACT (${s.live.buffers} live, ${s.left_behind.records} left, ${s.frames.total})`;
    const sw = /reading again ([\d.]+) ms/.exec(said)?.[1] ?? '?';
    console.log(
      `${(n / 1e6).toString().padStart(4)} M live | longest send-to-send gap: ` +
        `${withRestart.maxGapMs.toFixed(1)} ms with a restart, ${base.maxGapMs.toFixed(1)} ms ` +
        `without | server: reading again ${sw} ms after the switch | restart command ` +
        `${(restartMs / 1000).toFixed(1)} s | ${withRestart.frames} frames sent | state ${exact}`,
    );
    execFileSync(process.execPath, [CLI, 'stop', '--force', '--socket', srv.socket]);
  } finally {
    srv.proc.kill('SIGKILL');
    removeDir(dir);
  }
}

const binDir = workDir();
const bin = join(binDir, 'steady_client');
execFileSync('cc', ['-O2', '-o', bin, join(ROOT, 'test/c/steady_client.c')]);
for (const n of sizes.length ? sizes : [1_000_000, 5_000_000]) await figures(n, bin);
removeDir(binDir);
