// The memory map of one device: every live buffer (and, for L1, every circular buffer) of every
// process placed on the address space of one bank, the free gaps between them, the largest free
// block, and where objects overlap. It explains an out-of-memory with free space left: an
// interleaved allocation needs one free block per bank, so "400 KB free" in 40 gaps of 10 KB
// cannot hold a 64 KB buffer.
//
// The bank model is an estimate and says so: an interleaved buffer's address is its offset in
// each bank and it takes size / banks of every bank (the page rounding is not on the wire); a CB
// takes its whole size at its address on the cores it runs on. Banks per architecture come from
// the capacity table (DRAM channels; one L1 bank per worker core). Sharded buffers cannot be
// told from interleaved ones on the wire.
//
// Cost: two passes over the table and two native typed-array sorts (starts and ends sorted
// apart: a sweep over both gives union, gaps and overlaps without sorting objects).
import { BufferType } from '../protocol/constants.js';
import type { ArchSpec } from '../devices/arch.js';
import {
  PAGE_ROWS,
  ROW_WORDS,
  rowAddr,
  rowDevice,
  rowPid,
  rowSize,
  rowType,
  type ObjectTable,
} from '../state/object-table.js';
import type { Tracker } from '../state/tracker.js';
import type { MemoryMapResponse, MapSpace } from './types.js';
import { SCHEMA_VERSION } from './types.js';

/** The memory types each map shows (SYSTEM_MEMORY is host memory: it has no device map). */
const SPACE_TYPES: Record<MapSpace, readonly number[]> = {
  DRAM: [BufferType.DRAM, BufferType.TRACE],
  L1: [BufferType.L1, BufferType.L1_SMALL],
};
/** Owners told apart in the map; the rest are "other". */
const MAX_OWNERS = 8;
const MAX_GAPS = 10;

export interface MapOptions {
  device: number;
  space: MapSpace;
  /** The device's architecture when declared (capacity and banks), else null. */
  arch: ArchSpec | null;
  /** Columns of the downsampled bar. */
  bins: number;
  commandOf?: (pid: number) => string | null;
}

export interface Model {
  banks: number;
  bankBytes: number | null;
  note: string;
}

export function modelOf(space: MapSpace, arch: ArchSpec | null): Model {
  if (arch === null || (space === 'DRAM' ? arch.dramChannels : arch.workerCores) === 0)
    return {
      banks: 1,
      bankBytes: null,
      note:
        'capacity unknown (no device declared): addresses shown as one space, from 0 to the ' +
        'highest buffer',
    };
  if (space === 'DRAM')
    return {
      banks: arch.dramChannels,
      bankBytes: arch.dramPerChannel,
      note:
        `estimate: buffers interleaved over ${arch.dramChannels} DRAM channels take ` +
        `size / ${arch.dramChannels} of each at their address (page rounding not on the wire)`,
    };
  return {
    banks: arch.workerCores,
    bankBytes: arch.l1PerCore,
    note:
      `estimate: one L1 bank per worker core (${arch.workerCores}); interleaved buffers take ` +
      `size / ${arch.workerCores} of each bank at their address, a CB its whole size`,
  };
}

/** The objects placed on the bank's address space, each [start, end), with the figures. */
interface Placed {
  start: Float64Array;
  end: Float64Array;
  pid: Int32Array;
  n: number;
  /** The highest end. */
  hi: number;
  /** Objects ending beyond the bank. */
  beyond: number;
  byKind: { objects: number; per_bank_bytes: number }[];
  perPid: Map<number, number>;
}

/** What to place from a table: its rows' kind index in the map (-1: not in this map), or all. */
export type KindOf = ((type: number) => number) | number;

/** The kinds of each map, in the order of its by_kind. */
export const SPACE_KINDS: Record<MapSpace, readonly string[]> = {
  DRAM: ['DRAM', 'TRACE'],
  L1: ['L1', 'L1_SMALL', 'CB'],
};

/** The tables a map reads, each with its rows' kind (index in SPACE_KINDS). */
export function tablesOf(tr: Tracker, space: MapSpace): [ObjectTable, KindOf][] {
  const types = SPACE_TYPES[space];
  const tables: [ObjectTable, KindOf][] = [[tr.buffers, (type) => types.indexOf(type)]];
  if (space === 'L1') tables.push([tr.cbs, SPACE_KINDS.L1.indexOf('CB')]);
  return tables;
}

/**
 * Each object of `device` a map places, with its kind and its extent in the bank: CBs are per
 * core and take their size; buffers are interleaved over the banks.
 */
export function forEachPlaced(
  tables: [ObjectTable, KindOf][],
  device: number,
  m: Model,
  fn: (pg: Int32Array, b: number, kind: number, extent: number) => void,
): void {
  for (const [t, kindOf] of tables) {
    const divisor = typeof kindOf === 'number' ? 1 : m.banks;
    for (let e0 = 0; e0 < t.count; e0 += PAGE_ROWS) {
      const pg = t.rowPage(e0 / PAGE_ROWS);
      const rows = Math.min(PAGE_ROWS, t.count - e0);
      for (let r = 0, b = 0; r < rows; r++, b += ROW_WORDS) {
        if (rowDevice(pg, b) !== device) continue;
        const k = typeof kindOf === 'number' ? kindOf : kindOf(rowType(pg, b));
        if (k >= 0) fn(pg, b, k, Math.max(1, Math.ceil(rowSize(pg, b) / divisor)));
      }
    }
  }
}

/** The range of a map: the bank, or up to its highest object (bank unknown or overflowed). */
export function rangeEndOf(hi: number, m: Model): number {
  return Math.max(hi, m.bankBytes ?? 0);
}

function place(tables: [ObjectTable, KindOf][], o: MapOptions, m: Model, kinds: number): Placed {
  let cap = 0;
  for (const [t] of tables) cap += t.count;
  const p: Placed = {
    start: new Float64Array(cap),
    end: new Float64Array(cap),
    pid: new Int32Array(cap),
    n: 0,
    hi: 0,
    beyond: 0,
    byKind: Array.from({ length: kinds }, () => ({ objects: 0, per_bank_bytes: 0 })),
    perPid: new Map(),
  };
  let lastPid = -1,
    lastBytes = 0;
  const flushPid = () => {
    if (lastPid >= 0) p.perPid.set(lastPid, (p.perPid.get(lastPid) ?? 0) + lastBytes);
  };
  // The walk of forEachPlaced, written out: through a callback it cost ~15% of a 1 M map.
  for (const [t, kindOf] of tables) {
    const divisor = typeof kindOf === 'number' ? 1 : m.banks;
    for (let e0 = 0; e0 < t.count; e0 += PAGE_ROWS) {
      const pg = t.rowPage(e0 / PAGE_ROWS);
      const rows = Math.min(PAGE_ROWS, t.count - e0);
      for (let r = 0, b = 0; r < rows; r++, b += ROW_WORDS) {
        if (rowDevice(pg, b) !== o.device) continue;
        const k = typeof kindOf === 'number' ? kindOf : kindOf(rowType(pg, b));
        if (k < 0) continue;
        const extent = Math.max(1, Math.ceil(rowSize(pg, b) / divisor));
        const start = rowAddr(pg, b);
        const end = start + extent;
        const i = p.n++;
        p.start[i] = start;
        p.end[i] = end;
        const pid = rowPid(pg, b);
        p.pid[i] = pid;
        if (end > p.hi) p.hi = end;
        if (m.bankBytes !== null && end > m.bankBytes) p.beyond++;
        p.byKind[k].objects++;
        p.byKind[k].per_bank_bytes += extent;
        if (pid !== lastPid) {
          flushPid();
          lastPid = pid;
          lastBytes = 0;
        }
        lastBytes += extent;
      }
    }
  }
  flushPid();
  return p;
}

export function buildMemoryMap(tr: Tracker, o: MapOptions): MemoryMapResponse {
  const m = modelOf(o.space, o.arch);
  const kinds = SPACE_KINDS[o.space];
  const p = place(tablesOf(tr, o.space), o, m, kinds.length);
  const rangeEnd = rangeEndOf(p.hi, m);
  const owners = [...p.perPid].sort((a, b) => b[1] - a[1]).slice(0, MAX_OWNERS);

  const sweep = sweepOf(p, rangeEnd, Math.max(1, Math.min(o.bins, 4096)));
  const ownerBins = ownersPerBin(
    p,
    owners.map(([pid]) => pid),
    rangeEnd,
    sweep.used.length,
  );
  const binWidth = rangeEnd / sweep.used.length;
  const largest = sweep.gaps[0] ?? null;
  return {
    schema_version: SCHEMA_VERSION,
    device: o.device,
    memory: o.space,
    arch: o.arch ? o.arch.name : null,
    model: { banks: m.banks, bank_bytes: m.bankBytes, estimate: true, note: m.note },
    range: { start: 0, end: rangeEnd },
    objects: p.n,
    by_kind: Object.fromEntries(kinds.map((k, i) => [k, p.byKind[i]])),
    used_per_bank_bytes: sweep.covered,
    free_per_bank_bytes: rangeEnd - sweep.covered,
    largest_free:
      largest === null
        ? null
        : { start: largest.start, size: largest.size, interleaved_bytes: largest.size * m.banks },
    gaps: sweep.gaps,
    gap_count: sweep.gapCount,
    overlap: { per_bank_bytes: sweep.overlapped, objects: sweep.overlapObjects },
    beyond_bank: p.beyond,
    owners: owners.map(([pid, bytes]) => ({
      pid,
      command: o.commandOf?.(pid) ?? null,
      per_bank_bytes: bytes,
    })),
    bins: Array.from(sweep.used, (used, b) => ({
      start: Math.floor(b * binWidth),
      used: Math.min(1, used / binWidth),
      owner: ownerBins[b],
    })),
  };
}

/**
 * `keys` sorted ascending. Addresses per bank are below 2^32: a two-pass radix sort of 16 bits,
 * ~10× faster here than TypedArray.prototype.sort (docs/performance.md); larger keys (a flat
 * space of unknown capacity) take the built-in sort.
 */
function sorted(keys: Float64Array, hi: number): Float64Array | Uint32Array {
  if (hi > 0xffffffff) return keys.slice().sort();
  const n = keys.length;
  const a = Uint32Array.from(keys),
    tmp = new Uint32Array(n),
    count = new Uint32Array(65537);
  for (const shift of [0, 16]) {
    const src = shift === 0 ? a : tmp,
      dst = shift === 0 ? tmp : a;
    count.fill(0);
    for (let i = 0; i < n; i++) count[((src[i] >>> shift) & 0xffff) + 1]++;
    for (let d = 0; d < 65536; d++) count[d + 1] += count[d];
    for (let i = 0; i < n; i++) dst[count[(src[i] >>> shift) & 0xffff]++] = src[i];
  }
  return a;
}

interface Sweep {
  covered: number;
  overlapped: number;
  overlapObjects: number;
  /** The largest gaps, largest first. */
  gaps: { start: number; size: number }[];
  gapCount: number;
  /** Covered bytes per bin. */
  used: Float64Array;
}

/** Union, gaps and overlaps of the placed objects over [0, rangeEnd), and coverage per bin. */
function sweepOf(p: Placed, rangeEnd: number, bins: number): Sweep {
  const starts = sorted(p.start.subarray(0, p.n), p.hi);
  const ends = sorted(p.end.subarray(0, p.n), p.hi);
  const used = new Float64Array(bins);
  const binWidth = rangeEnd / bins;
  const s: Sweep = { covered: 0, overlapped: 0, overlapObjects: 0, gaps: [], gapCount: 0, used };
  const addCovered = (a: number, b: number) => {
    s.covered += b - a;
    for (let x = a; x < b;) {
      const bin = Math.min(bins - 1, Math.floor(x / binWidth));
      let edge = bin === bins - 1 ? b : Math.min(b, (bin + 1) * binWidth);
      if (edge <= x) edge = b; // rounding at a bin edge
      used[bin] += edge - x;
      x = edge;
    }
  };
  const addGap = (a: number, b: number) => {
    if (b <= a) return;
    s.gapCount++;
    const g = { start: a, size: b - a };
    const at = s.gaps.findIndex((x) => x.size < g.size);
    if (at >= 0) s.gaps.splice(at, 0, g);
    else s.gaps.push(g);
    if (s.gaps.length > MAX_GAPS) s.gaps.pop();
  };
  let depth = 0,
    i = 0,
    j = 0,
    last = 0;
  while (i < p.n || j < ends.length) {
    // ends before starts at the same address: touching objects do not overlap
    const isStart = i < p.n && starts[i] < ends[j];
    const x = isStart ? starts[i] : ends[j];
    if (depth === 0) addGap(last, x);
    else addCovered(last, x);
    if (depth >= 2) s.overlapped += x - last;
    if (isStart) {
      if (depth >= 1) s.overlapObjects++;
      depth++;
      i++;
    } else {
      depth--;
      j++;
    }
    last = x;
  }
  addGap(last, rangeEnd);
  return s;
}

/** The owner (index in `pids`, -1 other, null empty) holding the most bytes of each bin. */
function ownersPerBin(
  p: Placed,
  pids: number[],
  rangeEnd: number,
  bins: number,
): (number | null)[] {
  const slot = new Map(pids.map((pid, i) => [pid, i]));
  const lanes = pids.length + 1; // the last lane is "other"
  const bytes = new Float64Array(bins * lanes);
  const full = new Float64Array((bins + 1) * lanes); // difference array of fully covered bins
  const w = rangeEnd / bins;
  for (let i = 0; i < p.n; i++) {
    const lane = slot.get(p.pid[i]) ?? lanes - 1;
    const a = p.start[i],
      b = p.end[i];
    const ba = Math.min(bins - 1, Math.floor(a / w)),
      bb = Math.min(bins - 1, Math.floor(b / w));
    if (ba === bb) {
      bytes[ba * lanes + lane] += b - a;
      continue;
    }
    bytes[ba * lanes + lane] += (ba + 1) * w - a;
    bytes[bb * lanes + lane] += b - bb * w;
    full[(ba + 1) * lanes + lane] += 1;
    full[bb * lanes + lane] -= 1;
  }
  const out: (number | null)[] = [];
  const run = new Float64Array(lanes);
  for (let bin = 0; bin < bins; bin++) {
    let best = -1,
      bestBytes = 0;
    for (let l = 0; l < lanes; l++) {
      run[l] += full[bin * lanes + l];
      const v = bytes[bin * lanes + l] + run[l] * w;
      if (v > bestBytes) {
        bestBytes = v;
        best = l;
      }
    }
    out.push(best < 0 ? null : best === lanes - 1 ? -1 : best);
  }
  return out;
}
