// Finding tt-metal's shared-memory regions (`tt_device_<id>_memory`, never deleted by the
// runtime) in a directory, normally /dev/shm, and reading each (shm-region.ts). Read-only; it
// never opens /dev/tenstorrent. Not for the ingest path: the views call it on a refresh.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { regionId } from './shm-layout.js';
import { SlotJudge, type LivenessOptions } from './shm-liveness.js';
import { readRegion } from './shm-region.js';
import type { ShmScan } from './types.js';

export interface ShmScanOptions extends LivenessOptions {
  /** Default /dev/shm. */
  root?: string;
  /** Further reads when a region's first two reads disagree (shm-region.ts). */
  retries?: number;
}

export const DEFAULT_SHM_ROOT = '/dev/shm';

/** Every region under `root`, in file-name order; `error` when the directory is unreadable. */
export function scanShm(opts: ShmScanOptions = {}): ShmScan {
  const root = opts.root ?? DEFAULT_SHM_ROOT;
  const scan: ShmScan = { root, scanned_ms: Date.now(), regions: [] };
  let names: string[];
  try {
    names = readdirSync(root);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    scan.error = `${root} cannot be listed (${err.code ?? err.message})`;
    return scan;
  }
  const judge = new SlotJudge(opts);
  const found: string[] = [];
  for (const n of names) if (regionId(n) !== null) found.push(n);
  found.sort();
  for (const n of found)
    scan.regions.push(readRegion(join(root, n), { judge, retries: opts.retries }));
  return scan;
}
