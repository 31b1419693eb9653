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
import { SCHEMA_VERSION } from '../../report/types.js';

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

/**
 * One device's fields as JSON: `dram.used` nests as `{dram: {used}}` (jq's `.dram.used`); the
 * timestamp fields are left to the record's own `time` and `time_ms`.
 */
function jsonRecord(
  fields: string[],
  d: StatsResponse['devices'][number],
  atMs: number,
): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const f of fields) {
    if (f === 'timestamp' || f === 'timestamp_ms') continue;
    const path = f.split('.');
    let at = o;
    for (const k of path.slice(0, -1)) at = (at[k] ??= {}) as Record<string, unknown>;
    at[path[path.length - 1]] = rawValue(f, d, atMs);
  }
  return o;
}

function render(
  style: Style,
  fields: string[],
  r: { devices: StatsResponse['devices']; atMs: number; units: Unit; round: number },
): string {
  if (style.kind !== 'csv') {
    const head = {
      schema_version: SCHEMA_VERSION,
      time: new Date(r.atMs).toISOString(),
      time_ms: r.atMs,
    };
    const rec = (d: StatsResponse['devices'][number]) => jsonRecord(fields, d, r.atMs);
    if (style.kind === 'ndjson')
      return r.devices.map((d) => JSON.stringify({ ...head, ...rec(d) }) + '\n').join('');
    return JSON.stringify({ ...head, devices: r.devices.map(rec) }, null, 2) + '\n';
  }
  const csv = { unit: r.units, nounits: style.nounits, atMs: r.atMs };
  return csvLines(
    style,
    fields.map((f) => header(f, r.units)),
    r.devices.map((d) => fields.map((f) => csvValue(f, d, csv))),
    r.round,
  );
}
