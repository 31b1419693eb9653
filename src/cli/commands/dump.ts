// `ttalloc dump` and `dump-kernels`. The server renders these two reports itself (it prints the
// same text on its own stdout, as the seed's users expect).
import { Command, Option } from 'commander';
import { action, clientFor, intArg, listArg, socketOption } from '../common.js';

export function dumpCommand(name = 'dump'): Command {
  return new Command(name)
    .description(
      'print every buffer still allocated, by device and type ' +
        "(also printed on the server's stdout)",
    )
    .addOption(socketOption())
    .option('--json', 'machine-readable output (exact bytes, schema_version)')
    .option('-v, --verbose', "each buffer's name and stack trace under it (648-byte clients)")
    .option('-a, --all', 'list every buffer, not only the largest per type')
    .option('-n, --limit <n>', 'buffers listed per device and type', intArg('--limit'), 10)
    .option('-d, --device <ids>', 'only these devices (comma-separated)', listArg('--device'))
    .option('-p, --pid <pids>', 'only buffers owned by these PIDs', listArg('--pid'))
    .option(
      '--since <mark>',
      'only buffers born after this checkpoint (ttalloc mark) and still held or left behind',
    )
    .option('--live', 'only buffers of processes still running')
    .option('--exited', 'only what processes that exited left behind (never freed)')
    .addOption(new Option('--reaped', 'the old name of --exited').hideHelp())
    .option('--tree <pid>', 'only this process and its descendants, running or exited')
    .option(
      '-t, --type <types>',
      'only these buffer types (DRAM, L1, L1_SMALL, TRACE, SYSTEM_MEMORY)',
    )
    .action(
      action(
        async (o: {
          socket?: string;
          json?: boolean;
          all?: boolean;
          limit: number;
          device?: string;
          pid?: string;
          type?: string;
          reaped?: boolean;
          live?: boolean;
          exited?: boolean;
          tree?: string;
          since?: string;
          verbose?: boolean;
        }) => {
          const exited = o.exited || o.reaped;
          if (o.live && exited) throw new Error('--live and --exited exclude each other');
          const q = new URLSearchParams();
          if (o.live) q.set('live', '1');
          if (exited) q.set('exited', '1');
          if (o.tree) q.set('tree', o.tree);
          if (o.json) q.set('format', 'json');
          if (o.all) q.set('all', '1');
          else q.set('limit', String(o.limit));
          if (o.device) q.set('device', o.device);
          if (o.pid) q.set('pid', o.pid);
          if (o.type) q.set('type', o.type);
          if (o.since) q.set('since', o.since);
          if (o.verbose) q.set('verbose', '1');
          const out = await clientFor(o).text('POST', `/v1/dump?${q}`);
          process.stdout.write(o.json ? JSON.stringify(JSON.parse(out), null, 2) + '\n' : out);
        },
      ),
    );
}

export function dumpKernelsCommand(): Command {
  return new Command('dump-kernels')
    .description("print the kernels loaded on each device (also printed on the server's stdout)")
    .addOption(socketOption())
    .option('--json', 'machine-readable output')
    .action(
      action(async (o: { socket?: string; json?: boolean }) => {
        const c = clientFor(o);
        if (o.json)
          process.stdout.write(JSON.stringify(await c.json('GET', '/v1/kernels'), null, 2) + '\n');
        else process.stdout.write(await c.text('POST', '/v1/dump-kernels'));
      }),
    );
}
