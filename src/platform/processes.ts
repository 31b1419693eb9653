import { closeSync, openSync, readSync } from 'node:fs';
import { loadNative } from './native.js';

// Finding owners that no longer exist. kill(pid, 0): ESRCH = gone; EPERM = alive but another
// user's (the original server wrongly treated that as dead).
export function isProcessAlive(pid: number): boolean {
  // PID 0 or negative: the sender did not say who it is; we cannot check, so never reap it
  // (kill(0, 0) would also signal our own process group).
  if (!Number.isInteger(pid) || pid <= 0) return true;
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  return !isZombie(pid);
}

const statBuf = Buffer.alloc(512);

/**
 * A process that died but was not waited for by its parent still answers kill(pid, 0); it holds
 * no device memory any more, so it counts as dead ("Z" in /proc/<pid>/stat).
 */
function isZombie(pid: number): boolean {
  let fd: number;
  try {
    fd = openSync(`/proc/${pid}/stat`, 'r');
  } catch {
    return false;
  }
  let n = 0;
  try {
    n = readSync(fd, statBuf, 0, statBuf.length, null);
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
  // ')': the command name may itself contain ')' or spaces
  const i = statBuf.lastIndexOf(41, n - 1);
  return i >= 0 && statBuf[i + 2] === 90; // 'Z'
}

type Liveness = (pids: Int32Array, alive: Uint8Array) => void;
let native: Liveness | null | undefined;

/**
 * The PIDs among `pids` that are gone. With the default check and the native addon, one call for
 * the whole sweep: ~12 µs per live PID instead of ~27 (most of it the kernel writing
 * /proc/<pid>/stat).
 */
export function deadPids(
  pids: Iterable<number>,
  alive: (pid: number) => boolean = isProcessAlive,
): Set<number> {
  const dead = new Set<number>();
  if (alive === isProcessAlive) {
    if (native === undefined) {
      const f = loadNative().addon?.liveness;
      native = typeof f === 'function' ? (f as Liveness) : null;
    }
    if (native !== null) {
      const list = Int32Array.from(pids),
        out = new Uint8Array(list.length);
      native(list, out);
      for (let i = 0; i < list.length; i++) if (out[i] === 0) dead.add(list[i]);
      return dead;
    }
  }
  for (const p of pids) if (!alive(p)) dead.add(p);
  return dead;
}
