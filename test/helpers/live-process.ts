// Real processes for the tests of the machine's sources: a `sleep` (or any command) with the
// environment and user a test chooses, alive until killed or the file's tests end; and the CLI run
// as another user or inside a private /tmp (a mount namespace of its own, so the runtime's fixed
// socket path /tmp/tt_allocation_server.sock is the test's alone).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after } from 'node:test';
import { CLI } from './server.js';

const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) c.kill('SIGKILL');
});

/** A real process, returned once it runs its own program (exec done: comm is no longer node). */
export async function liveProcess(
  o: { env?: NodeJS.ProcessEnv; uid?: number; cmd?: string; args?: string[] } = {},
): Promise<ChildProcess> {
  const c = spawn(o.cmd ?? 'sleep', o.args ?? ['300'], {
    stdio: 'ignore',
    env: o.env ?? {},
    uid: o.uid,
  });
  children.add(c);
  c.once('exit', () => children.delete(c));
  await new Promise<void>((resolve, reject) => {
    c.once('spawn', resolve);
    c.once('error', reject);
  });
  // exec() has happened once comm is no longer node's (a path or a script works too).
  for (let i = 0; i < 500; i++) {
    try {
      if (!readFileSync(`/proc/${c.pid}/comm`, 'latin1').startsWith('node')) break;
    } catch {
      break;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  return c;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion and collects its output. */
export function runCommand(
  cmd: string,
  args: string[],
  o: { env?: NodeJS.ProcessEnv; uid?: number; gid?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...o.env },
      uid: o.uid,
      gid: o.gid,
    });
    let stdout = '',
      stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // 'close', not 'exit': the pipes may still hold output when the process has exited
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** `ttalloc ARGS` as another user (nobody: 65534). */
export function cliAs(
  uid: number,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<CliResult> {
  return runCommand(process.execPath, [CLI, ...args], { env, uid, gid: uid });
}

/**
 * A shell script in a mount namespace of its own with an empty tmpfs on /tmp (root only): `$CLI`
 * is the ttalloc CLI, `$NODE` node. Paths the script needs from the test must lie outside /tmp.
 */
export function inPrivateTmp(script: string, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return runCommand(
    'unshare',
    ['-m', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs none /tmp && ${script}`],
    { env: { ...env, CLI, NODE: process.execPath } },
  );
}
