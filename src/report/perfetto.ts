// The timeline export: Chrome trace-event JSON (the format ui.perfetto.dev and chrome://tracing
// open). Each buffer's lifetime is an async slice on its device's track (allocated → freed, or
// → now while live, or → the owner's exit for what exited processes left behind); counter
// tracks give each device's bytes per memory type and each process's bytes over time; marks are
// instant events. Lifetimes come from the live table (allocation times), the ring of recent frees
// (state/freed-ring.ts) and the left-behind records, so the counters add up to the slices shown.
//
// Streamed in chunks with back-pressure; memory is bounded by what the state holds (one copy of
// the live table, typed arrays of the lifetimes, and at most MAX_BUCKETS counter samples).
import type { ServerResponse } from 'node:http';
import { BUFFER_TYPE_NAMES, NUM_BUFFER_TYPES, PID_LIMIT, TWO32 } from '../protocol/constants.js';
import type { Tracker } from '../state/tracker.js';
import type { Mark } from '../state/marks.js';
import {
  PAGE_ROWS,
  ROW_WORDS,
  rowAddr,
  rowBornMs,
  rowDevice,
  rowPid,
} from '../state/object-table.js';
import { rowSize, rowType } from '../state/object-table.js';
import { formatBytes } from './format.js';
import { drainedOrGone, nextTurn } from './json-report.js';

/** Counter samples per track at most (the counters' time resolution is the window over this). */
const MAX_BUCKETS = 20_000;
/** Events per written chunk. */
const CHUNK = 4096;
/**
 * Counter names: Perfetto names a track "<event name> <arg key>" ("bytes DRAM", "device memory
 * bytes"); chrome://tracing shows the event name with one series per key.
 */
const DEVICE_COUNTER = 'bytes';
const PROCESS_COUNTER = 'device memory';
/** Track ids of devices, apart from real PIDs that carry the per-process counters. */
const DEVICE_TRACK_BASE = 1 << 30;

export interface ExportOptions {
  /** Lifetimes that ended before this are left out; null: everything held. */
  sinceMs: number | null;
  marks: readonly Mark[];
  archOf: (device: number) => string | null;
  commandOf: (pid: number) => string | null;
  nowMs: number;
}

/** Every lifetime of the export, column by column. */
export class Lifetimes {
  n = 0;
  device: Int32Array;
  type: Int32Array;
  pid: Int32Array;
  /** 0 freed, 1 live, 2 left behind by an exited process. */
  state: Uint8Array;
  size: Float64Array;
  addr: Float64Array;
  born: Float64Array;
  end: Float64Array;
  constructor(cap: number) {
    this.device = new Int32Array(cap);
    this.type = new Int32Array(cap);
    this.pid = new Int32Array(cap);
    this.state = new Uint8Array(cap);
    this.size = new Float64Array(cap);
    this.addr = new Float64Array(cap);
    this.born = new Float64Array(cap);
    this.end = new Float64Array(cap);
  }
}

export const STATES = ['freed', 'live', 'left_behind'];

export function collect(tr: Tracker, o: Pick<ExportOptions, 'sinceMs' | 'nowMs'>): Lifetimes {
  const live = tr.buffers;
  const exited = tr.reaped;
  let cap = live.count + tr.freed.count;
  for (const p of exited) cap += p.rows.length / ROW_WORDS;
  const l = new Lifetimes(cap);
  const since = o.sinceMs ?? -Infinity;
  const add = (pg: Int32Array, b: number, state: number, end: number) => {
    if (end < since) return;
    const i = l.n++;
    l.device[i] = rowDevice(pg, b);
    l.type[i] = rowType(pg, b);
    l.pid[i] = rowPid(pg, b);
    l.state[i] = state;
    l.size[i] = rowSize(pg, b);
    l.addr[i] = rowAddr(pg, b);
    l.born[i] = rowBornMs(pg, b);
    l.end[i] = end;
  };
  for (let e0 = 0; e0 < live.count; e0 += PAGE_ROWS) {
    const pg = live.rowPage(e0 / PAGE_ROWS);
    const rows = Math.min(PAGE_ROWS, live.count - e0);
    for (let r = 0; r < rows; r++) add(pg, r * ROW_WORDS, 1, o.nowMs);
  }
  for (const p of exited)
    for (let b = 0; b < p.rows.length; b += ROW_WORDS) add(p.rows, b, 2, p.reapedAtMs);
  tr.freed.forEach((f) => {
    if (f.endMs < since) return;
    const i = l.n++;
    l.device[i] = f.device;
    l.type[i] = f.type;
    l.pid[i] = f.pid;
    l.state[i] = 0;
    l.size[i] = f.size;
    l.addr[i] = f.hi * TWO32 + f.lo;
    l.born[i] = f.bornMs;
    l.end[i] = f.endMs;
  });
  return l;
}

/** From when the lifetimes from `from` on are all there: the ring dropped the frees before it. */
export function completeFromMs(tr: Tracker, from: number): number {
  const oldestFree = tr.freed.oldestEndMs();
  return tr.freed.recorded > tr.freed.count && oldestFree !== null
    ? Math.max(from, oldestFree)
    : from;
}

/** Trace-event time: µs, from ms. */
const us = (ms: number) => Math.round(ms * 1000);

interface Counters {
  from: number;
  width: number;
  buckets: number;
  /** Per device × buffer type, the bytes at the end of each bucket. */
  deviceTracks: { device: number; levels: Float64Array[] }[];
  processTracks: { pid: number; levels: Float64Array }[];
}

/** Levels over time from the lifetimes: +size at birth, −size at the end (difference arrays). */
function countersOf(l: Lifetimes, from: number, to: number): Counters {
  const buckets = Math.max(1, Math.min(MAX_BUCKETS, Math.ceil(to - from)));
  const width = Math.max(1e-9, (to - from) / buckets);
  const bucket = (t: number) => Math.min(buckets - 1, Math.max(0, Math.floor((t - from) / width)));
  const devices = new Map<number, Float64Array[]>();
  const procBytes = new Map<number, number>();
  for (let i = 0; i < l.n; i++) procBytes.set(l.pid[i], (procBytes.get(l.pid[i]) ?? 0) + l.size[i]);
  // per-process counters for the 16 processes with the most bytes over the window (bounded tracks)
  const procs = [...procBytes]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 16)
    .map(([pid]) => pid);
  const procIndex = new Map(procs.map((p, i) => [p, i]));
  const procDiff = procs.map(() => new Float64Array(buckets + 1));
  for (let i = 0; i < l.n; i++) {
    let d = devices.get(l.device[i]);
    if (!d)
      devices.set(l.device[i], (d = BUFFER_TYPE_NAMES.map(() => new Float64Array(buckets + 1))));
    const diff = d[l.type[i] < NUM_BUFFER_TYPES ? l.type[i] : 0];
    const a = bucket(l.born[i]);
    diff[a] += l.size[i];
    const p = procIndex.get(l.pid[i]);
    if (p !== undefined) procDiff[p][a] += l.size[i];
    if (l.state[i] !== 1) {
      const b = bucket(l.end[i]);
      diff[b] -= l.size[i];
      if (p !== undefined) procDiff[p][b] -= l.size[i];
    }
  }
  const integrate = (diff: Float64Array) => {
    for (let b = 1; b <= buckets; b++) diff[b] += diff[b - 1];
    return diff;
  };
  return {
    from,
    width,
    buckets,
    deviceTracks: [...devices]
      .sort((a, b) => a[0] - b[0])
      .map(([device, levels]) => ({ device, levels: levels.map(integrate) })),
    processTracks: procs.map((pid, i) => ({ pid, levels: integrate(procDiff[i]) })),
  };
}

/** Writes `text`; waits while the reader is behind. False when it went away. */
async function put(res: ServerResponse, text: string): Promise<boolean> {
  if (!res.write(text)) await drainedOrGone(res);
  else await nextTurn();
  return !res.destroyed;
}

export async function streamPerfetto(
  res: ServerResponse,
  tr: Tracker,
  o: ExportOptions,
): Promise<void> {
  const l = collect(tr, o);
  let from = o.sinceMs ?? o.nowMs;
  if (o.sinceMs === null) for (let i = 0; i < l.n; i++) if (l.born[i] < from) from = l.born[i];
  const completeFrom = completeFromMs(tr, from);
  const c = countersOf(l, from, o.nowMs);
  res.writeHead(200, {
    'content-type': 'application/json',
    'content-disposition': 'attachment; filename="ttalloc-trace.json"',
  });
  const meta = {
    exporter: 'ttalloc',
    exported_at_ms: o.nowMs,
    from_ms: from,
    // frees before this were dropped by the ring (--timeline-events): slices there are missing
    complete_from_ms: completeFrom,
    lifetimes: l.n,
    frees_recorded: tr.freed.recorded,
    frees_kept: tr.freed.count,
  };
  const head: string[] = [];
  for (const t of c.deviceTracks) {
    const arch = o.archOf(t.device);
    const name = `Device ${t.device}${arch ? ` (${arch})` : ''}`;
    head.push(metaEvent(DEVICE_TRACK_BASE + t.device, name, t.device));
  }
  for (const p of c.processTracks) {
    const cmd = o.commandOf(p.pid);
    head.push(metaEvent(p.pid, `PID ${p.pid}${cmd ? ` ${cmd}` : ''}`, 1000 + p.pid));
  }
  for (const m of o.marks)
    head.push(
      JSON.stringify({ ph: 'i', s: 'g', name: `mark ${m.name}`, ts: us(m.atMs), pid: 0, tid: 0 }),
    );
  if (!(await put(res, `{"otherData":${JSON.stringify(meta)},"traceEvents":[${head.join(',')}`)))
    return;
  let first = head.length === 0;
  const sep = () => {
    const s = first ? '' : ',';
    first = false;
    return s;
  };
  // Counters: one sample per bucket where a level changed.
  const counter = async (
    pid: number,
    levels: Float64Array[],
    keys: readonly string[],
    name = DEVICE_COUNTER,
  ) => {
    let text = '';
    for (let b = 0; b < c.buckets; b++) {
      if (b > 0 && levels.every((lv) => lv[b] === lv[b - 1])) continue;
      const args = keys.map((n, k) => `"${n}":${levels[k][b]}`).join(',');
      const ts = us(c.from + b * c.width);
      text += `${sep()}{"ph":"C","name":"${name}","pid":${pid},"ts":${ts},"args":{${args}}}`;
      if (text.length > 1 << 16) {
        if (!(await put(res, text))) return false;
        text = '';
      }
    }
    return !text || (await put(res, text));
  };
  for (const t of c.deviceTracks)
    if (!(await counter(DEVICE_TRACK_BASE + t.device, t.levels, BUFFER_TYPE_NAMES))) return;
  for (const p of c.processTracks)
    if (!(await counter(p.pid, [p.levels], ['bytes'], PROCESS_COUNTER))) return;
  // Slices: an async begin/end pair per lifetime, on its device's track, in a thread per owner
  // PID (chrome://tracing draws a thread's async slices as its rows; Perfetto groups them under
  // the device). One name per (device, owner) thread, written after the slices.
  const owners = new Set<number>();
  let lastOwner = -1;
  for (let start = 0; start < l.n; start += CHUNK) {
    let text = '';
    const end = Math.min(l.n, start + CHUNK);
    for (let i = start; i < end; i++) {
      const type = BUFFER_TYPE_NAMES[l.type[i]] ?? String(l.type[i]);
      const name = `${type} ${formatBytes(l.size[i])}`;
      const pid = DEVICE_TRACK_BASE + l.device[i];
      const owner = l.device[i] * PID_LIMIT + l.pid[i];
      if (owner !== lastOwner) owners.add((lastOwner = owner));
      const id = `"0x${i.toString(16)}"`;
      const args =
        `{"address":"0x${l.addr[i].toString(16)}","size":${l.size[i]},"pid":${l.pid[i]},` +
        `"state":"${STATES[l.state[i]]}"}`;
      text +=
        `${sep()}{"ph":"b","cat":"${type}","name":"${name}","id":${id},"pid":${pid},` +
        `"tid":${l.pid[i]},"ts":${us(Math.max(from, l.born[i]))},"args":${args}},` +
        `{"ph":"e","cat":"${type}","name":"${name}","id":${id},"pid":${pid},` +
        `"tid":${l.pid[i]},"ts":${us(l.end[i])}}`;
    }
    if (!(await put(res, text))) return;
  }
  const names: string[] = [];
  for (const owner of owners) {
    const pid = DEVICE_TRACK_BASE + Math.floor(owner / PID_LIMIT);
    const tid = owner % PID_LIMIT;
    const cmd = o.commandOf(tid);
    const args = { name: `PID ${tid}${cmd ? ` ${cmd}` : ''}` };
    names.push(`${sep()}${JSON.stringify({ ph: 'M', name: 'thread_name', pid, tid, args })}`);
  }
  res.end(`${names.join('')}]}\n`);
}

function metaEvent(pid: number, name: string, sortIndex: number): string {
  return (
    JSON.stringify({ ph: 'M', name: 'process_name', pid, tid: 0, args: { name } }) +
    ',' +
    JSON.stringify({
      ph: 'M',
      name: 'process_sort_index',
      pid,
      tid: 0,
      args: { sort_index: sortIndex },
    })
  );
}
