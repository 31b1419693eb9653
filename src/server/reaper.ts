// Finding owners that no longer exist. kill(pid, 0): ESRCH = gone; EPERM = alive but another
// user's (the original server wrongly treated that as dead).
export function isProcessAlive(pid: number): boolean {
  // PID 0 or negative: the sender did not say who it is; we cannot check, so never reap it
  // (kill(0, 0) would also signal our own process group).
  if (!Number.isInteger(pid) || pid <= 0) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function deadPids(pids: Iterable<number>, alive: (pid: number) => boolean = isProcessAlive): Set<number> {
  const dead = new Set<number>();
  for (const p of pids) if (!alive(p)) dead.add(p);
  return dead;
}
