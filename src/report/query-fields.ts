// `ttalloc query --fields …`: per-device fields in the manner of `nvidia-smi --query-gpu`, each
// with its unit and a one-line meaning, computed from /v1/stats' devices. Every figure is the
// same memory in numerator and denominator: `l1.util` is what sits in L1 SRAM (L1 and L1_SMALL
// buffers, CBs, kernels) over the L1 capacity; SYSTEM_MEMORY is host memory and has its own
// field, never folded into L1.
import type { DeviceBytes, DeviceStats } from './types.js';

export type Unit = 'B' | 'KiB' | 'MiB' | 'GiB';
export const UNITS: Record<Unit, number> = { B: 1, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30 };

type Value = number | string | boolean | null;

interface Field {
  help: string;
  kind: 'bytes' | 'percent' | 'count' | 'text';
  /** `atMs`: when the figures were taken. */
  get: (d: DeviceStats, atMs: number) => Value;
}

/** What sits in L1 SRAM: L1 and L1_SMALL buffers, circular buffers and kernel binaries. */
const inL1 = (b: DeviceBytes) => b.L1 + b.L1_SMALL + b.CB + b.KERNEL;
const pct = (used: number, total: number | null) =>
  total === null || total === 0 ? null : Math.round((1e4 * used) / total) / 100;
const free = (used: number, total: number | null) => (total === null ? null : total - used);

/** `<kind>.used` and `<kind>.peak` per memory kind: [field prefix, DeviceBytes key, meaning]. */
const KINDS: [string, keyof DeviceBytes, string][] = [
  ['dram', 'DRAM', 'DRAM buffers'],
  ['trace', 'TRACE', 'TRACE buffers (in DRAM)'],
  ['l1', 'L1', 'L1 buffers'],
  ['l1_small', 'L1_SMALL', 'L1_SMALL buffers'],
  ['cb', 'CB', 'circular buffers (in L1)'],
  ['kernel', 'KERNEL', 'kernel binaries (in L1)'],
  ['system_memory', 'SYSTEM_MEMORY', 'SYSTEM_MEMORY buffers: host memory, not on the device'],
];
const kindFields: Record<string, Field> = Object.fromEntries(
  KINDS.flatMap(([prefix, key, what]): [string, Field][] => [
    [`${prefix}.used`, { help: what, kind: 'bytes', get: (d) => d.bytes[key] }],
    [
      `${prefix}.peak`,
      {
        help: `highest ${what} since start or reset-peaks`,
        kind: 'bytes',
        get: (d) => d.peak_bytes[key],
      },
    ],
  ]),
);

export const FIELDS: Record<string, Field> = {
  timestamp: {
    help: 'when the figures were taken (ISO 8601, UTC, ms; JSON records carry it as time)',
    kind: 'text',
    get: (_d, t) => new Date(t).toISOString(),
  },
  timestamp_ms: { help: 'the same, ms since the epoch', kind: 'count', get: (_d, t) => t },
  device: {
    help: 'device id (a chip, as tt-metal numbers them)',
    kind: 'count',
    get: (d) => d.device,
  },
  arch: {
    help: 'architecture, or empty when nobody declared the device',
    kind: 'text',
    get: (d) => d.arch,
  },
  declared: {
    help: 'capacity known (declared or from the driver)',
    kind: 'text',
    get: (d) => d.declared,
  },
  ...kindFields,
  'dram.total': {
    help: 'DRAM capacity (empty: unknown)',
    kind: 'bytes',
    get: (d) => d.total_dram_bytes,
  },
  'dram.free': {
    help: 'DRAM capacity minus DRAM and TRACE buffers',
    kind: 'bytes',
    get: (d) => free(d.bytes.DRAM + d.bytes.TRACE, d.total_dram_bytes),
  },
  'dram.util': {
    help: 'DRAM and TRACE buffers over the DRAM capacity, %',
    kind: 'percent',
    get: (d) => pct(d.bytes.DRAM + d.bytes.TRACE, d.total_dram_bytes),
  },
  'l1.resident': {
    help: 'everything in L1 SRAM: L1 + L1_SMALL + CB + KERNEL',
    kind: 'bytes',
    get: (d) => inL1(d.bytes),
  },
  'l1.total': {
    help: 'L1 capacity, all worker cores (empty: unknown)',
    kind: 'bytes',
    get: (d) => d.total_l1_bytes,
  },
  'l1.free': {
    help: 'L1 capacity minus l1.resident',
    kind: 'bytes',
    get: (d) => free(inL1(d.bytes), d.total_l1_bytes),
  },
  'l1.util': {
    help: 'l1.resident over l1.total, %',
    kind: 'percent',
    get: (d) => pct(inL1(d.bytes), d.total_l1_bytes),
  },
  'buffers.count': {
    help: 'live buffers of every type',
    kind: 'count',
    get: (d) => Object.values(d.buffers).reduce((a, b) => a + b, 0),
  },
  'cbs.count': { help: 'live circular buffers', kind: 'count', get: (d) => d.cbs },
  'kernels.count': { help: 'loaded kernels', kind: 'count', get: (d) => d.kernels },
  'unknown_frees.count': {
    help: 'frees of buffers never seen allocated (tracking started late)',
    kind: 'count',
    get: (d) => d.unknown_frees,
  },
};

export const DEFAULT_FIELDS = [
  'device',
  'arch',
  'dram.used',
  'dram.total',
  'dram.util',
  'l1.resident',
  'l1.total',
  'l1.util',
  'buffers.count',
];

export class FieldError extends Error {}

/** "device,dram.used" → field names, each checked. */
export function parseFields(spec: string): string[] {
  const names = spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) throw new FieldError('--fields needs at least one field');
  for (const n of names)
    if (!(n in FIELDS))
      throw new FieldError(`unknown field '${n}' (ttalloc query --help-fields lists them)`);
  return names;
}

export function helpFields(): string {
  const w = Math.max(...Object.keys(FIELDS).map((k) => k.length));
  return (
    Object.entries(FIELDS)
      .map(([k, f]) => `${k.padEnd(w)}  ${f.help}${f.kind === 'bytes' ? ' (bytes)' : ''}`)
      .join('\n') + '\n'
  );
}

/** A field's header as nvidia-smi writes it: `dram.used [MiB]`. */
export function header(name: string, unit: Unit): string {
  const k = FIELDS[name].kind;
  return k === 'bytes' ? `${name} [${unit}]` : k === 'percent' ? `${name} [%]` : name;
}

/** A field's raw value: bytes as bytes (JSON), null when unknown. */
export function rawValue(name: string, d: DeviceStats, atMs: number): Value {
  return FIELDS[name].get(d, atMs);
}

export interface CsvStyle {
  unit: Unit;
  nounits: boolean;
  atMs: number;
}

/** A field's CSV text in `unit`, with the unit appended unless `nounits`. */
export function csvValue(name: string, d: DeviceStats, o: CsvStyle): string {
  const { unit, nounits } = o;
  const f = FIELDS[name];
  const v = f.get(d, o.atMs);
  if (v === null) return '';
  if (f.kind === 'bytes') return bytesIn(Number(v), unit, nounits);
  if (f.kind === 'percent') return nounits ? String(v) : `${v} %`;
  return String(v);
}

/** Bytes in `unit` for CSV (exact in B, else two decimals), with the unit unless `nounits`. */
export function bytesIn(bytes: number, unit: Unit, nounits: boolean): string {
  const text = unit === 'B' ? String(bytes) : (bytes / UNITS[unit]).toFixed(2);
  return nounits ? text : `${text} ${unit}`;
}

/** RFC 4180: quote a value holding a comma, a quote or a line break. */
export function csvCell(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
