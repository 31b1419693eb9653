// The JSON shapes of the control API's reports, declared once: the builders return them, the
// routes send them, and the CLI, `ttalloc top`, the web page (src/ui/web/app.js, by JSDoc) and the
// tests read them. A field added to a reply is added here first.
import type { UsageCounter } from '../protocol/constants.js';
import type { PersistenceStats } from '../persist/state-store.js';
import type { Mark } from '../state/marks.js';
import type { ReapedReport } from '../state/tracker.js';

export type { Mark, PersistenceStats, ReapedReport };

// ------------------------------------------------------------------ buffers

/** One live buffer, as every report lists it. */
export interface BufferRow {
  device: number;
  address: string;
  size: number;
  type: string;
  pid: number;
  refCount: number;
  epoch: number;
  allocatedAtMs: number;
  resized: boolean;
}

export interface ReportFilter {
  devices?: number[];
  pids?: number[];
  types?: number[];
  /** Only objects born in this epoch or later (checkpoints). */
  minEpoch?: number;
}

export interface TypeGroup {
  type: string;
  count: number;
  bytes: number;
  buffers: BufferRow[];
  more: number;
}
export interface DeviceGroup {
  device: number;
  count: number;
  bytes: number;
  types: TypeGroup[];
}

/** GET /v1/report?format=json (and POST /v1/dump?format=json). */
export interface BufferReportJson {
  schema_version: number;
  kind: 'remaining_buffers';
  generated_at: string;
  server_pid: number;
  filter: ReportFilter;
  listed_per_type: number | 'all';
  total_buffers: number;
  total_bytes: number;
  devices: DeviceGroup[];
  /** Only with all=1: every matching buffer. */
  buffers?: BufferRow[];
}

/** GET /v1/report?format=json and POST /v1/dump?format=json (without all=1). */
export type ReportResponse = BufferReportJson;

/** One page of the live table (the dashboard's buffer list). */
export interface BufferPage {
  total: number;
  totalBytes: number;
  offset: number;
  limit: number;
  order: 'table' | 'size';
  buffers: BufferRow[];
}

/** GET /v1/buffers/page */
export interface BufferPageResponse extends BufferPage {
  schema_version: 1;
}

/** GET /v1/reaped: what processes that exited left behind. */
export interface ReapedResponse {
  schema_version: 1;
  reaped: ReapedReport[];
}

/** One loaded kernel (GET /v1/kernels). */
export interface KernelRow {
  device: number;
  kernelId: string;
  size: number;
  kernelType: string;
  pid: number;
}
export interface KernelsResponse {
  schema_version: 1;
  kernels: KernelRow[];
}

// ------------------------------------------------------------------ stats and processes

/** Bytes per device by buffer type and kind; SYSTEM_MEMORY is kept apart (views fold it). */
export interface DeviceBytes {
  DRAM: number;
  L1: number;
  SYSTEM_MEMORY: number;
  L1_SMALL: number;
  TRACE: number;
  CB: number;
  KERNEL: number;
}
export type DeviceBufferCounts = Omit<DeviceBytes, 'CB' | 'KERNEL'>;

export interface DeviceStats {
  device: number;
  arch: string | null;
  declared: boolean;
  totalDramBytes: number | null;
  totalL1Bytes: number | null;
  bytes: DeviceBytes;
  /** The wire's usage counters (SYSTEM_MEMORY counted in L1_SMALL), as QUERY answers them. */
  usage: Record<UsageCounter, number>;
  buffers: DeviceBufferCounts;
  cbs: number;
  kernels: number;
  unknownFrees: number;
}

/** Where PIDs come from and who was kept out (server/peer-cred.ts). */
export interface PeerStats {
  credentials: string;
  /** Set when the kernel's credentials are unavailable. */
  reason?: string;
  pidSource: 'kernel' | 'messages';
  trustClientPid: boolean;
  uidCheck: boolean;
  admittedUids: number[];
  group: string | null;
  refused: { total: number; byUid: Record<string, number>; unreadable: number };
}

/** How data connections are read (server/socket-reader.ts). */
export interface ReadStats {
  busyConnections: 'direct' | 'epoll';
  /** Why busy connections are read through epoll. */
  reason?: string | null;
  directReads: number;
  handBacks: number;
  hotNow: number;
  perReadBufferConnections: number;
}

export interface MemoryStats {
  tableBytes: number;
  rssBytes: number;
  heapUsedBytes: number;
  externalBytes: number;
  arrayBuffersBytes: number;
}

export interface EventLoopStats {
  maxMs: number;
  p99Ms: number;
  meanMs: number;
  samples: number;
}

/** What report/stats.ts buildStats() computes from the tracker. */
export interface ServerStats {
  schema_version: 1;
  pid: number;
  uptimeSeconds: number;
  connections: { open: number; total: number };
  frames: { total: number; byType: Record<string, number>; rejected: number };
  unknownFrees: { buffers: number; cbs: number; kernels: number };
  resizedAllocs: number;
  tableFullDrops: number;
  live: { buffers: number; cbs: number; kernels: number; processes: number; trackedPids: number };
  reapedProcesses: number;
  memory: MemoryStats;
  devices: DeviceStats[];
}

/** GET /v1/stats: buildStats() plus what the server adds about itself. */
export interface StatsResponse extends ServerStats {
  /** Event-loop stalls, once ?loop=reset started the histogram. */
  eventLoop: EventLoopStats | null;
  persistence: PersistenceStats;
  streamingDumps: number;
  peers: PeerStats | null;
  reads: ReadStats;
}

export interface ProcessDeviceUsage {
  device: number;
  DRAM: number;
  L1: number;
  /** SYSTEM_MEMORY included (USAGE_COUNTER_TYPES). */
  L1_SMALL: number;
  TRACE: number;
  CB: number;
  KERNEL: number;
  buffers: number;
}
export interface ProcessRow {
  pid: number;
  /** The PID this process's messages claim, when it differs from the kernel's (display only). */
  claimedPid?: number;
  command: string | null;
  buffers: number;
  bytes: number;
  unknownFrees: number;
  devices: ProcessDeviceUsage[];
}
/** GET /v1/processes. */
export interface ProcessesResponse {
  schema_version: 1;
  processes: ProcessRow[];
}

/** A sample of the per-device counters (metrics/sampler.ts). */
export interface Sample {
  /** Wall clock, ms. */
  t: number;
  /** device id → bytes per SAMPLE_KINDS */
  d: Record<string, number[]>;
}
/** GET /v1/history (and the first event of /v1/events). */
export interface HistoryResponse {
  schema_version: 1;
  intervalMs: number;
  kinds: readonly string[];
  /**
   * The sample indexes each usage counter sums (protocol/constants.ts USAGE_COUNTER_TYPES: the
   * page takes the SYSTEM_MEMORY rule from here instead of writing it again).
   */
  counters: Readonly<Record<UsageCounter, readonly number[]>>;
  samples: Sample[];
}

// ------------------------------------------------------------------ leak analysis

/** GET /v1/marks. */
export interface MarksResponse {
  schema_version: 1;
  marks: Mark[];
}
/** POST /v1/marks. */
export interface MarkResponse {
  schema_version: 1;
  mark: Mark;
}
/** DELETE /v1/marks/NAME: the mark that was deleted. */
export interface UnmarkResponse {
  schema_version: 1;
  deleted: Mark;
}

export interface SizeGroup {
  device: number;
  type: string;
  size: number;
  count: number;
  bytes: number;
}
/** What was born between two consecutive marks and is still alive. */
export interface Interval {
  from: string;
  to: string;
  buffers: number;
  bytes: number;
  groups: SizeGroup[];
}
/** Buffers of one type and size that survive in equal numbers from every run. */
export interface Accumulation {
  type: string;
  size: number;
  countPerRun: number;
  devices: number[];
  runs: number;
  bytesPerRun: number;
  text: string;
}
/** GET /v1/diff. */
export interface DiffResponse {
  schema_version: 1;
  from: string;
  to: string;
  buffers: number;
  bytes: number;
  intervals: Interval[];
  accumulating: Accumulation[];
}

/** GET /v1/check: the CI gate's verdict. */
export interface CheckResult {
  schema_version: 1;
  since: string;
  ok: boolean;
  maxBytes: number;
  leakedBuffers: number;
  leakedBytes: number;
  suppressedBuffers: number;
  buffers: BufferRow[];
}

export const CLASSES = [
  'suspicious',
  'program_cache',
  'model_state',
  'infrastructure',
  'other',
] as const;
export type BufferClass = (typeof CLASSES)[number];

export interface ClassifyRules {
  programCacheMaxBytes: number;
  modelStateMinBytes: number;
}
export interface ClassifiedRow extends BufferRow {
  class: BufferClass;
  reason: string;
}
export interface ClassGroup {
  class: BufferClass;
  hint: string;
  count: number;
  bytes: number;
  buffers: ClassifiedRow[];
  more: number;
}
/** GET /v1/classify. */
export interface ClassifyResponse {
  schema_version: 1;
  rules: ClassifyRules;
  classes: ClassGroup[];
}

/** POST /v1/reset. */
export interface ResetResponse {
  reset: true;
  buffersForgotten: number;
}
/** POST /v1/shutdown. */
export interface ShutdownResponse {
  stopping: true;
  pid: number;
}

// ------------------------------------------------------------------ server and devices

/** Every error: a 4xx/5xx status with this body. */
export interface ErrorResponse {
  error: string;
}

/** GET /v1/health */
export interface HealthResponse {
  ok: true;
  pid: number;
  socket: string;
  uptimeSeconds: number;
}

/** GET /v1/devices: one entry per known device. */
export type DeviceInfo =
  | {
      device: number;
      declared: true;
      source: string;
      arch: string;
      archType: number;
      cardType: string | null;
      dramChannels: number;
      dramPerChannel: number;
      l1PerCore: number;
      workerCores: number;
      totalDramBytes: number;
      totalL1Bytes: number;
    }
  | { device: number; declared: false; arch: null };
export type DevicesResponse = DeviceInfo[];

/** POST /v1/reap */
export interface ReapResponse {
  reaped: ReapedReport[];
  sweepMs: number;
  livenessMs: number;
}

/** GET /v1/check?since=NAME */
export type CheckResponse = CheckResult;
