// Test helpers: a real server process on a real Unix socket, and raw client connections.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';
import { ControlClient } from '../../src/client/control-client.js';

export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

// Servers started by tests persist under a private state home, never the user's.
process.env.XDG_STATE_HOME ??= mkdtempSync(join(tmpdir(), 'ttalloc-state-'));
// …and read tt-metal's SHM regions from an empty directory unless a test points them elsewhere:
// another test's writer in the real /dev/shm must not appear in this file's process lists.
process.env.TT_ALLOC_SHM_ROOT ??= mkdtempSync(join(tmpdir(), 'ttalloc-shm-root-'));

/**
 * Server processes still running when a file's tests end (a failed assertion skips stop()) are
 * killed, so a failure never hangs the suite.
 */
const running = new Set<ChildProcess>();
after(() => {
  for (const p of running) p.kill('SIGKILL');
});

export interface TestServer {
  dir: string;
  socket: string;
  proc: ChildProcess;
  client: ControlClient;
  /** Everything the server printed on stdout so far. */
  output(): string;
  stderr(): string;
  /** Resolves when stdout contains `text` (rejects after timeoutMs). */
  waitFor(text: string | RegExp, timeoutMs?: number): Promise<void>;
  /** SIGTERM and wait; returns the exit code. Removes the temp dir. */
  stop(): Promise<number | null>;
}

export function tempDir(prefix = 'ttalloc-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Starts `ttalloc server` on a private socket; extra CLI args are appended. */
export async function startServer(
  args: string[] = [],
  env: NodeJS.ProcessEnv = {},
): Promise<TestServer> {
  const dir = tempDir();
  const socket = join(dir, 'alloc.sock');
  const state =
    args.includes('--state-dir') || args.includes('--no-persist')
      ? []
      : ['--state-dir', join(dir, 'state')];
  const proc = spawn(
    process.execPath,
    [CLI, 'server', '--socket', socket, '--stats-interval', '0', ...state, ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    },
  );
  running.add(proc);
  proc.once('exit', () => running.delete(proc));
  let out = '',
    err = '';
  const waiters: (() => void)[] = [];
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    for (const w of waiters) w();
  });
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const server: TestServer = {
    dir,
    socket,
    proc,
    client: new ControlClient(socket),
    output: () => out,
    stderr: () => err,
    waitFor(text, timeoutMs = 10000) {
      const has = () => (typeof text === 'string' ? out.includes(text) : text.test(out));
      return new Promise((resolve, reject) => {
        if (has()) return resolve();
        const t = setTimeout(
          () =>
            reject(
              new Error(`timed out waiting for ${String(text)} in server output:\n${out}\n${err}`),
            ),
          timeoutMs,
        );
        const check = () => {
          if (has()) {
            clearTimeout(t);
            resolve();
          }
        };
        waiters.push(check);
        proc.once('exit', () => {
          clearTimeout(t);
          if (!has())
            reject(
              new Error(
                `server exited (${proc.exitCode}) before printing ${String(text)}:\n${out}\n${err}`,
              ),
            );
        });
      });
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise<void>((r) => proc.once('exit', () => r()));
        proc.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
      return proc.exitCode;
    },
  };
  await server.waitFor('listening on');
  return server;
}

/**
 * A server on a socket path of the test's choosing, optionally as another user or with stdout to a
 * file; ready when its control API answers, so that it also works with --quiet.
 */
export async function serverAt(
  socket: string,
  args: string[] = [],
  o: { uid?: number; gid?: number; stdoutFd?: number } = {},
): Promise<TestServer> {
  const proc: ChildProcess = spawn(
    process.execPath,
    [CLI, 'server', '--socket', socket, '--stats-interval', '0', ...args],
    {
      stdio: ['ignore', o.stdoutFd ?? 'pipe', 'pipe'],
      uid: o.uid,
      gid: o.gid,
    },
  );
  running.add(proc);
  proc.once('exit', () => running.delete(proc));
  let out = '',
    err = '';
  proc.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const client = new ControlClient(socket);
  const srv: TestServer = {
    dir: '',
    socket,
    proc,
    client,
    output: () => out,
    stderr: () => err,
    async waitFor(text, timeoutMs = 10000) {
      const deadline = Date.now() + timeoutMs;
      while (!(typeof text === 'string' ? out.includes(text) : text.test(out))) {
        if (Date.now() > deadline || proc.exitCode !== null)
          throw new Error(`no ${String(text)} in server output:\n${out}\n${err}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise<void>((r) => proc.once('exit', () => r()));
        proc.kill('SIGTERM');
        await exited;
      }
      return proc.exitCode;
    },
  };
  const deadline = Date.now() + 10000;
  for (;;) {
    try {
      await client.text('GET', '/v1/health');
      break;
    } catch (e) {
      if (Date.now() > deadline || proc.exitCode !== null)
        throw new Error(`server did not start: ${(e as Error).message}\n${out}\n${err}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  return srv;
}

/** A raw data-socket connection, connected. */
export function rawConnect(socket: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(socket);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/**
 * Writes bytes and waits until the server has surely processed them (a control round trip after a
 * drain).
 */
export async function sendAndSettle(
  s: Socket,
  bytes: Uint8Array,
  server: TestServer,
): Promise<void> {
  await new Promise<void>((r) => s.write(bytes, () => r()));
  await settle(server);
}

/**
 * Waits until the server has applied what clients wrote: polls stats until the frame count stops
 * moving across two polls (the data socket has no acknowledgements by design).
 */
export async function settle(server: TestServer): Promise<void> {
  let last = -1;
  for (let i = 0; i < 200; i++) {
    const s = await server.client.json<{ frames: { total: number; rejected: number } }>(
      'GET',
      '/v1/stats',
    );
    const n = s.frames.total + s.frames.rejected;
    if (n === last) return;
    last = n;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Waits for the server to receive exactly the first reply frame of `size` bytes. */
export function readReply(s: Socket, size: number, timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const t = setTimeout(() => {
      s.off('data', on);
      reject(new Error(`no ${size}-byte reply within ${timeoutMs} ms (got ${buf.length} bytes)`));
    }, timeoutMs);
    const on = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= size) {
        clearTimeout(t);
        s.off('data', on);
        resolve(buf.subarray(0, size));
      }
    };
    s.on('data', on);
  });
}

/** Runs the CLI to completion. */
export function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let stdout = '',
      stderr = '';
    p.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    p.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    // 'close', not 'exit': the pipes may still hold output when the process has exited
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
