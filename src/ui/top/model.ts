// What `ttalloc top` shows, fetched from the server's control API: device usage and capacities,
// per-process usage, and the recent samples behind the sparklines.
import { NoServerError, type ControlClient } from '../../client/control-client.js';
import type {
  DeviceStats,
  HistoryResponse,
  ProcessRow,
  Sample,
  StatsResponse,
} from '../../report/types.js';
import type { SourcesSummary } from '../../sources/merge-types.js';
import { fetchProcesses, localProcesses, sourcesHeader } from './processes.js';

export interface TopData {
  /** When the frame's data was read. */
  time: string;
  time_ms: number;
  /** null: no server runs; the processes come from SHM and the driver read directly. */
  server: {
    pid: number;
    uptime_seconds: number;
    buffers: number;
    processes: number;
    reaped: number;
  } | null;
  devices: DeviceStats[];
  /**
   * Processes every source speaks of now (the socket's dead ones are reaped and vanish; a silent
   * holder is listed with its reason).
   */
  processes: ProcessRow[];
  /** What SHM and the driver say (absent from a server without sources). */
  sources?: SourcesSummary;
  /** Where the figures come from, in a line. */
  header: string;
  /** Oldest first; one per server sample interval. */
  history: Sample[];
}

/**
 * One frame's data. With no server on the socket and `allowLocal`, the processes SHM and the
 * driver know, read here; without `allowLocal` the NoServerError is thrown (a live `top` whose
 * server went away keeps its last frame and says so).
 */
export async function fetchTopData(
  c: ControlClient,
  historySeconds = 60,
  allowLocal = true,
): Promise<TopData> {
  let stats: StatsResponse;
  try {
    stats = await c.json<StatsResponse>('GET', '/v1/stats');
  } catch (e) {
    if (!(e instanceof NoServerError) || !allowLocal) throw e;
    const procs = localProcesses();
    return {
      ...stamp(),
      server: null,
      devices: [],
      processes: procs.processes,
      sources: procs.sources,
      header: sourcesHeader(procs, c.socketPath),
      history: [],
    };
  }
  const [procs, hist] = await Promise.all([
    fetchProcesses(c),
    // History is optional (an older server has none): sparklines stay empty then.
    c
      .json<Pick<HistoryResponse, 'samples'>>('GET', `/v1/history?seconds=${historySeconds}`)
      .catch(() => ({ samples: [] as Sample[] })),
  ]);
  return {
    ...stamp(),
    server: {
      pid: stats.pid,
      uptime_seconds: stats.uptime_seconds,
      buffers: stats.live.buffers,
      processes: stats.live.processes,
      reaped: stats.reaped_processes,
    },
    devices: stats.devices,
    processes: procs.processes.filter(
      (p) => p.devices.length > 0 || (p.shm?.length ?? 0) > 0 || p.silent,
    ),
    sources: procs.sources,
    header: sourcesHeader(procs, c.socketPath),
    history: hist.samples,
  };
}

function stamp(): { time: string; time_ms: number } {
  const now = Date.now();
  return { time: new Date(now).toISOString(), time_ms: now };
}
