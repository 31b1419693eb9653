// `ttalloc export --format perfetto [--since MARK] [-o FILE]`: the timeline of buffer lifetimes
// as Chrome trace-event JSON, for ui.perfetto.dev and chrome://tracing (report/perfetto.ts).
import { Command } from 'commander';
import { createWriteStream } from 'node:fs';
import { action, clientFor, socketOption } from '../common.js';

export function exportCommand(): Command {
  return new Command('export')
    .description(
      'write the timeline — each buffer lifetime as a slice, bytes per device, type and ' +
        'process as counters, marks as instants — as Chrome trace-event JSON (ui.perfetto.dev)',
    )
    .option('--format <format>', 'perfetto (Chrome trace-event JSON)', 'perfetto')
    .option('--since <mark>', 'only lifetimes that ended after this checkpoint, or are live')
    .option('-o, --output <file>', 'write to FILE instead of stdout')
    .addOption(socketOption())
    .action(
      action(async (o: { format: string; since?: string; output?: string; socket?: string }) => {
        const q = new URLSearchParams({ format: o.format });
        if (o.since !== undefined) q.set('since', o.since);
        const sink = o.output ? createWriteStream(o.output) : process.stdout;
        await clientFor(o).download(`/v1/export?${q}`, sink);
        if (o.output) process.stderr.write(`timeline written to ${o.output}\n`);
      }),
    );
}
