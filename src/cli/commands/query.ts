// `ttalloc query`: per-device figures as nvidia-smi's --query-gpu gives them — chosen fields,
// CSV (noheader, nounits), JSON or NDJSON, once or every -l SECONDS (report/query-fields.ts).
import { Command } from 'commander';
import { action, clientFor, listArg, socketOption } from '../common.js';
import {
  countOption,
  csvLines,
  loopOption,
  parseFormat,
  rounds,
  unitsOption,
  type Style,
} from '../output-format.js';
import {
  DEFAULT_FIELDS,
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

export function queryCommand(): Command {
  return new Command('query')
    .description(
      'per-device memory figures like `nvidia-smi --query-gpu`: chosen fields as CSV, JSON ' +
        'or NDJSON, once or in a loop',
    )
    .option('--fields <list>', `comma-separated fields (default ${DEFAULT_FIELDS.join(',')})`)
    .option('--help-fields', 'list every field with its meaning')
    .option('--format <format>', 'csv[,noheader][,nounits], json or ndjson', 'csv')
    .addOption(unitsOption())
    .addOption(loopOption())
    .addOption(countOption())
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
        await rounds(o, async (round) => {
          const s = await client.json<StatsResponse>('GET', '/v1/stats');
          const atMs = Date.now();
          const devices = s.devices.filter((d) => !only || only.includes(d.device));
          process.stdout.write(render(style, fields, { devices, atMs, units: o.units, round }));
        });
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
  const csv = { unit: r.units, nounits: style.nounits, atMs: r.atMs };
  return csvLines(
    style,
    fields.map((f) => header(f, r.units)),
    r.devices.map((d) => fields.map((f) => csvValue(f, d, csv))),
    r.round,
  );
}
