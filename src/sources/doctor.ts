// `ttalloc doctor`'s checks as data: from the facts the command gathers (the server's answers,
// the socket's file, the SHM regions, the driver, the holders in the merged view), one finding
// per thing a user needs to know when nothing shows up, each with its fix. Pure, so each broken
// set-up is one set of facts away from a test; cli/commands/doctor.ts gathers and renders.
import { DEFAULT_SOCKET } from '../protocol/transport.js';
import type { MergedProcess } from './merge-types.js';
import type { DriverScan, ShmScan } from './types.js';

/** fail: why nothing shows up (exit 1); warn: worth fixing; ok / info: what was found. */
export type Severity = 'ok' | 'info' | 'warn' | 'fail';

export interface Finding {
  /** The check: server, socket_path, socket_permissions, devices, capacities, holder, ... */
  check: string;
  severity: Severity;
  text: string;
  /** What to do (absent when nothing is to be done). */
  fix?: string;
}

export interface DoctorReport {
  healthy: boolean;
  findings: Finding[];
}

/** What the server said (null fields: it did not answer). */
export interface ServerFacts {
  pid: number;
  /** Devices it knows: declared ones have capacities. */
  devices: { device: number; declared: boolean; arch: string | null }[];
  frees: number;
  unknownFrees: number;
  /** Data connections open now and their frame sizes (0: not detected yet). */
  clients: { pid: number; command: string; frameSizes: number[] }[];
  /** UIDs its socket admits besides its own and root (peers.admittedUids). */
  admittedUids: number[];
}

export interface DoctorFacts {
  uid: number;
  user: string | null;
  /** The data socket the tools use (flag, else env, else the default). */
  socket: string;
  /** $TT_ALLOC_SERVER_SOCKET, when set. */
  envSocket: string | null;
  /** The server on `socket`, or why none answered. */
  server: ServerFacts | null;
  serverError: string | null;
  /** Is a server answering on the runtime's path, when `socket` is another one? */
  serverOnDefault: boolean | null;
  /** The socket file, when it exists (uid -1: a directory on its path is closed to us). */
  socketFile: { uid: number; gid: number; mode: number; writable: boolean } | null;
  shm: ShmScan;
  driver: DriverScan;
  /** Every process the merged view lists (holders, SHM writers, socket clients). */
  processes: MergedProcess[];
}

const mode = (m: number) => `0${(m & 0o777).toString(8)}`;
const START = "start one: 'allocation-server &' (or 'ttalloc server --devices …')";

export function diagnose(f: DoctorFacts): DoctorReport {
  const out: Finding[] = [];
  const add = (x: Finding) => out.push(x);
  serverChecks(f, add);
  deviceChecks(f, add);
  holderChecks(f, add);
  shmChecks(f.shm, add);
  if (f.server) ingestChecks(f.server, add);
  return { healthy: !out.some((x) => x.severity === 'fail'), findings: out };
}

type Add = (x: Finding) => void;

function serverChecks(f: DoctorFacts, add: Add): void {
  const readable = f.shm.regions.some((r) => r.status === 'ok');
  if (!f.server) {
    add({
      check: 'server',
      severity: readable ? 'warn' : 'fail',
      text:
        `no allocation server answers on ${f.socket}` +
        (f.serverError ? ` (${f.serverError})` : '') +
        (readable ? ': SHM regions still show per-chip usage, without per-buffer detail' : ''),
      fix: START,
    });
  } else
    add({ check: 'server', severity: 'ok', text: `server pid ${f.server.pid} on ${f.socket}` });
  if (f.socket !== DEFAULT_SOCKET) {
    const env = f.envSocket === f.socket ? ` (TT_ALLOC_SERVER_SOCKET=${f.envSocket})` : '';
    add({
      check: 'socket_path',
      severity: f.serverOnDefault ? 'warn' : 'fail',
      text:
        `the tools use ${f.socket}${env}, but tt-metal's client connects to ${DEFAULT_SOCKET} ` +
        (f.serverOnDefault
          ? '(a server answers there too: two servers split the reports)'
          : 'and no server answers there: the runtime reports to nobody'),
      fix:
        `run the server on the runtime's path: 'allocation-server' with no --socket` +
        (env ? ', and unset TT_ALLOC_SERVER_SOCKET' : ''),
    });
  }
  const s = f.socketFile;
  if (s && !s.writable) {
    const who = `${f.user ?? `uid ${f.uid}`}`;
    add({
      check: 'socket_permissions',
      severity: 'fail',
      text:
        s.uid < 0
          ? `${f.socket} is out of reach of ${who}: a directory on its path is closed to us`
          : `${f.socket} belongs to uid ${s.uid} (mode ${mode(s.mode)}): processes of ` +
            `${who} may not connect, so their reports are refused`,
      fix:
        "run the server as the user who runs tt-metal, or share it: 'ttalloc server --group " +
        "GROUP' (or --allow-uid UID)",
    });
  }
  // Holders of other users that the socket keeps out.
  if (s && s.uid >= 0 && f.server) {
    const admitted = new Set([s.uid, 0, ...f.server.admittedUids]);
    for (const p of f.processes) {
      const uid = p.identity?.uid;
      if (uid == null || admitted.has(uid) || p.holds.length === 0) continue;
      if (!p.identity?.tracking_env?.alloc_tracking_enabled && p.identity?.tracking_env) continue;
      add({
        check: 'socket_permissions',
        severity: 'warn',
        text:
          `PID ${p.pid} (${p.command ?? '?'}) runs as ${p.identity?.user ?? `uid ${uid}`}, ` +
          `which the server (uid ${s.uid}, mode ${mode(s.mode)}) does not admit`,
        fix: `restart the server with --allow-uid ${uid} or --group GROUP`,
      });
    }
  }
}

function deviceChecks(f: DoctorFacts, add: Add): void {
  const d = f.driver;
  if (!d.present)
    add({
      check: 'devices',
      severity: 'info',
      text: `no Tenstorrent driver found${d.error ? ` (${d.error})` : ''}: no card holds a device`,
    });
  else {
    for (const c of d.cards)
      add({
        check: 'devices',
        severity: 'ok',
        text:
          `/dev/tenstorrent/${c.index}: ${c.card_type ?? 'unknown card'}, ` +
          `${c.chips === null ? 'chips unknown' : `${c.chips} chip(s)`} (${c.chips_note})` +
          `, ${c.holders.length + c.holders_outside_ns} holder(s)`,
      });
    if (!d.holders_listed)
      add({
        check: 'devices',
        severity: 'warn',
        text:
          `driver ${d.driver_version ?? '?'} lists no holders ` +
          '(/proc/driver/tenstorrent/N/pids)',
        fix: 'tt-kmd 2.5.0 or later lists who holds each device',
      });
  }
  const undeclared = f.server?.devices.filter((x) => !x.declared) ?? [];
  if (undeclared.length > 0)
    add({
      check: 'capacities',
      severity: 'fail',
      text:
        `device(s) ${undeclared.map((x) => x.device).join(', ')} report allocations but were ` +
        'never declared: their capacities are unknown (shown as "?")',
      fix:
        "declare them: 'ttalloc server --devices n300' (chips per card: an n300 is 2 devices), " +
        'or run the server where the driver is',
    });
}

function holderChecks(f: DoctorFacts, add: Add): void {
  for (const p of f.processes) {
    if (p.holds.length === 0) continue;
    const who = `PID ${p.pid} (${p.command ?? '?'})`;
    const env = p.identity?.tracking_env;
    const envText = env
      ? `TT_ALLOC_TRACKING_ENABLED ${env.alloc_tracking_enabled ? '=1' : 'unset'}, ` +
        `TT_METAL_SHM_TRACKING_DISABLED ${env.shm_tracking_disabled ? '=1' : 'unset'}`
      : 'environment not readable';
    if (p.silent) {
      add({
        check: 'holder',
        severity: p.silent.code === 'known_tool' ? 'info' : 'fail',
        text:
          `${who} holds /dev/tenstorrent/${p.holds.join(',')} and reports nothing: ` +
          `${p.silent.text} (${envText})`,
        fix: p.silent.fix,
      });
      continue;
    }
    add({
      check: 'holder',
      severity: 'ok',
      text:
        `${who} holds /dev/tenstorrent/${p.holds.join(',')}, reported by ` +
        `${p.sources.filter((s) => s !== 'driver').join(' and ')} (${envText})`,
    });
  }
  for (const p of f.processes)
    for (const c of p.checks)
      if (!c.agree)
        add({
          check: 'cross_check',
          severity: 'warn',
          text:
            `PID ${p.pid}: the socket and SHM disagree on chip ${c.asic_id} ` +
            `(${c.differs.map((k) => `${k} ${c.socket[k]} vs ${c.shm[k]}`).join(', ')})`,
          fix: 'frees reported to one and not the other; usually one started tracking late',
        });
}

function shmChecks(shm: ShmScan, add: Add): void {
  if (shm.error) {
    add({ check: 'shm', severity: 'warn', text: `${shm.root}: ${shm.error}` });
    return;
  }
  if (shm.regions.length === 0)
    add({
      check: 'shm',
      severity: 'info',
      text:
        `no tt-metal SHM regions in ${shm.root} (tt-metal main writes tt_device_<id>_memory ` +
        'once a process allocates; a container has its own /dev/shm)',
    });
  for (const r of shm.regions) {
    const owner = r.owner_user ?? `uid ${r.owner_uid}`;
    const layout = r.layout === 'unknown' ? 'version unknown' : r.layout;
    const head = `${r.path}: ${layout}, owner ${owner}, mode ${mode(r.mode)}`;
    if (r.status === 'unreadable')
      add({
        check: 'shm',
        severity: 'fail',
        text:
          `${head}: unreadable by us${r.error ? ` (${r.error})` : ''}: ` +
          'its processes are not shown',
        fix: owner === 'root' ? 'run ttalloc as root' : `run ttalloc as root or as ${owner}`,
      });
    else if (r.status !== 'ok')
      add({
        check: 'shm',
        severity: r.status === 'initialising' ? 'info' : 'warn',
        text: `${head}: ${r.status}${r.error ? ` (${r.error})` : ''}`,
        ...(r.status === 'bad'
          ? { fix: 'not a region this ttalloc can read: remove it if stale' }
          : {}),
      });
    else {
      const live = r.slots.filter((s) => s.alive).length;
      add({
        check: 'shm',
        severity: r.slots_full ? 'fail' : 'ok',
        text:
          `${head}: ${live} live of ${r.slots.length} used slot(s)` +
          (r.slots_full ? ': all 64 slots taken, a new process reports nothing' : ''),
        ...(r.slots_full
          ? {
              fix:
                'stop idle tt-metal processes; dead v2/v3 slots stay until the region ' +
                'is removed',
            }
          : {}),
      });
      const g = r.ghost;
      const ghost = g ? g.dram + g.l1 + g.l1_small + g.trace : 0;
      if (ghost > 0)
        add({
          check: 'shm',
          severity: 'warn',
          text: `${r.path}: ${ghost} bytes left in the totals by processes that crashed`,
          fix: 'the live slots are right; remove the region when no tt-metal process runs',
        });
    }
  }
}

/** Unknown frees above this share of frees: tracking started after the process allocated. */
export const LATE_START_RATE = 0.01;

function ingestChecks(s: ServerFacts, add: Add): void {
  for (const c of s.clients) {
    const sizes = c.frameSizes.map((n) => (n === 0 ? 'not detected yet' : `${n} bytes`));
    add({
      check: 'frames',
      severity: 'info',
      text:
        `PID ${c.pid} (${c.command}): ${c.frameSizes.length} connection(s), ` +
        `frames ${sizes.join(', ')}`,
    });
  }
  if (s.frees > 0 && s.unknownFrees / s.frees > LATE_START_RATE)
    add({
      check: 'late_start',
      severity: 'warn',
      text:
        `${s.unknownFrees} of ${s.frees} frees ` +
        `(${((100 * s.unknownFrees) / s.frees).toFixed(1)}%) ` +
        'were of buffers the server never saw allocated: tracking started late',
      fix: 'start the server before the application (or restart the application)',
    });
}
