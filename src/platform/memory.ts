// Giving freed memory back to the kernel, so that the RSS a user sees in `top` follows the state.
// The server frees big blocks as state shrinks (table pages when buffers go, a dead process's
// rows once kept as left-behind records) and many small ones when the index is rehashed or
// rebuilt. By default glibc raises its mmap threshold after each big free, so big blocks then come
// from the heap, and freed heap pages stay in the RSS until trimmed. With the addon: blocks of
// 128 KiB and more are mapped on their own (unmapped when freed), and the heap is trimmed once
// ingest pauses after the garbage collection that freed a big change's blocks.
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
 * Trims the heap once ingest is idle after a major GC for which `changedALot()` said the state
 * grew or shrank a lot since the last trim (that GC freed its blocks). Not at once: on a big heap
 * malloc_trim holds the thread for up to ~200 ms, which a client must not wait for.
 */
export class HeapTrimmer {
  private due = false;
  private readonly obs: PerformanceObserver | null = null;

  constructor(changedALot: () => boolean) {
    if (!loadNative().addon) return;
    this.obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
        if (kind === constants.NODE_PERFORMANCE_GC_MAJOR && changedALot()) this.due = true;
      }
    });
    this.obs.observe({ entryTypes: ['gc'] });
  }

  /** On the server's clock tick: trims when one is due and nothing arrived since the last. */
  tick(idle: boolean): void {
    if (!this.due || !idle) return;
    this.due = false;
    trimFreedMemory();
  }

  stop(): void {
    this.obs?.disconnect();
  }
}
