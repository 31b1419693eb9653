// The real readers of the merged view: the SHM reader, the driver reader, /proc identities and the
// table of known non-tt-metal holders, each under the roots sources/roots.ts resolves.
import type { SourceReaders } from './merge-cache.js';

// Placeholder until the shm and driver branches are merged.
export function defaultReaders(): SourceReaders {
  return {
    shm: () => ({ root: '/dev/shm', scanned_ms: Date.now(), regions: [] }),
    driver: () => ({ present: false, driver_version: null, holders_listed: false, cards: [] }),
    identity: () => null,
    knownTool: () => null,
  };
}
