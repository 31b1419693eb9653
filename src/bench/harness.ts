// Processes the benchmark drives: the real server (`ttalloc server` in a child process), the C
// discard reader, and C load generators; all over real Unix sockets.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { ControlClient } from '../client/control-client.js';
import type { StatsResponse } from '../report/types.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'dist/cli/main.js');
const BUILD = join(ROOT, '.bench-build');

/** Compiles the C helpers with `cc -O2` into .bench-build/ (only when the source is newer). */
export function buildTools(): { reader: string; loadgen: string } {
  mkdirSync(BUILD, { recursive: true });
  const out = (name: string) => {
    const src = join(ROOT, 'src/bench/c', `${name}.c`),
      bin = join(BUILD, name);
    if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs)
      execFileSync('cc', ['-O2', '-Wall', '-o', bin, src], { stdio: 'inherit' });
    return bin;
  };
  return { reader: out('discard-reader'), loadgen: out('loadgen') };
}

export const workDir = (): string => mkdtempSync(join(tmpdir(), 'ttalloc-bench-'));
export const removeDir = (d: string): void => rmSync(d, { recursive: true, force: true });
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves with the first stdout line matching `re` (rejects if the process exits first). */
function lineMatching(p: ChildProcess, re: RegExp): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: p.stdout! });
    let found = false;
    rl.on('line', (l) => {
      const m = l.match(re);
      if (m && !found) {
        found = true;
        rl.close();
        resolve(m);
      }
    });
    // Judged at the end of its output, not at its exit: 'exit' can come before the last lines are
    // read.
    rl.on('close', () => {
      if (!found)
        reject(new Error(`${p.spawnfile} ended (exit ${p.exitCode}) before printing ${re}`));
    });
  });
}

const exited = (p: ChildProcess) =>
  new Promise<void>((r) =>
    p.exitCode !== null || p.signalCode !== null ? r() : p.once('exit', () => r()),
  );

/** What the bench reads of GET /v1/stats. */
export type Stats = StatsResponse;

export class BenchServer {
  readonly client: ControlClient;
  private constructor(
    readonly socket: string,
    readonly proc: ChildProcess,
  ) {
    this.client = new ControlClient(socket);
  }

  static async start(dir: string, extra: string[] = []): Promise<BenchServer> {
    const socket = join(dir, 'alloc.sock');
    // BENCH_NODE_FLAGS adds node flags to the server, e.g. "--cpu-prof --cpu-prof-dir=prof" for
    // profiling.
    const flags = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
    const proc = spawn(
      process.execPath,
      [
        '--expose-gc',
        ...flags,
        CLI,
        'server',
        '--socket',
        socket,
        '--quiet',
        '--stats-interval',
        '0',
        '--reap-interval',
        '0',
        '--state-dir',
        join(dir, 'state'),
        '--trust-client-pid',
        ...extra,
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    const s = new BenchServer(socket, proc);
    for (let i = 0; ; i++) {
      try {
        await s.client.json('GET', '/v1/health');
        return s;
      } catch (e) {
        if (i > 200 || proc.exitCode !== null)
          throw new Error(`server did not start: ${String(e)}`);
        await sleep(25);
      }
    }
  }

  stats(query = ''): Promise<Stats> {
    return this.client.json<Stats>('GET', `/v1/stats${query}`);
  }

  /** Waits until the server has applied `frames` frames in total. */
  async drained(frames: number): Promise<Stats> {
    for (;;) {
      const s = await this.stats();
      if (s.frames.total + s.frames.rejected >= frames) return s;
      await sleep(5);
    }
  }

  async stop(): Promise<void> {
    this.proc.kill('SIGTERM');
    await exited(this.proc);
  }
}

export class DiscardReader {
  private constructor(
    readonly socket: string,
    private proc: ChildProcess,
    private result: Promise<RegExpMatchArray>,
  ) {}
  static async start(bin: string, dir: string, connections: number): Promise<DiscardReader> {
    const socket = join(dir, 'discard.sock');
    const proc = spawn(bin, [socket, String(connections)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await lineMatching(proc, /^listening/);
    return new DiscardReader(socket, proc, lineMatching(proc, /^bytes (\d+)/));
  }
  /** Bytes read, once every connection has closed. */
  async bytes(): Promise<number> {
    const m = await this.result;
    await exited(this.proc);
    return Number(m[1]);
  }
}

export interface GenSpec {
  mode: 'pairs' | 'single' | 'allocs' | 'query';
  frames: number;
  durationMs?: number;
  pidBase: number;
  npids?: number;
  addrBase: bigint;
  batch?: number;
}
/**
 * `n` ALLOCs split over `clients` load generators, each in its own 4 GiB address range, owned by
 * `pidBase` (a live PID: no sweep releases them) or `npids` PIDs from it.
 */
export function allocSpecs(
  n: number,
  o: { clients: number; pidBase: number; npids?: number; addrShift?: number },
): GenSpec[] {
  const per = Math.ceil(n / o.clients);
  return Array.from({ length: o.clients }, (_, k) => ({
    mode: 'allocs',
    frames: Math.max(0, Math.min(per, n - k * per)),
    pidBase: o.pidBase,
    npids: o.npids,
    addrBase: BigInt(0x100 + k + (o.addrShift ?? 0)) << 32n,
    batch: 456,
  }));
}

export interface GenResult {
  frames: number;
  seconds: number;
  latency?: { p50: number; p99: number; max: number; n: number };
}

/** Starts load generators, connected and waiting; `go()` releases them all at once. */
export async function generators(bin: string, socket: string, specs: GenSpec[]) {
  const procs = specs.map((g) =>
    spawn(
      bin,
      [
        socket,
        g.mode,
        String(g.frames),
        String(g.durationMs ?? 0),
        String(g.pidBase),
        String(g.npids ?? 1),
        '0x' + g.addrBase.toString(16),
        String(g.batch ?? 456),
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    ),
  );
  const lines = procs.map((p) => {
    const rl = createInterface({ input: p.stdout! });
    const got: string[] = [];
    rl.on('line', (l) => got.push(l));
    return { got, closed: new Promise<void>((r) => rl.once('close', () => r())) };
  });
  await Promise.all(
    procs.map((p, i) =>
      (async () => {
        while (!lines[i].got.includes('ready')) {
          if (p.exitCode !== null) throw new Error('load generator failed to connect');
          await sleep(2);
        }
      })(),
    ),
  );
  return {
    go(): void {
      for (const p of procs) p.stdin!.write('go\n');
    },
    stop(): void {
      for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
    },
    async results(): Promise<GenResult[]> {
      await Promise.all(procs.map(exited));
      await Promise.all(lines.map((l) => l.closed));
      return lines.map(({ got }) => {
        const d = got.find((l) => l.startsWith('done '))?.split(' ') ?? ['done', '0', '0'];
        const lat = got.find((l) => l.startsWith('latency_ms'))?.split(' ');
        return {
          frames: Number(d[1]),
          seconds: Number(d[2]),
          latency: lat
            ? { p50: Number(lat[2]), p99: Number(lat[4]), max: Number(lat[6]), n: Number(lat[8]) }
            : undefined,
        };
      });
    },
  };
}

/** One GET over the control socket: ms from request to last byte, and the body's size and head. */
export function timedGet(
  socket: string,
  path: string,
): Promise<{ ms: number; bytes: number; head: string; tail: string; status: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request({ socketPath: `${socket}.ctl`, path }, (res) => {
      let bytes = 0,
        head = '',
        tail = '';
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (head.length < 4096) head += c.toString('latin1');
        tail = c.subarray(-16).toString('latin1');
      });
      res.on('end', () =>
        resolve({ ms: performance.now() - t0, bytes, head, tail, status: res.statusCode ?? 0 }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}
