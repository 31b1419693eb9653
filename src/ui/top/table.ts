// The process table of a `top` frame: columns chosen to fit the terminal, and each process as a
// block of lines (one per device, then a dim line of who it is and what the sources say).
import { formatBytes } from '../../report/format.js';
import type { ProcessRow } from '../../report/types.js';
import {
  checkText,
  commandLine,
  displayDevices,
  shortCommand,
  sourcesLabel,
  type DisplayDevice,
} from '../../report/process-view.js';
import { ellipsis, pad, rpad, SGR, type Line } from './line.js';

export type SortKey = 'DRAM' | 'L1' | 'L1_SMALL' | 'TRACE' | 'CB' | 'buffers' | 'pid' | 'command';
export type Figure = 'DRAM' | 'L1' | 'L1_SMALL' | 'TRACE' | 'CB' | 'HOST' | 'buffers';
export interface Sorting {
  sort: SortKey;
  /** Largest first (numbers) / Z→A (names) when true. */
  descending: boolean;
  /** Only this device, or all. */
  device: number | null;
}
export interface Row {
  p: ProcessRow;
  devs: DisplayDevice[];
}

/** A figure as the table shows it: SYSTEM_MEMORY, host memory, is its own column (HOST). */
function figure(u: DisplayDevice, k: Figure): number {
  if (k === 'HOST') return u.SYSTEM_MEMORY ?? 0;
  return k === 'buffers' ? (u.buffers ?? 0) : u[k];
}
function colValue(u: DisplayDevice, k: SortKey): number {
  return k === 'pid' || k === 'command' ? 0 : figure(u, k);
}

/**
 * Processes sorted by the chosen column, restricted to the device filter. Figures per device come
 * from the socket, else from SHM; a silent holder (no figures) is kept while no device is chosen.
 */
export function sortedProcesses(procs: ProcessRow[], v: Sorting): Row[] {
  const rows = procs
    .map((p) => ({
      p,
      devs: displayDevices(p).filter((u) => v.device === null || u.device === v.device),
    }))
    .filter((r) => r.devs.length > 0 || (v.device === null && r.p.silent));
  const key = (r: Row) => r.devs.reduce((a, u) => a + colValue(u, v.sort), 0);
  const dir = v.descending ? -1 : 1;
  rows.sort((a, b) => {
    if (v.sort === 'command')
      return dir * (a.p.command ?? '').localeCompare(b.p.command ?? '') || a.p.pid - b.p.pid;
    if (v.sort === 'pid') return dir * (a.p.pid - b.p.pid);
    return dir * (key(a) - key(b)) || a.p.pid - b.p.pid;
  });
  return rows;
}

const PID_W = 8;
/** "socket+shm+driver" fits. */
const SRC_W = 18;
const DEV_W = 4;
const MIN_CMD = 10;
/** The figures, widest first in importance; each wide enough for "1.30 GiB" and its title. */
const FIGURES: { key: Figure; title: string; w: number }[] = [
  { key: 'DRAM', title: 'DRAM', w: 9 },
  { key: 'L1', title: 'L1', w: 9 },
  { key: 'L1_SMALL', title: 'L1_SMALL', w: 10 },
  { key: 'TRACE', title: 'TRACE', w: 9 },
  { key: 'CB', title: 'CB', w: 9 },
  { key: 'HOST', title: 'HOST', w: 9 },
  { key: 'buffers', title: 'BUFFERS', w: 9 },
];
/** What a narrow terminal drops first (the sorted column stays). */
const DROP: ('SOURCE' | Figure)[] = ['SOURCE', 'HOST', 'buffers', 'TRACE', 'CB', 'L1_SMALL', 'L1'];

export interface Columns {
  cmdW: number;
  source: boolean;
  figures: typeof FIGURES;
  /** The columns left out to fit, by title. */
  hidden: string[];
}

/** The columns that fit `width`: the command takes what is left (up to 48). */
export function columns(width: number, sort: SortKey): Columns {
  let source = true;
  let figures = FIGURES.slice();
  const hidden: string[] = [];
  const need = () =>
    PID_W + MIN_CMD + 1 + (source ? SRC_W + 1 : 0) + DEV_W + figures.reduce((a, c) => a + c.w, 0);
  for (const d of DROP) {
    if (need() <= width) break;
    if (d === sort) continue;
    if (d === 'SOURCE') source = false;
    else figures = figures.filter((c) => c.key !== d);
    hidden.push(d === 'SOURCE' ? 'SOURCE' : FIGURES.find((c) => c.key === d)!.title);
  }
  const cmdW = Math.max(MIN_CMD, Math.min(48, MIN_CMD + width - need()));
  return { cmdW, source, figures, hidden };
}

export function headerLine(c: Columns, v: Sorting): Line {
  const mark = (k: string) => (k === v.sort ? (v.descending ? '▼' : '▲') : '');
  const text = [
    pad('PID' + mark('pid'), PID_W),
    pad('COMMAND' + mark('command'), c.cmdW) + ' ',
    c.source ? pad('SOURCE', SRC_W) + ' ' : '',
    rpad('DEV', DEV_W),
    ...c.figures.map((f) => rpad(f.title + mark(f.key), f.w)),
  ].join('');
  return [{ t: text, sgr: SGR.inverse }];
}

/**
 * The dim line under a process: who it is (user, container, its own PID), the cross-check, and
 * why a holder reports nothing. Empty when there is nothing to add.
 */
function infoLine(p: ProcessRow): string {
  const id = p.identity;
  const parts: string[] = [];
  if (id?.user) parts.push(`user ${id.user}`);
  if (id?.container) parts.push(`container ${id.container}`);
  if (p.ns_pid !== null && p.ns_pid !== undefined) parts.push(`PID ${p.ns_pid} in its namespace`);
  const check = checkText(p, formatBytes);
  if (check) parts.push(check);
  if (p.silent) parts.push(`reports nothing: ${p.silent.text}`);
  return parts.length > 1 || check || p.silent || p.ns_pid ? parts.join(' · ') : '';
}

/** A process's lines: one per device it uses (or what it holds), then its info line. */
export function processBlock(r: Row, c: Columns, width: number): Line[] {
  const claim = r.p.claimed_pid ? ` (claims ${r.p.claimed_pid})` : '';
  const head =
    pad(String(r.p.pid), PID_W) +
    pad(shortCommand(`${commandLine(r.p)}${claim}`, c.cmdW), c.cmdW) +
    ' ' +
    (c.source ? pad(sourcesLabel(r.p), SRC_W) + ' ' : '');
  const out: Line[] = r.devs.map((u, i) => {
    const cells = [
      i === 0 ? head : ' '.repeat(head.length),
      rpad(u.device < 0 ? '?' : String(u.device), DEV_W),
      ...c.figures.map((f) =>
        rpad(
          f.key === 'buffers'
            ? u.buffers === null
              ? '(shm)'
              : String(u.buffers)
            : formatBytes(figure(u, f.key)),
          f.w,
        ),
      ),
    ];
    return [{ t: cells.join('') }];
  });
  if (r.devs.length === 0)
    out.push([
      { t: head },
      { t: ellipsis(`holds /dev/tenstorrent/${(r.p.holds ?? []).join(',')}`, width - head.length) },
    ]);
  const info = infoLine(r.p);
  if (info)
    out.push([
      { t: ' '.repeat(PID_W + 1) },
      { t: ellipsis(info, width - PID_W - 1), sgr: r.p.silent ? SGR.yellow : SGR.dim },
    ]);
  return out;
}
