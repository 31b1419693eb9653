// Leak analysis commands: mark, unmark, marks, diff, check (the CI gate, exit 23 like LSan).
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { action, clientFor, intArg, socketOption } from '../common.js';
import { parseRules } from '../../analysis/suppressions.js';
import {
  renderCheck,
  renderClassified,
  renderDiff,
  renderMark,
  renderMarks,
  renderUnmark,
} from '../../report/leak-text.js';
import type {
  CheckResult,
  ClassifyResponse,
  DiffResponse,
  MarkResponse,
  MarksResponse,
  UnmarkResponse,
} from '../../report/types.js';

export const EXIT_LEAKS = 23;

const json = (v: unknown): void => {
  process.stdout.write(JSON.stringify(v, null, 2) + '\n');
};

export function markCommand(): Command {
  return new Command('mark')
    .description(
      'record a checkpoint NAME now (cheap: no copy); ' +
        'buffers born after it are what `dump --since NAME` and `check` look at',
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
        const r = await clientFor(o).json<MarkResponse>('POST', '/v1/marks', {
          name,
          pid: o.pid ?? null,
        });
        if (o.json) json(r);
        else process.stdout.write(renderMark(r.mark));
      }),
    );
}

export function unmarkCommand(): Command {
  return new Command('unmark')
    .description(
      'delete the checkpoint NAME (a test harness deletes its per-test mark after the test); ' +
        'an error when there is no such mark',
    )
    .argument('<name>', 'checkpoint name, as `ttalloc marks` lists it')
    .addOption(socketOption())
    .option('--json', 'machine-readable output')
    .action(
      action(async (name: string, o: { socket?: string; json?: boolean }) => {
        const path = `/v1/marks/${encodeURIComponent(name)}`;
        const r = await clientFor(o).json<UnmarkResponse>('DELETE', path);
        if (o.json) json(r);
        else process.stdout.write(renderUnmark(r.deleted));
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
        const r = await clientFor(o).json<MarksResponse>('GET', '/v1/marks');
        if (o.json) return json(r);
        process.stdout.write(renderMarks(r));
      }),
    );
}

export function diffCommand(): Command {
  return new Command('diff')
    .description(
      'what was born between mark A and mark B (or now) and is still alive, ' +
        'per run between the marks in between; names buffers that accumulate run after run',
    )
    .argument('<a>', 'first mark')
    .argument('[b]', 'last mark (default: now)')
    .addOption(socketOption())
    .option('--json', 'machine-readable output')
    .action(
      action(async (a: string, b: string | undefined, o: { socket?: string; json?: boolean }) => {
        const q = new URLSearchParams({ a });
        if (b) q.set('b', b);
        const r = await clientFor(o).json<DiffResponse>('GET', `/v1/diff?${q}`);
        if (o.json) return json(r);
        process.stdout.write(renderDiff(r));
      }),
    );
}

export function checkCommand(): Command {
  return new Command('check')
    .description(
      'CI gate: exit 0 when what was born since the mark and is still alive fits the budget, ' +
        `${EXIT_LEAKS} (like LeakSanitizer) when not, listing the offenders`,
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
          const q = checkQuery(o);
          const r = await clientFor(o).json<CheckResult>('GET', `/v1/check?${q}`);
          if (o.json) json(r);
          else process.stdout.write(renderCheck(r));
          if (!r.ok) process.exit(EXIT_LEAKS);
        },
      ),
    );
}

/**
 * The query of GET /v1/check: the mark, the byte budget and the suppression rules read from
 * `ignore` (shared by `check` and `run`).
 */
export function checkQuery(o: {
  since: string;
  maxBytes: number;
  ignore?: string;
}): URLSearchParams {
  let rules: unknown[] = [];
  if (o.ignore) {
    let text: string;
    try {
      text = readFileSync(o.ignore, 'utf8');
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      throw new Error(`cannot read rules file ${o.ignore}: ${why}`);
    }
    rules = parseRules(text, o.ignore);
  }
  return new URLSearchParams({
    since: o.since,
    max_bytes: String(o.maxBytes),
    rules: JSON.stringify(rules),
  });
}

export function leaksCommand(): Command {
  return new Command('leaks')
    .description(
      'the remaining buffers by class, with the reason for each: ' +
        'suspicious, left behind by exited processes, program cache, model state, ' +
        'infrastructure, other',
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
          const r = await clientFor(o).json<ClassifyResponse>('GET', `/v1/classify?${q}`);
          if (o.json) return json(r);
          process.stdout.write(renderClassified(r));
        },
      ),
    );
}
