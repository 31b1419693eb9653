// The state directory: its creation, the lock of the server using it (with the owner's
// liveness), the clean-stop marker, and the names of its files.
//
//   lock                   pid of the server using the directory
//   clean                  present after a clean stop
//   snapshot.bin           the whole state as of the end of segment N (its header says N)
//   journal-0000000K.bin   events after the snapshot, K > N; only the newest one is being written
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { isProcessAlive } from '../platform/processes.js';

export class StateDirError extends Error {}

export const SNAPSHOT = 'snapshot.bin';
const LOCK = 'lock';
const CLEAN = 'clean';
const SEGMENT = /^journal-(\d{8})\.bin$/;

export const segmentName = (gen: number): string => `journal-${String(gen).padStart(8, '0')}.bin`;

/** Journal segments in the directory, oldest first. */
export function listSegments(dir: string): { gen: number; name: string }[] {
  return readdirSync(dir)
    .flatMap((name) => {
      const m = SEGMENT.exec(name);
      return m ? [{ gen: Number(m[1]), name }] : [];
    })
    .sort((a, b) => a.gen - b.gen);
}

/** Default directory: one per socket path, so servers on different sockets never share one. */
export function defaultStateDir(socketPath: string): string {
  const base = process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  const id =
    socketPath
      .replace(/^\/+/, '')
      .replace(/[^A-Za-z0-9._-]/g, '_')
      .slice(-120) || 'default';
  return join(base, 'ttalloc', id);
}

/**
 * mkdir -p, one level at a time. Not mkdirSync's `recursive`: in Node 20 it loops forever (100%
 * CPU, signals never handled) when mkdir fails with ENOENT although the parent exists, as under
 * /proc. Here every failure is an error at once.
 */
function makeDir(dir: string): void {
  try {
    if (statSync(dir).isDirectory()) return;
    throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${dir}'`), { code: 'ENOTDIR' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const parent = dirname(dir);
  if (parent !== dir) makeDir(parent);
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    // another process made it meanwhile
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || !statSync(dir).isDirectory()) throw e;
  }
}

export type PreviousStop = 'clean' | 'crash' | 'none';

export class StateDir {
  constructor(readonly dir: string) {}

  path(name: string): string {
    return join(this.dir, name);
  }

  /**
   * Creates and locks the directory, and says how the server before stopped (the clean marker
   * is removed: from now on a stop is clean only once close() writes it again).
   */
  acquire(): PreviousStop {
    try {
      makeDir(resolve(this.dir));
      accessSync(this.dir, constants.W_OK | constants.X_OK);
    } catch (e) {
      throw new StateDirError(
        `cannot create state directory ${this.dir}: ${(e as Error).message} ` +
          '(use --state-dir DIR or --no-persist)',
      );
    }
    this.lock();
    const previousStop = existsSync(this.path(CLEAN))
      ? 'clean'
      : existsSync(this.path(SNAPSHOT)) || listSegments(this.dir).length > 0
        ? 'crash'
        : 'none';
    rmSync(this.path(CLEAN), { force: true });
    return previousStop;
  }

  /** Leaves the directory: with the clean marker when everything is on disk. */
  release(clean: boolean): void {
    if (clean) writeFileSync(this.path(CLEAN), `${process.pid}\n`);
    rmSync(this.path(LOCK), { force: true });
  }

  private lock(): void {
    const lockPath = this.path(LOCK);
    try {
      writeFileSync(lockPath, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new StateDirError(`cannot lock ${this.dir}: ${(e as Error).message}`);
    }
    const owner = Number(readFileSync(lockPath, 'utf8').trim());
    if (owner && owner !== process.pid && isProcessAlive(owner)) {
      throw new StateDirError(
        `state directory ${this.dir} is in use by server pid ${owner}; use another --state-dir`,
      );
    }
    writeFileSync(lockPath, `${process.pid}\n`, { mode: 0o600 }); // stale lock of a dead server
  }
}
