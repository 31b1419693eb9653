// Small control commands: stats, reset, stop.
import { Command } from 'commander';
import { action, clientFor, intArg, socketOption } from '../common.js';
import { renderStats } from '../../report/stats-text.js';
import type {
  ForgetResponse,
  ResetResponse,
  ShutdownResponse,
  StatsResponse,
} from '../../report/types.js';

export function statsCommand(): Command {
  return new Command('stats')
    .description('show server statistics: frames, connections, unknown frees, usage per device')
    .addOption(socketOption())
    .option('--json', 'machine-readable output')
    .action(
      action(async (o: { socket?: string; json?: boolean }) => {
        const s = await clientFor(o).json<StatsResponse>('GET', '/v1/stats');
        process.stdout.write(o.json ? JSON.stringify(s, null, 2) + '\n' : renderStats(s));
      }),
    );
}

export function resetCommand(): Command {
  return new Command('reset')
    .description('forget all tracked state on the server (needs --yes)')
    .addOption(socketOption())
    .option('-y, --yes', 'confirm: really forget every tracked buffer')
    .action(
      action(async (o: { socket?: string; yes?: boolean }) => {
        if (!o.yes)
          throw new Error('reset forgets every tracked buffer; run again with --yes to confirm');
        const r = await clientFor(o).json<ResetResponse>('POST', '/v1/reset', {
          confirm: true,
        });
        process.stdout.write(`state reset: ${r.buffersForgotten} buffers forgotten\n`);
      }),
    );
}

export function forgetCommand(): Command {
  return new Command('forget')
    .description(
      'forget the records of what exited processes left behind ' +
        '(all of them, or those matching --before / --pid)',
    )
    .addOption(socketOption())
    .option('--before <mark|time>', 'only processes that exited before this mark or ISO 8601 time')
    .option('--pid <pid>', 'only this exited process', intArg('--pid', 1))
    .action(
      action(async (o: { socket?: string; before?: string; pid?: number }) => {
        const r = await clientFor(o).json<ForgetResponse>('POST', '/v1/forget', {
          before: o.before,
          pid: o.pid,
        });
        process.stdout.write(
          `forgot ${r.records} left-behind records of ${r.processes} exited processes\n`,
        );
      }),
    );
}

export function stopCommand(): Command {
  return new Command('stop')
    .description('stop the running server cleanly (final statistics, socket removed)')
    .addOption(socketOption())
    .action(
      action(async (o: { socket?: string }) => {
        const r = await clientFor(o).json<ShutdownResponse>('POST', '/v1/shutdown');
        process.stdout.write(`server ${r.pid} is stopping\n`);
      }),
    );
}
