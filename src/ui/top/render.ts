// One frame of `ttalloc top` as lines of styled segments, then as one string. Pure functions of
// (data, view state, terminal size), so --once, the live loop and tests share the same output.
//
// A frame fits its terminal exactly: never more lines than rows, never a line wider than the
// columns. The device bars come first, then the process list, which scrolls by whole processes;
// the legend, the detail rows, chips and cards are added only while the list keeps its room.
import { formatBytes, plural } from '../../report/format.js';
import type { TopData } from './model.js';
import { deviceBars, detailLine, LEGEND } from './devices.js';
import { cols, ellipsis, firstFitting, fitParts, lineWidth, pad, SGR, type Line } from './line.js';
import {
  columns,
  headerLine,
  processBlock,
  sortedProcesses,
  type Columns,
  type SortKey,
  type Sorting,
} from './table.js';

export { sortedProcesses, type SortKey };

export interface ViewState extends Sorting {
  /** Status line text (errors, "server not reachable"). */
  message?: string;
  socket?: string;
  /** Index of the first process shown; the list scrolls by whole processes. */
  scroll: number;
}
export const initialView = (): ViewState => ({
  sort: 'DRAM',
  descending: true,
  device: null,
  scroll: 0,
});

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

/** The key line, longest first: the widest that fits is shown. */
export const HELP = [
  'q quit  ↑↓ j k PgUp PgDn Home End scroll  sort: d DRAM l L1 s L1_SMALL t TRACE c CB ' +
    'b buffers p PID n name  r reverse  f/0-9 device  a all devices',
  'q quit  ↑↓ j k PgUp PgDn Home End scroll  sort d l s t c b p n  r reverse  ' + 'f/0-9/a device',
  'q quit  ↑↓ jk PgUp PgDn Home End scroll  sort dlstcbpn r  f/0-9/a dev',
  'q quit  ↑↓ jk PgUp/Dn  sort dlstcbpn r  f/0-9/a dev',
];

const processes = (n: number) => `${n} process${n === 1 ? '' : 'es'}`;

/** Where the process list stands in a frame. */
export interface ListWindow {
  /** Index of the first process shown. */
  first: number;
  /** Processes shown whole. */
  shown: number;
  total: number;
}
export interface Frame {
  lines: Line[];
  list: ListWindow;
}

/** Lines the process list keeps before the optional rows (legend, details…) are added. */
const LIST_KEEPS = 6;

export function renderLines(
  data: TopData | null,
  v: ViewState,
  width: number,
  height: number,
): Line[] {
  return renderFrame(data, v, width, height).lines;
}

export function renderFrame(
  data: TopData | null,
  v: ViewState,
  width: number,
  height: number,
): Frame {
  const finite = Number.isFinite(height);
  // Into a pipe (no height) the layout is `width` wide but no text is cut: a file keeps it all.
  const textW = finite ? width : Infinity;
  const head = [titleLine(data, v, textW), statusLine(data, v, textW)];
  const help: Line = [{ t: firstFitting(HELP, width), sgr: SGR.inverse }];
  if (!data) return assemble([head], help, height, { first: 0, shown: 0, total: 0 });

  const devs = data.devices.filter((d) => v.device === null || d.device === v.device);
  const bars = devs.map((d) => deviceBars(d, data.history, width));
  const details = devs.map((d) => detailLine(d, width, textW));
  const none =
    devs.length === 0 && data.server
      ? [
          [
            {
              t: v.device !== null ? `device ${v.device} has not reported` : 'no devices yet',
              sgr: SGR.dim,
            },
          ],
        ]
      : [];
  const chips = chipLines(data, v, textW);
  const cards = cardLines(data, textW);
  const legend: Line[] = [[{ t: firstFitting(LEGEND, width), sgr: SGR.dim }]];
  const rows = sortedProcesses(data.processes, v);
  const c = columns(width, v.sort);
  const blocks = rows.map((r) => processBlock(r, c, textW));
  const table = headerLine(c, v);

  const devLines = (withDetail: boolean) =>
    bars.flatMap((b, i) => (withDetail ? [...b, details[i]] : b));
  if (!finite) {
    const body = [devLines(true), chips, cards, none, legend, [[]], [table], blocks.flat()];
    const list = { first: 0, shown: rows.length, total: rows.length };
    if (rows.length === 0) body.push([[{ t: 'no process owns device memory', sgr: SGR.dim }]]);
    return { lines: [...head, ...body.flat(), help], list };
  }

  // Rows for: the header and status, the bars, the table's title, the list's position, the keys.
  const fixed = head.length + 2 * devs.length + none.length + 3;
  const listLines = blocks.reduce((a, b) => a + b.length, 0);
  const keep = Math.min(listLines, LIST_KEEPS);
  let spare = height - fixed;
  const add = (n: number, leave = keep) => {
    if (n === 0 || spare - n < leave) return false;
    spare -= n;
    return true;
  };
  const withDetail = add(details.length);
  const extra = [add(chips.length) ? chips : [], add(cards.length) ? cards : []];
  const withLegend = add(1);
  // The blank row only when nothing of the list is left out for it.
  const gap: Line[] = add(1, listLines) ? [[]] : [];
  const room = Math.max(0, spare);
  const win = listWindow(blocks, room, v.scroll);
  const shownLines = blocks.slice(win.first, win.first + win.shown).flat();
  // A process taller than the whole list's room still shows its first lines.
  if (win.shown === 0 && win.first < blocks.length)
    shownLines.push(...blocks[win.first].slice(0, room));
  const body = [
    devLines(withDetail),
    ...extra,
    none,
    withLegend ? legend : [],
    gap,
    [table],
    shownLines,
    [position(win, c, width)],
  ];
  return assemble([head, ...body], help, height, win);
}

/** Stacks the parts, pads to the terminal's rows, and keeps the key line last. */
function assemble(parts: Line[][], help: Line, height: number, list: ListWindow): Frame {
  const lines = parts.flat();
  const h = Math.max(1, height);
  while (lines.length < h - 1) lines.push([]);
  lines.length = Math.min(lines.length, h - 1);
  lines.push(help);
  return { lines, list };
}

/**
 * Which processes fit `room` lines from `scroll` on. The last page is full: scrolling past the
 * end shows the last processes that fit.
 */
function listWindow(blocks: Line[][], room: number, scroll: number): ListWindow {
  const total = blocks.length;
  let last = total,
    acc = 0;
  while (last > 0 && acc + blocks[last - 1].length <= room) acc += blocks[--last].length;
  const maxFirst = Math.min(last, Math.max(0, total - 1));
  const first = Math.max(0, Math.min(Number.isFinite(scroll) ? scroll : maxFirst, maxFirst));
  let shown = 0;
  acc = 0;
  while (first + shown < total && acc + blocks[first + shown].length <= room)
    acc += blocks[first + shown++].length;
  return { first, shown, total };
}

/** "processes 3–7 of 12 · ↑ 2 above, ↓ 5 below", or how many there are when all fit. */
function position(w: ListWindow, c: Columns, width: number): Line {
  if (w.total === 0) return [{ t: 'no process owns device memory', sgr: SGR.dim }];
  const all = w.first === 0 && w.shown === w.total;
  const where = all
    ? processes(w.total)
    : `processes ${w.shown ? `${w.first + 1}–${w.first + w.shown}` : w.first + 1} of ${w.total}`;
  const parts = [where];
  if (!all) {
    const above = w.first,
      below = w.total - w.first - w.shown;
    parts.push(
      [above ? `↑ ${above} above` : '', below > 0 ? `↓ ${below} below` : '']
        .filter(Boolean)
        .join(', '),
    );
  }
  if (c.hidden.length) parts.push(`hidden: ${c.hidden.join(' ')}`);
  const text = fitParts(parts, ' · ', width, [2, 1]);
  return [{ t: ellipsis(text, width), sgr: all ? SGR.dim : SGR.bold }];
}

function titleLine(data: TopData | null, v: ViewState, width: number): Line {
  const time = new Date(data?.time_ms ?? Date.now()).toTimeString().slice(0, 8);
  const right = `  ${time}${v.device !== null ? `  [device ${v.device}]` : ''}`;
  const sv = data?.server;
  const title = sv
    ? fitParts(
        [
          'ttalloc top',
          `server pid ${sv.pid}`,
          `up ${fmtUptime(sv.uptime_seconds)}`,
          plural(sv.buffers, 'buffer'),
          processes(sv.processes),
          `${sv.reaped} reaped`,
        ],
        ' · ',
        width - cols(right),
        [2, 1, 4],
      )
    : data
      ? 'ttalloc top · no server: SHM and the driver read directly'
      : 'ttalloc top · waiting for the server…';
  return [{ t: ellipsis(title, width - cols(right)), sgr: SGR.bold }, { t: right }];
}

function statusLine(data: TopData | null, v: ViewState, width: number): Line {
  const text = v.message ?? data?.header ?? (v.socket ? `socket ${v.socket}` : '');
  return [{ t: ellipsis(text, width), sgr: v.message ? SGR.red : SGR.dim }];
}

/** One line per SHM region: its chip, layout, owner, totals and what crashed writers left. */
function chipLines(data: TopData, v: ViewState, width: number): Line[] {
  const regions = (data.sources?.shm.regions ?? []).filter(
    (r) => v.device === null || r.device === v.device,
  );
  return regions.map((r) => {
    const head = pad(`Chip ${r.asic_id} dev ${r.device ?? '?'} ${r.layout}`, 34);
    const rest = width - cols(head);
    if (r.status !== 'ok')
      return [
        { t: head, sgr: SGR.bold },
        { t: ellipsis(`${r.status}: ${r.error ?? ''}`, rest), sgr: SGR.yellow },
      ];
    const t = r.totals;
    const ghost = r.ghost ? r.ghost.dram + r.ghost.l1 + r.ghost.l1_small + r.ghost.trace : 0;
    const text =
      `SHM DRAM ${formatBytes(t.dram)} · L1 ${formatBytes(t.l1)} · ` +
      `${r.slots_live}/${r.slots_used} slots live` +
      (r.slots_full ? ' · ALL 64 SLOTS TAKEN' : '') +
      (ghost > 0 ? ` · ${formatBytes(ghost)} left by crashed processes` : '');
    return [
      { t: head, sgr: SGR.bold },
      { t: ellipsis(text, rest), sgr: r.slots_full || ghost > 0 ? SGR.yellow : undefined },
    ];
  });
}

/** One line per card under the driver: identity, chips, sensors and firmware, as tt-smi shows. */
function cardLines(data: TopData, width: number): Line[] {
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
    const head = pad(`Card ${c.index} ${c.card_type ?? '?'}`, 34);
    return [
      { t: head, sgr: SGR.bold },
      { t: ellipsis(facts.join(' · '), width - cols(head)), sgr: SGR.dim },
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
  let left = lineWidth(line) > width ? width - 1 : width;
  for (const s of line) {
    if (left <= 0) break;
    const t = [...s.t].slice(0, left).join('');
    left -= cols(t);
    out += color && s.sgr ? `\x1b[${s.sgr}m${t}\x1b[0m` : t;
  }
  // A line the layout could not fit says so rather than ending mid-figure.
  return lineWidth(line) > width && width > 0 ? out + '…' : out;
}

/** A whole frame for the alternate screen: home, every line cleared to its end, rest cleared. */
export function frame(lines: Line[], width: number, color: boolean): string {
  return '\x1b[H' + lines.map((l) => lineText(l, width, color) + '\x1b[K').join('\r\n') + '\x1b[J';
}
