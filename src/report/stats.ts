// Server statistics: the data of GET /v1/stats (buildStats) and of the periodic per-device log.
// The text views are in stats-text.ts.
import { KIND_CB, KIND_KERNEL, KIND_UNKNOWN_FREE, KINDS, type Tracker } from '../state/tracker.js';
import { BufferType, counterBytes, MSG_NAMES } from '../protocol/constants.js';
import { totalDram, totalL1 } from '../devices/arch.js';
import type { DeviceRegistry } from '../devices/registry.js';
import type { DeviceBytes, DeviceStats, MemoryStats, ServerStats } from './types.js';
import { renderStatsLines } from './stats-text.js';
import { SCHEMA_VERSION } from './types.js';

export type { DeviceStats };

/** What buildStats() reads (the server provides it). */
export interface StatsSource {
  tracker: Tracker;
  devices: DeviceRegistry;
  knownDeviceIds(): number[];
  startedAtMs: number;
  connections: { size: number };
  connectionsTotal: number;
  rejectedFrames(): number;
}

/** The part of StatsSource the per-device figures need. */
export type DeviceStatsSource = Pick<StatsSource, 'tracker' | 'devices'>;

/** Bytes per buffer type and kind from a function of the tracker's kind slot. */
export function bytesByKind(b: (kind: number) => number): DeviceBytes {
  const { DRAM, L1, SYSTEM_MEMORY, L1_SMALL, TRACE } = BufferType;
  return {
    DRAM: b(DRAM),
    L1: b(L1),
    SYSTEM_MEMORY: b(SYSTEM_MEMORY),
    L1_SMALL: b(L1_SMALL),
    TRACE: b(TRACE),
    CB: b(KIND_CB),
    KERNEL: b(KIND_KERNEL),
  };
}

export function deviceStats(src: DeviceStatsSource, device: number): DeviceStats {
  const tr = src.tracker;
  const d = src.devices.get(device);
  const b = (k: number) => tr.deviceBytes(device, k);
  const c = (k: number) => tr.deviceCount(device, k);
  const { DRAM, L1, SYSTEM_MEMORY, L1_SMALL, TRACE } = BufferType;
  return {
    device,
    arch: d ? d.spec.name : null,
    declared: !!d,
    total_dram_bytes: d ? totalDram(d.spec) : null,
    total_l1_bytes: d ? totalL1(d.spec) : null,
    bytes: bytesByKind(b),
    peak_bytes: bytesByKind((k) => tr.peaks.overallPeak(device * KINDS + k)),
    usage: {
      DRAM: counterBytes('DRAM', b),
      L1: counterBytes('L1', b),
      L1_SMALL: counterBytes('L1_SMALL', b),
      TRACE: counterBytes('TRACE', b),
    },
    buffers: {
      DRAM: c(DRAM),
      L1: c(L1),
      SYSTEM_MEMORY: c(SYSTEM_MEMORY),
      L1_SMALL: c(L1_SMALL),
      TRACE: c(TRACE),
    },
    cbs: c(KIND_CB),
    kernels: c(KIND_KERNEL),
    unknown_frees: c(KIND_UNKNOWN_FREE),
  };
}

export function buildStats(src: StatsSource): ServerStats {
  const tr = src.tracker;
  const frames: Record<string, number> = {};
  let framesTotal = 0;
  tr.framesByType.forEach((n, t) => {
    if (n) {
      frames[MSG_NAMES[t] ?? String(t)] = n;
      framesTotal += n;
    }
  });
  return {
    schema_version: SCHEMA_VERSION,
    pid: process.pid,
    uptime_seconds: Math.round((Date.now() - src.startedAtMs) / 1000),
    connections: { open: src.connections.size, total: src.connectionsTotal },
    frames: { total: framesTotal, by_type: frames, rejected: src.rejectedFrames() },
    unknown_frees: {
      buffers: tr.unknownFrees,
      cbs: tr.unknownCbFrees,
      kernels: tr.unknownKernelUnloads,
    },
    resized_allocs: tr.resizedAllocs,
    table_full_drops: tr.tableFullDrops,
    live: {
      buffers: tr.buffers.count,
      cbs: tr.cbs.count,
      kernels: tr.kernels.count,
      processes: tr.livePids().length,
      tracked_pids: tr.pids.size,
    },
    reaped_processes: tr.reapedTotal,
    left_behind: {
      processes: tr.reaped.length,
      records: tr.leftBehind.records,
      bytes: tr.reaped.reduce((n, p) => n + p.bytes, 0),
      budget_records: tr.leftBehind.budget,
      dropped_processes: tr.leftBehind.droppedProcesses,
      dropped_records: tr.leftBehind.droppedRecords,
    },
    notes: {
      strings: tr.notes.distinct,
      bytes: tr.notes.bytes,
      budget_bytes: tr.notes.budgetBytes,
      dropped: tr.notes.dropped,
      dropped_bytes: tr.notes.droppedBytes,
    },
    memory: memoryStats(tr),
    devices: src.knownDeviceIds().map((d) => deviceStats(src, d)),
  };
}

/**
 * Process memory as V8 sees it; heap + external over the live count is the bytes-per-buffer figure.
 */
function memoryStats(tr: Tracker): MemoryStats {
  const m = process.memoryUsage();
  return {
    table_bytes: tr.buffers.memoryBytes() + tr.cbs.memoryBytes() + tr.kernels.memoryBytes(),
    rss_bytes: m.rss,
    heap_used_bytes: m.heapUsed,
    external_bytes: m.external,
    array_buffers_bytes: m.arrayBuffers,
  };
}

/** One line per device, for the periodic log (the server prints them with a "[stats] " prefix). */
export function formatStatsLines(src: DeviceStatsSource & Pick<StatsSource, 'knownDeviceIds'>) {
  return renderStatsLines(src.knownDeviceIds().map((id) => deviceStats(src, id)));
}
