import { readFileSync } from 'node:fs';

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

/**
 * A process that died but was not waited for by its parent still answers kill(pid, 0); it holds
 * no device memory any more, so it counts as dead ("Z" in /proc/<pid>/stat).
 */
function isZombie(pid: number): boolean {
  let stat: string;
  try { stat = readFileSync(`/proc/${pid}/stat`, 'latin1'); } catch { return false; }
  const i = stat.lastIndexOf(')'); // the command name may itself contain ')' or spaces
  return stat.charCodeAt(i + 2) === 90; // 'Z'
}

export function deadPids(pids: Iterable<number>, alive: (pid: number) => boolean = isProcessAlive): Set<number> {
  const dead = new Set<number>();
  for (const p of pids) if (!alive(p)) dead.add(p);
  return dead;
}
