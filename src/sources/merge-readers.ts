// The real readers of the merged view: the SHM reader, the driver reader, /proc identities and the
// table of known non-tt-metal holders, under roots that tests (and odd machines) can move. One
// scheme for every root: an environment variable, read when the readers are made.
//   TT_ALLOC_SYSFS_ROOT  the tree holding dev/tenstorrent, sys/class/tenstorrent and
//                        proc/driver/tenstorrent (default /; devices/registry.ts reads it too)
//   TT_ALLOC_SHM_ROOT    the directory of tt-metal's regions (default /dev/shm)
import { knownHolder, readProcessIdentity } from './driver-holders.js';
import { DriverReader } from './driver.js';
import type { SourceReaders } from './merge-cache.js';
import { scanShm } from './shm-scan.js';
import { startTicksOf } from '../platform/processes.js';

export interface SourceRoots {
  sysfs: string;
  shm: string;
}

export function sourceRoots(env: NodeJS.ProcessEnv = process.env): SourceRoots {
  return {
    sysfs: env.TT_ALLOC_SYSFS_ROOT || '/',
    shm: env.TT_ALLOC_SHM_ROOT || '/dev/shm',
  };
}

export function defaultReaders(roots: SourceRoots = sourceRoots()): SourceReaders {
  // Kept across refreshes: a card's identity is read again only every few seconds.
  const driver = new DriverReader({ root: roots.sysfs });
  return {
    shm: () => scanShm({ root: roots.shm }),
    driver: () => driver.scan(),
    identity: (pid) => {
      const id = readProcessIdentity(pid);
      // comm is readable for any live process: without it the process is gone.
      return id.comm === null ? null : id;
    },
    knownTool: (id) => knownHolder(id)?.what ?? null,
    startOf: (pid) => startTicksOf(pid),
  };
}
