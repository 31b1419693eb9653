// The JSON shapes of the control API's reports, declared once: the builders return them, the
// routes send them, and the CLI, `ttalloc top`, the web page (src/ui/web/app.js, by JSDoc) and the
// tests read them. A field added to a reply is added here first.
import type { UsageCounter } from '../protocol/constants.js';
import type { PersistenceStats } from '../persist/state-store.js';
import type { Mark } from '../state/marks.js';
import type { ReapedReport } from '../state/tracker.js';
import type { MergedFields, SourcesSummary } from '../sources/merge-types.js';

export type { Mark, PersistenceStats, ReapedReport };

// ------------------------------------------------------------------ buffers

/** One live buffer, as every report lists it. */
export interface BufferRow {
  /** "live": its process still holds it; "exited": left behind by a process that exited. */
  state: 'live' | 'exited';
  device: number;
  address: string;
  size: number;
  type: string;
  pid: number;
  refCount: number;
  /** Allocation time: ms since 1970, and the same as ISO 8601 with ms. */
  allocatedAtMs: number;
  allocatedAt: string;
  /** ms from allocation to the report. */
  ageMs: number;
  resized: boolean;
  /** Another live process held the same address when one of the two was allocated. */
  shared: boolean;
  /** state "exited": when its process was found gone. */
  exitedAtMs?: number;
  exitedAt?: string;
  /** The buffer's name and its allocation's stack trace, as a 648-byte client sent them. */
  name?: string;
  /** (Named as the C struct's field.) */
  stack_trace?: string;
}

/** Which buffers a report covers. */
export interface ReportFilter {
  devices?: number[];
  pids?: number[];
  types?: number[];
  /** Only objects born at or after this time, ms (a mark's cut). */
  bornFromMs?: number;
  /** Live buffers, left-behind ones, or both (the default). */
  state?: 'live' | 'exited' | 'all';
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
  /** Live buffers (absent with state "exited"). */
  total_buffers: number;
  total_bytes: number;
  devices: DeviceGroup[];
  /** What exited processes left behind (absent with state "live"). */
  exited?: ExitedJson;
  /** Only with all=1: every matching buffer, live ones first (each row says its state). */
  buffers?: BufferRow[];
}

/** The left-behind part of a report. */
export interface ExitedJson {
  total_buffers: number;
  total_bytes: number;
  devices: DeviceGroup[];
  /** The exited processes that left something matching, oldest first. */
  processes: ExitedProcessJson[];
  budget_records: number;
  dropped_processes: number;
  dropped_records: number;
}

/** An exited process as JSON reports show it. */
export interface ExitedProcessJson extends ReapedReport {
  exitedAt: string;
  startedAt: string | null;
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

/** POST /v1/forget: what was forgotten. */
export interface ForgetResponse {
  schema_version: 1;
  processes: number;
  records: number;
}

/** GET /v1/reaped: what processes that exited left behind. */
export interface ReapedResponse {
  schema_version: 1;
  reaped: ExitedProcessJson[];
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
  /** High-water marks since the server started (or restarted) or the last `reset-peaks`. */
  peakBytes: DeviceBytes;
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
  /** What exited processes left behind, kept within a budget of records. */
  leftBehind: LeftBehindStats;
  /** Buffer names and stack traces of 648-byte clients, interned within a budget of bytes. */
  notes?: NotesStats;
  memory: MemoryStats;
  devices: DeviceStats[];
}

export interface NotesStats {
  /** Distinct strings (names and traces) kept, and their bytes (UTF-16). */
  strings: number;
  bytes: number;
  budgetBytes: number;
  /** Strings not kept because the budget was full (their buffers show no name or trace). */
  dropped: number;
  droppedBytes: number;
}

/** GET /v1/stats: buildStats() plus what the server adds about itself. */
export interface LeftBehindStats {
  processes: number;
  records: number;
  bytes: number;
  budgetRecords: number;
  /** Dropped by the budget (oldest exited processes first) since start or the last reset. */
  droppedProcesses: number;
  droppedRecords: number;
}

export interface StatsResponse extends ServerStats {
  /** Event-loop stalls, once ?loop=reset started the histogram. */
  eventLoop: EventLoopStats | null;
  persistence: PersistenceStats;
  streamingDumps: number;
  peers: PeerStats | null;
  reads: ReadStats;
  /** What the SHM regions and the driver say (absent from a server without sources). */
  sources?: SourcesSummary;
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
  /** The part of L1_SMALL that is SYSTEM_MEMORY (SHM regions do not count it). */
  SYSTEM_MEMORY?: number;
  buffers: number;
}
/**
 * A process as the socket reports it, with what the other sources say of it (sources/merge.ts;
 * absent from a server without them). A process only SHM or the driver knows has zero socket
 * figures and no devices.
 */
export interface ProcessRow extends Partial<MergedFields> {
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
  /** What the SHM regions and the driver said (absent from a server without sources). */
  sources?: SourcesSummary;
  /**
   * Who answered: 'server' (the socket's figures and the sources), or 'local' (`ps`/`top` with no
   * server: the SHM and the driver read directly).
   */
  from?: 'server' | 'local';
}

/** A sample of the per-device counters (metrics/sampler.ts). */
export interface Sample {
  /** Wall clock, ms. */
  t: number;
  /** device id → bytes per SAMPLE_KINDS */
  d: Record<string, number[]>;
  /** device id → the highest bytes per SAMPLE_KINDS since the previous sample (its peak). */
  p: Record<string, number[]>;
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

/** GET /v1/peaks[?since=MARK] (report/peaks.ts). */
export interface PeaksResponse {
  schema_version: 1;
  since: {
    what: 'start_or_reset' | 'mark';
    mark: string | null;
    /** ISO 8601 with ms, and the same as epoch ms. */
    time: string;
    time_ms: number;
  };
  /** False when the mark is older than the server process (peaks count from its start). */
  complete: boolean;
  devices: { device: number; peak_bytes: DeviceBytes; bytes: DeviceBytes }[];
}

/** The address spaces `ttalloc map` draws: DRAM (with TRACE) and L1 (with L1_SMALL and CBs). */
export type MapSpace = 'DRAM' | 'L1';

/** GET /v1/map?device=N&memory=L1|DRAM&bins=B (report/memory-map.ts); bytes are per bank. */
export interface MemoryMapResponse {
  schema_version: 1;
  device: number;
  memory: MapSpace;
  arch: string | null;
  model: { banks: number; bank_bytes: number | null; estimate: true; note: string };
  range: { start: number; end: number };
  objects: number;
  by_kind: Record<string, { objects: number; per_bank_bytes: number }>;
  used_per_bank_bytes: number;
  free_per_bank_bytes: number;
  /** The largest free block per bank; an interleaved allocation fits when it needs ≤ this. */
  largest_free: { start: number; size: number; interleaved_bytes: number } | null;
  /** The largest free gaps, largest first (at most 10). */
  gaps: { start: number; size: number }[];
  gap_count: number;
  /** Addresses held by more than one object (two processes, or a CB on an L1 buffer). */
  overlap: { per_bank_bytes: number; objects: number };
  /** Objects that end beyond the bank's size: the model does not fit them. */
  beyond_bank: number;
  /** The owners told apart in `bins`, most bytes first. */
  owners: { pid: number; command: string | null; per_bank_bytes: number }[];
  /** The bar: each bin's covered fraction and its main owner (index in owners, -1 other). */
  bins: { start: number; used: number; owner: number | null }[];
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
  /** Everything counted: live buffers born since the mark plus what exited processes left. */
  leakedBuffers: number;
  leakedBytes: number;
  /** Of those, left behind by processes that exited after the mark. */
  exitedBuffers: number;
  exitedBytes: number;
  /** Devices the counted buffers are on. */
  devices: number[];
  suppressedBuffers: number;
  /** LeakSanitizer's summary line ("SUMMARY: ttalloc: 73728 byte(s) leaked in 2 buffer(s) …"). */
  summary: string;
  buffers: BufferRow[];
}

/** The classes of `ttalloc leaks`, in the order the report lists them. */
export const CLASSES = [
  'suspicious',
  'left_behind',
  'program_cache',
  'model_state',
  'infrastructure',
  'other',
] as const;
export type BufferClass = (typeof CLASSES)[number];
/** Each class's name in the text view (upper-cased as its heading). */
export const CLASS_LABELS: Readonly<Record<BufferClass, string>> = {
  suspicious: 'suspicious',
  left_behind: 'left behind by exited processes',
  program_cache: 'program cache',
  model_state: 'model state',
  infrastructure: 'infrastructure',
  other: 'other',
};

export interface ClassifyRules {
  programCacheMaxBytes: number;
  modelStateMinBytes: number;
}
export interface ClassifiedRow extends BufferRow {
  class: BufferClass;
  reason: string;
  /** Left behind: when its process exited (wall clock, ms). */
  exitedAtMs?: number;
}
/** An exited process's leftovers, summed (the left_behind class lists one per process). */
export interface LeftBehindSummary {
  pid: number;
  exitedAtMs: number;
  buffers: number;
  bytes: number;
  reason: string;
}
export interface ClassGroup {
  class: BufferClass;
  hint: string;
  count: number;
  bytes: number;
  buffers: ClassifiedRow[];
  /** Buffers counted but not listed in `buffers`. */
  more: number;
  /** left_behind only: one entry per exited process, most bytes first (at most the limit). */
  processes?: LeftBehindSummary[];
  /** left_behind only: processes counted but not listed in `processes`. */
  moreProcesses?: number;
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
/** POST /v1/shutdown (body `{ force?: boolean }`). */
export interface ShutdownResponse {
  stopping: true;
  pid: number;
  /** The data clients still connected (a forced stop closes their connections). */
  clients: DataClient[];
}

/** A process with data connections open: PID (the kernel's, else the claimed one), command. */
export interface DataClient {
  pid: number;
  command: string;
  connections: number;
  /** The frame size of each of its connections (0: not detected yet). */
  frameSizes?: number[];
}

/** GET /v1/clients: the data connections open now. */
export interface ClientsResponse {
  schema_version: 1;
  clients: DataClient[];
}

/** POST /v1/shutdown refused (409): data clients are connected and `force` was not given. */
export interface ShutdownRefusal {
  error: string;
  clients: DataClient[];
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
      /** The card it is on (/dev/tenstorrent/N for the driver); null for a chip declared alone. */
      cardIndex: number | null;
      /** The remote chip of its card (an n300's second); null when not known. */
      remote: boolean | null;
      /** Board serial (tt_serial), the local chip ASIC id (tt_asic_id), as the driver says. */
      boardSerial: string | null;
      asicId: string | null;
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
