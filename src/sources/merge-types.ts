// The merged view's JSON shapes: one row per process from every source that speaks of it (the
// allocation socket, tt-metal's SHM regions, the driver's holder lists), with the cross-check
// where two sources give figures, and a reason for holders that report nothing. The control API
// serves these (inside report/types.ts's replies); `ps` and `top` build them locally too.
import type { DriverScan, MemoryTotals, ProcessIdentity, ShmLayout, ShmScan } from './types.js';

/** Where a process is known from. */
export type SourceName = 'socket' | 'shm' | 'driver';

/** What the allocation socket says per process and device: report/types.ts ProcessRow fits. */
export interface SocketDeviceInput {
  device: number;
  DRAM: number;
  L1: number;
  /** L1_SMALL alone (the wire's usage counter adds SYSTEM_MEMORY; the views do not). */
  L1_SMALL: number;
  TRACE: number;
  CB: number;
  /** Host memory (SHM regions do not count it); 0 when absent. */
  SYSTEM_MEMORY?: number;
}
export interface SocketProcessInput {
  pid: number;
  command: string | null;
  devices: SocketDeviceInput[];
}

/** A process's slot in one SHM region (one chip as tt-metal numbers them). */
export interface ShmUsage {
  asic_id: string;
  /** The region's logical device id (the last attacher's), null when it has none. */
  device: number | null;
  layout: ShmLayout;
  /** The PID written in the slot (the writer's namespace). */
  slot_pid: number;
  bytes: MemoryTotals;
  /** The slot's last update, as the writer stamped it. */
  updated_at: string | null;
  updated_at_ms: number | null;
}

/** Socket and SHM both report a process on a region: do their figures agree? */
export interface CrossCheck {
  asic_id: string;
  /** The socket's device ids counted against the region (its device id and its chips). */
  devices: number[];
  agree: boolean;
  /** The socket's figures, SYSTEM_MEMORY left out (SHM does not count it). */
  socket: MemoryTotals;
  shm: MemoryTotals;
  /** The kinds that differ. */
  differs: (keyof MemoryTotals)[];
}

/** Why a holder of a device reports nothing (checked where the system lets us). */
export type SilentCode =
  | 'known_tool'
  | 'tracking_disabled'
  | 'tracking_off'
  | 'other_user'
  | 'other_ipc_namespace'
  | 'other_pid_namespace'
  | 'slots_full'
  | 'no_allocation_yet'
  | 'unknown';

export interface SilentReason {
  code: SilentCode;
  /** What we found, in a sentence. */
  text: string;
  /** What to do about it. */
  fix: string;
}

/** Everything the merged view says of one process (the server's PID namespace). */
export interface MergedFields {
  /** Sources that speak of it, in the order socket, shm, driver. */
  sources: SourceName[];
  identity: ProcessIdentity | null;
  /** Its PID inside its own namespace, when it differs from ours (innermost NSpid). */
  ns_pid: number | null;
  /** Its slots in SHM regions. */
  shm: ShmUsage[];
  /** /dev/tenstorrent/N indexes it holds open (the driver's holder lists). */
  holds: number[];
  /** One per region where the socket and the SHM both report it. */
  checks: CrossCheck[];
  /** Set when it holds a device and no source reports memory for it. */
  silent: SilentReason | null;
}
export interface MergedProcess extends MergedFields {
  pid: number;
  command: string | null;
}

/** One SHM region in a few words (stats, ps header, metrics). */
export interface RegionSummary {
  path: string;
  asic_id: string;
  device: number | null;
  layout: ShmLayout;
  status: string;
  error?: string;
  owner_user: string | null;
  owner_uid: number;
  mode: number;
  totals: MemoryTotals;
  /** The sum of live slots. */
  live: MemoryTotals;
  /** v2/v3: what crashed processes left (totals − live), null where the layout keeps no such. */
  ghost: MemoryTotals | null;
  slots_used: number;
  slots_live: number;
  slots_full: boolean;
}

/** What the machine's sources said when the view was built. */
export interface SourcesSummary {
  scanned_at: string;
  scanned_at_ms: number;
  shm: { root: string; regions: RegionSummary[]; error?: string };
  driver: {
    present: boolean;
    version: string | null;
    holders_listed: boolean;
    cards: DriverScan['cards'];
    error?: string;
  };
  /** Distinct processes holding a device. */
  holders: number;
  /** Holders that report nothing, by reason code. */
  silent: Partial<Record<SilentCode, number>>;
  /** Processes known per source. */
  by_source: Record<SourceName, number>;
}

export interface MergedView {
  processes: MergedProcess[];
  summary: SourcesSummary;
}

/** What the merge reads: one scan of each source and who the processes are. */
export interface SourceSnapshot {
  shm: ShmScan;
  driver: DriverScan;
  /** Identity by PID (null: gone or unreadable); asked for every PID the merge meets. */
  identity(pid: number): ProcessIdentity | null;
  /** A known tool that holds devices without tt-metal (tt-smi, ...): its name, else null. */
  knownTool(id: ProcessIdentity): string | null;
  /** Our own UID (the reader's). */
  uid: number;
}
