// Server statistics: the data of GET /v1/stats (buildStats) and of the periodic per-device log.
// The text views are in stats-text.ts.
import { KIND_CB, KIND_KERNEL, KIND_UNKNOWN_FREE, KINDS, type Tracker } from '../state/tracker.js';
import { BufferType, counterBytes, MSG_NAMES } from '../protocol/constants.js';
import { totalDram, totalL1 } from '../devices/arch.js';
import type { DeviceRegistry } from '../devices/registry.js';
import type { DeviceBytes, DeviceStats, MemoryStats, ServerStats } from './types.js';
import { renderStatsLines } from './stats-text.js';

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
    totalDramBytes: d ? totalDram(d.spec) : null,
    totalL1Bytes: d ? totalL1(d.spec) : null,
    bytes: bytesByKind(b),
    peakBytes: bytesByKind((k) => tr.peaks.overallPeak(device * KINDS + k)),
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
    unknownFrees: c(KIND_UNKNOWN_FREE),
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
    schema_version: 1,
    pid: process.pid,
    uptimeSeconds: Math.round((Date.now() - src.startedAtMs) / 1000),
    connections: { open: src.connections.size, total: src.connectionsTotal },
    frames: { total: framesTotal, byType: frames, rejected: src.rejectedFrames() },
    unknownFrees: {
      buffers: tr.unknownFrees,
      cbs: tr.unknownCbFrees,
      kernels: tr.unknownKernelUnloads,
    },
    resizedAllocs: tr.resizedAllocs,
    tableFullDrops: tr.tableFullDrops,
    live: {
      buffers: tr.buffers.count,
      cbs: tr.cbs.count,
      kernels: tr.kernels.count,
      processes: tr.livePids().length,
      trackedPids: tr.pids.size,
    },
    reapedProcesses: tr.reapedTotal,
    leftBehind: {
      processes: tr.reaped.length,
      records: tr.leftBehind.records,
      bytes: tr.reaped.reduce((n, p) => n + p.bytes, 0),
      budgetRecords: tr.leftBehind.budget,
      droppedProcesses: tr.leftBehind.droppedProcesses,
      droppedRecords: tr.leftBehind.droppedRecords,
    },
    notes: {
      strings: tr.notes.distinct,
      bytes: tr.notes.bytes,
      budgetBytes: tr.notes.budgetBytes,
      dropped: tr.notes.dropped,
      droppedBytes: tr.notes.droppedBytes,
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
    tableBytes: tr.buffers.memoryBytes() + tr.cbs.memoryBytes() + tr.kernels.memoryBytes(),
    rssBytes: m.rss,
    heapUsedBytes: m.heapUsed,
    externalBytes: m.external,
    arrayBuffersBytes: m.arrayBuffers,
  };
}

/** One line per device, for the periodic log (the server prints them with a "[stats] " prefix). */
export function formatStatsLines(src: DeviceStatsSource & Pick<StatsSource, 'knownDeviceIds'>) {
  return renderStatsLines(src.knownDeviceIds().map((id) => deviceStats(src, id)));
}
