#!/usr/bin/env node
// ttalloc: one CLI, one subcommand per job. `allocation-server` and `dump-remaining-buffers` are
// the names the seed's users type; they map onto `server` and `dump`.
import { Command } from 'commander';
import { fileURLToPath } from 'node:url';
import { realpathSync } from 'node:fs';
import { serverCommand } from './commands/server.js';
import { dumpCommand, dumpKernelsCommand } from './commands/dump.js';
import { forgetCommand, resetCommand, statsCommand, stopCommand } from './commands/admin.js';
import { demoCommand } from './commands/demo.js';
import {
  checkCommand,
  diffCommand,
  leaksCommand,
  markCommand,
  marksCommand,
  unmarkCommand,
} from './commands/leaks.js';
import { topCommand } from './commands/top.js';
import { runCommand } from './commands/run.js';
import { peaksCommand, resetPeaksCommand } from './commands/peaks.js';
import { mapCommand } from './commands/map.js';
import { exportCommand } from './commands/export.js';
import { queryCommand } from './commands/query.js';
import { psCommand } from './commands/ps.js';
import { doctorCommand } from './commands/doctor.js';
import { restartCommand } from './commands/restart.js';

export function buildProgram(): Command {
  const program = new Command('ttalloc')
    .description('Cross-process device-memory tracker for Tenstorrent accelerators')
    .version('0.1.0')
    .showHelpAfterError('(add --help for usage)')
    // `run`'s options end at the command's name: `ttalloc run pytest -x` passes -x to pytest.
    .enablePositionalOptions();
  for (const c of [
    serverCommand(),
    dumpCommand(),
    dumpKernelsCommand(),
    statsCommand(),
    resetCommand(),
    forgetCommand(),
    stopCommand(),
    restartCommand(),
    markCommand(),
    unmarkCommand(),
    marksCommand(),
    diffCommand(),
    checkCommand(),
    leaksCommand(),
    peaksCommand(),
    resetPeaksCommand(),
    mapCommand(),
    exportCommand(),
    queryCommand(),
    demoCommand(),
    topCommand(),
    runCommand(),
    psCommand(),
    doctorCommand(),
  ]) {
    program.addCommand(c);
  }
  return program;
}

export async function run(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv, { from: 'user' });
}

const isMain = (() => {
  try {
    return realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
})();
if (isMain) void run(process.argv.slice(2));
