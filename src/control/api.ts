// The JSON shapes of the control API (/v1/*), declared once: the routes return them, and the
// CLI, `ttalloc top`, the tests (and the page, by the same names) read them. Where report/ or
// analysis/ builds the data, the type is theirs, re-exported here under the endpoint's name.
import type { buildStats, DeviceStats } from '../report/stats.js';
import type { reportJson } from '../report/json-report.js';
import type { BufferRow } from '../report/buffer-report.js';
import type { KernelRow } from '../report/kernel-report.js';
import type { ProcessDeviceUsage, ProcessRow } from '../report/process-info.js';
import type { classify } from '../analysis/classify.js';
import type { Accumulation, CheckResult, Interval } from '../analysis/leaks.js';
import type { PersistenceStats } from '../persist/state-store.js';
import type { ReapedReport } from '../state/tracker.js';
import type { Mark } from '../state/marks.js';
import type { Sample, SAMPLE_KINDS } from '../metrics/sampler.js';

export type {
  Accumulation,
  BufferRow,
  CheckResult,
  DeviceStats,
  Interval,
  KernelRow,
  Mark,
  PersistenceStats,
  ProcessDeviceUsage,
  ProcessRow,
  ReapedReport,
  Sample,
};

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

/** Event-loop stalls since `?loop=reset` (null until first reset). */
export interface LoopDelayStats {
  maxMs: number;
  p99Ms: number;
  meanMs: number;
  samples: number;
}

/** Peer credentials and the UID policy of both sockets. */
export interface PeerStats {
  credentials: 'kernel (SO_PEERCRED)' | 'unavailable';
  reason?: string;
  pidSource: 'kernel' | 'messages';
  trustClientPid: boolean;
  uidCheck: boolean;
  admittedUids: number[];
  group: string | null;
  refused: { total: number; byUid: Record<string, number>; unreadable: number };
}

/** How data connections are read (socket-reader.ts). */
export interface ReadStats {
  busyConnections: 'direct' | 'epoll';
  /** Why there is no direct reader (epoll only). */
  reason?: string | null;
  directReads: number;
  handBacks: number;
  hotNow: number;
  perReadBufferConnections: number;
}

/** GET /v1/stats */
export type StatsResponse = ReturnType<typeof buildStats> & {
  eventLoop: LoopDelayStats | null;
  persistence: PersistenceStats;
  /** Full dumps being streamed now. */
  streamingDumps: number;
  peers: PeerStats | null;
  reads: ReadStats;
};

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

/** GET /v1/processes */
export interface ProcessesResponse {
  schema_version: 1;
  processes: ProcessRow[];
}

/** GET /v1/kernels */
export interface KernelsResponse {
  schema_version: 1;
  kernels: KernelRow[];
}

/** GET /v1/reaped */
export interface ReapedResponse {
  schema_version: 1;
  reaped: readonly ReapedReport[];
}

/** GET /v1/report?format=json and POST /v1/dump?format=json (without all=1). */
export type ReportResponse = ReturnType<typeof reportJson>;

/** POST /v1/reap */
export interface ReapResponse {
  reaped: ReapedReport[];
  sweepMs: number;
  livenessMs: number;
}

/** POST /v1/reset (body {"confirm": true}) */
export interface ResetResponse {
  reset: true;
  buffersForgotten: number;
}

/** POST /v1/shutdown */
export interface ShutdownResponse {
  stopping: true;
  pid: number;
}

/** GET /v1/marks */
export interface MarksResponse {
  schema_version: 1;
  marks: Mark[];
}

/** POST /v1/marks (body {name, pid?}) */
export interface MarkResponse {
  schema_version: 1;
  mark: Mark;
}

/** GET /v1/diff?a=NAME[&b=NAME] */
export interface DiffResponse {
  schema_version: 1;
  from: string;
  to: string;
  buffers: number;
  bytes: number;
  intervals: Interval[];
  accumulating: Accumulation[];
}

/** GET /v1/classify */
export type ClassifyResponse = ReturnType<typeof classify>;

/** GET /v1/check?since=NAME */
export type CheckResponse = CheckResult;

/** GET /v1/history?seconds=N */
export interface HistoryResponse {
  schema_version: 1;
  intervalMs: number;
  kinds: typeof SAMPLE_KINDS;
  samples: Sample[];
}

/** GET /v1/buffers/page */
export interface BufferPageResponse {
  schema_version: 1;
  total: number;
  totalBytes: number;
  offset: number;
  limit: number;
  order: 'table' | 'size';
  buffers: BufferRow[];
}
