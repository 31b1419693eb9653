// What `ttalloc top` shows, fetched from the server's control API: device usage and capacities,
// per-process usage, and the recent samples behind the sparklines.
import type { ControlClient } from '../../client/control-client.js';
import type {
  DeviceStats,
  HistoryResponse,
  ProcessesResponse,
  ProcessRow,
  Sample,
  StatsResponse,
} from '../../report/types.js';

export interface TopData {
  atMs: number;
  server: {
    pid: number;
    uptimeSeconds: number;
    buffers: number;
    processes: number;
    reaped: number;
  };
  devices: DeviceStats[];
  /** Only processes that own something now (dead ones are reaped and vanish). */
  processes: ProcessRow[];
  /** Oldest first; one per server sample interval. */
  history: Sample[];
}

export async function fetchTopData(c: ControlClient, historySeconds = 60): Promise<TopData> {
  const [stats, procs, hist] = await Promise.all([
    c.json<StatsResponse>('GET', '/v1/stats'),
    c.json<ProcessesResponse>('GET', '/v1/processes'),
    // History is optional (an older server has none): sparklines stay empty then.
    c
      .json<Pick<HistoryResponse, 'samples'>>('GET', `/v1/history?seconds=${historySeconds}`)
      .catch(() => ({ samples: [] as Sample[] })),
  ]);
  return {
    atMs: Date.now(),
    server: {
      pid: stats.pid,
      uptimeSeconds: stats.uptimeSeconds,
      buffers: stats.live.buffers,
      processes: stats.live.processes,
      reaped: stats.reapedProcesses,
    },
    devices: stats.devices,
    processes: procs.processes.filter((p) => p.devices.length > 0),
    history: hist.samples,
  };
}
