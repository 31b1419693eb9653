// Restart figures of persistence: a real server filled with N live buffers by the C load
// generators, then killed with SIGKILL and restarted on its state directory, twice: once with the
// state in the journal only, once after a background snapshot. Prints how long each restart took
// to answer, the sizes on disk, and the ingest rate of ALLOC/FREE pairs with and without
// persistence.
// Usage: npm run restart-bench [-- N ...]   (default: 1000000 20000000)
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ControlClient } from '../src/client/control-client.js';
import {
  buildTools,
  generators,
  removeDir,
  workDir,
  type GenSpec,
  allocSpecs,
} from '../src/bench/harness.js';

const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const sizes = process.argv
  .slice(2)
  .map(Number)
  .filter((n) => n > 0);
const tools = buildTools();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Stats {
  frames: { total: number };
  live: { buffers: number };
  persistence: {
    journal_bytes: number;
    snapshot_bytes: number;
    compactions: number;
    compacting: boolean;
    journal_segments: number;
  };
}

async function start(
  dir: string,
  extra: string[],
): Promise<{ proc: ChildProcess; ctl: ControlClient; readyMs: number; out: () => string }> {
  const t0 = performance.now();
  const proc = spawn(
    process.execPath,
    [
      CLI,
      'server',
      '--socket',
      join(dir, 's.sock'),
      '--stats-interval',
      '0',
      '--reap-interval',
      '0',
      '--trust-client-pid',
      '--state-dir',
      join(dir, 'state'),
      ...extra,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const ctl = new ControlClient(join(dir, 's.sock'));
  for (;;) {
    try {
      await ctl.json('GET', '/v1/health');
      break;
    } catch {
      if (proc.exitCode !== null) throw new Error(`server exited:\n${out}`);
      await sleep(10);
    }
  }
  return { proc, ctl, readyMs: performance.now() - t0, out: () => out };
}

async function kill9(p: ChildProcess): Promise<void> {
  p.kill('SIGKILL');
  await new Promise((r) => p.once('exit', r));
}

const diskBytes = (dir: string, prefix: string) =>
  readdirSync(join(dir, 'state'))
    .filter((n) => n.startsWith(prefix))
    .reduce((a, n) => a + statSync(join(dir, 'state', n)).size, 0);

async function restartFigures(n: number): Promise<void> {
  const dir = workDir();
  try {
    // Journal only: compaction held off until well past the journal's size.
    let s = await start(dir, ['--journal-mib', '100000', '--expected-buffers', String(n)]);
    // Live owners: this process's PID, so the sweep after a restart keeps every buffer.
    const specs = allocSpecs(n, { clients: 4, pidBase: process.pid });
    const g = await generators(tools.loadgen, join(dir, 's.sock'), specs);
    g.go();
    await g.results();
    while ((await s.ctl.json<Stats>('GET', '/v1/stats')).frames.total < n) await sleep(20);
    await sleep(300);
    await kill9(s.proc);
    const journal = diskBytes(dir, 'journal-');
    s = await start(dir, ['--journal-mib', '1']);
    const fromJournal = s.readyMs;
    const live1 = (await s.ctl.json<Stats>('GET', '/v1/stats')).live.buffers;
    // Now let the background compaction fold the journal into a snapshot.
    const c0 = performance.now();
    for (;;) {
      const st = await s.ctl.json<Stats>('GET', '/v1/stats');
      if (
        st.persistence.compactions > 0 &&
        !st.persistence.compacting &&
        st.persistence.journal_segments <= 2
      )
        break;
      await sleep(100);
    }
    const compactMs = performance.now() - c0;
    await sleep(300);
    await kill9(s.proc);
    const snapshot = diskBytes(dir, 'snapshot.bin');
    s = await start(dir, []);
    const fromSnapshot = s.readyMs;
    const live2 = (await s.ctl.json<Stats>('GET', '/v1/stats')).live.buffers;
    await kill9(s.proc);
    const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
    const secs = (ms: number, digits: number) => (ms / 1000).toFixed(digits);
    const restored = live1 === n && live2 === n ? 'all' : `${live1} / ${live2} of ${n}`;
    console.log(
      `${(n / 1e6).toString().padStart(5)} M live` +
        ` | journal ${mib(journal)} MiB (${(journal / n).toFixed(1)} B/buffer)` +
        ` → restart ready in ${secs(fromJournal, 2)} s` +
        ` | background compaction ${secs(compactMs, 1)} s → snapshot ${mib(snapshot)} MiB` +
        ` → restart ready in ${secs(fromSnapshot, 2)} s` +
        ` | restored ${restored}`,
    );
  } finally {
    removeDir(dir);
  }
}

async function ingest(extra: string[]): Promise<number> {
  const dir = workDir();
  try {
    const s = await start(dir, extra);
    const specs: GenSpec[] = Array.from({ length: 4 }, (_, k) => ({
      mode: 'pairs',
      frames: 5_000_000,
      pidBase: 100 + k,
      addrBase: BigInt(0x10 + k) << 32n,
    }));
    const g = await generators(tools.loadgen, join(dir, 's.sock'), specs);
    g.go();
    const r = await g.results();
    const total = r.reduce((a, x) => a + x.frames, 0);
    while ((await s.ctl.json<Stats>('GET', '/v1/stats')).frames.total < total) await sleep(10);
    await kill9(s.proc);
    return total / Math.max(...r.map((x) => x.seconds));
  } finally {
    removeDir(dir);
  }
}

console.log(`ttalloc restart-bench · ${new Date().toISOString()} · node ${process.version}`);
for (const n of sizes.length ? sizes : [1_000_000, 20_000_000]) await restartFigures(n);
const rates: Record<string, number[]> = { persist: [], 'no-persist': [] };
for (let i = 0; i < 3; i++) {
  rates.persist.push(await ingest([]));
  rates['no-persist'].push(await ingest(['--no-persist']));
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[1] / 1e6;
const on = med(rates.persist),
  off = med(rates['no-persist']);
console.log(
  'ingest, 4 clients, batched ALLOC/FREE pairs (median of 3):' +
    ` persistence on ${on.toFixed(2)} M/s, off ${off.toFixed(2)} M/s (×${(on / off).toFixed(2)})`,
);
