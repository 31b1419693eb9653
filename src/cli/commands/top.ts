// `ttalloc top`: the live terminal monitor (src/ui/top), or one frame of it with --once/--json.
import { Command, InvalidArgumentError } from 'commander';
import { action, clientFor, socketOption } from '../common.js';
import { fetchTopData } from '../../ui/top/model.js';
import { initialView, renderLines, lineText } from '../../ui/top/render.js';
import { colorWanted, runTop } from '../../ui/top/app.js';
import { SCHEMA_VERSION } from '../../report/types.js';

function intervalArg(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0.1)
    throw new InvalidArgumentError('--interval must be a number of seconds ≥ 0.1');
  return n;
}

export function topCommand(): Command {
  return new Command('top')
    .description(
      'live terminal monitor: memory per device (DRAM, L1 and their parts) and per process, ' +
        'like nvtop',
    )
    .addOption(socketOption())
    .option('-i, --interval <seconds>', 'refresh interval', intervalArg, 1)
    .option('--once', 'print one frame and exit (for scripts)')
    .option('--json', 'print the same data once as JSON and exit')
    .addHelpText(
      'after',
      [
        '',
        'Keys: q, Ctrl-C  quit',
        '      ↑ ↓, j k   scroll the processes one at a time; PgUp PgDn (space) a page;',
        '                 Home End (g G) the first or the last',
        '      d l s t c b p n  sort by DRAM, L1, L1_SMALL, TRACE, CB, buffers, PID, name',
        '                 (again: reverse); r reverse',
        '      f 0-9 a    next device, that device, all devices',
        'Bars: the level against the capacity; │ marks the peak since start (or reset-peaks).',
        'Sparklines: each sample interval’s peak against the capacity, so buffers that live',
        'less than an interval still show. NO_COLOR=1 turns colours off.',
      ].join('\n'),
    )
    .action(
      action(async (o: { socket?: string; interval: number; once?: boolean; json?: boolean }) => {
        const client = clientFor(o);
        if (o.json) {
          process.stdout.write(
            JSON.stringify(
              { schema_version: SCHEMA_VERSION, ...(await fetchTopData(client)) },
              null,
              2,
            ) + '\n',
          );
          return;
        }
        if (o.once || !process.stdout.isTTY || !process.stdin.isTTY) {
          const data = await fetchTopData(client);
          const width = process.stdout.columns || Number(process.env.COLUMNS) || 120;
          const lines = renderLines(
            data,
            { ...initialView(), socket: client.socketPath },
            width,
            Infinity,
          );
          // The layout fits `width`; into a pipe or a file no line is cut (a terminal would wrap).
          const cut = process.stdout.isTTY ? width : Infinity;
          const color = colorWanted(process.stdout);
          process.stdout.write(
            lines.map((l) => lineText(l, cut, color).trimEnd()).join('\n') + '\n',
          );
          return;
        }
        await runTop(client, o.interval * 1000);
        process.exit(0);
      }),
    );
}
