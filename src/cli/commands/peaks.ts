// Peak device memory: `ttalloc peaks [--since MARK]` and `ttalloc reset-peaks` (PyTorch's
// max_memory_allocated and reset_peak_memory_stats, per device and buffer type).
import { Command } from 'commander';
import { action, clientFor, socketOption } from '../common.js';
import { formatPeaks } from '../../report/peaks.js';
import type { PeaksResponse } from '../../report/types.js';

type Opts = { socket?: string; json?: boolean };

function print(r: PeaksResponse, o: Opts): void {
  process.stdout.write(o.json ? JSON.stringify(r, null, 2) + '\n' : formatPeaks(r));
}

export function peaksCommand(): Command {
  return new Command('peaks')
    .description(
      'the highest memory each device held, per buffer type, since the server started, ' +
        'the last reset-peaks, or a mark',
    )
    .option('--since <mark>', 'peaks since this checkpoint (`ttalloc mark NAME`)')
    .addOption(socketOption())
    .option('--json', 'machine-readable output')
    .action(
      action(async (o: Opts & { since?: string }) => {
        const q = o.since === undefined ? '' : `?since=${encodeURIComponent(o.since)}`;
        print(await clientFor(o).json<PeaksResponse>('GET', `/v1/peaks${q}`), o);
      }),
    );
}

export function resetPeaksCommand(): Command {
  return new Command('reset-peaks')
    .description('start the peaks again from the memory held now (marks keep their own)')
    .addOption(socketOption())
    .option('--json', 'machine-readable output')
    .action(
      action(async (o: Opts) => {
        print(await clientFor(o).json<PeaksResponse>('POST', '/v1/peaks/reset'), o);
      }),
    );
}
