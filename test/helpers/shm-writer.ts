// Real SHM regions for the view and doctor tests: test/c/shm-writer.c (the shm reader's writer,
// written the way the runtime writes) compiled once per file, run as real processes that attach,
// allocate and free on command (its usage is at the top of the C file).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';

const SOURCE = fileURLToPath(new URL('../c/shm-writer.c', import.meta.url));

export interface ShmWriter {
  /** Its PID as it sees it (in its own namespace when wrapped in another one). */
  pid: number;
  child: ChildProcess;
  /** One command line; resolves with the writer's answer ("ok …", "full"). */
  send(cmd: string): Promise<string>;
  /** SIGKILL: leaves the slot, the totals and the reference count behind, as a crash does. */
  kill9(): Promise<void>;
  /** `exit`: detaches as the runtime's destructor does. */
  exit(): Promise<void>;
}

let exe: string | null = null;
let dir = '';
const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) c.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The compiled writer (outside /tmp, readable by every user). */
function writerExe(): string {
  if (exe) return exe;
  dir = mkdtempSync('/var/tmp/ttalloc-shm-writer-');
  chmodSync(dir, 0o755);
  exe = join(dir, 'shm-writer');
  const flags = ['-std=c11', '-Wall', '-Wextra', '-Werror', '-pedantic', '-O1'];
  const r = spawnSync('cc', [...flags, '-o', exe, SOURCE], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cc failed:\n${r.stderr}`);
  return exe;
}

/** A writer attached to region `path` (layout v1a…v4, chips: gateway first). */
export function startShmWriter(
  path: string,
  layout: string,
  chips: number[],
  o: {
    comm?: string;
    env?: NodeJS.ProcessEnv;
    uid?: number;
    wrap?: string[];
    /** v4: stop before init_state is ready (until the `ready` command). */
    holdInit?: boolean;
  } = {},
): Promise<ShmWriter> {
  const args = ['--comm', o.comm ?? 'python3', path, layout, ...chips.map(String)];
  if (o.holdInit) args.unshift('--hold-init');
  // `wrap`: a command the writer runs under (unshare --pid --fork: another PID namespace).
  const [cmd, ...pre] = [...(o.wrap ?? []), writerExe()];
  const child = spawn(cmd, [...pre, ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, ...o.env },
    ...(o.uid !== undefined ? { uid: o.uid, gid: o.uid } : {}),
  });
  children.add(child);
  const lines: string[] = [];
  const waiting: ((l: string | null) => void)[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    const w = waiting.shift();
    if (w) w(l);
    else lines.push(l);
  });
  child.once('exit', () => {
    children.delete(child);
    for (const w of waiting.splice(0)) w(null);
  });
  const next = () =>
    new Promise<string>((resolve, reject) => {
      const l = lines.shift();
      if (l !== undefined) return resolve(l);
      if (child.exitCode !== null || child.signalCode !== null)
        return reject(new Error('shm-writer ended'));
      waiting.push((x) => (x === null ? reject(new Error('shm-writer ended')) : resolve(x)));
    });
  const exited = () =>
    new Promise<void>((r) =>
      child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r()),
    );
  return next().then((first) => {
    const m = /pid=(\d+)/.exec(first);
    if (!m) throw new Error(`shm-writer said ${first}`);
    return {
      pid: Number(m[1]),
      child,
      send: (cmd) => {
        child.stdin!.write(`${cmd}\n`);
        return next();
      },
      kill9: () => {
        child.kill('SIGKILL');
        return exited();
      },
      exit: () => {
        child.stdin!.write('exit\n');
        return exited();
      },
    };
  });
}
