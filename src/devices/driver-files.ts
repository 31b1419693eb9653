// Where the tenstorrent kernel driver (tt-kmd) puts what it knows (SHM-LAYOUT.md §2), and how to
// read one attribute of it. Everything is under a root directory so tests can build a fake tree.
// Nothing here opens /dev/tenstorrent/N: opening makes us a holder and can block behind an
// exclusive opener (a flashing tool); we only list that directory.
import { closeSync, openSync, readdirSync, readSync } from 'node:fs';
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

// An attribute is one short line (a sysfs show routine writes at most a page).
const attrBuf = Buffer.alloc(4096);

/**
 * One attribute, trimmed; null when it is absent, empty or its read fails (attributes appear
 * only when the firmware reports them, and reads fail with ENODATA or ENODEV when it does not).
 * open/read/close into one buffer: about half the cost of readFileSync, which matters with ~20
 * attributes a card on every refresh.
 */
export function readAttr(dir: string, name: string): string | null {
  let fd: number;
  try {
    fd = openSync(join(dir, name), 'r');
  } catch {
    return null;
  }
  let n = -1;
  try {
    n = readSync(fd, attrBuf, 0, attrBuf.length, 0);
  } catch {
    /* ENODATA, ENODEV, EISDIR: no value */
  } finally {
    closeSync(fd);
  }
  if (n <= 0) return null;
  const v = attrBuf.toString('latin1', 0, n).trim();
  return v === '' ? null : v;
}

/**
 * A reader of `dir`'s attributes that lists the directory once and reads only what is there: a
 * failed open costs more than the listing (an exception per missing attribute), and most cards
 * lack several. Every attribute of a missing directory is null.
 */
export function attributesOf(dir: string): (name: string) => string | null {
  let names: Set<string>;
  try {
    names = new Set(readdirSync(dir));
  } catch {
    return () => null;
  }
  return (name) => (names.has(name) ? readAttr(dir, name) : null);
}
