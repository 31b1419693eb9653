// One frame of `ttalloc top` as lines of styled segments, then as one string. Pure functions of
// (data, view state, terminal size), so --once, the live loop and tests share the same output.
import { USAGE_COUNTER_TYPES } from '../../protocol/constants.js';
import { formatBytes, plural } from '../../report/format.js';
import type { DeviceStats, ProcessRow } from '../../report/types.js';
import {
  checkText,
  commandLine,
  displayDevices,
  shortCommand,
  sourcesLabel,
  type DisplayDevice,
} from '../../report/process-view.js';
import { SAMPLE_CB, SAMPLE_KERNEL, totalOverTypes, usage } from '../../report/usage.js';
import type { TopData } from './model.js';

export type SortKey = 'DRAM' | 'L1' | 'L1_SMALL' | 'TRACE' | 'CB' | 'buffers' | 'pid' | 'command';
export interface ViewState {
  sort: SortKey;
  /** Largest first (numbers) / Z→A (names) when true. */
  descending: boolean;
  /** Only this device, or all. */
  device: number | null;
  /** Status line text (errors, "server not reachable"). */
  message?: string;
  socket?: string;
}
export const initialView = (): ViewState => ({ sort: 'DRAM', descending: true, device: null });

/** Sort keys by key press. */
export const SORT_KEYS: Record<string, SortKey> = {
  d: 'DRAM',
  l: 'L1',
  s: 'L1_SMALL',
  t: 'TRACE',
  c: 'CB',
  b: 'buffers',
  p: 'pid',
  n: 'command',
};

type Seg = { t: string; sgr?: string };
type Line = Seg[];

const SGR = {
  bold: '1',
  dim: '2',
  inverse: '7',
  green: '32',
  yellow: '33',
  red: '31',
  cyan: '36',
  blue: '34',
  magenta: '35',
};
const SPARK = '▁▂▃▄▅▆▇█';

/** Colour by pressure: green below 70 %, yellow below 90 %, red above. */
function pressure(frac: number): string {
  return frac >= 0.9 ? SGR.red : frac >= 0.7 ? SGR.yellow : SGR.green;
}

/**
 * A bar of stacked parts, each drawn with its own character so parts stay visible without colour.
 */
function bar(
  parts: { bytes: number; ch: string }[],
  total: number | null,
  width: number,
  sgr: string,
): Seg[] {
  const segs: Seg[] = [{ t: '[' }];
  let used = 0;
  if (total && total > 0) {
    let acc = 0;
    for (const p of parts) {
      const from = Math.round((acc / total) * width);
      acc += p.bytes;
      // A part that exists gets at least one cell, so small L1_SMALL/CB/kernel usage is never
      // invisible.
      let to = Math.min(width, Math.round((acc / total) * width));
      if (p.bytes > 0 && to <= from && from < width) to = from + 1;
      if (to > from) {
        segs.push({ t: p.ch.repeat(to - from), sgr });
        used = to;
      }
    }
  }
  segs.push({ t: '·'.repeat(Math.max(0, width - used)), sgr: SGR.dim }, { t: ']' });
  return segs;
}

function sparkline(values: number[], width: number): string {
  const v = values.slice(-width);
  if (v.length === 0) return '';
  const max = Math.max(...v);
  return v
    .map((x) => (max <= 0 ? SPARK[0] : SPARK[Math.min(7, Math.floor((x / max) * 7.999))]))
    .join('');
}

const pad = (s: string, n: number) =>
  s.length >= n ? s.slice(0, n) : s + ' '.repeat(n - s.length);
const rpad = (s: string, n: number) =>
  s.length >= n ? s.slice(0, n) : ' '.repeat(n - s.length) + s;
const pct = (used: number, total: number | null) =>
  total ? `${((100 * used) / total).toFixed(1)}%` : '';

function dramParts(d: DeviceStats) {
  return [
    { bytes: usage(d.bytes, 'DRAM'), ch: '█' },
    { bytes: usage(d.bytes, 'TRACE'), ch: '▓' },
  ];
}
function l1Parts(d: DeviceStats) {
  return [
    { bytes: usage(d.bytes, 'L1'), ch: '█' },
    { bytes: usage(d.bytes, 'L1_SMALL'), ch: '▓' },
    { bytes: d.bytes.CB, ch: '▒' },
    { bytes: d.bytes.KERNEL, ch: '░' },
  ];
}
/** The sample kinds (tracker kinds) behind each bar's sparkline: the same parts as the bars. */
const DRAM_KINDS = [...USAGE_COUNTER_TYPES.DRAM, ...USAGE_COUNTER_TYPES.TRACE];
const L1_KINDS = [
  ...USAGE_COUNTER_TYPES.L1,
  ...USAGE_COUNTER_TYPES.L1_SMALL,
  SAMPLE_CB,
  SAMPLE_KERNEL,
];

interface BarRow {
  label: string;
  name: string;
  parts: { bytes: number; ch: string }[];
  total: number | null;
  /** Sample kinds summed for the sparkline. */
  kinds: number[];
}
const sum = (ps: { bytes: number }[]) => ps.reduce((a, p) => a + p.bytes, 0);

function deviceLines(d: DeviceStats, data: TopData, width: number, detail: boolean): Line[] {
  const sparkW = width >= 100 ? 20 : width >= 80 ? 10 : 0;
  const textW = 22;
  const pctW = 7;
  const head = 18;
  const barW = Math.max(8, width - head - 5 - 2 - textW - pctW - (sparkW ? sparkW + 1 : 0));
  const hist = (kinds: number[]) =>
    data.history.map((s) => {
      const v = s.d[d.device];
      return v ? kinds.reduce((a, k) => a + (v[k] ?? 0), 0) : 0;
    });
  const row = ({ label, name, parts, total, kinds }: BarRow): Line => {
    const used = sum(parts);
    const frac = total ? used / total : 0;
    const col = pressure(frac);
    return [
      { t: pad(label, head - 1) + ' ', sgr: label.trim() ? SGR.bold : undefined },
      { t: pad(name, 5) },
      ...bar(parts, total, barW, col),
      {
        t:
          ' ' +
          pad(
            total ? `${formatBytes(used)} / ${formatBytes(total)}` : `${formatBytes(used)} / ?`,
            textW - 1,
          ),
      },
      { t: rpad(pct(used, total), pctW - 1) + ' ', sgr: total ? col : undefined },
      ...(sparkW ? [{ t: sparkline(hist(kinds), sparkW), sgr: SGR.cyan }] : []),
    ];
  };
  const lines = [
    row({
      label: `Dev ${d.device} ${d.arch ?? 'undeclared'}`,
      name: 'DRAM',
      parts: dramParts(d),
      total: d.total_dram_bytes,
      kinds: DRAM_KINDS,
    }),
    row({ label: '', name: 'L1', parts: l1Parts(d), total: d.total_l1_bytes, kinds: L1_KINDS }),
  ];
  if (detail) {
    const b = d.bytes;
    const parts = [
      `DRAM ${formatBytes(usage(b, 'DRAM'))}`,
      `TRACE ${formatBytes(usage(b, 'TRACE'))}`,
      `L1 ${formatBytes(usage(b, 'L1'))}`,
      `L1_SMALL ${formatBytes(usage(b, 'L1_SMALL'))}`,
      `CB ${formatBytes(b.CB)}`,
      `KERNEL ${formatBytes(b.KERNEL)}`,
      plural(totalOverTypes(d.buffers), 'buffer'),
    ];
    lines.push([{ t: pad('', head) + parts.join(' · '), sgr: SGR.dim }]);
  }
  return lines;
}

function colValue(u: DisplayDevice, k: SortKey): number {
  return k === 'buffers' ? (u.buffers ?? 0) : k === 'pid' || k === 'command' ? 0 : u[k];
}

/**
 * Processes sorted by the chosen column, restricted to the device filter. Figures per device come
 * from the socket, else from SHM; a silent holder (no figures) is kept while no device is chosen.
 */
export function sortedProcesses(
  procs: ProcessRow[],
  v: ViewState,
): { p: ProcessRow; devs: DisplayDevice[] }[] {
  const rows = procs
    .map((p) => ({
      p,
      devs: displayDevices(p).filter((u) => v.device === null || u.device === v.device),
    }))
    .filter((r) => r.devs.length > 0 || (v.device === null && r.p.silent));
  const key = (r: { p: ProcessRow; devs: DisplayDevice[] }) =>
    r.devs.reduce((a, u) => a + colValue(u, v.sort), 0);
  const dir = v.descending ? -1 : 1;
  rows.sort((a, b) => {
    if (v.sort === 'command')
      return dir * (a.p.command ?? '').localeCompare(b.p.command ?? '') || a.p.pid - b.p.pid;
    if (v.sort === 'pid') return dir * (a.p.pid - b.p.pid);
    return dir * (key(a) - key(b)) || a.p.pid - b.p.pid;
  });
  return rows;
}

/** Process table columns; the command column gives way first on narrow terminals. */
function columns(width: number): { key: SortKey; title: string; w: number }[] {
  const cmd = Math.max(7, Math.min(24, width - 8 - 1 - 1 - SRC_W - 4 - 5 * 10 - 9));
  return [
    { key: 'pid', title: 'PID', w: 8 },
    { key: 'command', title: 'COMMAND', w: cmd },
    { key: 'pid', title: 'SOURCE', w: SRC_W },
    { key: 'pid', title: 'DEV', w: 4 },
    { key: 'DRAM', title: 'DRAM', w: 10 },
    { key: 'L1', title: 'L1', w: 10 },
    { key: 'L1_SMALL', title: 'L1_SMALL', w: 10 },
    { key: 'TRACE', title: 'TRACE', w: 10 },
    { key: 'CB', title: 'CB', w: 10 },
    { key: 'buffers', title: 'BUFFERS', w: 9 },
  ];
}

/** The sources column: "socket+shm+driver" fits. */
const SRC_W = 18;

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

export const HELP =
  'q quit  sort: d DRAM l L1 s L1_SMALL t TRACE c CB b buffers p PID n name  ' +
  'r reverse  f/0-9 device  a all devices';
const HELP_SHORT = 'q quit  sort: d l s t c b p n  r reverse  f/0-9/a device  (ttalloc top --help)';

export function renderLines(
  data: TopData | null,
  v: ViewState,
  width: number,
  height: number,
): Line[] {
  const out: Line[] = [];
  const time = new Date(data?.time_ms ?? Date.now()).toTimeString().slice(0, 8);
  const sv = data?.server;
  const title = sv
    ? `ttalloc top · server pid ${sv.pid} · up ${fmtUptime(sv.uptime_seconds)} · ` +
      `${sv.buffers} buffers · ${sv.processes} processes · ${sv.reaped} reaped`
    : data
      ? 'ttalloc top · no server: SHM and the driver read directly'
      : 'ttalloc top · waiting for the server…';
  out.push([
    { t: title, sgr: SGR.bold },
    { t: `  ${time}${v.device !== null ? `  [device ${v.device}]` : ''}` },
  ]);
  out.push([
    {
      t: v.message ?? data?.header ?? (v.socket ? `socket ${v.socket}` : ''),
      sgr: v.message ? SGR.red : SGR.dim,
    },
  ]);
  if (data) {
    const devs = data.devices.filter((d) => v.device === null || d.device === v.device);
    const detail = Number.isFinite(height) ? devs.length * 3 + 8 <= height : true;
    for (const d of devs) out.push(...deviceLines(d, data, width, detail));
    out.push(...chipLines(data, v));
    out.push(...cardLines(data));
    if (devs.length === 0 && data.server)
      out.push([
        {
          t: v.device !== null ? `device ${v.device} has not reported` : 'no devices yet',
          sgr: SGR.dim,
        },
      ]);
    out.push([
      { t: 'DRAM bar: █ DRAM ▓ TRACE   L1 bar: █ L1 ▓ L1_SMALL ▒ CB ░ kernels', sgr: SGR.dim },
    ]);
    out.push([]);
    const cols = columns(width);
    const cmdW = cols[1].w;
    out.push(
      cols.map((c, i) => {
        const mark = c.key === v.sort && i !== 2 && i !== 3 ? (v.descending ? '▼' : '▲') : '';
        const text = i < 3 ? pad(c.title + mark, c.w) + ' ' : rpad(c.title + mark, c.w);
        return { t: text, sgr: SGR.inverse };
      }),
    );
    const rows = sortedProcesses(data.processes, v);
    const room = Number.isFinite(height) ? height - out.length - 1 : Infinity;
    let shown = 0;
    let lines = 0;
    for (const r of rows) {
      const info = infoLine(r.p);
      const n = Math.max(1, r.devs.length) + (info ? 1 : 0);
      if (lines + n > room - (shown < rows.length - 1 ? 1 : 0) && shown > 0) break;
      const head = [
        pad(String(r.p.pid), 8) + ' ',
        pad(
          shortCommand(
            `${commandLine(r.p)}${r.p.claimed_pid ? ` (claims ${r.p.claimed_pid})` : ''}`,
            cmdW,
          ),
          cmdW,
        ) + ' ',
        pad(sourcesLabel(r.p), SRC_W) + ' ',
      ].join('');
      r.devs.forEach((u, i) => {
        const cells = [
          i === 0 ? head : pad('', 8 + cmdW + SRC_W + 3),
          rpad(u.device < 0 ? '?' : String(u.device), 4),
          ...(['DRAM', 'L1', 'L1_SMALL', 'TRACE', 'CB'] as const).map((k) =>
            rpad(formatBytes(u[k]), 10),
          ),
          rpad(u.buffers === null ? '(shm)' : String(u.buffers), 9),
        ];
        out.push([{ t: cells.join('') }]);
      });
      if (r.devs.length === 0)
        out.push([{ t: head }, { t: `holds /dev/tenstorrent/${(r.p.holds ?? []).join(',')}` }]);
      if (info) out.push([{ t: pad('', 9) + info, sgr: r.p.silent ? SGR.yellow : SGR.dim }]);
      shown++;
      lines += n;
    }
    if (shown < rows.length)
      out.push([
        {
          t: `… ${rows.length - shown} more processes (filter a device or enlarge the terminal)`,
          sgr: SGR.dim,
        },
      ]);
    if (rows.length === 0) out.push([{ t: 'no process owns device memory', sgr: SGR.dim }]);
  }
  if (Number.isFinite(height)) {
    while (out.length < height - 1) out.push([]);
    out.length = Math.min(out.length, Math.max(1, height - 1));
  }
  out.push([{ t: width >= HELP.length ? HELP : HELP_SHORT, sgr: SGR.inverse }]);
  return out;
}

/** One line per SHM region: its chip, layout, owner, totals and what crashed writers left. */
function chipLines(data: TopData, v: ViewState): Line[] {
  const regions = (data.sources?.shm.regions ?? []).filter(
    (r) => v.device === null || r.device === v.device,
  );
  return regions.map((r) => {
    const head = `Chip ${r.asic_id} dev ${r.device ?? '?'} ${r.layout}`;
    if (r.status !== 'ok')
      return [
        { t: pad(head, 34), sgr: SGR.bold },
        { t: `${r.status}: ${r.error ?? ''}`, sgr: SGR.yellow },
      ];
    const t = r.totals;
    const ghost = r.ghost ? r.ghost.dram + r.ghost.l1 + r.ghost.l1_small + r.ghost.trace : 0;
    return [
      { t: pad(head, 34), sgr: SGR.bold },
      {
        t:
          `SHM DRAM ${formatBytes(t.dram)} · L1 ${formatBytes(t.l1)} · ` +
          `${r.slots_live}/${r.slots_used} slots live` +
          (r.slots_full ? ' · ALL 64 SLOTS TAKEN' : '') +
          (ghost > 0 ? ` · ${formatBytes(ghost)} left by crashed processes` : ''),
        sgr: r.slots_full || ghost > 0 ? SGR.yellow : undefined,
      },
    ];
  });
}

/** One line per card under the driver: identity, chips, sensors and firmware, as tt-smi shows. */
function cardLines(data: TopData): Line[] {
  const d = data.sources?.driver;
  if (!d?.present) return [];
  return d.cards.map((c) => {
    const s = c.sensors;
    const facts = [
      c.board_serial ? `serial ${c.board_serial}` : null,
      c.chips === null ? 'chips ?' : `${c.chips} chip${c.chips === 1 ? '' : 's'}`,
      s.temperature_c === undefined ? null : `${s.temperature_c.toFixed(1)} °C`,
      s.power_w === undefined ? null : `${s.power_w.toFixed(1)} W`,
      s.current_a === undefined ? null : `${s.current_a.toFixed(1)} A`,
      s.fan_rpm === undefined ? null : `fan ${s.fan_rpm} rpm`,
      c.firmware.bundle ? `fw ${c.firmware.bundle}` : null,
      d.version ? `driver ${d.version}` : null,
    ].filter((x) => x !== null);
    return [
      { t: pad(`Card ${c.index} ${c.card_type ?? '?'}`, 34), sgr: SGR.bold },
      { t: facts.join(' · '), sgr: SGR.dim },
    ];
  });
}

function fmtUptime(s: number): string {
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Segments → text, cut at `width` visible columns; SGR codes only when colour is on. */
export function lineText(line: Line, width: number, color: boolean): string {
  let out = '';
  let left = width;
  for (const s of line) {
    if (left <= 0) break;
    const t = [...s.t].slice(0, left).join('');
    left -= [...t].length;
    out += color && s.sgr ? `\x1b[${s.sgr}m${t}\x1b[0m` : t;
  }
  return out;
}

/** A whole frame for the alternate screen: home, every line cleared to its end, rest cleared. */
export function frame(lines: Line[], width: number, color: boolean): string {
  return '\x1b[H' + lines.map((l) => lineText(l, width, color) + '\x1b[K').join('\r\n') + '\x1b[J';
}
