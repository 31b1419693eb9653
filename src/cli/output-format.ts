// The output formats of the table commands (`query`, `ps`), as nvidia-smi spells them:
// csv[,noheader][,nounits], json, ndjson; and their loop (-l SECONDS, -c N) until interrupted.
import { Option } from 'commander';
import { UNITS, csvCell } from '../report/query-fields.js';
import { intArg, secondsArg } from './common.js';

export type Style =
  { kind: 'csv'; header: boolean; nounits: boolean } | { kind: 'json' | 'ndjson' };

export class FormatError extends Error {}

export function parseFormat(spec: string): Style {
  const [kind, ...flags] = spec.split(',').map((s) => s.trim());
  if (kind === 'json' || kind === 'ndjson') {
    if (flags.length) throw new FormatError(`--format ${kind} takes no options`);
    return { kind };
  }
  if (kind !== 'csv')
    throw new FormatError('--format must be csv[,noheader][,nounits], json or ndjson');
  for (const f of flags)
    if (f !== 'noheader' && f !== 'nounits')
      throw new FormatError(`unknown csv option '${f}' (noheader, nounits)`);
  return { kind: 'csv', header: !flags.includes('noheader'), nounits: flags.includes('nounits') };
}

export function unitsOption(): Option {
  return new Option('--units <unit>', 'unit of byte fields in CSV (JSON is always bytes)')
    .choices(Object.keys(UNITS))
    .default('MiB');
}

/** `-l SECONDS`: the loop `rounds()` runs. */
export function loopOption(): Option {
  return new Option(
    '-l, --loop <seconds>',
    'print again every SECONDS until interrupted',
  ).argParser(secondsArg('--loop'));
}

/** `-c N`: with --loop, at most N rounds. */
export function countOption(): Option {
  return new Option('-c, --count <n>', 'with --loop: stop after N rounds').argParser(
    intArg('--count', 1),
  );
}

/** CSV lines: `header` once (round 0, unless noheader), then the rows; cells quoted as needed. */
export function csvLines(
  style: Extract<Style, { kind: 'csv' }>,
  header: string[],
  rows: string[][],
  round: number,
): string {
  const lines = style.header && round === 0 ? [header] : [];
  lines.push(...rows);
  return lines.map((l) => l.map(csvCell).join(', ') + '\n').join('');
}

/** Runs `once(round)` once, or every `loop` seconds (> 0; at most `count` rounds) until SIGINT. */
export async function rounds(
  o: { loop?: number; count?: number },
  once: (round: number) => Promise<void>,
): Promise<void> {
  let stop = false;
  process.once('SIGINT', () => {
    stop = true;
  });
  for (let round = 0; !stop; round++) {
    await once(round);
    // -l 0 is no loop, as secondsArg's message says (0 turns it off)
    if (!o.loop || (o.count !== undefined && round + 1 >= o.count)) break;
    await new Promise((r) => setTimeout(r, o.loop! * 1000));
  }
}
