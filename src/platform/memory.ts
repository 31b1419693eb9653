// Giving freed memory back to the kernel, so that the RSS a user sees in `top` follows the state.
// The server frees big blocks as state shrinks (table pages when buffers go, a dead process's
// rows once kept as left-behind records) and many small ones when the index is rehashed or
// rebuilt. By default glibc raises its mmap threshold after each big free, so big blocks then come
// from the heap, and freed heap pages stay in the RSS until trimmed. With the addon: blocks of
// 128 KiB and more are mapped on their own (unmapped when freed), and the heap is trimmed after
// the garbage collection that freed a big change's blocks.
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { loadNative } from './native.js';

function addonCall(name: string): boolean {
  const f = loadNative().addon?.[name];
  return typeof f === 'function' && (f as () => boolean)() === true;
}

/** Call once at start; true when the allocator will return big freed blocks at once. */
export function returnFreedMemory(): boolean {
  return addonCall('returnFreedMemory');
}

/** Gives the kernel back the heap's free pages now (after a forced GC); true if it could. */
export function trimFreedMemory(): boolean {
  return addonCall('trimFreedMemory');
}

/**
 * Trims the heap after each major GC for which `changedALot()` says the state grew or shrank a
 * lot since the last trim (its blocks were freed by that GC). Returns a function that stops it.
 */
export function trimAfterMajorGcs(changedALot: () => boolean): () => void {
  if (!loadNative().addon) return () => {};
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MAJOR && changedALot()) {
        trimFreedMemory();
        return;
      }
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  return () => obs.disconnect();
}
