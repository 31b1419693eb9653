// A process tree as reports select it (`tree=PID`, `ttalloc run`): the root and every process
// known to the state — live owners and exited ones — whose chain of parents reaches it. Parents
// come from what the server recorded while each process ran (`ppidOf`) and, for exited ones,
// from their left-behind records.
import type { Tracker } from '../state/tracker.js';

/** Parent hops followed at most (a loop in stale data cannot hang a report). */
const MAX_DEPTH = 64;

export function treePids(
  tr: Tracker,
  root: number,
  ppidOf: (pid: number) => number | null = () => null,
): number[] {
  const parent = new Map<number, number | null>();
  for (const p of tr.reaped) parent.set(p.pid, p.ppid);
  for (const pid of tr.pids.keys()) if (!parent.has(pid)) parent.set(pid, ppidOf(pid));
  const out = new Set<number>([root]);
  for (const pid of parent.keys()) {
    let at: number | null | undefined = pid;
    for (let hops = 0; at != null && hops < MAX_DEPTH; hops++) {
      if (at === root) {
        out.add(pid);
        break;
      }
      at = parent.has(at) ? parent.get(at) : ppidOf(at);
    }
  }
  return [...out].sort((a, b) => a - b);
}
