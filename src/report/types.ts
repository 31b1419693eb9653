// The JSON shapes of the control API's reports, declared once: the builders return them, the
// routes send them, and the CLI, `ttalloc top`, the web page (src/ui/web/app.js, by JSDoc) and the
// tests read them. A field added to a reply is added here first.
import type { UsageCounter } from '../protocol/constants.js';
import type { PersistenceStats } from '../persist/state-store.js';
import type { Mark } from '../state/marks.js';
import type { ReapedReport } from '../state/tracker.js';
import type { MergedFields, SourcesSummary } from '../sources/merge-types.js';

export type { Mark, PersistenceStats, ReapedReport };

/**
 * The version of every JSON reply and `--json` output. 2: every key snake_case, every time an ISO
 * 8601 string with ms beside its `_ms` epoch twin, no internals (docs/json.md says what changed).
 */
export const SCHEMA_VERSION = 2;
export type SchemaVersion = typeof SCHEMA_VERSION;

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
  ref_count: number;
  /** Allocation time: ms since 1970, and the same as ISO 8601 with ms. */
  allocated_at_ms: number;
  allocated_at: string;
  /** ms from allocation to the report. */
  age_ms: number;
  resized: boolean;
  /** Another live process held the same address when one of the two was allocated. */
  shared: boolean;
  /** state "exited": when its process was found gone. */
  exited_at_ms?: number;
  exited_at?: string;
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
  /** The mark that cut sets (what the JSON says instead of the cut). */
  since?: MarkJson;
  /** Live buffers, left-behind ones, or both (the default). */
  state?: 'live' | 'exited' | 'all';
}

/** A report's filter, as its JSON says it (null: not filtered on that). */
export interface ReportFilterJson {
  devices: number[] | null;
  pids: number[] | null;
  types: string[] | null;
  /** Buffers born after this mark. */
  since: MarkJson | null;
  state: 'live' | 'exited' | 'all';
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
  schema_version: SchemaVersion;
  kind: 'remaining_buffers';
  generated_at: string;
  generated_at_ms: number;
  server_pid: number;
  filter: ReportFilterJson;
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

/** An exited process as JSON reports show it (report/json-report.ts exitedProcessJson). */
export interface ExitedProcessJson {
  pid: number;
  ppid: number | null;
  /** The whole command line (NUL-separated arguments joined by spaces). */
  cmdline: string | null;
  /** When the server found it gone (its exit, within the detection latency). */
  exited_at: string;
  exited_at_ms: number;
  started_at: string | null;
  started_at_ms: number | null;
  buffers: number;
  bytes: number;
  cbs: number;
  cb_bytes: number;
  kernels: number;
  kernel_bytes: number;
  /** device → buffer type name → {count, bytes} */
  by_device: Record<string, Record<string, { count: number; bytes: number }>>;
  /** Buffer records not kept (the budget was smaller than this one process's leftovers). */
  records_dropped: number;
}

/** A checkpoint (`ttalloc mark`), as every reply shows it. */
export interface MarkJson {
  name: string;
  /** When it was taken. */
  time: string;
  time_ms: number;
  /** Set when a harness marks for one process: queries since it see only that process. */
  pid: number | null;
}

/** GET /v1/report?format=json and POST /v1/dump?format=json (without all=1). */
export type ReportResponse = BufferReportJson;

/** One page of the live table (the dashboard's buffer list). */
export interface BufferPage {
  total: number;
  total_bytes: number;
  offset: number;
  limit: number;
  order: 'table' | 'size';
  buffers: BufferRow[];
}

/** GET /v1/buffers/page */
export interface BufferPageResponse extends BufferPage {
  schema_version: SchemaVersion;
}

/** POST /v1/forget: what was forgotten. */
export interface ForgetResponse {
  schema_version: SchemaVersion;
  processes: number;
  records: number;
}

/** GET /v1/reaped: what processes that exited left behind. */
export interface ReapedResponse {
  schema_version: SchemaVersion;
  reaped: ExitedProcessJson[];
}

/** One loaded kernel (GET /v1/kernels). */
export interface KernelRow {
  device: number;
  kernel_id: string;
  size: number;
  kernel_type: string;
  pid: number;
}
export interface KernelsResponse {
  schema_version: SchemaVersion;
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
  total_dram_bytes: number | null;
  total_l1_bytes: number | null;
  bytes: DeviceBytes;
  /** High-water marks since the server started (or restarted) or the last `reset-peaks`. */
  peak_bytes: DeviceBytes;
  /** The wire's usage counters (SYSTEM_MEMORY counted in L1_SMALL), as QUERY answers them. */
  usage: Record<UsageCounter, number>;
  buffers: DeviceBufferCounts;
  cbs: number;
  kernels: number;
  unknown_frees: number;
}

/** Where PIDs come from and who was kept out (server/peer-cred.ts). */
export interface PeerStats {
  credentials: string;
  /** Set when the kernel's credentials are unavailable. */
  reason?: string;
  pid_source: 'kernel' | 'messages';
  trust_client_pid: boolean;
  uid_check: boolean;
  admitted_uids: number[];
  group: string | null;
  refused: { total: number; by_uid: Record<string, number>; unreadable: number };
}

/** How data connections are read (server/socket-reader.ts). */
export interface ReadStats {
  busy_connections: 'direct' | 'epoll';
  /** Why busy connections are read through epoll. */
  reason?: string | null;
  direct_reads: number;
  hand_backs: number;
  hot_now: number;
  per_read_buffer_connections: number;
}

export interface MemoryStats {
  table_bytes: number;
  rss_bytes: number;
  heap_used_bytes: number;
  external_bytes: number;
  array_buffers_bytes: number;
}

export interface EventLoopStats {
  max_ms: number;
  p99_ms: number;
  mean_ms: number;
  samples: number;
}

/** What report/stats.ts buildStats() computes from the tracker. */
export interface ServerStats {
  schema_version: SchemaVersion;
  pid: number;
  uptime_seconds: number;
  connections: { open: number; total: number };
  frames: { total: number; by_type: Record<string, number>; rejected: number };
  unknown_frees: { buffers: number; cbs: number; kernels: number };
  resized_allocs: number;
  table_full_drops: number;
  live: { buffers: number; cbs: number; kernels: number; processes: number; tracked_pids: number };
  reaped_processes: number;
  /** What exited processes left behind, kept within a budget of records. */
  left_behind: LeftBehindStats;
  /** Buffer names and stack traces of 648-byte clients, interned within a budget of bytes. */
  notes?: NotesStats;
  memory: MemoryStats;
  devices: DeviceStats[];
}

export interface NotesStats {
  /** Distinct strings (names and traces) kept, and their bytes (UTF-16). */
  strings: number;
  bytes: number;
  budget_bytes: number;
  /** Strings not kept because the budget was full (their buffers show no name or trace). */
  dropped: number;
  dropped_bytes: number;
}

/** GET /v1/stats: buildStats() plus what the server adds about itself. */
export interface LeftBehindStats {
  processes: number;
  records: number;
  bytes: number;
  budget_records: number;
  /** Dropped by the budget (oldest exited processes first) since start or the last reset. */
  dropped_processes: number;
  dropped_records: number;
}

export interface StatsResponse extends ServerStats {
  /** Event-loop stalls, once ?loop=reset started the histogram. */
  event_loop: EventLoopStats | null;
  persistence: PersistenceStats;
  streaming_dumps: number;
  peers: PeerStats | null;
  reads: ReadStats;
  /** What the SHM regions and the driver say (absent from a server without sources). */
  sources?: SourcesSummary;
}

export interface ProcessDeviceUsage {
  device: number;
  DRAM: number;
  L1: number;
  /** L1_SMALL alone: host memory is SYSTEM_MEMORY (schema 1 folded it in, as the wire does). */
  L1_SMALL: number;
  TRACE: number;
  CB: number;
  KERNEL: number;
  /** Host memory (pinned for the device; SHM regions do not count it). */
  SYSTEM_MEMORY: number;
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
  claimed_pid?: number;
  command: string | null;
  buffers: number;
  bytes: number;
  unknown_frees: number;
  devices: ProcessDeviceUsage[];
}
/** GET /v1/processes. */
export interface ProcessesResponse {
  schema_version: SchemaVersion;
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
  schema_version: SchemaVersion;
  interval_ms: number;
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
  schema_version: SchemaVersion;
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
  schema_version: SchemaVersion;
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

/** One object of a map view (report/map-view.ts). */
export interface MapViewObject {
  /** Offset in the bank and end of its extent there (size / banks for interleaved buffers). */
  start: number;
  end: number;
  address: string;
  size: number;
  kind: string;
  pid: number;
  ref_count: number;
}

/** GET /v1/map/view (control/view-routes.ts). */
export interface MapViewResponse {
  schema_version: SchemaVersion;
  device: number;
  memory: MapSpace;
  /** The whole map, as /v1/map's range. */
  range: { start: number; end: number };
  view: { start: number; end: number };
  /**
   * Per pixel column of the view: the fraction held (objects over each other count once at most)
   * and the PID holding most of it (null: free).
   */
  columns: { used: number; pid: number | null }[];
  objects_in_view: number;
  /** By address; null when more than `limit` objects are in view. */
  objects: MapViewObject[] | null;
  limit: number;
}

/** One buffer lifetime of the timeline (report/timeline.ts). */
export interface TimelineLifetime {
  address: string;
  size: number;
  pid: number;
  state: 'freed' | 'live' | 'left_behind';
  allocated_at: string;
  allocated_at_ms: number;
  /** Freed at (left_behind: when its owner's exit was seen); null while live. */
  ended_at: string | null;
  ended_at_ms: number | null;
}

/** GET /v1/timeline (control/view-routes.ts). */
export interface TimelineResponse {
  schema_version: SchemaVersion;
  device: number;
  type: string;
  /** The range. */
  start_at: string;
  start_at_ms: number;
  end_at: string;
  end_at_ms: number;
  /** Frees before this were dropped by the ring (--timeline-events): lifetimes are missing. */
  complete_from_at: string;
  complete_from_at_ms: number;
  columns: number;
  column_ms: number;
  /** Lifetimes of the device and type alive at some time in the range. */
  lifetimes_in_range: number;
  /** More were in range than `limit`: the rest are in `other`. */
  capped: boolean;
  limit: number;
  /** The largest lifetimes in range, by birth (the order they stack in). */
  lifetimes: TimelineLifetime[];
  /** The lifetimes not listed: how many, and their peak bytes per column. Null when none. */
  other: { lifetimes: number; peak_bytes: number[] } | null;
  /** Peak bytes of all lifetimes in range per column (at ms resolution). */
  peak_bytes: number[];
  /** The listed lifetimes' owners, most bytes first. */
  owners: { pid: number; command: string | null }[];
}

// ------------------------------------------------------------------ leak analysis

/** GET /v1/marks. */
export interface MarksResponse {
  schema_version: SchemaVersion;
  marks: MarkJson[];
}
/** POST /v1/marks. */
export interface MarkResponse {
  schema_version: SchemaVersion;
  mark: MarkJson;
}
/** DELETE /v1/marks/NAME: the mark that was deleted. */
export interface UnmarkResponse {
  schema_version: SchemaVersion;
  deleted: MarkJson;
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
  count_per_run: number;
  devices: number[];
  runs: number;
  bytes_per_run: number;
  text: string;
}
/** GET /v1/diff. */
export interface DiffResponse {
  schema_version: SchemaVersion;
  from: string;
  to: string;
  buffers: number;
  bytes: number;
  intervals: Interval[];
  accumulating: Accumulation[];
}

/** GET /v1/check: the CI gate's verdict. */
export interface CheckResult {
  schema_version: SchemaVersion;
  since: string;
  ok: boolean;
  max_bytes: number;
  /** Everything counted: live buffers born since the mark plus what exited processes left. */
  leaked_buffers: number;
  leaked_bytes: number;
  /** Of those, left behind by processes that exited after the mark. */
  exited_buffers: number;
  exited_bytes: number;
  /** Devices the counted buffers are on. */
  devices: number[];
  suppressed_buffers: number;
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
  program_cache_max_bytes: number;
  model_state_min_bytes: number;
}
export interface ClassifiedRow extends BufferRow {
  class: BufferClass;
  reason: string;
}
/** An exited process's leftovers, summed (the left_behind class lists one per process). */
export interface LeftBehindSummary {
  pid: number;
  exited_at: string;
  exited_at_ms: number;
  buffers: number;
  bytes: number;
  reason: string;
}
export interface ClassGroup {
  class: BufferClass;
  /** Its name for people (CLASS_LABELS): the text view and the page show it. */
  label: string;
  hint: string;
  count: number;
  bytes: number;
  buffers: ClassifiedRow[];
  /** Buffers counted but not listed in `buffers`. */
  more: number;
  /** left_behind only: one entry per exited process, most bytes first (at most the limit). */
  processes?: LeftBehindSummary[];
  /** left_behind only: processes counted but not listed in `processes`. */
  more_processes?: number;
}
/** GET /v1/classify. */
export interface ClassifyResponse {
  schema_version: SchemaVersion;
  rules: ClassifyRules;
  classes: ClassGroup[];
}

/** POST /v1/reset. */
export interface ResetResponse {
  schema_version: SchemaVersion;
  reset: true;
  buffers_forgotten: number;
}
/** POST /v1/shutdown (body `{ force?: boolean }`). */
export interface ShutdownResponse {
  schema_version: SchemaVersion;
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
  frame_sizes?: number[];
}

/** GET /v1/clients: the data connections open now. */
export interface ClientsResponse {
  schema_version: SchemaVersion;
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
  schema_version: SchemaVersion;
  ok: true;
  pid: number;
  socket: string;
  uptime_seconds: number;
}

/** GET /v1/devices: one entry per known device. */
export type DeviceInfo =
  | {
      device: number;
      declared: true;
      source: string;
      arch: string;
      arch_type: number;
      card_type: string | null;
      /** The card it is on (/dev/tenstorrent/N for the driver); null for a chip declared alone. */
      card_index: number | null;
      /** The remote chip of its card (an n300's second); null when not known. */
      remote: boolean | null;
      /** Board serial (tt_serial), the local chip ASIC id (tt_asic_id), as the driver says. */
      board_serial: string | null;
      asic_id: string | null;
      dram_channels: number;
      dram_per_channel: number;
      l1_per_core: number;
      worker_cores: number;
      total_dram_bytes: number;
      total_l1_bytes: number;
    }
  | { device: number; declared: false; arch: null };
export interface DevicesResponse {
  schema_version: SchemaVersion;
  devices: DeviceInfo[];
}

/** POST /v1/reap */
export interface ReapResponse {
  schema_version: SchemaVersion;
  reaped: ExitedProcessJson[];
  sweep_ms: number;
  liveness_ms: number;
}

/** GET /v1/check?since=NAME */
export type CheckResponse = CheckResult;
