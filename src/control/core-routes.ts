// Control API routes of the foundation: health, stats, reports, processes, kernels, reset, stop.
import { BUFFER_TYPE_NAMES } from '../protocol/constants.js';
import type { Checkpoints } from '../state/marks.js';
import { HttpError, intList, type Router, type RouteContext } from './http-router.js';
import type { AllocationServer } from './server.js';
import { buildBufferReport, type ReportFilter } from '../report/buffer-report.js';
import { formatBufferReport, formatReapedReport } from '../report/text-report.js';
import { reportJson, streamReportWithAllBuffers, streaming } from '../report/json-report.js';
import { formatKernelReport, listKernels } from '../report/kernel-report.js';
import { buildStats } from '../report/stats.js';
import { listProcesses } from '../report/process-info.js';
import { totalDram, totalL1 } from '../devices/arch.js';
import { loopDelayStats, resetLoopMonitor } from './loop-monitor.js';

/** "DRAM,L1" or "0,1" → buffer type codes. */
export function parseTypes(v: string | null | undefined): number[] | undefined {
  if (!v) return undefined;
  return v.split(',').map((s) => {
    const t = s.trim().toUpperCase();
    const i = BUFFER_TYPE_NAMES.indexOf(t);
    if (i >= 0) return i;
    const n = Number(t);
    if (Number.isInteger(n) && n >= 0 && n < BUFFER_TYPE_NAMES.length) return n;
    throw new HttpError(400, `unknown buffer type '${s}' (one of ${BUFFER_TYPE_NAMES.join(', ')})`);
  });
}

/** Filter and listing limit from the query string, shared by every report endpoint. */
export function reportQuery(
  url: URL,
  marks?: Checkpoints,
): { filter: ReportFilter; limit: number; all: boolean } {
  const filter: ReportFilter = {
    devices: intList(url, 'device'),
    pids: intList(url, 'pid'),
    types: parseTypes(url.searchParams.get('type')),
  };
  const since = url.searchParams.get('since');
  if (since && marks) {
    let m;
    try {
      m = marks.get(since);
    } catch (e) {
      throw new HttpError(404, (e as Error).message);
    }
    filter.minEpoch = m.epoch;
    if (m.pid !== null && !filter.pids?.length) filter.pids = [m.pid];
  }
  const all = url.searchParams.get('all') === '1';
  const limitText = url.searchParams.get('limit');
  const limit = all ? Infinity : limitText === null ? 10 : Number(limitText);
  if (!(limit >= 0)) throw new HttpError(400, `limit must be a number ≥ 0`);
  return { filter, limit, all };
}

export function registerCoreRoutes(r: Router, s: AllocationServer): void {
  r.get('/v1/health', () => ({
    ok: true,
    pid: process.pid,
    socket: s.opts.socketPath,
    uptimeSeconds: Math.round((Date.now() - s.startedAtMs) / 1000),
  }));
  r.get('/v1/stats', (c) => {
    // ?gc=1 collects garbage first when the server runs with --expose-gc (memory figures of the
    // bench);
    // ?loop=reset starts/clears the event-loop stall histogram reported as eventLoop.
    if (c.url.searchParams.get('gc') === '1') (globalThis as { gc?: () => void }).gc?.();
    const st = {
      ...buildStats(s),
      eventLoop: loopDelayStats(),
      persistence: s.persistenceStats(),
      streamingDumps: streaming.active,
      peers: s.peers?.stats() ?? null,
      reads: s.readStats(),
    };
    if (c.url.searchParams.get('loop') === 'reset') resetLoopMonitor();
    return st;
  });
  r.get('/v1/devices', () =>
    s.knownDeviceIds().map((id) => {
      const d = s.devices.get(id);
      return d
        ? {
            device: id,
            declared: true,
            source: d.source,
            arch: d.spec.name,
            archType: d.spec.arch,
            cardType: d.cardType ?? null,
            dramChannels: d.spec.dramChannels,
            dramPerChannel: d.spec.dramPerChannel,
            l1PerCore: d.spec.l1PerCore,
            workerCores: d.spec.workerCores,
            totalDramBytes: totalDram(d.spec),
            totalL1Bytes: totalL1(d.spec),
          }
        : { device: id, declared: false, arch: null };
    }),
  );
  r.get('/v1/processes', () => ({
    schema_version: 1,
    processes: listProcesses(s.tracker, s.claimedPids()),
  }));
  r.get('/v1/kernels', (c) =>
    c.url.searchParams.get('format') === 'text'
      ? text(c, formatKernelReport(s.tracker))
      : { schema_version: 1, kernels: listKernels(s.tracker) },
  );
  r.get('/v1/reaped', (c) => {
    s.reapDead();
    return c.url.searchParams.get('format') === 'text'
      ? text(c, formatReapedReport(s.tracker.reaped))
      : { schema_version: 1, reaped: s.tracker.reaped };
  });
  // GET reads the report; POST /v1/dump also prints it on the server's stdout, as the seed's users
  // expect.
  r.get('/v1/report', (c) => report(c, s, false));
  r.post('/v1/dump', (c) => report(c, s, true));
  r.post('/v1/dump-kernels', (c) => {
    s.dump(null, true);
    return text(c, formatKernelReport(s.tracker));
  });
  r.post('/v1/reap', () => {
    const t0 = performance.now();
    const reaped = s.reapDead();
    return { reaped, sweepMs: performance.now() - t0, livenessMs: s.lastLivenessMs };
  });
  r.post('/v1/reset', async (c) => {
    const body = (await c.body()) as { confirm?: boolean };
    if (body.confirm !== true) throw new HttpError(400, 'reset needs {"confirm": true}');
    const before = s.tracker.buffers.count;
    s.tracker.reset();
    s.marks.clear();
    await s.store?.reset();
    s.log(`state reset on request: ${before} buffers forgotten`);
    return { reset: true, buffersForgotten: before };
  });
  r.post('/v1/shutdown', (c) => {
    c.res.on('finish', () => process.kill(process.pid, 'SIGTERM'));
    return { stopping: true, pid: process.pid };
  });
}

function text(c: RouteContext, body: string): undefined {
  c.res.writeHead(200, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  c.res.end(body);
  return undefined;
}

async function report(c: RouteContext, s: AllocationServer, print: boolean): Promise<unknown> {
  const { filter, limit, all } = reportQuery(c.url, s.marks);
  s.reapDead(); // the same cleanup as the periodic one, so the dump never lists dead owners
  const asJson = c.url.searchParams.get('format') === 'json';
  if (asJson && all) {
    // Built from one snapshot in slices (ingest is never held long): a turn of the loop between the
    // cleanup above and the snapshot, so the two never block together. The server's terminal gets
    // the same report's listing, bounded to 10 per type.
    await new Promise((r) => setImmediate(r));
    await streamReportWithAllBuffers(
      c.res,
      s.tracker,
      filter,
      print
        ? (r) => s.out(formatBufferReport(r, undefined, r.filtered ? [] : s.tracker.reaped))
        : undefined,
    );
    return undefined;
  }
  // The server's terminal gets the same listing.
  if (print) s.out(s.bufferReportText(filter, limit));
  if (!asJson) return text(c, s.bufferReportText(filter, limit));
  return reportJson(buildBufferReport(s.tracker, filter, limit), filter, limit);
}
