import { closeSync, openSync, readFileSync, readlinkSync, readSync } from 'node:fs';
import { loadNative } from './native.js';

// Finding owners that no longer exist. kill(pid, 0): ESRCH = gone; EPERM = alive but another
// user's (the original server wrongly treated that as dead).
export function isProcessAlive(pid: number): boolean {
  // PID 0 or negative: the sender did not say who it is; we cannot check, so never reap it
  // (kill(0, 0) would also signal our own process group).
  if (!Number.isInteger(pid) || pid <= 0) return true;
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  return !isZombie(pid);
}

const statBuf = Buffer.alloc(512);

/**
 * A process that died but was not waited for by its parent still answers kill(pid, 0); it holds
 * no device memory any more, so it counts as dead ("Z" in /proc/<pid>/stat).
 */
function isZombie(pid: number): boolean {
  let fd: number;
  try {
    fd = openSync(`/proc/${pid}/stat`, 'r');
  } catch {
    return false;
  }
  let n = 0;
  try {
    n = readSync(fd, statBuf, 0, statBuf.length, null);
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
  // ')': the command name may itself contain ')' or spaces
  const i = statBuf.lastIndexOf(41, n - 1);
  return i >= 0 && statBuf[i + 2] === 90; // 'Z'
}

type Liveness = (pids: Int32Array, alive: Uint8Array) => void;
let native: Liveness | null | undefined;

/**
 * The PIDs among `pids` that are gone. With the default check and the native addon, one call for
 * the whole sweep: ~12 µs per live PID instead of ~27 (most of it the kernel writing
 * /proc/<pid>/stat).
 */
export function deadPids(
  pids: Iterable<number>,
  alive: (pid: number) => boolean = isProcessAlive,
): Set<number> {
  const dead = new Set<number>();
  if (alive === isProcessAlive) {
    if (native === undefined) {
      const f = loadNative().addon?.liveness;
      native = typeof f === 'function' ? (f as Liveness) : null;
    }
    if (native !== null) {
      const list = Int32Array.from(pids),
        out = new Uint8Array(list.length);
      native(list, out);
      for (let i = 0; i < list.length; i++) if (out[i] === 0) dead.add(list[i]);
      return dead;
    }
  }
  for (const p of pids) if (!alive(p)) dead.add(p);
  return dead;
}

// ---------------------------------------------------------------- process identity
// A process is its PID plus its start time: a PID the kernel hands out again is a new process.
// Everything below reads /proc (Linux); `procRoot` is for tests, which build a /proc-like tree.

export interface ProcessInfo {
  pid: number;
  /** The parent when first seen (1 or a subreaper once the real parent has died). */
  ppid: number;
  /** Field 22 of /proc/PID/stat: clock ticks after boot at which the process started. */
  startTicks: number;
  /** /proc/PID/cmdline, arguments joined by spaces, at most CMDLINE_MAX bytes ('' for a zombie). */
  cmdline: string;
  /** The command name (/proc/PID/stat's second field, at most 15 characters). */
  comm: string;
  /** Wall-clock start time (ms), for display (startTimeMs()). */
  startMs: number;
}

/** cmdline is cut at this many bytes (an argv can be megabytes). */
export const CMDLINE_MAX = 4096;

// A stat line is ~300 bytes; field 22 lies within the first ~500 even with 20-digit fields.
const lineBuf = Buffer.alloc(1024);
const cmdBuf = Buffer.alloc(CMDLINE_MAX);

/** Reads the first bytes of a file into `buf`; -1 when it cannot be read (no such process). */
function readInto(path: string, buf: Buffer): number {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return -1;
  }
  try {
    return readSync(fd, buf, 0, buf.length, null);
  } catch {
    return -1;
  } finally {
    closeSync(fd);
  }
}

/**
 * The `field`th field (1-based, as proc(5) numbers them; ≥ 3) of the stat line in `buf`, parsed
 * after the last ')' (the command name may itself hold ')' and spaces); -1 when missing.
 */
function statField(buf: Buffer, close: number, n: number, field: number): number {
  let i = close + 2;
  for (let f = 3; f < field; f++) {
    while (i < n && buf[i] !== 32) i++;
    i++;
  }
  if (i >= n) return -1;
  let v = 0,
    digits = 0;
  for (; i < n && buf[i] >= 48 && buf[i] <= 57; i++, digits++) v = v * 10 + (buf[i] - 48);
  return digits ? v : -1;
}

/** Index of the last ')' of the first `n` bytes of `buf`, -1 if none. */
function lastParen(buf: Buffer, n: number): number {
  return n > 0 ? buf.lastIndexOf(41, n - 1) : -1;
}

/**
 * Start ticks (field 22 of /proc/PID/stat) of a process that runs: -1 when there is no such
 * process or it is a zombie (it has exited; its parent has not waited for it yet). One read.
 */
export function startTicksOf(pid: number, procRoot = '/proc'): number {
  const n = readInto(`${procRoot}/${pid}/stat`, lineBuf);
  const close = lastParen(lineBuf, n);
  if (close < 0 || close + 2 >= n || lineBuf[close + 2] === 90) return -1; // 'Z'
  return statField(lineBuf, close, n, 22);
}

/**
 * Who `pid` is: parent, start ticks, command line and name; null when there is no such process.
 * A zombie is described too (its parent and start are still known; its command line is not).
 */
export function readProcessInfo(pid: number, procRoot = '/proc'): ProcessInfo | null {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  const n = readInto(`${procRoot}/${pid}/stat`, lineBuf);
  const close = lastParen(lineBuf, n);
  if (close < 0) return null;
  const open = lineBuf.indexOf(40); // '('
  const comm = open >= 0 && open < close ? lineBuf.toString('utf8', open + 1, close) : '';
  const ppid = statField(lineBuf, close, n, 4),
    startTicks = statField(lineBuf, close, n, 22);
  if (ppid < 0 || startTicks < 0) return null;
  const c = readInto(`${procRoot}/${pid}/cmdline`, cmdBuf);
  let end = c;
  while (end > 0 && cmdBuf[end - 1] === 0) end--;
  for (let i = 0; i < end; i++) if (cmdBuf[i] === 0) cmdBuf[i] = 32;
  const cmdline = end > 0 ? cmdBuf.toString('utf8', 0, end) : '';
  return { pid, ppid, startTicks, cmdline, comm, startMs: startTimeMs(startTicks, procRoot) };
}

/**
 * Clock ticks per second of /proc's times. sysconf(_SC_CLK_TCK) is USER_HZ, which the kernel
 * fixes at 100 in its ABI on every Linux architecture Node runs on (whatever CONFIG_HZ is), so
 * it is a constant here rather than a native call.
 */
const CLK_TCK = 100;
const bootMs = new Map<string, number>();

/** Boot time (ms since the epoch) from the `btime` line of /proc/stat; 0 if unreadable. */
function bootTimeMs(procRoot: string): number {
  let ms = bootMs.get(procRoot);
  if (ms !== undefined) return ms;
  ms = 0;
  try {
    const m = /^btime (\d+)$/m.exec(readFileSync(`${procRoot}/stat`, 'latin1'));
    if (m) ms = Number(m[1]) * 1000;
  } catch {
    /* no /proc/stat: times stay relative to 0 */
  }
  bootMs.set(procRoot, ms);
  return ms;
}

/**
 * Wall-clock ms of start ticks, for display: boot time (whole seconds in /proc/stat) plus ticks
 * of 1/CLK_TCK s, so within ~1 s of the truth; identity compares the ticks themselves.
 */
export function startTimeMs(startTicks: number, procRoot = '/proc'): number {
  return bootTimeMs(procRoot) + (startTicks * 1000) / CLK_TCK;
}

// ---------------------------------------------------------------- who a process is
// For the views of the machine's other sources (src/sources/): a holder of a device or the
// writer of a shared-memory slot, as far as /proc lets us see it. Off the ingest path: plain
// reads, each field null when the kernel does not let us read it (another user's environ, a
// namespace link without ptrace access).

/** Who a process is (the JSON shape of src/sources/types.ts ProcessIdentity). */
export interface Identity {
  pid: number;
  uid: number | null;
  user: string | null;
  comm: string | null;
  cmdline: string | null;
  ns_pids: number[];
  container: string | null;
  other_pid_ns: boolean | null;
  other_ipc_ns: boolean | null;
  tracking_env: { alloc_tracking_enabled: boolean; shm_tracking_disabled: boolean } | null;
}

export interface IdentityOptions {
  /** The passwd file for user names (tests); /etc/passwd. */
  passwd?: string;
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return null;
  }
}

/**
 * Who `pid` is, read from `procRoot`. A process that is gone (or never was) has every field
 * null and no NSpid: comm is readable for any live process, so comm === null means gone.
 */
export function readIdentity(
  pid: number,
  procRoot = '/proc',
  opts: IdentityOptions = {},
): Identity {
  const dir = `${procRoot}/${pid}`;
  const status = readText(`${dir}/status`);
  const uidLine = status ? /^Uid:\s+(\d+)/m.exec(status) : null;
  const uid = uidLine ? Number(uidLine[1]) : null;
  const nsLine = status ? /^NSpid:\s+([\d\s]+)$/m.exec(status) : null;
  const comm = readText(`${dir}/comm`);
  return {
    pid,
    uid,
    user: uid === null ? null : userName(uid, opts.passwd ?? '/etc/passwd'),
    comm: comm === null ? null : comm.replace(/\n$/, ''),
    cmdline: wholeCmdline(readText(`${dir}/cmdline`)),
    ns_pids: nsLine ? nsLine[1].trim().split(/\s+/).map(Number) : [],
    container: containerOf(readText(`${dir}/cgroup`)),
    other_pid_ns: otherNamespace(procRoot, pid, 'pid'),
    other_ipc_ns: otherNamespace(procRoot, pid, 'ipc'),
    tracking_env: trackingEnv(readText(`${dir}/environ`)),
  };
}

/** argv joined by spaces, whole (the views shorten it); null when unreadable or empty (zombie). */
function wholeCmdline(raw: string | null): string | null {
  if (raw === null) return null;
  const s = raw.replace(/\0+$/, '').replace(/\0/g, ' ');
  return s === '' ? null : s;
}

/**
 * The environment the process started with (a later setenv() is not in /proc/PID/environ):
 * the runtime's switches for its socket client and its shared-memory tracking.
 */
function trackingEnv(raw: string | null): Identity['tracking_env'] {
  if (raw === null) return null;
  const vars = raw.split('\0');
  return {
    alloc_tracking_enabled: vars.includes('TT_ALLOC_TRACKING_ENABLED=1'),
    shm_tracking_disabled: vars.includes('TT_METAL_SHM_TRACKING_DISABLED=1'),
  };
}

/** Does `pid`'s namespace of `kind` differ from ours (the link targets name the namespace)? */
function otherNamespace(procRoot: string, pid: number, kind: 'pid' | 'ipc'): boolean | null {
  try {
    const theirs = readlinkSync(`${procRoot}/${pid}/ns/${kind}`);
    const ours = readlinkSync(`${procRoot}/self/ns/${kind}`);
    return theirs !== ours;
  } catch {
    return null;
  }
}

// Container runtimes name a container's cgroup after its id: docker-<id>.scope or docker/<id>,
// cri-containerd-<id>.scope, libpod-<id>.scope (podman), and kubepods/…/<id> (Kubernetes).
const CONTAINER_RES: readonly [string, RegExp][] = [
  ['docker', /(?:^|\/)docker[-/]([0-9a-f]{12,64})(?:\.scope)?(?:\/|$)/],
  ['containerd', /(?:^|\/)cri-containerd-([0-9a-f]{12,64})\.scope/],
  ['podman', /(?:^|\/)libpod-(?:conmon-)?([0-9a-f]{12,64})(?:\.scope)?(?:\/|$)/],
  [
    'kubepods',
    /kubepods[^\s]*?[/-](?:crio-|docker-|cri-containerd-)?([0-9a-f]{12,64})(?:\.scope)?$/,
  ],
];

/**
 * The container (runtime:first 12 hex digits of its id) or else the cgroup path of
 * /proc/PID/cgroup (the unified v2 line, or the first v1 line); null for the root cgroup or when
 * unreadable.
 */
export function containerOf(raw: string | null): string | null {
  if (raw === null) return null;
  const lines = raw.split('\n').filter(Boolean);
  const paths = lines.map((l) => l.slice(l.indexOf(':', l.indexOf(':') + 1) + 1));
  for (const p of paths)
    for (const [runtime, re] of CONTAINER_RES) {
      const m = re.exec(p);
      if (m) return `${runtime}:${m[1].slice(0, 12)}`;
    }
  const unified = lines.find((l) => l.startsWith('0::'));
  const path = unified ? unified.slice(3) : paths[0];
  return !path || path === '/' ? null : path;
}

const users = new Map<string, { read: number; names: Map<number, string> }>();
/** A name missing from passwd is looked up again at most this often (a user added meanwhile). */
const PASSWD_REREAD_MS = 10_000;

/** The user name of `uid` from a passwd file, cached; null when it has none. */
export function userName(uid: number, passwd = '/etc/passwd'): string | null {
  let c = users.get(passwd);
  const now = Date.now();
  if (!c || (!c.names.has(uid) && now - c.read > PASSWD_REREAD_MS)) {
    const names = new Map<number, string>();
    for (const line of (readText(passwd) ?? '').split('\n')) {
      const f = line.split(':');
      if (f.length >= 3 && /^\d+$/.test(f[2]) && !names.has(Number(f[2])))
        names.set(Number(f[2]), f[0]);
    }
    c = { read: now, names };
    users.set(passwd, c);
  }
  return c.names.get(uid) ?? null;
}
