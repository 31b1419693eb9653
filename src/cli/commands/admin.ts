// Small control commands: stats, reset, stop.
import { Command } from 'commander';
import { action, clientFor, intArg, socketOption } from '../common.js';
import { renderStats } from '../../report/stats-text.js';
import { ServerError } from '../../client/control-client.js';
import { startTicksOf } from '../../platform/processes.js';
import type {
  DataClient,
  ForgetResponse,
  ResetResponse,
  ShutdownRefusal,
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
        process.stdout.write(`state reset: ${r.buffers_forgotten} buffers forgotten\n`);
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
    .description(
      'stop the running server cleanly (final statistics, socket removed) and wait for it to ' +
        'exit; refuses while data clients are connected unless --force',
    )
    .addOption(socketOption())
    .option('--force', 'stop even with data clients connected (their connections close)')
    .option('--timeout <s>', 'how long to wait for the server to exit', intArg('--timeout', 1), 10)
    .action(
      action(async (o: { socket?: string; force?: boolean; timeout: number }) => {
        const r = await clientFor(o).raw('POST', '/v1/shutdown', { force: o.force === true });
        if (r.status === 409) throw new Error(refusalText(JSON.parse(r.body) as ShutdownRefusal));
        if (r.status !== 200) throw new ServerError(r.status, errorOf(r.body));
        const ok = JSON.parse(r.body) as ShutdownResponse;
        for (const c of ok.clients ?? [])
          process.stdout.write(`closing the connections of ${clientLine(c)}\n`);
        process.stdout.write(`server ${ok.pid} is stopping\n`);
        if (!(await exited(ok.pid, o.timeout * 1000)))
          throw new Error(`server ${ok.pid} did not exit within ${o.timeout} s`);
        process.stdout.write(`server ${ok.pid} has exited\n`);
      }),
    );
}

function errorOf(body: string): string {
  try {
    return (JSON.parse(body) as { error?: string }).error ?? body;
  } catch {
    return body;
  }
}

function clientLine(c: DataClient): string {
  const n = c.connections === 1 ? '1 connection' : `${c.connections} connections`;
  return `PID ${c.pid} (${c.command}, ${n})`;
}

function refusalText(r: ShutdownRefusal): string {
  return (
    `refusing to stop: ${r.clients.length} data client(s) connected:\n` +
    r.clients.map((c) => `  ${clientLine(c)}\n`).join('') +
    'Stopping closes their connections, and a C++ client (it sends without MSG_NOSIGNAL) ' +
    'dies of SIGPIPE on its next report.\n' +
    '`ttalloc restart` replaces the server without closing them (no event lost); or stop the ' +
    'clients first, or run `ttalloc stop --force`.'
  );
}

/** Waits until `pid` has exited (gone, or a zombie), polling /proc; false after `timeoutMs`. */
export async function exited(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (startTicksOf(pid) >= 0) {
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}
