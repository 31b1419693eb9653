// The allocation server: data socket (binary frames from real clients), control socket
// (HTTP/JSON for our CLI and views), dead-process cleanup and periodic statistics.
import { fstatSync } from 'node:fs';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { ReadPump } from './socket-reader.js';
import { peerPolicy, resolveGroup, restrictSocket } from './security.js';
import { PeerGate } from './peer-cred.js';
import {
  ARCH_NAMES,
  MsgType,
  MSG_NAMES,
  Off,
  layoutFor,
  BUFFER_TYPE_NAMES,
  KERNEL_TYPE_NAMES,
} from '../protocol/constants.js';
import { readU64, writeU64 } from '../protocol/codec.js';
import { Tracker, type ReapedReport } from '../state/tracker.js';
import { MAX_ENTRIES } from '../state/object-table.js';
import { DeviceRegistry } from '../devices/registry.js';
import { totalDram, totalL1 } from '../devices/arch.js';
import { DataConnection, type ConnectionHost } from './data-connection.js';
import { claimSocketPath, listenUnix, OwnedPath } from './socket-path.js';
import { deadPids, isProcessAlive } from '../platform/processes.js';
import { Router } from './http-router.js';
import { registerCoreRoutes } from './core-routes.js';
import { registerLeakRoutes } from './leak-routes.js';
import { Checkpoints } from '../state/marks.js';
import {
  StateStore,
  StateDirError,
  defaultStateDir,
  type PersistenceStats,
} from '../persist/state-store.js';
import { buildBufferReport, type ReportFilter } from '../report/buffer-report.js';
import { formatBufferReport } from '../report/text-report.js';
import { formatKernelReport } from '../report/kernel-report.js';
import { formatStatsLines } from '../report/stats.js';
import { formatBytes } from '../report/format.js';
import { LiveViews } from './web.js';
import { controlPathFor } from '../protocol/transport.js';

/** Reply bytes a data connection may leave unread before it is closed (thousands of replies). */
const MAX_UNREAD_REPLY_BYTES = 1 << 20;

export interface ServerOptions {
  socketPath: string;
  /** Control API socket; defaults to `<socketPath>.ctl`. */
  controlPath?: string;
  /** 0 = detect per connection. */
  frameSize?: 0 | 72 | 112 | 144;
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
}

export class AllocationServer implements ConnectionHost {
  readonly tracker: Tracker;
  readonly devices: DeviceRegistry;
  readonly router = new Router();
  /** Named checkpoints for leak analysis (dump --since, diff, check). */
  readonly marks: Checkpoints;
  /** The persistent store, or null with --no-persist. */
  store: StateStore | null = null;
  journal: StateStore | null = null;
  /** Why persistence is off although it was not turned off (the default directory is unusable). */
  persistOff: string | null = null;
  readonly startedAtMs = Date.now();
  logEvents: boolean;
  detectQuietMs: number;
  /**
   * Reads busy data connections without epoll (socket-reader.ts); null without the native addon.
   */
  readonly pump: ReadPump | null;
  /** Why there is no pump. */
  readonly pumpOff: string | null;
  /**
   * Data connections that read through Node's per-read buffers (this Node's net internals differ).
   */
  perReadBufferConnections = 0;
  readonly connections = new Set<DataConnection>();
  connectionsTotal = 0;
  refusedConnections = 0;
  rejectedFramesClosed = 0;
  private nextConnId = 1;
  private dataServer: NetServer | null = null;
  private controlServer: HttpServer | null = null;
  private dataPath: OwnedPath;
  private ctlPath: OwnedPath;
  private timers: NodeJS.Timeout[] = [];
  private lastStatsKey = '';
  private stopped = false;
  readonly out: (text: string) => void;
  readonly isAlive: (pid: number) => boolean;
  /** /metrics, chart samples and the --http dashboard listener. */
  readonly live: LiveViews;
  /** Peer credentials and the UID policy of both sockets (set up in start()). */
  peers: PeerGate | null = null;
  /** Claimed PIDs of closed connections whose kernel PID still owns something (display only). */
  private pastClaims = new Map<number, number>();

  constructor(readonly opts: ServerOptions) {
    this.tracker = new Tracker(opts.expectedBuffers ?? 0);
    this.devices = opts.devices ?? new DeviceRegistry();
    this.logEvents = opts.logEvents ?? false;
    this.detectQuietMs = opts.detectQuietMs ?? 5;
    ({ pump: this.pump, reason: this.pumpOff } = ReadPump.create());
    this.out =
      opts.out ??
      ((t) => {
        process.stdout.write(t);
      });
    this.isAlive = opts.isAlive ?? isProcessAlive;
    this.dataPath = new OwnedPath(opts.socketPath);
    this.ctlPath = new OwnedPath(this.controlPath);
    this.marks = new Checkpoints(this.tracker);
    registerCoreRoutes(this.router, this);
    registerLeakRoutes(this.router, this);
    this.live = new LiveViews(this);
  }

  /** Over the limit: close at once; log the first refusal and every 1000th, not each one. */
  private refuse(sock: Socket): void {
    sock.destroy();
    if (this.refusedConnections++ % 1000 === 0) {
      this.log(
        `refusing data connection: ${this.connections.size} open, the limit (--max-connections); ${this.refusedConnections} refused so far`,
      );
    }
  }

  get controlPath(): string {
    return this.opts.controlPath ?? controlPathFor(this.opts.socketPath);
  }

  log(msg: string): void {
    if (!this.opts.quiet) this.out(`[ttalloc] ${msg}\n`);
  }

  /** A problem the user must see: on stderr, and in the log too unless that is the same file. */
  warn(msg: string): void {
    process.stderr.write(`[ttalloc] ${msg}\n`);
    if (!sameFile(1, 2)) this.out(`[ttalloc] ${msg}\n`);
  }

  async start(): Promise<void> {
    // First, so that a busy --http port fails before any socket path is claimed.
    await this.live.start();
    // a bad name fails before any socket exists
    const gid = this.opts.group ? resolveGroup(this.opts.group) : null;
    const peers = (this.peers = new PeerGate({
      policy: peerPolicy({
        ownUid: process.getuid?.() ?? 0,
        allowUids: this.opts.allowUids,
        group: gid === null ? null : { gid, name: this.opts.group! },
      }),
      trustClientPid: this.opts.trustClientPid ?? false,
      log: (m) => this.log(m),
    }));
    const trust = this.opts.trustClientPid ?? false;
    await claimSocketPath(this.opts.socketPath, 'socket');
    await claimSocketPath(this.controlPath, 'control socket');
    this.openStore();
    const forced = this.opts.frameSize ?? 0;
    this.dataServer = createNetServer({ noDelay: true, pauseOnConnect: true }, (sock: Socket) => {
      if (this.connections.size >= (this.opts.maxConnections ?? 4096)) return this.refuse(sock);
      const cred = peers.admit(sock, 'data');
      if (cred === false) return;
      const c = new DataConnection(this.nextConnId++, sock, this, forced);
      if (cred) {
        c.peerPid = cred.pid;
        c.peerUid = cred.uid;
        if (!trust) c.ownerPid = cred.pid;
      }
      this.connections.add(c);
      this.connectionsTotal++;
      if (!c.ownBuffer) this.perReadBufferConnections++;
    });
    this.controlServer = createHttpServer((req, res) => {
      void this.router.handle(req, res, true);
    });
    this.controlServer.on('connection', (sock: Socket) => {
      peers.admit(sock, 'control');
    });
    await listenUnix(this.dataServer, this.opts.socketPath);
    this.dataPath.taken();
    await listenUnix(this.controlServer, this.controlPath);
    this.ctlPath.taken();
    // Owner-only (or --group); umask may have left them wider.
    restrictSocket(this.opts.socketPath, gid);
    restrictSocket(this.controlPath, gid);
    const reapMs = this.opts.reapIntervalMs ?? 5000;
    if (reapMs > 0) this.timers.push(setInterval(() => this.reapDead(), reapMs));
    const statsMs = this.opts.statsIntervalMs ?? 10000;
    if (statsMs > 0) this.timers.push(setInterval(() => this.printStats(false), statsMs));
    this.timers.push(
      setInterval(() => {
        this.tracker.tick(Date.now());
        this.warnTableFull();
      }, 250),
    );
    for (const t of this.timers) t.unref();
    const devs = this.devices.list();
    this.log(
      `allocation server listening on ${this.opts.socketPath} (control: ${this.controlPath}), pid ${process.pid}, ` +
        `frame size ${forced || 'auto (72/112/144)'}, ${devs.length ? `${devs.length} device(s): ${summarizeDevices(this.devices)}` : 'no devices declared (devices appear as they report)'}`,
    );
    const notice = peers.notice();
    if (notice) {
      this.log(notice);
      if (this.opts.quiet) process.stderr.write(`[ttalloc] ${notice}\n`);
    } else if (trust)
      this.log(
        "--trust-client-pid: buffers belong to the PIDs the messages claim; the kernel's PIDs are shown for display only",
      );
    if (!this.pump)
      this.log(
        `busy connections are read through epoll (${this.pumpOff}): each client send() costs ~0.1 µs more`,
      );
  }

  private tableFullWarned = false;
  /** Once: a table holds MAX_ENTRIES live objects and new ones are only counted. */
  private warnTableFull(): void {
    const n = this.tracker.tableFullDrops;
    if (n === 0 || this.tableFullWarned) return;
    this.tableFullWarned = true;
    this.warn(
      `!!! TABLE FULL: ${MAX_ENTRIES} live objects of one kind; new ones are counted, not tracked (${n} so far; tableFullDrops in stats)`,
    );
  }

  /** How data connections are read (socket-reader.ts), for stats. */
  readStats() {
    const p = this.pump;
    return {
      busyConnections: p ? ('direct' as const) : ('epoll' as const),
      ...(p ? {} : { reason: this.pumpOff }),
      directReads: p?.reads ?? 0,
      handBacks: p?.handBacks ?? 0,
      hotNow: p?.hotConnections ?? 0,
      perReadBufferConnections: this.perReadBufferConnections,
    };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.printStats(true);
    for (const c of this.connections) c.socket.destroy();
    await this.live.stop();
    await Promise.all([closeServer(this.dataServer), closeServer(this.controlServer)]);
    this.dataPath.release();
    this.ctlPath.release();
    if (this.store) {
      this.journal = null;
      await this.store.close(this.tracker);
    }
  }

  /** Persistence as stats, metrics and the dashboard show it. */
  persistenceStats(): PersistenceStats {
    return this.store
      ? this.store.stats()
      : { enabled: false, reason: this.persistOff ?? 'turned off (--no-persist)' };
  }

  /** Recovers the persisted state (before any client can connect) and starts journaling. */
  private openStore(): void {
    if (this.opts.stateDir === false) return;
    const compactBytes = this.opts.compactBytes ?? 256 << 20;
    const store = new StateStore({
      dir: this.opts.stateDir ?? defaultStateDir(this.opts.socketPath),
      flushIntervalMs: this.opts.flushIntervalMs ?? 100,
      compactBytes,
      segmentBytes: Math.max(64 << 10, Math.min(64 << 20, compactBytes / 4)),
      warn: (msg) => this.warn(msg),
      log: (msg) => this.log(msg),
      onState: (journaling) => {
        this.journal = journaling ? store : null;
      },
    });
    let rec;
    try {
      rec = store.open(this.tracker, this.marks);
    } catch (e) {
      // An explicit --state-dir that cannot be used is an error; the default one only costs
      // persistence.
      if (this.opts.stateDir !== undefined || !(e instanceof StateDirError)) throw e;
      this.persistOff = (e as Error).message;
      const msg = `!!! PERSISTENCE OFF: ${this.persistOff}. The server tracks in memory only; a restart loses state.`;
      this.warn(msg);
      return;
    }
    this.store = store;
    this.journal = store;
    const t = this.tracker;
    this.log(
      `state directory ${store.opts.dir}: ${
        rec.previousStop === 'none'
          ? 'new'
          : `restored ${t.buffers.count} buffers, ${t.cbs.count} CBs, ${t.kernels.count} kernels, ${this.marks.list().length} marks ` +
            `(snapshot: ${rec.snapshotObjects} objects, journal: ${rec.journalEvents} events) after a ${rec.previousStop} stop`
      }`,
    );
    for (const p of rec.problems) this.log(`state recovery: ${p}`);
    if (rec.previousStop === 'crash')
      this.log(
        `the previous server did not stop cleanly: up to ${store.opts.flushIntervalMs} ms of events before it died may be missing`,
      );
    // owners that died while no server was running
    if (t.buffers.count + t.cbs.count + t.kernels.count > 0) this.reapDead();
  }

  // ------------------------------------------------------------------ ConnectionHost
  reply(conn: DataConnection, dv: DataView, off: number): void {
    const size = conn.frameSize;
    const out = Buffer.alloc(size);
    const o = new DataView(out.buffer, out.byteOffset, size);
    const type = dv.getUint8(off);
    const device = dv.getInt32(off + Off.deviceId, true);
    o.setInt32(Off.deviceId, device, true);
    if (type === MsgType.QUERY) {
      o.setUint8(Off.type, MsgType.RESPONSE);
      const u = this.tracker.usage(device);
      writeU64(o, Off.dram, u.dram);
      writeU64(o, Off.l1, u.l1);
      writeU64(o, Off.l1Small, u.l1Small);
      writeU64(o, Off.trace, u.trace);
      const L = layoutFor(size);
      if (L) {
        if (L.cb >= 0) {
          writeU64(o, L.cb, u.cb);
          writeU64(o, L.kernel, u.kernel);
        }
        this.fillDeviceInfo(o, L, device);
      }
    } else {
      o.setUint8(Off.type, MsgType.DEVICE_INFO_RESPONSE);
      const L = layoutFor(size);
      if (L) this.fillDeviceInfo(o, L, device);
    }
    if (conn.socket.destroyed) return;
    // Replies nobody reads would pile up in memory: such a client is closed, not served.
    if (conn.socket.writableLength > MAX_UNREAD_REPLY_BYTES)
      return conn.reject(
        `it does not read its replies (${conn.socket.writableLength} bytes unread)`,
      );
    conn.socket.write(out);
  }

  private fillDeviceInfo(
    o: DataView,
    L: NonNullable<ReturnType<typeof layoutFor>>,
    device: number,
  ): void {
    const ids = this.knownDeviceIds();
    if (device === -1) {
      o.setUint32(L.numDevices, ids.length, true);
      o.setUint32(L.isAvailable, ids.length > 0 ? 1 : 0, true);
      return;
    }
    const d = this.devices.get(device);
    o.setUint32(L.numDevices, ids.length, true);
    if (!d) {
      o.setUint32(L.isAvailable, ids.includes(device) ? 1 : 0, true);
      return;
    }
    o.setUint32(L.isAvailable, 1, true);
    o.setUint32(L.arch, d.spec.arch, true);
    o.setUint32(L.dramChannels, d.spec.dramChannels, true);
    // The wire field is 32 bits; Blackhole's 4 GiB channels saturate it (total_dram_size is exact).
    o.setUint32(L.dramPerChannel, Math.min(d.spec.dramPerChannel, 0xffffffff), true);
    o.setUint32(L.l1PerCore, d.spec.l1PerCore, true);
    writeU64(o, L.totalDram, totalDram(d.spec));
    writeU64(o, L.totalL1, totalL1(d.spec));
  }

  /** Declared devices plus any that reported without being declared, in order. */
  knownDeviceIds(): number[] {
    const ids = new Set(this.devices.ids());
    for (let d = 0; d <= this.tracker.maxDeviceSeen; d++) {
      if (this.tracker.usageSeen(d)) ids.add(d);
    }
    return [...ids].sort((a, b) => a - b);
  }

  dump(conn: DataConnection | null, kernels: boolean): void {
    this.reapDead();
    this.out(kernels ? formatKernelReport(this.tracker) : this.bufferReportText({}, 10));
    if (conn)
      this.log(`${kernels ? 'kernel' : 'buffer'} report printed on request of ${conn.describe()}`);
  }

  bufferReportText(filter: ReportFilter, limit: number, heading?: string): string {
    const r = buildBufferReport(this.tracker, filter, limit);
    return formatBufferReport(r, heading, r.filtered ? [] : this.tracker.reaped);
  }

  logEvent(conn: DataConnection, dv: DataView, off: number): void {
    const type = dv.getUint8(off);
    const dev = dv.getInt32(off + Off.deviceId, true);
    const pid = dv.getInt32(off + Off.processId, true);
    const id = dv.getBigUint64(off + Off.bufferId, true).toString(16);
    const size = readU64(dv, off + Off.size);
    const bt = dv.getUint8(off + Off.bufferType);
    const what =
      type === MsgType.KERNEL_LOAD ? (KERNEL_TYPE_NAMES[bt] ?? bt) : (BUFFER_TYPE_NAMES[bt] ?? bt);
    this.out(
      `[event] ${MSG_NAMES[type] ?? `code ${type}`} device=${dev} pid=${pid} id=0x${id} size=${size} type=${what} (${conn.describe()})\n`,
    );
  }

  closed(conn: DataConnection): void {
    this.connections.delete(conn);
    if (conn.ownerPid !== 0 && conn.claimedPid !== 0 && conn.claimedPid !== conn.ownerPid)
      this.pastClaims.set(conn.ownerPid, conn.claimedPid);
    this.rejectedFramesClosed += conn.rejected;
  }

  // ------------------------------------------------------------------ cleanup and stats
  /** How long the last sweep took to ask the kernel which owners are alive. */
  lastLivenessMs = 0;
  /** Releases objects of owners that are gone; one summary line per PID. */
  reapDead(): ReapedReport[] {
    const t0 = performance.now();
    const dead = deadPids(this.tracker.livePids(), this.isAlive);
    this.lastLivenessMs = performance.now() - t0;
    const now = Date.now();
    const reports = this.tracker.releasePids(dead, now);
    if (reports.length)
      this.store?.reap(
        reports.map((r) => r.pid),
        now,
      );
    this.tracker.forgetIdlePids(this.isAlive);
    for (const p of this.pastClaims.keys())
      if (!this.tracker.pids.has(p)) this.pastClaims.delete(p);
    for (const r of reports) {
      const parts = [`${r.buffers} buffer${r.buffers === 1 ? '' : 's'} (${formatBytes(r.bytes)})`];
      if (r.cbs) parts.push(`${r.cbs} CB${r.cbs === 1 ? '' : 's'} (${formatBytes(r.cbBytes)})`);
      if (r.kernels)
        parts.push(
          `${r.kernels} kernel${r.kernels === 1 ? '' : 's'} (${formatBytes(r.kernelBytes)})`,
        );
      this.log(`process ${r.pid} is gone: released ${parts.join(', ')}`);
    }
    return reports;
  }

  /** Kernel PID → the PID its connection claims, where they differ (for the process listings). */
  claimedPids(): Map<number, number> {
    const m = new Map(this.pastClaims);
    for (const c of this.connections)
      if (c.ownerPid !== 0 && c.claimedPid !== 0 && c.claimedPid !== c.ownerPid)
        m.set(c.ownerPid, c.claimedPid);
    return m;
  }

  rejectedFrames(): number {
    let n = this.rejectedFramesClosed;
    for (const c of this.connections) n += c.rejected;
    return n;
  }

  printStats(final: boolean): void {
    if (this.opts.quiet) return;
    const lines = formatStatsLines(this);
    const key = lines.join('\n');
    if (!final && key === this.lastStatsKey) return; // nothing changed: stay quiet
    this.lastStatsKey = key;
    this.out(
      (final ? '[ttalloc] final statistics\n' : '') + lines.map((l) => `[stats] ${l}\n`).join(''),
    );
  }
}

export function summarizeDevices(reg: DeviceRegistry): string {
  const counts = new Map<string, number>();
  for (const d of reg.list()) counts.set(d.spec.name, (counts.get(d.spec.name) ?? 0) + 1);
  return [...counts].map(([n, c]) => `${c}x ${n}`).join(', ');
}

export function archName(arch: number): string {
  return ARCH_NAMES[arch] ?? `arch ${arch}`;
}

function closeServer(s: NetServer | HttpServer | null): Promise<void> {
  return new Promise((resolve) => {
    if (!s) return resolve();
    if ('closeAllConnections' in s) s.closeAllConnections();
    s.close(() => resolve());
  });
}

/** Do two file descriptors point at the same file (e.g. `> log 2>&1`, or one terminal)? */
function sameFile(a: number, b: number): boolean {
  try {
    const x = fstatSync(a),
      y = fstatSync(b);
    return x.dev === y.dev && x.ino === y.ino && x.rdev === y.rdev;
  } catch {
    return false;
  }
}
