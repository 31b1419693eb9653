// Where the tenstorrent kernel driver (tt-kmd) puts what it knows (SHM-LAYOUT.md §2), and how to
// read one attribute of it. Everything is under a root directory so tests can build a fake tree.
// Nothing here opens /dev/tenstorrent/N: opening makes us a holder and can block behind an
// exclusive opener (a flashing tool); we only list that directory.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** /dev/tenstorrent: one entry per card, named N. */
export function devDir(root: string): string {
  return join(root, 'dev/tenstorrent');
}

/** /sys/class/tenstorrent/tenstorrent!N (the `!` is literal: the kernel's escape of '/'). */
export function cardSysfsDir(root: string, index: number): string {
  return join(root, `sys/class/tenstorrent/tenstorrent!${index}`);
}

/** /proc/driver/tenstorrent/N/pids (driver ≥ 2.5.0): one holder PID per open descriptor. */
export function pidsPath(root: string, index: number): string {
  return join(root, `proc/driver/tenstorrent/${index}/pids`);
}

/** The loaded driver module's directory: its `version` attribute is the driver's version. */
export function driverModuleDir(root: string): string {
  return join(root, 'sys/module/tenstorrent');
}

/** The N of every numeric entry of `dir` (optionally after a prefix), ascending; [] if absent. */
export function numberedEntries(dir: string, prefix = ''): number[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const n of names) {
    if (!n.startsWith(prefix)) continue;
    const rest = n.slice(prefix.length);
    if (/^\d+$/.test(rest)) out.push(Number(rest));
  }
  return out.sort((a, b) => a - b);
}

/** Card indices the driver shows: /dev/tenstorrent/N, listed only. */
export function cardIndices(root: string): number[] {
  return numberedEntries(devDir(root));
}

/**
 * One attribute, trimmed; null when it is absent, empty or its read fails (attributes appear
 * only when the firmware reports them, and reads fail with ENODATA or ENODEV when it does not).
 */
export function readAttr(dir: string, name: string): string | null {
  try {
    const v = readFileSync(join(dir, name), 'latin1').trim();
    return v === '' ? null : v;
  } catch {
    return null;
  }
}
