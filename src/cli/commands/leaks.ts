// Leak analysis commands: mark, marks, diff, check (the CI gate, exit 23 like LeakSanitizer).
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { action, clientFor, intArg, socketOption } from '../common.js';
import { parseRules } from '../../analysis/suppressions.js';
import type { Mark } from '../../state/marks.js';
import type { CheckResult, Interval, Accumulation } from '../../analysis/leaks.js';
import { formatKB, formatMB } from '../../report/format.js';

export const EXIT_LEAKS = 23;

const json = (v: unknown): void => {
  process.stdout.write(JSON.stringify(v, null, 2) + '\n');
};

export function markCommand(): Command {
  return new Command('mark')
    .description(
      'record a checkpoint NAME now (cheap: no copy); buffers born after it are what `dump --since NAME` and `check` look at',
    )
    .argument(
      '<name>',
      'checkpoint name (letters, digits, _ . : / @ + -); marking an existing name moves it',
    )
    .addOption(socketOption())
    .option(
      '-p, --pid <pid>',
      'the checkpoint concerns only this process (a test harness marking for its worker)',
      intArg('--pid', 1),
    )
    .option('--json', 'machine-readable output')
    .action(
      action(async (name: string, o: { socket?: string; pid?: number; json?: boolean }) => {
        const r = await clientFor(o).json<{ mark: Mark }>('POST', '/v1/marks', {
          name,
          pid: o.pid ?? null,
        });
        if (o.json) json(r);
        else
          process.stdout.write(
            `mark '${r.mark.name}' set at ${new Date(r.mark.atMs).toISOString()}${r.mark.pid ? ` for pid ${r.mark.pid}` : ''}\n`,
          );
      }),
    );
}

export function marksCommand(): Command {
  return new Command('marks')
    .description('list the checkpoints, oldest first')
    .addOption(socketOption())
    .option('--json', 'machine-readable output')
    .action(
      action(async (o: { socket?: string; json?: boolean }) => {
        const r = await clientFor(o).json<{ marks: Mark[] }>('GET', '/v1/marks');
        if (o.json) return json(r);
        if (!r.marks.length) process.stdout.write('no marks (ttalloc mark NAME sets one)\n');
        for (const m of r.marks)
          process.stdout.write(
            `${new Date(m.atMs).toISOString()}  ${m.name}${m.pid ? `  (pid ${m.pid})` : ''}\n`,
          );
      }),
    );
}

export function diffCommand(): Command {
  return new Command('diff')
    .description(
      'what was born between mark A and mark B (or now) and is still alive, per run between the marks in between; names buffers that accumulate run after run',
    )
    .argument('<a>', 'first mark')
    .argument('[b]', 'last mark (default: now)')
    .addOption(socketOption())
    .option('--json', 'machine-readable output')
    .action(
      action(async (a: string, b: string | undefined, o: { socket?: string; json?: boolean }) => {
        const q = new URLSearchParams({ a });
        if (b) q.set('b', b);
        const r = await clientFor(o).json<{
          from: string;
          to: string;
          buffers: number;
          bytes: number;
          intervals: Interval[];
          accumulating: Accumulation[];
        }>('GET', `/v1/diff?${q}`);
        if (o.json) return json(r);
        const out = [
          `Still alive, born between '${r.from}' and '${r.to}': ${r.buffers} buffers, ${formatMB(r.bytes)} MB`,
        ];
        for (const iv of r.intervals) {
          out.push('', `${iv.from} → ${iv.to}: +${iv.buffers} buffers, +${formatMB(iv.bytes)} MB`);
          for (const g of iv.groups.slice(0, 20))
            out.push(`  Device ${g.device} ${g.type}: ${g.count} × ${formatKB(g.size)}`);
          if (iv.groups.length > 20) out.push(`  ... and ${iv.groups.length - 20} more groups`);
        }
        out.push('');
        if (r.accumulating.length) {
          out.push('Accumulating across runs (likely leaks):');
          for (const a of r.accumulating) out.push(`  ${a.text}`);
        } else
          out.push(
            r.intervals.length > 1
              ? 'No buffer pattern accumulates across the runs.'
              : 'Mark more runs to detect accumulation (ttalloc mark run-2 …).',
          );
        process.stdout.write(out.join('\n') + '\n');
      }),
    );
}

export function checkCommand(): Command {
  return new Command('check')
    .description(
      `CI gate: exit 0 when what was born since the mark and is still alive fits the budget, ${EXIT_LEAKS} (like LeakSanitizer) when not, listing the offenders`,
    )
    .requiredOption('--since <mark>', 'checkpoint taken before the code under test ran')
    .addOption(socketOption())
    .option(
      '--max-bytes <n>',
      'bytes allowed to remain (default 0: any remaining buffer fails)',
      intArg('--max-bytes'),
      0,
    )
    .option('--ignore <file>', 'suppression rules file (docs/leak-analysis.md)')
    .option('--json', 'machine-readable output')
    .action(
      action(
        async (o: {
          since: string;
          socket?: string;
          maxBytes: number;
          ignore?: string;
          json?: boolean;
        }) => {
          let rules: unknown[] = [];
          if (o.ignore) {
            let text: string;
            try {
              text = readFileSync(o.ignore, 'utf8');
            } catch (e) {
              throw new Error(
                `cannot read rules file ${o.ignore}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
              );
            }
            rules = parseRules(text, o.ignore);
          }
          const q = new URLSearchParams({
            since: o.since,
            max_bytes: String(o.maxBytes),
            rules: JSON.stringify(rules),
          });
          const r = await clientFor(o).json<CheckResult>('GET', `/v1/check?${q}`);
          if (o.json) json(r);
          else {
            const sup = r.suppressedBuffers ? ` (${r.suppressedBuffers} suppressed)` : '';
            if (r.ok)
              process.stdout.write(
                `ttalloc check: OK since '${r.since}': ${r.leakedBuffers} buffers, ${r.leakedBytes} bytes remain (budget ${r.maxBytes})${sup}\n`,
              );
            else {
              const out = [
                `ttalloc check: LEAK since '${r.since}': ${r.leakedBuffers} buffers, ${r.leakedBytes} bytes remain (budget ${r.maxBytes})${sup}`,
              ];
              for (const b of r.buffers)
                out.push(
                  `    - Device ${b.device} ${b.type} Buffer ${b.address}: ${formatKB(b.size)} (PID ${b.pid}, ref_count=${b.refCount})`,
                );
              if (r.leakedBuffers > r.buffers.length)
                out.push(`    ... and ${r.leakedBuffers - r.buffers.length} more`);
              process.stdout.write(out.join('\n') + '\n');
            }
          }
          if (!r.ok) process.exit(EXIT_LEAKS);
        },
      ),
    );
}

export function leaksCommand(): Command {
  return new Command('leaks')
    .description(
      'the remaining buffers by class, with the reason for each: suspicious, program cache, model state, infrastructure, other',
    )
    .addOption(socketOption())
    .option(
      '--program-cache-max <bytes>',
      'largest DRAM buffer counted as a program binary',
      intArg('--program-cache-max'),
    )
    .option(
      '--model-state-min <bytes>',
      'smallest buffer counted as model state',
      intArg('--model-state-min'),
    )
    .option('-n, --limit <n>', 'buffers listed per class', intArg('--limit'), 10)
    .option('-a, --all', 'list every buffer')
    .option('--json', 'machine-readable output')
    .action(
      action(
        async (o: {
          socket?: string;
          programCacheMax?: number;
          modelStateMin?: number;
          limit: number;
          all?: boolean;
          json?: boolean;
        }) => {
          const q = new URLSearchParams({ limit: String(o.limit) });
          if (o.all) q.set('all', '1');
          if (o.programCacheMax !== undefined)
            q.set('program_cache_max', String(o.programCacheMax));
          if (o.modelStateMin !== undefined) q.set('model_state_min', String(o.modelStateMin));
          if (o.json) return json(await clientFor(o).json('GET', `/v1/classify?${q}`));
          q.set('format', 'text');
          process.stdout.write(await clientFor(o).text('GET', `/v1/classify?${q}`));
        },
      ),
    );
}
