// Text views of the server statistics: the periodic one-line-per-device log and `ttalloc stats`.
// Pure functions of the JSON shapes in types.ts.
import { formatBytes, plural } from './format.js';
import type {
  LeftBehindStats,
  DeviceStats,
  PeerStats,
  PersistenceStats,
  ReadStats,
  StatsResponse,
} from './types.js';
import { totalOverTypes } from './usage.js';

function usedOf(used: number, total: number | null): string {
  return total ? `${formatBytes(used)}/${formatBytes(total)}` : formatBytes(used);
}

const archOf = (d: DeviceStats) => (d.arch ? ` [${d.arch}]` : '');

/** One line per device, for the periodic log. */
export function renderStatsLines(devices: readonly DeviceStats[]): string[] {
  if (devices.length === 0) return ['no devices have reported yet'];
  return devices.map((s) => {
    const b = s.bytes;
    return [
      `device ${s.device}${archOf(s)}: ${totalOverTypes(s.buffers)} buffers`,
      `, DRAM ${usedOf(b.DRAM, s.total_dram_bytes)}`,
      `, L1 ${usedOf(b.L1, s.total_l1_bytes)}`,
      `, L1_SMALL ${formatBytes(b.L1_SMALL)}`,
      `, TRACE ${formatBytes(b.TRACE)}`,
      `, CB ${formatBytes(b.CB)} (${s.cbs})`,
      `, kernels ${formatBytes(b.KERNEL)} (${s.kernels})`,
      `; host SYSTEM_MEMORY ${formatBytes(b.SYSTEM_MEMORY)}`,
      s.unknown_frees ? `, unknown frees ${s.unknown_frees}` : '',
    ].join('');
  });
}

/** `ttalloc stats`: the server, its peers, reads and persistence, then one line per device. */
export function renderStats(s: StatsResponse): string {
  const lines = [
    `server pid ${s.pid}, up ${s.uptime_seconds}s, ` +
      `${s.connections.open} connections open (${s.connections.total} total)`,
    `frames: ${s.frames.total} accepted, ${s.frames.rejected} rejected; ` +
      `unknown frees: ${s.unknown_frees.buffers} buffers, ${s.unknown_frees.cbs} CBs, ` +
      `${s.unknown_frees.kernels} kernels`,
    `live: ${s.live.buffers} buffers, ${s.live.cbs} CBs, ${s.live.kernels} kernels ` +
      `from ${s.live.processes} processes; ${s.reaped_processes} dead processes reaped`,
    leftBehindLine(s.left_behind),
  ];
  const n = s.notes;
  if (n && (n.strings || n.dropped))
    lines.push(
      `buffer notes: ${plural(n.strings, 'string')}, ${formatBytes(n.bytes)} ` +
        `(budget ${formatBytes(n.budget_bytes)}` +
        (n.dropped ? `; ${n.dropped} strings not kept, ${formatBytes(n.dropped_bytes)})` : ')'),
    );
  if (s.table_full_drops)
    lines.push(
      `TABLE FULL: ${s.table_full_drops} objects were counted but not tracked ` +
        '(the server holds its maximum of live objects of one kind)',
    );
  if (s.peers) lines.push(peersLine(s.peers));
  if (s.reads) lines.push(readsLine(s.reads));
  lines.push(persistenceLine(s.persistence));
  for (const d of s.devices) lines.push(deviceLine(d));
  return lines.join('\n') + '\n';
}

function deviceLine(d: DeviceStats): string {
  const b = d.bytes;
  const total = d.total_dram_bytes ? ` / ${formatBytes(d.total_dram_bytes)}` : '';
  return (
    `device ${d.device}${archOf(d)}: DRAM ${formatBytes(b.DRAM)}${total}, ` +
    `L1 ${formatBytes(b.L1)}, L1_SMALL ${formatBytes(b.L1_SMALL)}, ` +
    `TRACE ${formatBytes(b.TRACE)}, CB ${formatBytes(b.CB)}, kernels ${formatBytes(b.KERNEL)}; ` +
    `host SYSTEM_MEMORY ${formatBytes(b.SYSTEM_MEMORY)}; unknown frees ${d.unknown_frees}`
  );
}

/** Where PIDs come from and who was kept out, in one line. */
function peersLine(p: PeerStats): string {
  if (p.reason !== undefined)
    return (
      `peers: credentials unavailable (${p.reason}); PIDs are taken from the messages, ` +
      'other users kept out by the socket permissions only'
    );
  const refused = Object.entries(p.refused.by_uid)
    .map(([uid, n]) => `uid ${uid}: ${n}`)
    .join(', ');
  const pids = p.trust_client_pid ? 'the messages (--trust-client-pid)' : 'the kernel';
  return (
    `peers: UIDs from the kernel (SO_PEERCRED); PIDs from ${pids}; ` +
    `${plural(p.refused.total, 'connection')} from other users refused` +
    (refused ? ` (${refused})` : '')
  );
}

/** How busy connections are read: directly (clients' sends stay cheap) or through epoll. */
function readsLine(r: ReadStats): string {
  const own = r.per_read_buffer_connections
    ? `; ${r.per_read_buffer_connections} connection(s) read through Node's per-read buffers`
    : '';
  if (r.busy_connections === 'epoll')
    return (
      `reads: busy connections read through epoll (${r.reason}), ` +
      `which costs each client send ~100 ns more${own}`
    );
  return (
    `reads: busy connections read directly, ${r.direct_reads} reads, ` +
    `${r.hand_backs} hand-backs to epoll when idle${own}`
  );
}

function persistenceLine(p: PersistenceStats): string {
  if (!p.enabled) return `persistence: OFF (${p.reason}); a restart loses the state`;
  if (p.failed)
    return `persistence: STOPPED (${p.failed}); tracking in memory until ${p.dir} has room again`;
  const problems = p.recovery.problems.length ? ` (${p.recovery.problems.join('; ')})` : '';
  const rec =
    p.recovery.previous_stop === 'none'
      ? 'new state'
      : `restored after a ${p.recovery.previous_stop} stop${problems}`;
  return (
    `persistence: ${p.dir}: journal ${formatBytes(p.journal_bytes)} ` +
    `in ${p.journal_segments} segment(s), snapshot ${formatBytes(p.snapshot_bytes)}, ` +
    `flushed every ${p.flush_interval_ms} ms` +
    `${p.last_flush_at ? ` (last ${p.last_flush_at})` : ''}; ` +
    `${rec}${p.note ? `; ${p.note}` : ''}`
  );
}

/** "left behind: 2 records of 1 exited process (budget 3; 4 records of 2 older ones dropped)". */
function leftBehindLine(l: LeftBehindStats): string {
  const procs = `${l.processes} exited process${l.processes === 1 ? '' : 'es'}`;
  const dropped = l.dropped_processes
    ? `; ${plural(l.dropped_records, 'record')} of ${l.dropped_processes} older ones dropped`
    : '';
  return (
    `left behind: ${plural(l.records, 'record')} of ${procs}, ${formatBytes(l.bytes)} ` +
    `(budget ${l.budget_records}${dropped})`
  );
}
