// The device part of a `top` frame: per device a DRAM and an L1 bar against capacity, with a
// sparkline of the recent interval peaks, and a detail row with every type's level and peak.
import { BufferType } from '../../protocol/constants.js';
import { formatBytes, plural } from '../../report/format.js';
import type { DeviceBytes, DeviceStats, Sample } from '../../report/types.js';
import { SAMPLE_CB, SAMPLE_KERNEL, totalOverTypes } from '../../report/usage.js';
import { cols, ellipsis, fitParts, pad, pressure, rpad, SGR, type Line, type Seg } from './line.js';

const SPARK = '▁▂▃▄▅▆▇█';
/** Marks the peak since start on a bar, past the cells in use. */
const PEAK_MARK = '│';

type Part = { key: keyof DeviceBytes; ch: string; kind: number };

/**
 * The parts of each bar: the types that live in that memory. SYSTEM_MEMORY is host memory, so
 * it is in neither bar (the detail row shows it apart), though the wire's l1_small counter
 * includes it.
 */
const DRAM_PARTS: Part[] = [
  { key: 'DRAM', ch: '█', kind: BufferType.DRAM },
  { key: 'TRACE', ch: '▓', kind: BufferType.TRACE },
];
const L1_PARTS: Part[] = [
  { key: 'L1', ch: '█', kind: BufferType.L1 },
  { key: 'L1_SMALL', ch: '▓', kind: BufferType.L1_SMALL },
  { key: 'CB', ch: '▒', kind: SAMPLE_CB },
  { key: 'KERNEL', ch: '░', kind: SAMPLE_KERNEL },
];

export const LEGEND = [
  'DRAM bar: █ DRAM ▓ TRACE · L1 bar: █ L1 ▓ L1_SMALL ▒ CB ░ kernels · │ peak since start · ' +
    'sparklines: each interval’s peak, scaled to capacity',
  'DRAM: █ DRAM ▓ TRACE · L1: █ L1 ▓ L1_SMALL ▒ CB ░ kernels · │ peak since start',
  '█ DRAM/L1 ▓ TRACE/L1_SMALL ▒ CB ░ kernels · │ peak · sparklines: peaks',
  '█ DRAM/L1 ▓ TRACE/L1_SMALL ▒ CB ░ kernels · │ peak since start',
];

/**
 * Cells of a bar of stacked parts, each part with its own character so parts stay visible
 * without colour; the peak since start is marked when it lies past the parts.
 */
function bar(parts: { bytes: number; ch: string }[], total: number, peak: number, width: number) {
  const cells: string[] = [];
  let acc = 0;
  for (const p of parts) {
    const from = Math.round((acc / total) * width);
    acc += p.bytes;
    // A part that exists gets at least one cell, so small L1_SMALL/CB/kernel usage is never
    // invisible.
    let to = Math.min(width, Math.round((acc / total) * width));
    if (p.bytes > 0 && to <= from && from < width) to = from + 1;
    for (let i = cells.length; i < to; i++) cells.push(p.ch);
  }
  const used = cells.length;
  // The cell the peak would fill last, marked only past the cells in use.
  const mark = Math.min(width - 1, Math.round((peak / total) * width) - 1);
  const shown = peak > acc && mark >= used;
  return { used: cells.join(''), peakAt: shown ? mark - used : -1, free: width - used };
}

/**
 * One sparkline cell per sample, as high as the sample's interval peak (older servers: its
 * level) against the capacity: a flat 0.1 % draws the lowest block, a full device the highest.
 * Without a known capacity the samples' own maximum is the scale. A cell whose peak stands above
 * its level (something came and went within the interval) is drawn highlighted.
 */
export function sparkline(
  samples: { level: number; peak: number }[],
  capacity: number | null,
  width: number,
): Seg[] {
  const v = samples.slice(-width);
  const scale = capacity && capacity > 0 ? capacity : Math.max(1, ...v.map((s) => s.peak));
  const block = (x: number) => Math.max(0, Math.min(7, Math.floor((x / scale) * 8)));
  return v.map((s) => {
    const hi = block(s.peak);
    return { t: SPARK[hi], sgr: hi > block(s.level) ? SGR.yellow : SGR.cyan };
  });
}

/** Per sample: the level and the interval peak of the bar's parts, added up. */
function history(samples: Sample[], device: number, parts: Part[]) {
  return samples.map((s) => {
    const d = s.d[device];
    // The parts' interval peaks may fall at different moments: their sum is at most what the
    // bar reached, exact when one part moves.
    const p = s.p?.[device] ?? d;
    const add = (v: number[] | undefined) => parts.reduce((a, x) => a + (v?.[x.kind] ?? 0), 0);
    return { level: add(d), peak: Math.max(add(d), add(p)) };
  });
}

/** Column widths of the device rows at `width` columns. */
function deviceLayout(d: DeviceStats, width: number) {
  const arch = d.arch ?? 'undeclared';
  // Wide: "Dev 0 Wormhole_B0" in front of the DRAM bar; narrow: the arch under "Dev 0".
  const wide = width >= 100;
  const labels = wide ? [`Dev ${d.device} ${arch}`, ''] : [`Dev ${d.device}`, arch];
  const labelW = wide ? 18 : Math.max(...labels.map((l) => l.length)) + 1;
  const fixed = labelW + 5 + 2 + TEXT_W + PCT_W;
  let sparkW = wide ? Math.min(60, Math.floor(width / 4)) : 10;
  // The bar keeps 8 cells; the sparkline gives way first.
  sparkW = Math.max(0, Math.min(sparkW, width - fixed - 8 - 1));
  if (sparkW < 3) sparkW = 0;
  // A bar wider than 64 cells reads no better, and pushes its figures far from the label.
  const barW = Math.max(4, Math.min(64, width - fixed - (sparkW ? sparkW + 1 : 0)));
  return { labels, labelW, sparkW, barW };
}
/** " 43.0 MiB / 91.5 MiB" and " 100.0%". */
const TEXT_W = 20;
const PCT_W = 7;

export function deviceBars(d: DeviceStats, samples: Sample[], width: number): Line[] {
  const { labels, labelW, sparkW, barW } = deviceLayout(d, width);
  const rows = [
    { name: 'DRAM', parts: DRAM_PARTS, total: d.total_dram_bytes },
    { name: 'L1', parts: L1_PARTS, total: d.total_l1_bytes },
  ];
  return rows.map(({ name, parts, total }, i): Line => {
    const bytes = parts.map((p) => ({ bytes: d.bytes[p.key], ch: p.ch }));
    const used = bytes.reduce((a, p) => a + p.bytes, 0);
    const peak = parts.reduce((a, p) => a + (d.peak_bytes?.[p.key] ?? 0), 0);
    const col = pressure(total ? used / total : 0);
    const label = { t: pad(labels[i], labelW), sgr: labels[i] ? SGR.bold : undefined };
    const cells: Seg[] = [{ t: '[' }];
    if (total) {
      const b = bar(bytes, total, peak, barW);
      cells.push({ t: b.used, sgr: col });
      if (b.peakAt >= 0)
        cells.push(
          { t: '·'.repeat(b.peakAt), sgr: SGR.dim },
          { t: PEAK_MARK, sgr: SGR.bold },
          { t: '·'.repeat(b.free - b.peakAt - 1), sgr: SGR.dim },
        );
      else cells.push({ t: '·'.repeat(b.free), sgr: SGR.dim });
    } else cells.push({ t: rpad('capacity unknown', barW), sgr: SGR.dim });
    cells.push({ t: ']' });
    const text = `${formatBytes(used)} / ${total ? formatBytes(total) : '?'}`;
    const pct = total ? `${((100 * used) / total).toFixed(1)}%` : '';
    return [
      label,
      { t: pad(name, 5) },
      ...cells,
      { t: ' ' + pad(text, TEXT_W - 1) },
      { t: rpad(pct, PCT_W - 1), sgr: total ? col : undefined },
      ...(sparkW
        ? [{ t: ' ' }, ...sparkline(history(samples, d.device, parts), total, sparkW)]
        : []),
    ];
  });
}

/**
 * The detail row: each type in use with its level and, when higher, its peak since start (exact
 * per type); host memory apart; the buffer count.
 */
export function detailLine(d: DeviceStats, width: number, textW = width): Line {
  const { labelW } = deviceLayout(d, width);
  // Under the figures when wide; under the bar names when every column counts.
  const indent = labelW + (width >= 100 ? 5 : 0);
  const types: (keyof DeviceBytes)[] = ['DRAM', 'TRACE', 'L1', 'L1_SMALL', 'CB', 'KERNEL'];
  const parts: string[] = [];
  for (const k of types) {
    const now = d.bytes[k],
      peak = d.peak_bytes?.[k] ?? now;
    if (now === 0 && peak === 0) continue;
    parts.push(`${k} ${formatBytes(now)}` + (peak > now ? ` (peak ${formatBytes(peak)})` : ''));
  }
  if (parts.length === 0) parts.push('nothing allocated');
  const room = textW - indent;
  const host = d.bytes.SYSTEM_MEMORY;
  if (host) {
    const long = `host memory ${formatBytes(host)} (SYSTEM_MEMORY)`;
    parts.push(cols([...parts, long].join(' · ')) <= room ? long : `host ${formatBytes(host)}`);
  }
  parts.push(plural(totalOverTypes(d.buffers), 'buffer'));
  // The buffer count gives way first, then the wider separator, then the end is cut.
  let text = fitParts(parts, ' · ', room, [parts.length - 1]);
  if (cols(text) > room) text = parts.slice(0, -1).join(', ');
  return [{ t: ' '.repeat(indent) }, { t: ellipsis(text, room), sgr: SGR.dim }];
}
