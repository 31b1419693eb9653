// Server statistics: the JSON for `ttalloc stats` and the periodic one-line-per-device log.
import { KIND_CB, KIND_KERNEL, KIND_UNKNOWN_FREE, type Tracker } from '../state/tracker.js';
import { MSG_NAMES } from '../protocol/constants.js';
import { totalDram, totalL1 } from '../devices/arch.js';
import type { DeviceRegistry } from '../devices/registry.js';
import { formatBytes } from './format.js';
import type { PersistenceStats } from '../persist/state-store.js';

export interface StatsSource {
  tracker: Tracker;
  devices: DeviceRegistry;
  knownDeviceIds(): number[];
  startedAtMs: number;
  connections: { size: number };
  connectionsTotal: number;
  rejectedFrames(): number;
  persistenceStats(): PersistenceStats;
  /** How data connections are read (server.ts readStats). */
  readStats(): { busyConnections: 'direct' | 'epoll'; directReads: number };
}

export interface DeviceStats {
  device: number;
  arch: string | null;
  declared: boolean;
  totalDramBytes: number | null;
  totalL1Bytes: number | null;
  bytes: {
    DRAM: number;
    L1: number;
    SYSTEM_MEMORY: number;
    L1_SMALL: number;
    TRACE: number;
    CB: number;
    KERNEL: number;
  };
  buffers: { DRAM: number; L1: number; SYSTEM_MEMORY: number; L1_SMALL: number; TRACE: number };
  cbs: number;
  kernels: number;
  unknownFrees: number;
}

export function deviceStats(src: StatsSource, device: number): DeviceStats {
  const tr = src.tracker,
    d = src.devices.get(device);
  const b = (k: number) => tr.deviceBytes(device, k),
    c = (k: number) => tr.deviceCount(device, k);
  return {
    device,
    arch: d ? d.spec.name : null,
    declared: !!d,
    totalDramBytes: d ? totalDram(d.spec) : null,
    totalL1Bytes: d ? totalL1(d.spec) : null,
    bytes: {
      DRAM: b(0),
      L1: b(1),
      SYSTEM_MEMORY: b(2),
      L1_SMALL: b(3),
      TRACE: b(4),
      CB: b(KIND_CB),
      KERNEL: b(KIND_KERNEL),
    },
    buffers: { DRAM: c(0), L1: c(1), SYSTEM_MEMORY: c(2), L1_SMALL: c(3), TRACE: c(4) },
    cbs: c(KIND_CB),
    kernels: c(KIND_KERNEL),
    unknownFrees: c(KIND_UNKNOWN_FREE),
  };
}

export function buildStats(src: StatsSource) {
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
    memory: memoryStats(tr),
    devices: src.knownDeviceIds().map((d) => deviceStats(src, d)),
  };
}

/**
 * Process memory as V8 sees it; heap + external over the live count is the bytes-per-buffer figure.
 */
function memoryStats(tr: Tracker) {
  const m = process.memoryUsage();
  return {
    tableBytes: tr.buffers.memoryBytes() + tr.cbs.memoryBytes() + tr.kernels.memoryBytes(),
    rssBytes: m.rss,
    heapUsedBytes: m.heapUsed,
    externalBytes: m.external,
    arrayBuffersBytes: m.arrayBuffers,
  };
}

function usedOf(used: number, total: number | null): string {
  return total ? `${formatBytes(used)}/${formatBytes(total)}` : formatBytes(used);
}

/** One line per device, for the periodic log. */
export function formatStatsLines(src: StatsSource): string[] {
  const ids = src.knownDeviceIds();
  if (ids.length === 0) return ['no devices have reported yet'];
  return ids.map((id) => {
    const s = deviceStats(src, id);
    const n =
      s.buffers.DRAM +
      s.buffers.L1 +
      s.buffers.SYSTEM_MEMORY +
      s.buffers.L1_SMALL +
      s.buffers.TRACE;
    return (
      `device ${id}${s.arch ? ` [${s.arch}]` : ''}: ${n} buffers, DRAM ${usedOf(s.bytes.DRAM, s.totalDramBytes)}, ` +
      `L1 ${usedOf(s.bytes.L1, s.totalL1Bytes)}, L1_SMALL ${formatBytes(s.bytes.L1_SMALL + s.bytes.SYSTEM_MEMORY)}, ` +
      `TRACE ${formatBytes(s.bytes.TRACE)}, CB ${formatBytes(s.bytes.CB)} (${s.cbs}), kernels ${formatBytes(s.bytes.KERNEL)} (${s.kernels})` +
      (s.unknownFrees ? `, unknown frees ${s.unknownFrees}` : '')
    );
  });
}
