// Small control commands: stats, processes, reset, stop.
import { Command } from 'commander';
import { action, clientFor, socketOption } from '../common.js';
import { formatBytes } from '../../report/format.js';
import type { PersistenceStats } from '../../persist/state-store.js';

interface StatsJson {
  pid: number;
  uptimeSeconds: number;
  connections: { open: number; total: number };
  frames: { total: number; rejected: number };
  tableFullDrops?: number;
  unknownFrees: { buffers: number; cbs: number; kernels: number };
  live: { buffers: number; cbs: number; kernels: number; processes: number };
  reapedProcesses: number;
  peers?: {
    credentials: string;
    reason?: string;
    pidSource: string;
    trustClientPid: boolean;
    refused: { total: number; byUid: Record<string, number> };
  } | null;
  persistence: PersistenceStats;
  reads?: {
    busyConnections: 'direct' | 'epoll';
    reason?: string;
    directReads: number;
    handBacks: number;
    perReadBufferConnections: number;
  };
  devices: {
    device: number;
    arch: string | null;
    bytes: Record<string, number>;
    buffers: Record<string, number>;
    unknownFrees: number;
    totalDramBytes: number | null;
  }[];
}

export function statsCommand(): Command {
  return new Command('stats')
    .description('show server statistics: frames, connections, unknown frees, usage per device')
    .addOption(socketOption())
    .option('--json', 'machine-readable output')
    .action(
      action(async (o: { socket?: string; json?: boolean }) => {
        const s = await clientFor(o).json<StatsJson>('GET', '/v1/stats');
        if (o.json) {
          process.stdout.write(JSON.stringify(s, null, 2) + '\n');
          return;
        }
        const lines = [
          `server pid ${s.pid}, up ${s.uptimeSeconds}s, ${s.connections.open} connections open (${s.connections.total} total)`,
          `frames: ${s.frames.total} accepted, ${s.frames.rejected} rejected; unknown frees: ${s.unknownFrees.buffers} buffers, ${s.unknownFrees.cbs} CBs, ${s.unknownFrees.kernels} kernels`,
          `live: ${s.live.buffers} buffers, ${s.live.cbs} CBs, ${s.live.kernels} kernels from ${s.live.processes} processes; ${s.reapedProcesses} dead processes reaped`,
        ];
        if (s.tableFullDrops)
          lines.push(
            `TABLE FULL: ${s.tableFullDrops} objects were counted but not tracked (the server holds its maximum of live objects of one kind)`,
          );
        if (s.peers) lines.push(peersLine(s.peers));
        if (s.reads) lines.push(readsLine(s.reads));
        lines.push(persistenceLine(s.persistence));
        for (const d of s.devices) {
          const b = d.bytes;
          lines.push(
            `device ${d.device}${d.arch ? ` [${d.arch}]` : ''}: DRAM ${formatBytes(b.DRAM)}${d.totalDramBytes ? ` / ${formatBytes(d.totalDramBytes)}` : ''}, L1 ${formatBytes(b.L1)}, L1_SMALL ${formatBytes(b.L1_SMALL + b.SYSTEM_MEMORY)}, TRACE ${formatBytes(b.TRACE)}, CB ${formatBytes(b.CB)}, kernels ${formatBytes(b.KERNEL)}; unknown frees ${d.unknownFrees}`,
          );
        }
        process.stdout.write(lines.join('\n') + '\n');
      }),
    );
}

export function resetCommand(): Command {
  return new Command('reset')
    .description('forget all tracked state on the server (needs --yes)')
    .addOption(socketOption())
    .option('-y, --yes', 'confirm: really forget every tracked buffer')
    .action(
      action(async (o: { socket?: string; yes?: boolean }) => {
        if (!o.yes)
          throw new Error('reset forgets every tracked buffer; run again with --yes to confirm');
        const r = await clientFor(o).json<{ buffersForgotten: number }>('POST', '/v1/reset', {
          confirm: true,
        });
        process.stdout.write(`state reset: ${r.buffersForgotten} buffers forgotten\n`);
      }),
    );
}

export function stopCommand(): Command {
  return new Command('stop')
    .description('stop the running server cleanly (final statistics, socket removed)')
    .addOption(socketOption())
    .action(
      action(async (o: { socket?: string }) => {
        const r = await clientFor(o).json<{ pid: number }>('POST', '/v1/shutdown');
        process.stdout.write(`server ${r.pid} is stopping\n`);
      }),
    );
}

/** Where PIDs come from and who was kept out, in one line. */
function peersLine(p: NonNullable<StatsJson['peers']>): string {
  if (p.reason !== undefined)
    return `peers: credentials unavailable (${p.reason}); PIDs are taken from the messages, other users kept out by the socket permissions only`;
  const refused = Object.entries(p.refused.byUid)
    .map(([uid, n]) => `uid ${uid}: ${n}`)
    .join(', ');
  return (
    `peers: UIDs from the kernel (SO_PEERCRED); PIDs from ${p.trustClientPid ? 'the messages (--trust-client-pid)' : 'the kernel'}; ` +
    `${p.refused.total} connection${p.refused.total === 1 ? '' : 's'} from other users refused${refused ? ` (${refused})` : ''}`
  );
}

/** How busy connections are read: directly (clients' sends stay cheap) or through epoll. */
function readsLine(r: NonNullable<StatsJson['reads']>): string {
  const own = r.perReadBufferConnections
    ? `; ${r.perReadBufferConnections} connection(s) read through Node's per-read buffers`
    : '';
  if (r.busyConnections === 'epoll')
    return `reads: busy connections read through epoll (${r.reason}), which costs each client send ~100 ns more${own}`;
  return `reads: busy connections read directly, ${r.directReads} reads, ${r.handBacks} hand-backs to epoll when idle${own}`;
}

function persistenceLine(p: PersistenceStats): string {
  if (!p.enabled) return `persistence: OFF (${p.reason}); a restart loses the state`;
  if (p.failed)
    return `persistence: STOPPED (${p.failed}); tracking in memory until ${p.dir} has room again`;
  const rec =
    p.recovery.previousStop === 'none'
      ? 'new state'
      : `restored after a ${p.recovery.previousStop} stop${p.recovery.problems.length ? ` (${p.recovery.problems.join('; ')})` : ''}`;
  return (
    `persistence: ${p.dir}: journal ${formatBytes(p.journalBytes)} in ${p.journalSegments} segment(s), snapshot ${formatBytes(p.snapshotBytes)}, ` +
    `flushed every ${p.flushIntervalMs} ms${p.lastFlushAt ? ` (last ${p.lastFlushAt})` : ''}; ${rec}${p.note ? `; ${p.note}` : ''}`
  );
}
