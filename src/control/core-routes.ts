// Control API routes of the foundation: health, stats, devices, reports, processes, kernels,
// reaping, reset and stop.
import type { Checkpoints } from '../state/marks.js';
import type { ReapedReport } from '../state/tracker.js';
import type { ForgetFilter } from '../state/left-behind.js';
import type { StatsSource } from '../report/stats.js';
import { buildRemaining } from '../report/buffer-report.js';
import { formatRemaining } from '../report/text-report.js';
import {
  exitedProcessJson,
  reportJson,
  streamReportWithAllBuffers,
  streaming,
} from '../report/json-report.js';
import { formatKernelReport, listKernels } from '../report/kernel-report.js';
import { buildStats } from '../report/stats.js';
import { commandName, listProcesses } from '../report/process-info.js';
import { processesReply } from '../report/process-view.js';
import type { SourcesCache } from '../sources/merge-cache.js';
import { totalDram, totalL1 } from '../devices/arch.js';
import { HttpError, plainText as text, type Router, type RouteContext } from './router.js';
import { intParam, reportQuery } from './query.js';
import { buildMemoryMap } from '../report/memory-map.js';
import { streamPerfetto } from '../report/perfetto.js';
import { formatMemoryMap } from '../report/map-text.js';
import { MAX_DEVICE_ID } from '../protocol/constants.js';
import { loopDelayStats, resetLoopMonitor } from './loop-monitor.js';
import type {
  ClientsResponse,
  DataClient,
  DevicesResponse,
  DeviceInfo,
  ForgetResponse,
  HealthResponse,
  KernelsResponse,
  MemoryMapResponse,
  PeerStats,
  PersistenceStats,
  ProcessesResponse,
  ReadStats,
  ReapedResponse,
  ReapResponse,
  ResetResponse,
  ShutdownResponse,
  StatsResponse,
} from '../report/types.js';
import { SCHEMA_VERSION } from '../report/types.js';

/** What the core routes read and do. */
export interface CoreContext {
  /** What report/stats.ts reads; also the tracker, devices and start time of the routes. */
  stats: StatsSource;
  socketPath: string;
  marks: Checkpoints;
  /** Kernel PID → the PID its connection claims, where they differ. */
  claimedPids(): Map<number, number>;
  /** The processes with data connections open now. */
  dataClients(): DataClient[];
  /** The dead-owner sweep (releases and logs what owners that are gone held). */
  reapDead(): ReapedReport[];
  /** A PID and its descendants, running or exited, as the server recorded them (tree=PID). */
  treeOf(root: number): number[];
  /** How long the last sweep's liveness check took. */
  lastLivenessMs(): number;
  peerStats(): PeerStats | null;
  /** How data connections are read (the full figures; stats reads only two). */
  readStats(): ReadStats;
  persistenceStats(): PersistenceStats;
  /** Forgets the persisted state too (after the tracker and marks are reset). */
  resetPersisted(): Promise<void>;
  /** Persists a forget of left-behind records (after the tracker's). */
  forgetPersisted(f: ForgetFilter): Promise<void>;
  /**
   * A full garbage collection now (with --expose-gc), freed memory given back to the kernel as
   * after any big change: the bench's memory figures read the RSS right after it.
   */
  collectGarbage(): void;
  /** The server's terminal (reports printed on request). */
  out(text: string): void;
  log(msg: string): void;
  /** The machine's other sources (SHM regions, the driver), read lazily; absent in tests. */
  sources?: SourcesCache;
}

export function registerCoreRoutes(r: Router, s: CoreContext): void {
  const src = s.stats;
  const tr = src.tracker;
  r.get('/v1/health', (): HealthResponse => ({
    schema_version: SCHEMA_VERSION,
    ok: true,
    pid: process.pid,
    socket: s.socketPath,
    uptime_seconds: Math.round((Date.now() - src.startedAtMs) / 1000),
  }));
  r.get('/v1/stats', (c): StatsResponse => {
    // ?gc=1 collects garbage first when the server runs with --expose-gc (memory figures of the
    // bench); ?loop=reset starts/clears the event-loop stall histogram reported as eventLoop.
    if (c.url.searchParams.get('gc') === '1') s.collectGarbage();
    const st = {
      ...buildStats(src),
      event_loop: loopDelayStats(),
      persistence: s.persistenceStats(),
      streaming_dumps: streaming.active,
      peers: s.peerStats(),
      reads: s.readStats(),
      ...(s.sources ? { sources: s.sources.view(listProcesses(tr)).summary } : {}),
    };
    if (c.url.searchParams.get('loop') === 'reset') resetLoopMonitor();
    return st;
  });
  r.get('/v1/devices', (): DevicesResponse => devices(src));
  r.get('/v1/processes', (): ProcessesResponse => {
    const rows = listProcesses(tr, s.claimedPids());
    if (!s.sources) return { schema_version: SCHEMA_VERSION, processes: rows };
    return processesReply(rows, s.sources.view(rows), 'server');
  });
  // The data connections open now, with the frame size each speaks (`ttalloc doctor`).
  r.get('/v1/clients', (): ClientsResponse => ({
    schema_version: SCHEMA_VERSION,
    clients: s.dataClients(),
  }));
  r.get('/v1/kernels', (c): KernelsResponse | undefined =>
    c.url.searchParams.get('format') === 'text'
      ? text(c, formatKernelReport(tr))
      : { schema_version: SCHEMA_VERSION, kernels: listKernels(tr) },
  );
  // ?device=N&memory=L1|DRAM&bins=B[&format=text]: one bank's address space, every buffer on it.
  r.get('/v1/map', (c): MemoryMapResponse | undefined => {
    const q = c.url.searchParams;
    const device = intParam(c.url, 'device', { dflt: 0, min: 0, max: MAX_DEVICE_ID });
    const memory = (q.get('memory') ?? 'L1').toUpperCase();
    if (memory !== 'L1' && memory !== 'DRAM')
      throw new HttpError(400, `memory must be L1 or DRAM (L1 includes L1_SMALL and CBs)`);
    const m = buildMemoryMap(tr, {
      device,
      space: memory,
      arch: s.stats.devices.get(device)?.spec ?? null,
      bins: intParam(c.url, 'bins', { dflt: 100, min: 1, max: 4096 }),
      commandOf: commandName,
    });
    return q.get('format') === 'text' ? text(c, formatMemoryMap(m)) : m;
  });
  // ?format=perfetto[&since=MARK]: the timeline as Chrome trace-event JSON, streamed.
  r.get('/v1/export', async (c): Promise<undefined> => {
    const q = c.url.searchParams;
    if ((q.get('format') ?? 'perfetto') !== 'perfetto')
      throw new HttpError(400, 'format must be perfetto (Chrome trace-event JSON)');
    const since = q.get('since');
    let sinceMs: number | null = null;
    if (since !== null) {
      try {
        sinceMs = s.marks.get(since).atMs;
      } catch (e) {
        throw new HttpError(404, (e as Error).message);
      }
    }
    s.reapDead();
    await streamPerfetto(c.res, tr, {
      sinceMs,
      marks: s.marks.list().filter((m) => sinceMs === null || m.atMs >= sinceMs),
      archOf: (d) => s.stats.devices.get(d)?.spec.name ?? null,
      commandOf: commandName,
      nowMs: Date.now(),
    });
    return undefined;
  });
  // What exited processes left behind (`dump --exited` reads the report routes with exited=1).
  r.get('/v1/reaped', (c): ReapedResponse | undefined => {
    s.reapDead();
    if (c.url.searchParams.get('format') !== 'text')
      return { schema_version: SCHEMA_VERSION, reaped: tr.reaped.map(exitedProcessJson) };
    const { filter, limit } = reportQuery(c.url, s.marks, s.treeOf);
    const verbose = c.url.searchParams.get('verbose') === '1';
    const r = buildRemaining(tr, { ...filter, state: 'exited' }, limit);
    return text(c, formatRemaining(r, undefined, verbose));
  });
  // GET reads the report; POST /v1/dump also prints it on the server's stdout, as the seed's users
  // expect.
  r.get('/v1/report', (c) => report(c, s, false));
  r.post('/v1/dump', (c) => report(c, s, true));
  r.post('/v1/dump-kernels', (c) => {
    s.reapDead();
    s.out(formatKernelReport(tr));
    return text(c, formatKernelReport(tr));
  });
  r.post('/v1/reap', (): ReapResponse => {
    const t0 = performance.now();
    const reaped = s.reapDead().map(exitedProcessJson);
    return {
      schema_version: SCHEMA_VERSION,
      reaped,
      sweep_ms: performance.now() - t0,
      liveness_ms: s.lastLivenessMs(),
    };
  });
  r.post('/v1/reset', async (c): Promise<ResetResponse> => {
    const body = (await c.body()) as { confirm?: boolean };
    if (body.confirm !== true) throw new HttpError(400, 'reset needs {"confirm": true}');
    const before = tr.buffers.count;
    tr.reset();
    s.marks.clear();
    await s.resetPersisted();
    s.log(`state reset on request: ${before} buffers forgotten`);
    return { schema_version: SCHEMA_VERSION, reset: true, buffers_forgotten: before };
  });
  // {before?: mark name | ISO time | ms, pid?: number}: left-behind records forgotten on purpose.
  r.post('/v1/forget', async (c): Promise<ForgetResponse> => {
    const body = ((await c.body()) ?? {}) as { before?: string | number; pid?: number };
    const f: ForgetFilter = {};
    if (body.before !== undefined) f.beforeMs = beforeMs(body.before, s.marks);
    if (body.pid !== undefined) {
      if (!Number.isInteger(body.pid) || body.pid <= 0)
        throw new HttpError(400, `pid: '${body.pid}' is not a process id`);
      f.pid = body.pid;
    }
    const r = tr.forget(f);
    await s.forgetPersisted(f);
    s.log(`forgot ${r.records} left-behind records of ${r.processes} exited processes on request`);
    return { schema_version: SCHEMA_VERSION, ...r };
  });
  r.post('/v1/shutdown', async (c): Promise<ShutdownResponse> => {
    const body = ((await c.body()) ?? {}) as { force?: unknown };
    const clients = s.dataClients();
    if (clients.length > 0 && body.force !== true) throw shutdownRefusal(clients);
    c.res.on('finish', () => process.kill(process.pid, 'SIGTERM'));
    return { schema_version: SCHEMA_VERSION, stopping: true, pid: process.pid, clients };
  });
}

/**
 * 409: stopping now would close the connections of running clients, and the runtime's C++ client
 * sends without MSG_NOSIGNAL, so its next report after the close kills it (SIGPIPE).
 */
function shutdownRefusal(clients: DataClient[]): HttpError {
  const who = clients.map((d) => `PID ${d.pid} (${d.command})`).join(', ');
  return new HttpError(
    409,
    `refusing to stop: ${clients.length} data client${clients.length === 1 ? '' : 's'} ` +
      `connected: ${who}. Stopping closes their connections, and a C++ client (it sends ` +
      'without MSG_NOSIGNAL) dies of SIGPIPE on its next report. `ttalloc restart` replaces ' +
      'the server without closing them; or stop the clients first, or force the stop.',
    { clients },
  );
}

function devices(src: StatsSource): DevicesResponse {
  const deviceInfo = (id: number): DeviceInfo => {
    const d = src.devices.get(id);
    if (!d) return { device: id, declared: false, arch: null };
    return {
      device: id,
      declared: true,
      source: d.source,
      arch: d.spec.name,
      arch_type: d.spec.arch,
      card_type: d.cardType ?? null,
      card_index: d.cardIndex ?? null,
      remote: d.remote ?? null,
      board_serial: d.serial ?? null,
      asic_id: d.asicId ?? null,
      dram_channels: d.spec.dramChannels,
      dram_per_channel: d.spec.dramPerChannel,
      l1_per_core: d.spec.l1PerCore,
      worker_cores: d.spec.workerCores,
      total_dram_bytes: totalDram(d.spec),
      total_l1_bytes: totalL1(d.spec),
    };
  };
  return { schema_version: SCHEMA_VERSION, devices: src.knownDeviceIds().map(deviceInfo) };
}

/** A mark's time, an ISO 8601 time or ms since 1970 → ms. */
function beforeMs(v: string | number, marks: Checkpoints): number {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  const t = String(v);
  if (/^\d+$/.test(t)) return Number(t);
  const iso = Date.parse(t);
  if (!Number.isNaN(iso) && /\d{4}-\d\d-\d\d/.test(t)) return iso;
  try {
    return marks.get(t).cutMs;
  } catch (e) {
    throw new HttpError(404, `before: ${(e as Error).message}, nor an ISO 8601 time`);
  }
}

/** The buffer report as the server's terminal shows it (reaped owners unless filtered). */

async function report(c: RouteContext, s: CoreContext, print: boolean): Promise<unknown> {
  const tr = s.stats.tracker;
  const { filter, limit, all } = reportQuery(c.url, s.marks, s.treeOf);
  s.reapDead(); // the same cleanup as the periodic one, so the dump never lists dead owners
  const asJson = c.url.searchParams.get('format') === 'json';
  if (asJson && all) {
    // Built from one snapshot in slices (ingest is never held long): a turn of the loop between the
    // cleanup above and the snapshot, so the two never block together. The server's terminal gets
    // the same report's listing, bounded to 10 per type.
    await new Promise((r) => setImmediate(r));
    await streamReportWithAllBuffers(
      c.res,
      tr,
      filter,
      print ? (r) => s.out(formatRemaining(r)) : undefined,
    );
    return undefined;
  }
  const r = buildRemaining(tr, filter, limit);
  if (print || !asJson) {
    // verbose=1: each buffer's name and stack trace under its line (648-byte clients)
    const verbose = c.url.searchParams.get('verbose') === '1';
    const body = formatRemaining(r, undefined, verbose);
    if (print) s.out(body); // the server's terminal gets the same listing
    if (!asJson) return text(c, body);
  }
  return reportJson(r, filter, limit);
}
