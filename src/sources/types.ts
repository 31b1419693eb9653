// What the machine's other sources of device-memory truth say, as plain data: tt-metal's
// shared-memory regions (per chip totals and per process slots), the kernel driver (who holds
// each device, what card it is), and who a process is. The readers in this folder fill these
// shapes; the merged view, `doctor`, the control API and the views read them. Field names are
// snake_case because these objects are the JSON the control API serves.

/** Bytes by memory kind, as a region counts them (SYSTEM_MEMORY is not counted there). */
export interface MemoryTotals {
  dram: number;
  l1: number;
  l1_small: number;
  trace: number;
  cb: number;
  /** v1a regions only. */
  kernel?: number;
}

/** Layout of a region (SHM-LAYOUT.md §1); 'unknown' when the version word is none of them. */
export type ShmLayout = 'v1a' | 'v1b' | 'v2' | 'v3' | 'v4' | 'unknown';

/** Why a region's figures are not shown as they are. */
export type ShmRegionStatus =
  | 'ok'
  /** Another user's region (mode 0600 from v3): reported, never shown as empty. */
  | 'unreadable'
  /** v4 with init_state not yet ready. */
  | 'initialising'
  /** Two reads never agreed within the retries (a writer kept changing it). */
  | 'torn'
  /** Wrong size or version: not a region we can read. */
  | 'bad';

export interface ShmSlot {
  /** In the writer's PID namespace. */
  pid: number;
  /** process_name (from the writer's /proc/PID/comm, ≤ 15 characters). */
  name: string;
  alive: boolean;
  /** Why a slot is not counted as live. */
  dead_reason?: 'gone' | 'zombie' | 'pid_reused' | 'releasing';
  /** The slot's last update (ms since the epoch), null when the layout has none. */
  updated_ms: number | null;
  bytes: MemoryTotals;
}

export interface ShmChip {
  chip_id: number;
  is_remote: boolean;
  bytes: MemoryTotals;
}

export interface ShmRegion {
  path: string;
  /** The number in the file name (a u64: kept as a decimal string). */
  asic_id: string;
  /**
   * The id the header holds (v1b: rebuilt from its two halves); differs from asic_id when the
   * file was copied or renamed. Null when the header was not read.
   */
  header_asic_id: string | null;
  layout: ShmLayout;
  status: ShmRegionStatus;
  /** Set when status is not 'ok': what went wrong, in a sentence. */
  error?: string;
  owner_uid: number;
  owner_user: string | null;
  mode: number;
  /** Logical tt-metal device id of the last process that attached (null when unknown). */
  device_id: number | null;
  board_serial: string | null;
  reference_count: number;
  active_processes: number;
  updated_ms: number | null;
  /** The region's own totals (all processes, including what crashed ones left in v2/v3). */
  totals: MemoryTotals;
  chips: ShmChip[];
  /** Used slots (pid != 0), live and dead. */
  slots: ShmSlot[];
  /** The sum of the live slots. */
  live: MemoryTotals;
  /**
   * v2/v3: totals − live where positive: what crashed processes left, and what live processes
   * without a slot count (per-PID tracking off, or the table full). Null otherwise.
   */
  ghost: MemoryTotals | null;
  /** All 64 slots taken: a new process reports nothing. */
  slots_full: boolean;
}

export interface ShmScan {
  /** The directory scanned (normally /dev/shm). */
  root: string;
  scanned_ms: number;
  regions: ShmRegion[];
  /** Set when the directory itself could not be read. */
  error?: string;
}

/** Sensors of a card (hwmon), as tt-smi shows them; absent fields were not reported. */
export interface CardSensors {
  temperature_c?: number;
  voltage_v?: number;
  current_a?: number;
  power_w?: number;
  fan_rpm?: number;
}

/** One /dev/tenstorrent/N entry: a card, which may hold several chips. */
export interface DriverCard {
  /** N of /dev/tenstorrent/N. */
  index: number;
  card_type: string | null;
  arch: string | null;
  board_serial: string | null;
  asic_id: string | null;
  /** tt-metal devices (chips) on the card; null where no source says (galaxy, p300). */
  chips: number | null;
  /** Why chips is what it is, in words (e.g. "n300: 1 local + 1 remote"). */
  chips_note: string;
  /** (driver) How many of the chips are remote (behind the local one); null with chips. */
  remote_chips: number | null;
  /**
   * (driver) tt-metal device ids of the chips, local first, as the registry numbers them
   * (devices/cards.ts: an assumption, stated there); null for every card once one card's chips
   * are unknown.
   */
  device_ids: number[] | null;
  /** Firmware versions by component (bundle, arc, eth, m3app, m3bl, ttflash), as reported. */
  firmware: Record<string, string>;
  /** aiclk, axiclk, arcclk in MHz, as reported. */
  clocks_mhz: Record<string, number>;
  /** (driver) tt_heartbeat (driver ≥ 2.7.0), null when not reported: a stall shows as no change. */
  heartbeat: number | null;
  sensors: CardSensors;
  /** Holder PIDs in our namespace, one per process (a PID with two descriptors once). */
  holders: number[];
  /** Holders outside our PID namespace (the driver prints 0 for them). */
  holders_outside_ns: number;
}

export interface DriverScan {
  present: boolean;
  driver_version: string | null;
  /** /proc/driver/tenstorrent/N/pids exists (driver ≥ 2.5.0). */
  holders_listed: boolean;
  cards: DriverCard[];
  error?: string;
}

/** Who a process is, as far as /proc lets us see (null: not readable by us). */
export interface ProcessIdentity {
  pid: number;
  uid: number | null;
  user: string | null;
  comm: string | null;
  /** The whole command line (views shorten it on screen). */
  cmdline: string | null;
  /** NSpid of /proc/PID/status: the PID in each namespace, outermost first. */
  ns_pids: number[];
  /** The container or cgroup it runs in (null: the host's root cgroup). */
  container: string | null;
  /** Differs from ours: its SHM PIDs and /dev/shm are not ours. */
  other_pid_ns: boolean | null;
  other_ipc_ns: boolean | null;
  /** From /proc/PID/environ (same user or root); null when unreadable. */
  tracking_env: {
    alloc_tracking_enabled: boolean;
    shm_tracking_disabled: boolean;
  } | null;
}
