// Prometheus metrics. Every value is read from the tracker's incremental counters in collect()
// callbacks at scrape time: ingest never touches prom-client (no inc() per message).
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { MSG_NAMES } from '../protocol/constants.js';
import { KINDS } from '../state/tracker.js';
import { totalDram, totalL1 } from '../devices/arch.js';
import { commandName } from '../report/process-info.js';
import type { StatsSource } from '../report/stats.js';
import type { PersistenceStats, ReadStats } from '../report/types.js';
import { SAMPLE_KINDS } from './sampler.js';
import type { DeviceInfo } from '../devices/registry.js';
import {
  DEFAULT_TOP_PROCESSES,
  OTHER_PROCESSES,
  buffersOf,
  bytesOn,
  ownsOn,
  splitTopProcesses,
} from './process-series.js';
import { listProcesses } from '../report/process-info.js';
import type { SourcesCache } from '../sources/merge-cache.js';
import { registerSourceMetrics } from './source-metrics.js';

/** The view of the server that statistics read, plus its persistence and read paths. */
export interface MetricsSource extends StatsSource {
  persistenceStats(): PersistenceStats;
  /** How data connections are read (server.ts readStats). */
  readStats(): ReadStats;
  /** The SHM regions and the driver, read lazily (absent: no source series). */
  sources?: SourcesCache;
}

/** Memory kinds with a used-bytes series: the five buffer types, then CBs and kernels. */
const KIND_LABELS = SAMPLE_KINDS;
/**
 * Per-process series: the same kinds as the device series (SYSTEM_MEMORY, host memory, apart
 * from L1_SMALL), so that a process's figures sum to its device's type by type.
 */
const PROCESS_KINDS: [string, readonly number[]][] = KIND_LABELS.map((t, k) => [t, [k]]);

/** How /metrics bounds its per-process series (process-series.ts). */
export interface MetricsOptions {
  /** Processes with their own series, the largest first; the rest are summed into pid="other". */
  topProcesses?: number;
}

/**
 * Labels of every per-device series: the device id, its architecture and its board's serial
 * (empty when unknown), so that a fleet query can pick boards and a ratio of two device series
 * matches label for label (see docs/prometheus/rules.yml).
 */
const DEVICE_LABELS = ['device', 'arch', 'serial'] as const;
function deviceLabels(id: number, info: DeviceInfo | undefined): Record<string, string> {
  // `serial` comes from the driver's sysfs (tt_serial) where the registry read it.
  return { device: String(id), arch: info?.spec.name ?? '', serial: info?.serial ?? '' };
}

/** Counters set from absolute totals at scrape time (prom-client counters only go up via inc). */
function setCounter(c: Counter<string>, value: number, labels: Record<string, string> = {}): void {
  c.inc(labels, Math.max(0, value));
}

export function createMetrics(src: MetricsSource, opts: MetricsOptions = {}): Registry {
  const reg = new Registry();
  const topProcesses = opts.topProcesses ?? DEFAULT_TOP_PROCESSES;
  const tr = src.tracker;
  const registers = [reg];

  /** A gauge per (device, kind) of the tracker, read at scrape time. */
  const perDeviceKind = (name: string, help: string, read: (d: number, k: number) => number) =>
    new Gauge({
      name,
      help,
      labelNames: [...DEVICE_LABELS, 'type'],
      registers,
      collect() {
        this.reset();
        for (const d of src.knownDeviceIds()) {
          const labels = deviceLabels(d, src.devices.get(d));
          for (let k = 0; k < KIND_LABELS.length; k++)
            this.set({ ...labels, type: KIND_LABELS[k] }, read(d, k));
        }
      },
    });
  perDeviceKind(
    'ttalloc_device_used_bytes',
    'Bytes in use on a device, by memory type (CB = circular buffers, KERNEL = kernel binaries)',
    (d, k) => tr.deviceBytes(d, k),
  );
  perDeviceKind(
    'ttalloc_device_peak_bytes',
    'Highest bytes in use on a device, by memory type, since the server started or the last ' +
      '`ttalloc reset-peaks` (between scrapes too: short-lived buffers count)',
    (d, k) => tr.peaks.overallPeak(d * KINDS + k),
  );
  perDeviceKind(
    'ttalloc_device_buffers',
    'Live objects on a device, by type ' +
      '(buffers per buffer type; CB and KERNEL count circular buffers and kernels)',
    (d, k) => tr.deviceCount(d, k),
  );
  new Gauge({
    name: 'ttalloc_device_capacity_bytes',
    help: 'Capacity of a declared device, by memory (DRAM or L1)',
    labelNames: [...DEVICE_LABELS, 'memory'],
    registers,
    collect() {
      this.reset();
      for (const d of src.devices.list()) {
        const labels = deviceLabels(d.id, d);
        this.set({ ...labels, memory: 'DRAM' }, totalDram(d.spec));
        this.set({ ...labels, memory: 'L1' }, totalL1(d.spec));
      }
    },
  });
  new Gauge({
    name: 'ttalloc_device_info',
    help: 'Devices known to the server (value 1); arch and serial are empty for undeclared devices',
    labelNames: [...DEVICE_LABELS],
    registers,
    collect() {
      this.reset();
      for (const d of src.knownDeviceIds()) this.set(deviceLabels(d, src.devices.get(d)), 1);
    },
  });
  // Per-process series exist only for processes that own something now (dead PIDs are reaped and
  // vanish at the next scrape), and only for the `topProcesses` largest: the rest are summed into
  // pid="other" (process-series.ts says why).
  const rankKinds = PROCESS_KINDS.flatMap(([, kinds]) => kinds);
  new Gauge({
    name: 'ttalloc_process_used_bytes',
    help:
      'Bytes owned by a live process on a device, by memory type ' +
      '(the largest processes; pid="other" sums the rest)',
    labelNames: ['pid', 'command', 'device', 'type'],
    registers,
    collect() {
      this.reset();
      const { top, rest } = splitTopProcesses(tr.pids.values(), topProcesses, rankKinds);
      for (const s of top) {
        const pid = String(s.pid);
        const command = commandName(s.pid) ?? '';
        for (let d = 0; d < s.devices; d++) {
          if (!ownsOn(s, d)) continue;
          for (const [type, kinds] of PROCESS_KINDS)
            this.set({ pid, command, device: String(d), type }, bytesOn(s, d, kinds));
        }
      }
      if (rest.length === 0) return;
      const devices = rest.reduce((n, s) => Math.max(n, s.devices), 0);
      for (let d = 0; d < devices; d++) {
        const on = rest.filter((s) => d < s.devices && ownsOn(s, d));
        if (on.length === 0) continue;
        for (const [type, kinds] of PROCESS_KINDS) {
          let v = 0;
          for (const s of on) v += bytesOn(s, d, kinds);
          this.set({ pid: OTHER_PROCESSES, command: OTHER_PROCESSES, device: String(d), type }, v);
        }
      }
    },
  });
  new Gauge({
    name: 'ttalloc_process_buffers',
    help:
      'Live buffers owned by a live process (all devices and buffer types; ' +
      'the largest processes, pid="other" sums the rest)',
    labelNames: ['pid', 'command'],
    registers,
    collect() {
      this.reset();
      const { top, rest } = splitTopProcesses(tr.pids.values(), topProcesses, rankKinds);
      for (const s of top)
        this.set({ pid: String(s.pid), command: commandName(s.pid) ?? '' }, buffersOf(s));
      if (rest.length > 0) {
        let n = 0;
        for (const s of rest) n += buffersOf(s);
        this.set({ pid: OTHER_PROCESSES, command: OTHER_PROCESSES }, n);
      }
    },
  });
  new Gauge({
    name: 'ttalloc_processes',
    help: 'Processes owning live objects',
    registers,
    collect() {
      this.set(tr.livePids().length);
    },
  });

  // ---- ingest
  new Counter({
    name: 'ttalloc_frames_total',
    help: 'Frames accepted, by message type',
    labelNames: ['type'],
    registers,
    collect() {
      this.reset();
      tr.framesByType.forEach((n, t) => {
        if (n > 0) setCounter(this, n, { type: MSG_NAMES[t] ?? String(t) });
      });
    },
  });
  new Counter({
    name: 'ttalloc_rejected_frames_total',
    help: 'Frames rejected (unknown code or invalid fields)',
    registers,
    collect() {
      this.reset();
      setCounter(this, src.rejectedFrames());
    },
  });
  new Counter({
    name: 'ttalloc_unknown_frees_total',
    help: 'Frees of objects the server never saw allocated, by object kind',
    labelNames: ['object'],
    registers,
    collect() {
      this.reset();
      setCounter(this, tr.unknownFrees, { object: 'buffer' });
      setCounter(this, tr.unknownCbFrees, { object: 'cb' });
      setCounter(this, tr.unknownKernelUnloads, { object: 'kernel' });
    },
  });
  new Counter({
    name: 'ttalloc_reaped_processes_total',
    help: 'Dead processes whose objects were released',
    registers,
    collect() {
      this.reset();
      setCounter(this, tr.reapedTotal);
    },
  });
  new Counter({
    name: 'ttalloc_connections_total',
    help: 'Client connections accepted on the data socket',
    registers,
    collect() {
      this.reset();
      setCounter(this, src.connectionsTotal);
    },
  });

  // ---- health
  new Gauge({
    name: 'ttalloc_up',
    help: 'The allocation server is running (always 1 when scraped)',
    registers,
    collect() {
      this.set(1);
    },
  });
  new Gauge({
    name: 'ttalloc_uptime_seconds',
    help: 'Seconds since the server started',
    registers,
    collect() {
      this.set((Date.now() - src.startedAtMs) / 1000);
    },
  });
  new Gauge({
    name: 'ttalloc_connections_open',
    help: 'Open client connections on the data socket',
    registers,
    collect() {
      this.set(src.connections.size);
    },
  });
  new Gauge({
    name: 'ttalloc_live_buffers',
    help: 'Live buffers on all devices',
    registers,
    collect() {
      this.set(tr.buffers.count);
    },
  });
  new Gauge({
    name: 'ttalloc_table_memory_bytes',
    help: "Memory held by the server's object tables",
    registers,
    collect() {
      this.set(tr.buffers.memoryBytes() + tr.cbs.memoryBytes() + tr.kernels.memoryBytes());
    },
  });
  // ---- reading (socket-reader.ts): without direct reads every client send() costs ~100 ns more
  new Gauge({
    name: 'ttalloc_direct_reads_enabled',
    help:
      'Busy data connections are read directly, not through epoll ' +
      '(0: the native addon is missing)',
    registers,
    collect() {
      this.set(src.readStats().busy_connections === 'direct' ? 1 : 0);
    },
  });
  new Counter({
    name: 'ttalloc_direct_reads_total',
    help: 'Reads of busy data connections made directly (not through epoll)',
    registers,
    collect() {
      this.reset();
      setCounter(this, src.readStats().direct_reads);
    },
  });
  // ---- persistence
  const persisted = () => {
    const p = src.persistenceStats();
    return p.enabled ? p : null;
  };
  new Gauge({
    name: 'ttalloc_persistence_up',
    help:
      'State is being journaled to disk ' +
      '(0: turned off, unusable state directory, or stopped by a disk error)',
    registers,
    collect() {
      const p = persisted();
      this.set(p && !p.failed ? 1 : 0);
    },
  });
  new Gauge({
    name: 'ttalloc_persistence_bytes',
    help: 'Bytes of persisted state on disk, by file kind (journal segments, snapshot)',
    labelNames: ['file'],
    registers,
    collect() {
      this.reset();
      const p = persisted();
      if (p) {
        this.set({ file: 'journal' }, p.journal_bytes);
        this.set({ file: 'snapshot' }, p.snapshot_bytes);
      }
    },
  });
  new Gauge({
    name: 'ttalloc_persistence_last_flush_timestamp_seconds',
    help: 'When the journal last reached the disk (Unix time)',
    registers,
    collect() {
      const p = persisted();
      this.set(p?.last_flush_at ? Date.parse(p.last_flush_at) / 1000 : 0);
    },
  });
  new Counter({
    name: 'ttalloc_persistence_compactions_total',
    help: 'Snapshots written by background compaction',
    registers,
    collect() {
      this.reset();
      setCounter(this, persisted()?.compactions ?? 0);
    },
  });

  const sources = src.sources;
  if (sources) registerSourceMetrics(registers, () => sources.view(listProcesses(tr)));

  // Standard process metrics (process_resident_memory_bytes, process_start_time_seconds, nodejs_*).
  collectDefaultMetrics({ register: reg });
  return reg;
}
