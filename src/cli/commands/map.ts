// `ttalloc map --device N --type L1|DRAM`: the memory map of one device (report/memory-map.ts).
import { Command } from 'commander';
import { action, clientFor, intArg, socketOption } from '../common.js';
import { formatMemoryMap } from '../../report/map-text.js';
import type { MemoryMapResponse } from '../../report/types.js';

export function mapCommand(): Command {
  return new Command('map')
    .description(
      "one device's address space per bank: every live buffer of every process on it, the " +
        'free gaps and the largest free block (why an allocation fails with memory free)',
    )
    .option('-d, --device <n>', 'device id', intArg('--device', 0), 0)
    .option('-t, --type <memory>', 'L1 (with L1_SMALL and CBs) or DRAM (with TRACE)', 'L1')
    .option(
      '-w, --width <columns>',
      'columns of the bar (default: the terminal width, else 100)',
      intArg('--width', 10),
    )
    .addOption(socketOption())
    .option('--json', 'machine-readable output')
    .action(
      action(
        async (o: {
          device: number;
          type: string;
          width?: number;
          socket?: string;
          json?: boolean;
        }) => {
          const bins = o.width ?? Math.max(10, (process.stdout.columns ?? 104) - 4);
          const q = `device=${o.device}&memory=${encodeURIComponent(o.type)}&bins=${bins}`;
          const m = await clientFor(o).json<MemoryMapResponse>('GET', `/v1/map?${q}`);
          process.stdout.write(o.json ? JSON.stringify(m, null, 2) + '\n' : formatMemoryMap(m));
        },
      ),
    );
}
