// Control API of leak analysis: marks, diff between marks, and the CI check.
import { HttpError, plainText, type Router } from './router.js';
import { MarkError, type Checkpoints, type Mark } from '../state/marks.js';
import type { Tracker } from '../state/tracker.js';
import { RowArray } from '../state/left-behind.js';
import { bufferRow } from '../report/buffer-report.js';
import { markJson } from '../report/json-report.js';
import { intList, markNamed, treeParam } from './query.js';
import { buildDiff, checkSinceMark } from '../analysis/leaks.js';
import { parseRules, RuleError, type Rule } from '../analysis/suppressions.js';
import { classifier, classify, DEFAULT_RULES, type LeftBehindInput } from '../analysis/classify.js';
import { renderClassified, renderDiff } from '../report/leak-text.js';
import { buildPeaks, formatPeaks } from '../report/peaks.js';
import type {
  CheckResponse,
  ClassifyResponse,
  DiffResponse,
  MarkResponse,
  MarksResponse,
  PeaksResponse,
  UnmarkResponse,
} from '../report/types.js';
import { SCHEMA_VERSION } from '../report/types.js';

/** What the leak routes read and do. */
export interface LeakContext {
  tracker: Tracker;
  marks: Checkpoints;
  /** The dead-owner sweep: analysis never counts what dead owners held. */
  reapDead(): void;
  /** A PID and its descendants, running or exited, as the server recorded them (tree=PID). */
  treeOf(root: number): number[];
  /** Persists a new mark. */
  persistMark(m: Mark): Promise<void>;
  /** Persists a mark's deletion. */
  persistUnmark(name: string): Promise<void>;
  log(msg: string): void;
}

/**
 * What exited processes left behind, from the left-behind store: counts and bytes, and each
 * process's `limit` largest records (their exit time is when the server found them gone).
 */
function leftBehind(tr: Tracker, limit: number): LeftBehindInput[] {
  const now = Date.now();
  return tr.reaped.map((p) => {
    const t = new RowArray(p.rows, p.notes, tr.notes);
    const idx = Array.from({ length: t.count }, (_, e) => e).sort((a, b) => t.size(b) - t.size(a));
    const rows = (limit === Infinity ? idx : idx.slice(0, limit)).map((e) => ({
      ...bufferRow(t, e, p, now),
      exited_at_ms: p.reapedAtMs,
    }));
    return { pid: p.pid, exitedAtMs: p.reapedAtMs, buffers: p.buffers, bytes: p.bytes, rows };
  });
}

const markOr404 = (s: LeakContext, name: string | null, what: string): Mark =>
  markNamed(s.marks, name, what);

export function registerLeakRoutes(r: Router, s: LeakContext): void {
  r.get('/v1/marks', (): MarksResponse => ({
    schema_version: SCHEMA_VERSION,
    marks: s.marks.list().map(markJson),
  }));
  r.post('/v1/marks', async (c): Promise<MarkResponse> => {
    const body = (await c.body()) as { name?: unknown; pid?: unknown };
    try {
      const m = s.marks.mark(
        String(body.name ?? ''),
        body.pid === undefined || body.pid === null ? null : Number(body.pid),
      );
      await s.persistMark(m);
      s.log(`mark '${m.name}'${m.pid ? ` for pid ${m.pid}` : ''} set`);
      return { schema_version: SCHEMA_VERSION, mark: markJson(m) };
    } catch (e) {
      if (e instanceof MarkError) throw new HttpError(400, e.message);
      throw e;
    }
  });
  // DELETE /v1/marks/NAME (the name URL-encoded): 404 when there is no such mark.
  r.deletePrefix('/v1/marks/', async (c): Promise<UnmarkResponse> => {
    let name: string;
    try {
      name = decodeURIComponent(c.url.pathname.slice('/v1/marks/'.length));
    } catch {
      throw new HttpError(400, 'the mark name is not valid URL encoding');
    }
    let m: Mark;
    try {
      m = s.marks.delete(name);
    } catch (e) {
      if (e instanceof MarkError) throw new HttpError(404, e.message);
      throw e;
    }
    await s.persistUnmark(name);
    return { schema_version: SCHEMA_VERSION, deleted: markJson(m) };
  });
  // ?since=MARK (default: since start or the last reset)[&format=text]
  r.get('/v1/peaks', (c): PeaksResponse | undefined => {
    const name = c.url.searchParams.get('since');
    const p = buildPeaks(s.tracker, name === null ? null : markOr404(s, name, 'peaks since'));
    return c.url.searchParams.get('format') === 'text' ? plainText(c, formatPeaks(p)) : p;
  });
  r.post('/v1/peaks/reset', (): PeaksResponse => {
    s.tracker.peaks.reset(Date.now());
    s.log('peaks reset');
    return buildPeaks(s.tracker, null);
  });
  // ?a=NAME[&b=NAME][&format=text]: intervals between every mark from a up to b (or now when b is
  // absent); as text, the CLI's rendering (the page shows it too).
  r.get('/v1/diff', (c): DiffResponse | undefined => {
    s.reapDead();
    const a = markOr404(s, c.url.searchParams.get('a'), 'diff');
    const bName = c.url.searchParams.get('b');
    const b = bName ? markOr404(s, bName, 'diff') : null;
    if (b && b.cutMs <= a.cutMs)
      throw new HttpError(400, `mark '${b.name}' was taken before '${a.name}'`);
    const marks = s.marks
      .list()
      .filter((m) => m.cutMs >= a.cutMs && (!b || m.cutMs <= b.cutMs) && m.pid === a.pid);
    const d = buildDiff(s.tracker, marks, !b);
    if (c.url.searchParams.get('format') !== 'text') return d;
    return plainText(c, renderDiff(d));
  });
  // ?program_cache_max=BYTES&model_state_min=BYTES&limit=N&all=1&format=text
  r.get('/v1/classify', (c): ClassifyResponse | undefined => {
    s.reapDead();
    const q = c.url.searchParams;
    const num = (name: string, dflt: number) => {
      const v = q.get(name);
      const n = v === null ? dflt : Number(v);
      if (!Number.isFinite(n) || n < 0) throw new HttpError(400, `${name} must be a number ≥ 0`);
      return n;
    };
    const rules = {
      program_cache_max_bytes: num('program_cache_max', DEFAULT_RULES.program_cache_max_bytes),
      model_state_min_bytes: num('model_state_min', DEFAULT_RULES.model_state_min_bytes),
    };
    const limit = q.get('all') === '1' ? Infinity : num('limit', 10);
    const r2 = classify(s.tracker, s.marks.list(), {
      rules,
      limit,
      leftBehind: leftBehind(s.tracker, limit),
    });
    if (q.get('format') !== 'text') return r2;
    const body = renderClassified(r2);
    return plainText(c, body);
  });
  // ?since=NAME&max_bytes=N&rules=<JSON rules>&rules_text=<a rules file>&rules_source=<its name>
  // [&tree=PID][&pid=P,…]
  r.get('/v1/check', (c): CheckResponse => {
    s.reapDead();
    const m = markOr404(s, c.url.searchParams.get('since'), 'check');
    const maxBytes = Number(c.url.searchParams.get('max_bytes') ?? 0);
    if (!Number.isFinite(maxBytes) || maxBytes < 0)
      throw new HttpError(400, 'max_bytes must be a number ≥ 0');
    let rules: Rule[] = [];
    const rulesText = c.url.searchParams.get('rules');
    if (rulesText) {
      try {
        rules = JSON.parse(rulesText) as Rule[];
      } catch {
        throw new HttpError(400, 'rules is not JSON');
      }
      if (!Array.isArray(rules)) throw new HttpError(400, 'rules must be a JSON array');
    }
    // rules_text: a rules file's text as it is (the pytest plugin sends its file unparsed)
    const rulesFile = c.url.searchParams.get('rules_text');
    if (rulesFile !== null) {
      try {
        rules = [
          ...rules,
          ...parseRules(rulesFile, c.url.searchParams.get('rules_source') ?? 'rules'),
        ];
      } catch (e) {
        if (e instanceof RuleError) throw new HttpError(400, e.message);
        throw e;
      }
    }
    // Class rules need the classifier (built once per check, only when a rule asks for it).
    const classOf = rules.some((x) => x.class !== undefined)
      ? (() => {
          const f = classifier(s.tracker, s.marks.list());
          return (e: number) => f(e).cls;
        })()
      : undefined;
    // A mark taken for one process (a test worker) covers the children it started, too.
    const pids =
      treeParam(c.url, intList(c.url, 'pid'), s.treeOf) ??
      (m.pid !== null ? s.treeOf(m.pid) : undefined);
    return checkSinceMark(s.tracker, m, { maxBytes, rules, classOf, pids });
  });
}
