// The allocation server's lifecycle: the data socket (binary frames from real clients) and the
// control socket (HTTP/JSON for our CLI and views), the optional dashboard listener, and the
// timers (dead-owner sweep, statistics, the tracker's clock). The jobs live in their own modules;
// this file wires them together.
import {
  createServer as createNetServer,
  Socket,
  type Server as NetServer,
  type SocketConstructorOpts,
} from 'node:net';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server as HttpServer,
} from 'node:http';
import { ReadPump } from './socket-reader.js';
import { peerPolicy, resolveGroup, restrictSocket } from './security.js';
import { PeerGate } from './peer-cred.js';
import { Tracker } from '../state/tracker.js';
import { MAX_ENTRIES } from '../state/object-table.js';
import { Checkpoints } from '../state/marks.js';
import type { DeviceRegistry } from '../devices/registry.js';
import { DataConnection } from './data-connection.js';
import { claimSocketPath, listenUnix, OwnedPath } from './socket-path.js';
import { resolveConfig, type ServerConfig, type ServerOptions } from './config.js';
import { Connections } from './connections.js';
import { DataHost } from './data-host.js';
import { Persistence } from './persistence.js';
import { Reaper } from './reaping.js';
import { ProcessRegistry } from './process-registry.js';
import { HeapTrimmer, returnFreedMemory, trimFreedMemory } from '../platform/memory.js';
import { ExitWatch } from './exit-watch.js';
import { StatsPrinter } from './stats-printer.js';
import { knownDeviceIds, summarizeDevices } from './known-devices.js';
import { ServerLog } from './server-log.js';
import { ServiceManager, type PassedFd } from './systemd.js';
import { remainingBuffersText } from '../report/text-report.js';
import { formatKernelReport } from '../report/kernel-report.js';
import type { MetricsSource } from '../metrics/registry.js';
import { createMetrics } from '../metrics/registry.js';
import { Sampler } from '../metrics/sampler.js';
import { Router, sendJson } from '../control/router.js';
import { registerCoreRoutes } from '../control/core-routes.js';
import { registerLeakRoutes } from '../control/leak-routes.js';
import { registerLiveRoutes, type LiveStreams } from '../control/live-routes.js';
import { registerViewRoutes } from '../control/view-routes.js';
import { Dashboard } from '../control/dashboard.js';
import type { ReadStats } from '../report/types.js';
import { SourcesCache } from '../sources/merge-cache.js';
import { defaultReaders } from '../sources/merge-readers.js';
import { HandOver, type GivingServer } from './takeover-old.js';
import { takeOver, type Announce, type TakeoverResult, type TakingServer } from './takeover-new.js';

export type { ServerOptions } from './config.js';

export class AllocationServer {
  readonly cfg: ServerConfig;
  readonly tracker: Tracker;
  readonly devices: DeviceRegistry;
  /** Named checkpoints for leak analysis (dump --since, diff, check). */
  readonly marks: Checkpoints;
  private readonly persistence: Persistence;
  private readonly connections: Connections;
  private readonly reaper: Reaper;
  /** Who each PID is (start time, parent, command line), from its first sight. */
  private readonly registry: ProcessRegistry;
  /** Exits noticed when a connection closes, not only at the periodic sweep. */
  private readonly exitWatch: ExitWatch;
  private readonly router = new Router();
  /** Peer credentials and the UID policy of both sockets (set up in start()). */
  private peers: PeerGate | null = null;
  private readonly startedAtMs = Date.now();
  private readonly say: ServerLog;
  /** Reads busy data connections without epoll (socket-reader.ts); null without the addon. */
  private readonly pump: ReadPump | null;
  private readonly pumpOff: string | null;
  private readonly host: DataHost;
  private readonly stats: StatsPrinter;
  private readonly sampler: Sampler;
  private readonly streams: LiveStreams;
  private readonly dashboard: Dashboard | null;
  /** SHM regions and the driver, scanned when a request asks (never on the ingest path). */
  private readonly sources = new SourcesCache(defaultReaders());
  /** A restart's old side: hands this server over to a new one (takeover-old.ts). */
  private readonly handOver: HandOver;
  private nextConnId = 1;
  private dataServer: NetServer | null = null;
  private controlServer: HttpServer | null = null;
  private readonly dataPath: OwnedPath;
  private readonly ctlPath: OwnedPath;
  private timers: NodeJS.Timeout[] = [];
  private tableFullWarned = false;
  private stopped = false;
  private trimmer: HeapTrimmer | null = null;
  /** systemd (or another manager speaking its protocols): passed sockets, readiness, fd store. */
  private readonly manager: ServiceManager;
  /** Frames accepted at the last clock tick (none since: ingest is idle). */
  private framesAtTick = 0;
  /** Objects held (live and left behind) at the last heap trim. */
  private heldAtTrim = 0;

  constructor(opts: ServerOptions) {
    const cfg = (this.cfg = resolveConfig(opts));
    returnFreedMemory(); // before the tables grow
    this.tracker = new Tracker(
      cfg.expectedBuffers,
      undefined,
      cfg.leftBehindBudget,
      cfg.notesBudget,
    );
    this.tracker.freed.resize(cfg.timelineEvents);
    this.devices = cfg.devices;
    this.marks = new Checkpoints(this.tracker);
    ({ pump: this.pump, reason: this.pumpOff } = ReadPump.create());
    this.dataPath = new OwnedPath(cfg.socketPath);
    this.ctlPath = new OwnedPath(cfg.controlPath);
    const say = (this.say = new ServerLog(cfg.out, cfg.quiet));
    const log = say.log;
    this.manager = ServiceManager.fromEnv(log);
    this.persistence = new Persistence(cfg, say);
    this.connections = new Connections(cfg.maxConnections, log);
    const registry = (this.registry = new ProcessRegistry({ isAlive: cfg.isAlive }));
    const reaper = (this.reaper = new Reaper({
      tracker: this.tracker,
      registry,
      persist: (exited, atMs) => this.persistence.reap(exited, atMs),
      afterSweep: (tracked) => this.connections.forgetClaims(tracked),
      heldOpen: (pid) => this.connections.heldOpen(pid),
      log,
      infoOf: (pid) => registry.info(pid),
    }));
    // A PID handed out again: its old process's objects are released as that process's.
    registry.onReused = (pid) => void reaper.reapGone([pid]);
    this.exitWatch = new ExitWatch({
      registry,
      tracker: this.tracker,
      open: this.connections.open,
      reap: (pids) => void reaper.reapGone(pids),
    });
    // An ALLOC at an address another PID holds: a gone holder is released first (its objects are
    // kept as left behind, the reap journalled before the event); a live one shares the address.
    this.tracker.onConflict = reaper.reapIfGone;
    this.host = new DataHost({
      cfg,
      tracker: this.tracker,
      devices: this.devices,
      pump: this.pump,
      connections: this.connections,
      exitWatch: this.exitWatch,
      persistence: this.persistence,
      dump: (kernels) => this.dump(kernels),
      log,
    });
    const src = this.statsSource();
    this.stats = new StatsPrinter(src, cfg.out);
    this.sampler = new Sampler(src, cfg.sampleIntervalMs);
    this.dashboard = cfg.http ? new Dashboard(cfg.http, this.router, log) : null;
    this.streams = this.registerRoutes(src);
    this.handOver = new HandOver(this.givingPort());
    this.router.get('/v1/takeover/info', () => this.handOver.info());
  }

  /** A line on the server's log (the CLI logs the signal that stops it). */
  log(msg: string): void {
    this.say.log(msg);
  }

  /**
   * Logs, loudly, the data clients a stop is about to disconnect (a C++ client dies of SIGPIPE on
   * its next report after its connection closes). Nothing when none is connected.
   */
  warnConnectedClients(): void {
    const clients = this.connections.clients();
    if (clients.length === 0) return;
    const who = clients.map((c) => `PID ${c.pid} (${c.command})`).join(', ');
    if (this.manager.storing)
      return this.say.log(
        `stopping with ${clients.length} data client(s) connected: ${who}. Their connections ` +
          "stay open in the service manager's descriptor store (a restart reads them on).",
      );
    this.say.warn(
      `!!! stopping with ${clients.length} data client${clients.length === 1 ? '' : 's'} ` +
        `connected: ${who}. Their connections close now; a C++ client dies of SIGPIPE on its ` +
        'next report.',
    );
  }

  async start(): Promise<void> {
    const cfg = this.cfg;
    // First, so that a busy --http port fails before any socket path is claimed.
    await this.dashboard?.start();
    const peers = this.gate();
    const [passedData, passedCtl] = this.manager.listening;
    if (!passedData) await claimSocketPath(cfg.socketPath, 'socket');
    if (!passedCtl) await claimSocketPath(cfg.controlPath, 'control socket');
    // Recovery before any client can connect; owners that died while no server ran are swept.
    if (this.persistence.open(this.tracker, this.marks)) this.reaper.reapDead();
    const { data, control } = this.createListeners(peers);
    const gid = cfg.group ? resolveGroup(cfg.group) : null;
    // A socket the manager passed is its own: its path and mode are the socket unit's.
    if (passedData) await listenFd(data, passedData.fd);
    else {
      await listenUnix(data, cfg.socketPath);
      this.dataPath.taken();
      restrictSocket(cfg.socketPath, gid); // owner-only (or --group); umask may have left it wider
    }
    if (passedCtl) await listenFd(control, passedCtl.fd);
    else {
      await listenUnix(control, cfg.controlPath);
      this.ctlPath.taken();
      restrictSocket(cfg.controlPath, gid);
    }
    for (const p of this.manager.stored) this.adopt(p, peers);
    this.serve(peers);
    this.manager.notify('READY=1');
  }

  /**
   * `--replace` and `ttalloc restart`: takes over the sockets, connections and state of the
   * server running on the socket (takeover-new.ts). Throws NothingToReplace when none runs.
   */
  async replace(announce: Announce | null): Promise<TakeoverResult> {
    const peers = this.gate();
    const r = await takeOver(this.takingPort(peers), announce);
    this.serve(peers);
    // The old server closed its dashboard's port before it let go.
    await this.dashboard?.start();
    this.log(
      `took over from pid ${r.fromPid} (version ${r.fromVersion}): ${r.connections} data ` +
        `connection(s) kept open, state preloaded in ${r.preloadMs.toFixed(0)} ms, ` +
        `reading again ${r.pauseMs.toFixed(1)} ms after the switch`,
    );
    return r;
  }

  /** The peer-credential gate of both sockets (a bad --group name fails here). */
  private gate(): PeerGate {
    const cfg = this.cfg;
    const gid = cfg.group ? resolveGroup(cfg.group) : null;
    return (this.peers ??= new PeerGate({
      policy: peerPolicy({
        ownUid: process.getuid?.() ?? 0,
        allowUids: cfg.allowUids,
        group: gid === null ? null : { gid, name: cfg.group! },
      }),
      trustClientPid: cfg.trustClientPid,
      log: this.say.log,
    }));
  }

  private createListeners(peers: PeerGate): { data: NetServer; control: HttpServer } {
    const data = (this.dataServer = createNetServer(
      { noDelay: true, pauseOnConnect: true },
      (sock) => this.acceptNew(sock, peers),
    ));
    const control = (this.controlServer = createHttpServer((req, res) => {
      // Between a restart's switch and this server's exit: the new server answers in a moment.
      if (this.handOver.busy) return sendJson(res, 503, { error: 'restarting: retry' });
      void this.router.handle(req, res, true);
    }));
    control.on('connection', (sock: Socket) => {
      peers.admit(sock, 'control');
    });
    control.on('upgrade', (req: IncomingMessage, sock: Socket) => this.handOver.upgrade(req, sock));
    return { data, control };
  }

  /** Serving from here on: timers, samples, the start line. */
  private serve(peers: PeerGate): void {
    this.sampler.start();
    this.streams.start();
    // From here on (not for recovered PIDs: whatever runs under their PID now is not them).
    this.tracker.onNewPid = (pid) => this.registry.see(pid);
    this.trimmer = new HeapTrimmer(() => this.changedALot());
    this.startTimers();
    this.logStart(peers);
    this.manager.notify('READY=1');
  }

  /** A data connection a previous server stored (systemd.ts), read on from where it was left. */
  private adopt(p: PassedFd, peers: PeerGate): void {
    // Paused like an accepted socket (pauseOnConnect): Node's own option, missing from its types.
    const opts = { fd: p.fd, readable: true, writable: true, pauseOnCreate: true };
    const sock = new Socket(opts as SocketConstructorOpts);
    if (this.accept(sock, peers)) this.manager.adopted(sock, p.name);
    else this.manager.dropStored(p.name);
  }

  /** What a restart's handover needs of this server when it is the old one. */
  private givingPort(): GivingServer {
    return {
      tracker: this.tracker,
      marks: this.marks,
      persistence: this.persistence,
      connections: this.connections,
      listeners: () => [this.dataServer, this.controlServer],
      nextConnId: () => this.nextConnId,
      pause: () => {
        for (const t of this.timers) clearInterval(t);
        this.timers = [];
        for (const c of this.connections.open) c.freeze();
      },
      resume: () => {
        for (const c of this.connections.open) c.thaw();
        this.startTimers();
      },
      closeListeners: () => {
        this.dataServer?.close();
        this.controlServer?.close();
      },
      relisten: async () => {
        const cfg = this.cfg;
        const { data, control } = this.createListeners(this.gate());
        await claimSocketPath(cfg.socketPath, 'socket');
        await claimSocketPath(cfg.controlPath, 'control socket');
        await listenUnix(data, cfg.socketPath);
        this.dataPath.taken();
        await listenUnix(control, cfg.controlPath);
        this.ctlPath.taken();
      },
      releaseShared: async () => {
        await this.dashboard?.stop();
      },
      log: this.say.log,
      warn: (m) => this.say.warn(m),
    };
  }

  /** What the takeover needs of this server when it is the new one. */
  private takingPort(peers: PeerGate): TakingServer {
    return {
      controlPath: this.cfg.controlPath,
      tracker: this.tracker,
      marks: this.marks,
      persistence: this.persistence,
      connections: this.connections,
      adoptListeners: async (dataFd, ctlFd) => {
        const { data, control } = this.createListeners(peers);
        await listenFd(data, dataFd);
        await listenFd(control, ctlFd);
        // The paths are this server's now: it removes them when it stops.
        this.dataPath.taken();
        this.ctlPath.taken();
      },
      adoptConnection: (sock, st) => {
        const c = new DataConnection(st.id, sock, this.host, this.cfg.frameSize);
        c.adopt(st);
        if (c.ownerPid > 0) this.registry.see(c.ownerPid);
        this.connections.add(c);
        this.manager.keep(sock, c.fd); // under a service manager, into its store as well
      },
      setNextConnId: (n) => {
        this.nextConnId = Math.max(this.nextConnId, n);
      },
      log: this.say.log,
    };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    if (!this.cfg.quiet) this.stats.print(true);
    this.exitWatch.stop();
    this.trimmer?.stop();
    this.manager.detach();
    this.connections.destroyAll();
    this.sampler.stop();
    this.streams.stop();
    await this.dashboard?.stop();
    await Promise.all([closeServer(this.dataServer), closeServer(this.controlServer)]);
    this.dataPath.release();
    this.ctlPath.release();
    await this.persistence.close();
  }

  /** Admits a data connection: within the limit, and from a UID the policy admits. */
  private accept(sock: Socket, peers: PeerGate): DataConnection | null {
    if (!this.connections.admits(sock)) return null;
    const cred = peers.admit(sock, 'data');
    if (cred === false) return null;
    const c = new DataConnection(this.nextConnId++, sock, this.host, this.cfg.frameSize);
    if (cred) {
      c.peerPid = cred.pid;
      c.peerUid = cred.uid;
      if (!this.cfg.trustClientPid) {
        c.ownerPid = cred.pid;
        // Now, while the process is alive: its parent and start time (claimed PIDs: onNewPid).
        this.registry.see(cred.pid);
      }
    }
    this.connections.add(c);
    return c;
  }

  /** A connection accepted now: into the manager's descriptor store (when there is one). */
  private acceptNew(sock: Socket, peers: PeerGate): void {
    const c = this.accept(sock, peers);
    if (c) this.manager.keep(sock, c.fd);
  }

  private startTimers(): void {
    const { reapIntervalMs, statsIntervalMs, tickIntervalMs, quiet } = this.cfg;
    if (reapIntervalMs > 0) this.timers.push(setInterval(this.reaper.reapDead, reapIntervalMs));
    if (statsIntervalMs > 0 && !quiet)
      this.timers.push(setInterval(() => this.stats.print(false), statsIntervalMs));
    const tick = () => {
      this.tracker.tick(Date.now());
      this.warnTableFull();
      let frames = 0;
      for (const n of this.tracker.framesByType) frames += n;
      this.trimmer?.tick(frames === this.framesAtTick);
      this.framesAtTick = frames;
      const stall = this.cfg.partialFrameTimeoutMs,
        now = Date.now();
      if (stall > 0) for (const c of this.connections.open) c.closeIfStalled(now, stall);
    };
    this.timers.push(setInterval(tick, tickIntervalMs));
    for (const t of this.timers) t.unref();
  }

  private logStart(peers: PeerGate): void {
    const cfg = this.cfg;
    const n = this.devices.list().length;
    const devices = n
      ? `${n} device(s): ${summarizeDevices(this.devices)}`
      : 'no devices declared (devices appear as they report)';
    this.log(
      `allocation server listening on ${cfg.socketPath} (control: ${cfg.controlPath}), ` +
        `pid ${process.pid}, frame size ${cfg.frameSize || 'auto (72/112/144/648)'}, ${devices}`,
    );
    for (const note of this.devices.notes) this.log(note);
    if (n === 0)
      this.log(
        'device capacities are unknown: declare the devices with --devices ' +
          '(cards or chips: n300, 4xn300, 8xwormhole_b0), TT_ALLOC_DEVICES or --device-config FILE',
      );
    const notice = peers.notice();
    if (notice) {
      this.log(notice);
      if (cfg.quiet) process.stderr.write(`[ttalloc] ${notice}\n`);
    } else if (cfg.trustClientPid)
      this.log(
        '--trust-client-pid: buffers belong to the PIDs the messages claim; ' +
          "the kernel's PIDs are shown for display only",
      );
    const m = this.manager;
    if (m.active)
      this.log(
        `service manager: ${m.listening.length} listening socket(s) passed, ` +
          `${m.stored.length} stored connection(s) read on; ` +
          (m.storing ? 'new connections go to its descriptor store' : `not storing: ${m.noStore}`),
      );
    if (!this.pump)
      this.log(
        `busy connections are read through epoll (${this.pumpOff}): ` +
          'each client send() costs ~0.1 µs more',
      );
  }

  /** Once: a table holds MAX_ENTRIES live objects and new ones are only counted. */
  private warnTableFull(): void {
    const n = this.tracker.tableFullDrops;
    if (n === 0 || this.tableFullWarned) return;
    this.tableFullWarned = true;
    this.say.warn(
      `!!! TABLE FULL: ${MAX_ENTRIES} live objects of one kind; new ones are counted, ` +
        `not tracked (${n} so far; tableFullDrops in stats)`,
    );
  }

  /** A DUMP message: the report on the server's output, after the same sweep as the timer's. */
  private dump(kernels: boolean): void {
    this.reaper.reapDead();
    const tr = this.tracker;
    if (kernels) return this.cfg.out(formatKernelReport(tr));
    this.cfg.out(remainingBuffersText(tr, {}, 10));
  }

  /** How data connections are read (socket-reader.ts), for stats. */
  private readStats(): ReadStats {
    const p = this.pump;
    return {
      busy_connections: p ? 'direct' : 'epoll',
      ...(p ? {} : { reason: this.pumpOff }),
      direct_reads: p?.reads ?? 0,
      hand_backs: p?.handBacks ?? 0,
      hot_now: p?.hotConnections ?? 0,
      per_read_buffer_connections: this.connections.perReadBuffer,
    };
  }

  /** Did the state grow or shrink by 64 k objects since the last trim (then: trim now)? */
  private changedALot(): boolean {
    const tr = this.tracker;
    const held = tr.buffers.count + tr.cbs.count + tr.kernels.count + tr.leftBehind.records;
    if (Math.abs(held - this.heldAtTrim) < 65_536) return false;
    this.heldAtTrim = held;
    return true;
  }

  /**
   * `root` and its descendants: the registry's parents of the processes it saw run, and those the
   * left-behind records of exited ones keep.
   */
  private treeOf(root: number): number[] {
    const parents = new Map<number, number>();
    for (const p of this.tracker.reaped) if (p.ppid !== null) parents.set(p.pid, p.ppid);
    return [...this.registry.descendantsOf(root, parents)].sort((a, b) => a - b);
  }

  /** What statistics, metrics and samples read (metrics/registry.ts MetricsSource). */
  private statsSource(): MetricsSource {
    const { tracker, devices, connections, persistence } = this;
    return {
      tracker,
      devices,
      startedAtMs: this.startedAtMs,
      knownDeviceIds: () => knownDeviceIds(devices, tracker),
      connections,
      get connectionsTotal() {
        return connections.total;
      },
      rejectedFrames: () => connections.rejectedFrames(),
      persistenceStats: () => persistence.stats(),
      readStats: () => this.readStats(),
      sources: this.sources,
    };
  }

  /** The control API: each route module gets the members its context declares. */
  private registerRoutes(src: MetricsSource): LiveStreams {
    const { tracker, marks, reaper, persistence, cfg } = this;
    const log = this.say.log;
    registerCoreRoutes(this.router, {
      stats: src,
      socketPath: cfg.socketPath,
      marks,
      claimedPids: () => this.connections.claimedPids(),
      dataClients: () => this.connections.clients(),
      reapDead: reaper.reapDead,
      treeOf: (root) => this.treeOf(root),
      lastLivenessMs: () => reaper.lastLivenessMs,
      peerStats: () => this.peers?.stats() ?? null,
      readStats: () => this.readStats(),
      persistenceStats: () => persistence.stats(),
      resetPersisted: () => persistence.reset(),
      forgetPersisted: (f) => persistence.forget(f),
      collectGarbage: () => {
        (globalThis as { gc?: () => void }).gc?.();
        trimFreedMemory();
      },
      out: cfg.out,
      log,
      sources: this.sources,
    });
    registerLeakRoutes(this.router, {
      tracker,
      marks,
      reapDead: reaper.reapDead,
      treeOf: (root) => this.treeOf(root),
      persistMark: (m) => persistence.mark(m),
      persistUnmark: (name) => persistence.unmark(name),
      log,
    });
    registerViewRoutes(this.router, { tracker, archOf: (d) => src.devices.get(d)?.spec ?? null });
    return registerLiveRoutes(this.router, {
      tracker,
      marks: this.marks,
      metrics: createMetrics(src, { topProcesses: cfg.metricsTopProcesses }),
      sampler: this.sampler,
    });
  }
}

function listenFd(s: NetServer | HttpServer, fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.listen({ fd }, () => {
      s.off('error', reject);
      resolve();
    });
  });
}

function closeServer(s: NetServer | HttpServer | null): Promise<void> {
  return new Promise((resolve) => {
    if (!s) return resolve();
    if ('closeAllConnections' in s) s.closeAllConnections();
    s.close(() => resolve());
  });
}
