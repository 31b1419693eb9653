// Server options and their defaults, in one place: every module reads the resolved config, so a
// default is written once (here), not as a scattered `?? 5000`.
import { DEFAULT_NOTES_BUDGET } from '../state/buffer-notes.js';
import { DeviceRegistry } from '../devices/registry.js';
import { isProcessAlive } from '../platform/processes.js';
import { controlPathFor } from '../protocol/transport.js';
import { DEFAULT_LEFT_BEHIND_BUDGET } from '../state/left-behind.js';
import { DEFAULT_TOP_PROCESSES } from '../metrics/process-series.js';

export interface ServerOptions {
  socketPath: string;
  /** Control API socket; defaults to `<socketPath>.ctl`. */
  controlPath?: string;
  /** 0 = detect per connection. */
  frameSize?: 0 | 72 | 112 | 144 | 648;
  reapIntervalMs?: number;
  statsIntervalMs?: number;
  quiet?: boolean;
  logEvents?: boolean;
  devices?: DeviceRegistry;
  expectedBuffers?: number;
  detectQuietMs?: number;
  /** Where reports and log lines go (stdout by default, written synchronously). */
  out?: (text: string) => void;
  /** Persistence: state directory (default per socket under $XDG_STATE_HOME), false = off. */
  stateDir?: string | false;
  /** Journal flush interval (ms): at most this much is lost on a crash. */
  flushIntervalMs?: number;
  /** Closed journal segments are folded into a new snapshot past max(this, snapshot size). */
  compactBytes?: number;
  /** Liveness check, replaceable in tests. */
  isAlive?: (pid: number) => boolean;
  /** `[HOST:]PORT` for the read-only web dashboard and /metrics over TCP (off when unset). */
  http?: string;
  /** Period of the samples behind live charts (ms; 0 = off). */
  sampleIntervalMs?: number;
  /** Open data connections beyond this are refused (each holds buffers; bounds memory). */
  maxConnections?: number;
  /** Share both sockets with this group (0660) instead of owner-only; its members are admitted. */
  group?: string;
  /** Ownership follows the PIDs in the messages, not the kernel's (relays, replays, simulators). */
  trustClientPid?: boolean;
  /** UIDs admitted besides the server's own, root and the --group members. */
  allowUids?: number[];
  /** Left-behind records kept for exited processes (the oldest processes are dropped beyond). */
  leftBehindBudget?: number;
  /** Bytes of distinct buffer names and stack traces kept (648-byte clients; more are counted). */
  notesBudget?: number;
  /** A data connection stopped mid-frame this long (ms) is closed, saying why (0 = never). */
  partialFrameTimeoutMs?: number;
  /** The last frees kept with their lifetimes for the timeline export (0 = none). */
  timelineEvents?: number;
  /** Processes with their own `/metrics` series, the largest first; the rest sum into `other`. */
  metricsTopProcesses?: number;
}

/** The defaults of every numeric option (ms, bytes, counts). */
export const DEFAULTS = {
  frameSize: 0,
  reapIntervalMs: 5000,
  statsIntervalMs: 10000,
  /** Detection wait after the stream goes quiet on an exact single-frame length. */
  detectQuietMs: 5,
  flushIntervalMs: 100,
  compactBytes: 256 << 20,
  sampleIntervalMs: 1000,
  maxConnections: 4096,
  /** Reply bytes a data connection may leave unread before it is closed (thousands of replies). */
  maxUnreadReplyBytes: 1 << 20,
  /** A connection stopped in the middle of a frame this long is closed with the reason. */
  partialFrameTimeoutMs: 2000,
  /** Period of the tracker's clock tick and the table-full check. */
  tickIntervalMs: 250,
  expectedBuffers: 0,
  leftBehindBudget: DEFAULT_LEFT_BEHIND_BUDGET,
  /** 2^18 frees × 40 bytes = 10 MiB, allocated on the first free. */
  timelineEvents: 1 << 18,
  metricsTopProcesses: DEFAULT_TOP_PROCESSES,
  notesBudget: DEFAULT_NOTES_BUDGET,
} as const;

/** The options with every default filled in (`stateDir` stays undefined for the default one). */
export interface ServerConfig extends Required<
  Omit<ServerOptions, 'stateDir' | 'http' | 'group' | 'allowUids'>
> {
  stateDir: string | false | undefined;
  http: string | undefined;
  group: string | undefined;
  allowUids: number[] | undefined;
  maxUnreadReplyBytes: number;
  tickIntervalMs: number;
}

export function resolveConfig(opts: ServerOptions): ServerConfig {
  return {
    ...DEFAULTS,
    controlPath: opts.controlPath ?? controlPathFor(opts.socketPath),
    quiet: false,
    logEvents: false,
    devices: opts.devices ?? new DeviceRegistry(),
    out: (t) => {
      process.stdout.write(t);
    },
    isAlive: isProcessAlive,
    trustClientPid: false,
    ...definedOnly(opts),
    socketPath: opts.socketPath,
    stateDir: opts.stateDir,
    http: opts.http,
    group: opts.group,
    allowUids: opts.allowUids,
  };
}

/** `{ a: undefined }` must not override a default (the CLI passes every flag, set or not). */
function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
