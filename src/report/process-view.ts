// The processes reply with every source: the socket's rows (report/process-info.ts) carrying
// what the merged view (sources/merge.ts) says of them, then the processes only SHM or the driver
// know. And what the views show per row: figures per device from the socket, else from SHM.
import type { MergedView } from '../sources/merge-types.js';
import type { ProcessDeviceUsage, ProcessesResponse, ProcessRow } from './types.js';
import { SCHEMA_VERSION } from './types.js';

/** `rows` (the socket's, null with no server) merged with `view`. */
export function processesReply(
  rows: ProcessRow[] | null,
  view: MergedView,
  from: 'server' | 'local',
): ProcessesResponse {
  const bySocket = new Map((rows ?? []).map((r) => [r.pid, r]));
  const out: ProcessRow[] = [];
  for (const m of view.processes) {
    const base: ProcessRow = bySocket.get(m.pid) ?? {
      pid: m.pid,
      command: m.command,
      buffers: 0,
      bytes: 0,
      unknown_frees: 0,
      devices: [],
    };
    bySocket.delete(m.pid);
    const { pid: _p, command: _c, ...fields } = m;
    out.push({ ...base, ...fields });
  }
  // Socket rows the view did not list (none, unless it was built from other rows).
  out.push(...bySocket.values());
  out.sort((a, b) => b.bytes - a.bytes || a.pid - b.pid);
  return { schema_version: SCHEMA_VERSION, processes: out, sources: view.summary, from };
}

/** One device line of a process as views show it, with where its figures come from. */
export interface DisplayDevice extends Omit<ProcessDeviceUsage, 'buffers' | 'SYSTEM_MEMORY'> {
  /** null: SHM counts no buffers. */
  buffers: number | null;
  /** null: SHM does not count host memory. */
  SYSTEM_MEMORY: number | null;
  from: 'socket' | 'shm';
  /** The SHM region's chip id, for lines from SHM. */
  asic_id?: string;
}

/**
 * Figures per device: the socket's (per buffer) where it reports the device, SHM slots for the
 * chips the socket does not speak of. A process with neither (a silent holder) has none.
 */
export function displayDevices(p: ProcessRow): DisplayDevice[] {
  const out: DisplayDevice[] = p.devices.map((d) => ({ ...d, from: 'socket' }));
  const covered = new Set(p.devices.map((d) => d.device));
  for (const u of p.shm ?? []) {
    if (u.device !== null && covered.has(u.device)) continue;
    out.push({
      device: u.device ?? -1,
      DRAM: u.bytes.dram,
      L1: u.bytes.l1,
      L1_SMALL: u.bytes.l1_small,
      TRACE: u.bytes.trace,
      CB: u.bytes.cb,
      KERNEL: u.bytes.kernel ?? 0,
      SYSTEM_MEMORY: null,
      buffers: null,
      from: 'shm',
      asic_id: u.asic_id,
    });
  }
  return out.sort((a, b) => a.device - b.device);
}

/** "socket+shm+driver": the sources column. */
export function sourcesLabel(p: ProcessRow): string {
  return (p.sources ?? ['socket']).join('+');
}

/**
 * A command line cut to `width` characters with an ellipsis (whole in JSON); when it does not
 * fit, the program's directory goes first ("python3 train.py …", not "/usr/local/bin/pyth…").
 */
export function shortCommand(cmd: string | null, width: number): string {
  let c = cmd ?? '?';
  if (c.length <= width) return c;
  const sp = c.indexOf(' ');
  const prog = sp < 0 ? c : c.slice(0, sp);
  c = prog.slice(prog.lastIndexOf('/') + 1) + (sp < 0 ? '' : c.slice(sp));
  return c.length <= width ? c : `${c.slice(0, Math.max(0, width - 1))}…`;
}

/** The command line when known, else the name. */
export function commandLine(p: ProcessRow): string {
  return p.identity?.cmdline || p.command || '?';
}

/** Cross-check in words: "" when none, "agree", or "socket X ≠ shm Y (dram, l1)". */
export function checkText(p: ProcessRow, fmt: (n: number) => string): string {
  const cs = p.checks ?? [];
  if (cs.length === 0) return '';
  const bad = cs.filter((c) => !c.agree);
  if (bad.length === 0) return 'socket = shm';
  return bad
    .map((c) => {
      const s = c.differs.reduce((a, k) => a + (c.socket[k] ?? 0), 0);
      const m = c.differs.reduce((a, k) => a + (c.shm[k] ?? 0), 0);
      return `socket ${fmt(s)} ≠ shm ${fmt(m)} (${c.differs.join(', ')}, chip ${c.asic_id})`;
    })
    .join('; ');
}
