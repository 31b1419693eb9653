// Test helpers for crashes and faults: the C programs of test/c/ compiled once per test file, the
// runtime-like steady sender (test/c/steady_sender.c) driven through its stdin, the model of what
// it sent, the server's live buffers to compare it with, and the test service manager
// (test/c/fd_supervisor.c) with its event lines.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';
import { ControlClient } from '../../src/client/control-client.js';
import { tempDir } from './server.js';
import type { BufferRow } from '../../src/report/types.js';

export const HAS_CC = spawnSync('cc', ['--version']).status === 0;

const built = new Map<string, string>();
const children = new Set<ChildProcess>();
after(() => {
  for (const p of children) p.kill('SIGKILL');
});

/** Compiles test/c/NAME.c with the machine's cc (once per file); returns the executable. */
export function compileC(name: string): string {
  const seen = built.get(name);
  if (seen) return seen;
  const src = fileURLToPath(new URL(`../c/${name}.c`, import.meta.url));
  const exe = join(tempDir('ttalloc-cc-'), name);
  const r = spawnSync('cc', ['-std=c11', '-O1', '-Wall', '-o', exe, src], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cc ${name}.c failed:\n${r.stderr}`);
  built.set(name, exe);
  return exe;
}

/** A child process whose stdout lines are kept with the time each arrived. */
class Lines {
  readonly lines: { at: number; text: string }[] = [];
  private waiters: (() => void)[] = [];
  private partial = '';
  stderr = '';

  constructor(readonly proc: ChildProcess) {
    children.add(proc);
    proc.once('exit', () => {
      children.delete(proc);
      this.wake();
    });
    proc.stdout!.on('data', (d: Buffer) => {
      const parts = (this.partial + d.toString()).split('\n');
      this.partial = parts.pop()!;
      const at = Date.now();
      for (const text of parts) this.lines.push({ at, text });
      this.wake();
    });
    proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  get text(): string {
    return this.lines.map((l) => l.text).join('\n');
  }

  /** The first line matching `re` at index `from` or later (waits for it). */
  async next(
    re: RegExp,
    from = 0,
    timeoutMs = 20000,
  ): Promise<{ at: number; m: RegExpMatchArray; i: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (let i = from; i < this.lines.length; i++) {
        const m = re.exec(this.lines[i].text);
        if (m) return { at: this.lines[i].at, m, i };
      }
      if (this.proc.exitCode !== null || this.proc.signalCode !== null || Date.now() > deadline)
        throw new Error(`no line matching ${String(re)}:\n${this.text}\n${this.stderr}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }
}

export type SteadyMode = 'alloc' | 'mix';

/** The runtime-like client (steady_sender.c): blocking send(), no MSG_NOSIGNAL, SIGPIPE default. */
export class Steady {
  sent = 0;
  private readonly out: Lines;
  private constructor(
    readonly proc: ChildProcess,
    readonly mode: SteadyMode,
    readonly devices: number,
    readonly base: number,
  ) {
    this.out = new Lines(proc);
  }

  /** Connected to `socket`; its ids start at index `base` (several senders, disjoint ids). */
  static async start(socket: string, mode: SteadyMode, devices = 1, base = 0): Promise<Steady> {
    const args = [socket, mode, String(devices), String(base)];
    const proc = spawn(compileC('steady_sender'), args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const s = new Steady(proc, mode, devices, base);
    await s.out.next(/^connected pid=\d+/);
    return s;
  }

  get pid(): number {
    return this.proc.pid!;
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Asks for the next `n` allocations (and their frees in mix mode); returns at once. */
  request(n: number): void {
    this.proc.stdin!.write(`${n}\n`);
  }

  /** Resolves when every requested frame was handed to send() (the time it printed so). */
  async sentAll(timeoutMs = 30000): Promise<{ at: number; allocs: number; frames: number }> {
    const from = this.out.lines.length - 1;
    let at = 0,
      allocs = 0,
      frames = 0;
    // the last "sent" line: requests are answered in order
    for (let i = Math.max(0, from); ;) {
      const r = await this.out.next(/^sent (\d+) frames (\d+)/, i, timeoutMs);
      ({ at } = r);
      allocs = Number(r.m[1]);
      frames = Number(r.m[2]);
      i = r.i + 1;
      if (allocs === this.sent) break;
    }
    return { at, allocs, frames };
  }

  async send(n: number): Promise<{ at: number; allocs: number; frames: number }> {
    this.sent += n;
    this.request(n);
    return this.sentAll();
  }

  /** Closes its stdin: it exits (0) unless a closed connection killed it first. */
  end(): Promise<{ code: number | null; signal: string | null }> {
    return new Promise((resolve) => {
      const done = () => resolve({ code: this.proc.exitCode, signal: this.proc.signalCode });
      if (!this.alive) return done();
      this.proc.once('exit', done);
      this.proc.stdin!.end();
    });
  }

  /** How it ended (waits for the exit). */
  exit(): Promise<{ code: number | null; signal: string | null }> {
    return new Promise((resolve) => {
      const done = () => resolve({ code: this.proc.exitCode, signal: this.proc.signalCode });
      if (!this.alive) return done();
      this.proc.once('exit', done);
    });
  }

  /** Every frame count it sent so far (1 or 2 per allocation). */
  framesFor(allocs: number): number {
    return this.mode === 'mix' ? allocs + Math.floor(allocs / 3) : allocs;
  }

  /**
   * What the server must hold after allocation k = 0 … allocs-1 (the sequence of steady_sender.c):
   * "device:address" → size.
   */
  model(allocs: number): Map<string, number> {
    const m = new Map<string, number>();
    for (let k = 0; k < allocs; k++) {
      if (this.mode === 'mix' && k % 3 === 1 && k + 1 < allocs) continue; // freed after k + 1
      m.set(steadyKey(this.devices, k, this.base), 4096 + (k % 7) * 64);
    }
    return m;
  }
}

export function steadyKey(devices: number, k: number, base = 0): string {
  return `${k % devices}:0x${(0x100000000 + (k + base) * 0x40).toString(16)}`;
}

/** The server's live buffers as "device:address" → size (each with its ref count, which is 1). */
export async function liveBuffers(
  client: ControlClient,
): Promise<{ rows: Map<string, number>; refs: number[] }> {
  // With all=1 every buffer is in one flat list (json-report.ts), live and left behind.
  const r = await client.json<{ buffers: BufferRow[] }>('GET', '/v1/report?format=json&all=1');
  const rows = new Map<string, number>();
  const refs = new Set<number>();
  for (const b of r.buffers) {
    if (b.state !== 'live') continue;
    rows.set(`${b.device}:${b.address}`, b.size);
    refs.add(b.ref_count);
  }
  return { rows, refs: [...refs] };
}

/** Keys in `want` and not in `got` (and the other way), at most `n` of each, for a message. */
export function mapDiff(
  want: Map<string, number>,
  got: Map<string, number>,
  n = 5,
): { missing: string[]; extra: string[]; wrong: string[]; missingCount: number } {
  const missing: string[] = [],
    extra: string[] = [],
    wrong: string[] = [];
  let missingCount = 0;
  for (const [k, v] of want) {
    const g = got.get(k);
    if (g === undefined) {
      if (missingCount++ < n) missing.push(k);
    } else if (g !== v && wrong.length < n) wrong.push(`${k}: ${g} != ${v}`);
  }
  for (const k of got.keys()) if (!want.has(k) && extra.length < n) extra.push(k);
  return { missing, extra, wrong, missingCount };
}

/** The test service manager (fd_supervisor.c) running `ttalloc server` on `socket`. */
export class Supervisor {
  readonly out: Lines;
  readonly ctlSocket: string;
  readonly client: ControlClient;
  private constructor(
    readonly proc: ChildProcess,
    readonly socket: string,
  ) {
    this.out = new Lines(proc);
    this.ctlSocket = `${socket}.ctl`;
    this.client = new ControlClient(socket);
  }

  /** Starts the manager, which starts the server (with `args`) and waits for READY. */
  static async start(
    socket: string,
    args: string[],
    cli: string,
    env: NodeJS.ProcessEnv = {},
  ): Promise<Supervisor> {
    const notify = `@ttalloc-test-${process.pid}-${Math.random().toString(36).slice(2)}`;
    const proc = spawn(
      compileC('fd_supervisor'),
      [socket, `${socket}.ctl`, '--', process.execPath, cli, 'server', '--socket', socket, ...args],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, NOTIFY: notify, RESTART_MS: '100', ...env },
      },
    );
    const s = new Supervisor(proc, socket);
    await s.out.next(/^ready pid=\d+/);
    return s;
  }

  /** PID of the server started last. */
  get serverPid(): number {
    const all = this.out.lines.filter((l) => l.text.startsWith('started pid='));
    return Number(/pid=(\d+)/.exec(all.at(-1)!.text)![1]);
  }

  /** Lines from index `from` on. */
  next(re: RegExp, from = 0, timeoutMs?: number) {
    return this.out.next(re, from, timeoutMs);
  }

  get lineCount(): number {
    return this.out.lines.length;
  }

  command(line: 'restart' | 'stop'): void {
    this.proc.stdin!.write(`${line}\n`);
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    const exited = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.command('stop');
    await exited;
  }
}
