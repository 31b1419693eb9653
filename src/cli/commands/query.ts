// `ttalloc query`: per-device figures as nvidia-smi's --query-gpu gives them — chosen fields,
// CSV (noheader, nounits), JSON or NDJSON, once or every -l SECONDS (report/query-fields.ts).
import { Command, Option } from 'commander';
import { action, clientFor, intArg, listArg, secondsArg, socketOption } from '../common.js';
import {
  DEFAULT_FIELDS,
  FieldError,
  UNITS,
  csvCell,
  csvValue,
  header,
  helpFields,
  parseFields,
  rawValue,
  type Unit,
} from '../../report/query-fields.js';
import type { StatsResponse } from '../../report/types.js';

interface Opts {
  fields?: string;
  format: string;
  units: Unit;
  loop?: number;
  count?: number;
  device?: string;
  helpFields?: boolean;
  socket?: string;
}

type Style =
  { kind: 'csv'; header: boolean; nounits: boolean } | { kind: 'json' } | { kind: 'ndjson' };

function parseFormat(spec: string): Style {
  const [kind, ...flags] = spec.split(',').map((s) => s.trim());
  if (kind === 'json' || kind === 'ndjson') {
    if (flags.length) throw new FieldError(`--format ${kind} takes no options`);
    return { kind };
  }
  if (kind !== 'csv')
    throw new FieldError(`--format must be csv[,noheader][,nounits], json or ndjson`);
  for (const f of flags)
    if (f !== 'noheader' && f !== 'nounits')
      throw new FieldError(`unknown csv option '${f}' (noheader, nounits)`);
  return { kind: 'csv', header: !flags.includes('noheader'), nounits: flags.includes('nounits') };
}

export function queryCommand(): Command {
  return new Command('query')
    .description(
      'per-device memory figures like `nvidia-smi --query-gpu`: chosen fields as CSV, JSON ' +
        'or NDJSON, once or in a loop',
    )
    .option('--fields <list>', `comma-separated fields (default ${DEFAULT_FIELDS.join(',')})`)
    .option('--help-fields', 'list every field with its meaning')
    .option('--format <format>', 'csv[,noheader][,nounits], json or ndjson', 'csv')
    .addOption(
      new Option('--units <unit>', 'unit of byte fields in CSV (JSON is always bytes)')
        .choices(Object.keys(UNITS))
        .default('MiB'),
    )
    .option(
      '-l, --loop <seconds>',
      'print again every SECONDS until interrupted',
      secondsArg('--loop'),
    )
    .option('-c, --count <n>', 'with --loop: stop after N rounds', intArg('--count', 1))
    .option('-d, --device <ids>', 'only these devices (comma-separated)', listArg('--device'))
    .addOption(socketOption())
    .action(
      action(async (o: Opts) => {
        if (o.helpFields) {
          process.stdout.write(helpFields());
          return;
        }
        const fields = parseFields(o.fields ?? DEFAULT_FIELDS.join(','));
        const style = parseFormat(o.format);
        const only = o.device?.split(',').map(Number);
        const client = clientFor(o);
        let stop = false;
        process.once('SIGINT', () => {
          stop = true;
        });
        for (let round = 0; !stop; round++) {
          const s = await client.json<StatsResponse>('GET', '/v1/stats');
          const atMs = Date.now();
          const devices = s.devices.filter((d) => !only || only.includes(d.device));
          process.stdout.write(render(style, fields, { devices, atMs, units: o.units, round }));
          if (o.loop === undefined || (o.count !== undefined && round + 1 >= o.count)) break;
          await new Promise((r) => setTimeout(r, o.loop! * 1000));
        }
      }),
    );
}

function render(
  style: Style,
  fields: string[],
  r: { devices: StatsResponse['devices']; atMs: number; units: Unit; round: number },
): string {
  const raw = (d: StatsResponse['devices'][number]) =>
    Object.fromEntries(fields.map((f) => [f, rawValue(f, d, r.atMs)]));
  if (style.kind !== 'csv') {
    if (style.kind === 'ndjson')
      return r.devices.map((d) => JSON.stringify(raw(d)) + '\n').join('');
    const doc = {
      schema_version: 1,
      timestamp: new Date(r.atMs).toISOString(),
      timestamp_ms: r.atMs,
      devices: r.devices.map(raw),
    };
    return JSON.stringify(doc, null, 2) + '\n';
  }
  const lines: string[] = [];
  if (style.header && r.round === 0) lines.push(fields.map((f) => header(f, r.units)).join(', '));
  const csv = { unit: r.units, nounits: style.nounits, atMs: r.atMs };
  for (const d of r.devices) lines.push(fields.map((f) => csvCell(csvValue(f, d, csv))).join(', '));
  return lines.map((l) => l + '\n').join('');
}
