// Classification of remaining buffers: a label and the reason for each, so the report reads
// itself. Rules are few and ordered (first match wins); they only label and order, never hide.
//   1. suspicious      the address is held by two live processes, ref_count > 1, re-allocated with
//                      another size, or of a pattern that accumulates across the complete
//                      intervals between marks (the open one after the last mark never decides)
//   2. program cache   small DRAM buffer (≤ programCacheMaxBytes) born within a second of a
//                      kernel load on its device: a compiled program binary
//   3. infrastructure  what the runtime allocates at device open: born in its owner's first second
//                      (with no mark between the owner's start and the buffer), not TRACE, at most
//                      INFRASTRUCTURE_MAX_BYTES, and at most that much per device and process
//   4. model state     large buffer (≥ modelStateMinBytes) born in the first half of its owner's
//                      life so far (weights, KV cache)
//   5. other           none of the above; a buffer born before the first mark says so
// A sixth class, left behind, is not a rule over the live table: it is what exited processes
// still held, passed in as ClassifyOptions.leftBehind.
import type { Tracker } from '../state/tracker.js';
import { FLAG_RESIZED, FLAG_SHARED } from '../state/object-table.js';
import { BUFFER_TYPE_NAMES, BufferType, TWO32 } from '../protocol/constants.js';
import { bufferRow } from '../report/buffer-report.js';
import {
  CLASSES,
  CLASS_LABELS,
  type BufferClass,
  type BufferRow,
  type ClassGroup,
  type ClassifiedRow,
  type ClassifyResponse,
  type ClassifyRules,
  type LeftBehindSummary,
} from '../report/types.js';
import type { Mark } from '../state/marks.js';
import { diffMarks, findAccumulation } from './leaks.js';
import { SCHEMA_VERSION } from '../report/types.js';

export type { BufferClass, ClassGroup, ClassifiedRow, ClassifyRules, ClassifyResponse };
export { CLASSES };
export const DEFAULT_RULES: ClassifyRules = {
  program_cache_max_bytes: 64 * 1024,
  model_state_min_bytes: 1024 * 1024,
};

/**
 * The most bytes called infrastructure: per buffer, and in total per device and process. At device
 * open the runtime allocates small system and dispatch buffers, L1_SMALL and ~14–15 MB of
 * command-queue DRAM per device; a bigger buffer, or more in total, in the first second is the
 * program's own (weights loaded at once), never infrastructure.
 */
export const INFRASTRUCTURE_MAX_BYTES = 16 * 1024 * 1024;
/** How long after its process was first seen a buffer counts as allocated at device open. */
const DEVICE_OPEN_MS = 1000;

/** One buffer an exited process still held: a per-buffer record of the left-behind store. */
export interface LeftBehindRow extends BufferRow {
  exited_at_ms: number;
}
/**
 * What one exited process left behind, as classify() takes it (the left-behind store, or the
 * tracker's reaped-process summaries, supplies these). `buffers` and `bytes` count everything it
 * left; `rows` are its per-buffer records, all of them or some (e.g. the largest), listed largest
 * first.
 */
export interface LeftBehindInput {
  pid: number;
  exitedAtMs: number;
  buffers: number;
  bytes: number;
  rows?: readonly LeftBehindRow[];
}

export interface ClassifyOptions {
  rules?: ClassifyRules;
  /** Buffers listed per class (Infinity: all). */
  limit?: number;
  /** What exited processes left behind: the left_behind class. */
  leftBehind?: readonly LeftBehindInput[];
}

const HINTS: Record<BufferClass, string> = {
  suspicious: 'likely leaks: check who should have freed these',
  left_behind:
    'leaks: their processes exited without freeing them (ttalloc dump --reaped lists them)',
  program_cache:
    'expected while the program cache lives; ' +
    'clear it with mesh_device.disable_and_clear_program_cache()',
  model_state: 'expected while the model is loaded (weights, KV cache)',
  infrastructure:
    'expected: allocated at device open (command queues, system buffers; ' +
    `at most ${INFRASTRUCTURE_MAX_BYTES / 1024 / 1024} MiB per device and process)`,
  other: 'not judged: no rule matched (buffers born before every mark are here too)',
};

export type Verdict = { cls: BufferClass; reason: string };

/** The per-buffer rules over one state of the tracker and its marks. */
class Rules {
  private readonly t;
  private readonly global: Mark[];
  /** device × 2^32 + second of every kernel load (program binaries are written beside them). */
  private readonly kernelSeconds = new Set<number>();
  private readonly accKey = new Map<string, string>();
  /** Entries that are infrastructure (rule 3 and its budget, decided in one pass). */
  private readonly deviceOpen = new Set<number>();

  constructor(
    private readonly tr: Tracker,
    marks: Mark[],
    private readonly rules: ClassifyRules,
  ) {
    this.t = tr.buffers;
    for (let e = 0; e < tr.kernels.count; e++)
      this.kernelSeconds.add(tr.kernels.device(e) * TWO32 + second(tr.kernels.bornMs(e)));
    this.global = marks.filter((m) => m.pid === null);
    // Complete intervals only: with the open one, the pattern would come and go as it grows.
    const complete = this.global.length >= 3 ? diffMarks(tr, this.global, false) : [];
    for (const a of findAccumulation(complete))
      for (const d of a.devices) this.accKey.set(`${d}/${a.type}/${a.size}`, a.text);
    this.budgetDeviceOpen();
  }

  /** When entry e was born (wall clock, ms): the one place that reads it. */
  private bornMs(e: number): number {
    return this.t.bornMs(e);
  }

  /** The latest global mark before a birth at `born`, if any (binary search: marks can be many). */
  private markBefore(born: number): Mark | undefined {
    const g = this.global;
    let lo = 0;
    let hi = g.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (g[mid].cutMs <= born) lo = mid + 1;
      else hi = mid;
    }
    return lo ? g[lo - 1] : undefined;
  }

  private suspicious(e: number): string | null {
    const t = this.t;
    const flags = t.flags(e);
    if (flags & FLAG_SHARED) return 'address shared by two live processes';
    const ref = t.ref(e);
    if (ref > 1) return `ref_count ${ref} never came down`;
    if (flags & FLAG_RESIZED) return 'address re-allocated with a different size while live';
    if (!this.accKey.size) return null;
    const born = this.bornMs(e);
    if (born < this.global[0].cutMs) return null;
    const acc = this.accKey.get(`${t.device(e)}/${BUFFER_TYPE_NAMES[t.type(e)]}/${t.size(e)}`);
    if (!acc) return null;
    const last = this.global[this.global.length - 1];
    if (born < last.cutMs) return `accumulates across marks: ${acc}`;
    return (
      `of the pattern that accumulates across marks (${acc}), ` +
      `born after the last mark '${last.name}'`
    );
  }

  private programCache(e: number): string | null {
    const t = this.t;
    const dev = t.device(e);
    if (
      t.type(e) === BufferType.DRAM &&
      t.size(e) <= this.rules.program_cache_max_bytes &&
      nearKernelLoad(this.kernelSeconds, dev, this.bornMs(e))
    )
      return `small DRAM buffer that appeared with a kernel load on device ${dev}`;
    return null;
  }

  /** Rule 3 without its budget: was entry e allocated when its owner opened a device? */
  private atDeviceOpen(e: number): boolean {
    const t = this.t;
    if (t.type(e) === BufferType.TRACE || t.size(e) > INFRASTRUCTURE_MAX_BYTES) return false;
    const owner = this.tr.pids.get(t.pid(e));
    if (!owner) return false;
    if (this.bornMs(e) - owner.firstSeenMs > DEVICE_OPEN_MS) return false;
    // A mark between the owner's start and the buffer: the buffer belongs to a run, not to setup.
    const m = this.markBefore(this.bornMs(e));
    return !m || owner.firstSeenMs >= m.atMs;
  }

  /** Decides rule 3 for every entry: in order of birth, within the budget per device and owner. */
  private budgetDeviceOpen(): void {
    const t = this.t;
    const candidates: number[] = [];
    for (let e = 0; e < t.count; e++)
      if (this.atDeviceOpen(e) && this.suspicious(e) === null && this.programCache(e) === null)
        candidates.push(e);
    candidates.sort((a, b) => this.bornMs(a) - this.bornMs(b) || a - b);
    const used = new Map<number, number>();
    for (const e of candidates) {
      const key = t.pid(e) * 1024 + t.device(e);
      const total = (used.get(key) ?? 0) + t.size(e);
      if (total > INFRASTRUCTURE_MAX_BYTES) continue;
      used.set(key, total);
      this.deviceOpen.add(e);
    }
  }

  verdict(e: number): Verdict {
    const t = this.t;
    const s = this.suspicious(e);
    if (s !== null) return { cls: 'suspicious', reason: s };
    const pc = this.programCache(e);
    if (pc !== null) return { cls: 'program_cache', reason: pc };
    if (this.deviceOpen.has(e))
      return { cls: 'infrastructure', reason: 'allocated when its process opened the device' };
    const born = this.bornMs(e);
    const owner = this.tr.pids.get(t.pid(e));
    const firstSeen = owner ? owner.firstSeenMs : born;
    if (
      t.size(e) >= this.rules.model_state_min_bytes &&
      born - firstSeen <= (this.tr.nowMs - firstSeen) / 2
    ) {
      return {
        cls: 'model_state',
        reason: `large buffer from the first part of PID ${t.pid(e)}'s run`,
      };
    }
    if (!this.global.length)
      return {
        cls: 'other',
        reason: 'no rule matched (no marks: mark each run to judge accumulation)',
      };
    const first = this.global[0];
    if (born < first.cutMs)
      return {
        cls: 'other',
        reason: `allocated before the first mark '${first.name}': it predates every mark`,
      };
    return { cls: 'other', reason: 'no rule matched' };
  }
}

function second(ms: number): number {
  return Math.floor(ms / 1000);
}

/** Was a kernel loaded on `dev` in the second of `born`, or the one before or after it? */
function nearKernelLoad(kernelSeconds: Set<number>, dev: number, born: number): boolean {
  const s = dev * TWO32 + second(born);
  return kernelSeconds.has(s) || kernelSeconds.has(s - 1) || kernelSeconds.has(s + 1);
}

/** Builds the per-buffer rule (entry index → class and reason) for the current state. */
export function classifier(
  tr: Tracker,
  marks: Mark[],
  rules: ClassifyRules = DEFAULT_RULES,
): (e: number) => Verdict {
  const r = new Rules(tr, marks, rules);
  return (e) => r.verdict(e);
}

const clock = (ms: number) => new Date(ms).toISOString();

/** The left_behind group: every exited process's leftovers, counted in full. */
function leftBehindGroup(g: ClassGroup, input: readonly LeftBehindInput[], limit: number): void {
  const procs = input.filter((p) => p.buffers > 0).sort((a, b) => b.bytes - a.bytes);
  const reason = (pid: number, exitedAtMs: number) =>
    `left behind by PID ${pid}, which exited at ${clock(exitedAtMs)}`;
  const summaries: LeftBehindSummary[] = procs.map((p) => ({
    pid: p.pid,
    exited_at: clock(p.exitedAtMs),
    exited_at_ms: p.exitedAtMs,
    buffers: p.buffers,
    bytes: p.bytes,
    reason: reason(p.pid, p.exitedAtMs),
  }));
  g.count = procs.reduce((n, p) => n + p.buffers, 0);
  g.bytes = procs.reduce((n, p) => n + p.bytes, 0);
  const rows = procs.flatMap((p) => p.rows ?? []).sort((a, b) => b.size - a.size);
  const shown = limit === Infinity ? rows : rows.slice(0, limit);
  g.buffers = shown.map((b) => ({
    ...b,
    class: 'left_behind' as const,
    reason: reason(b.pid, b.exited_at_ms),
  }));
  g.more = g.count - g.buffers.length;
  g.processes = limit === Infinity ? summaries : summaries.slice(0, limit);
  g.more_processes = summaries.length - g.processes.length;
}

export function classify(tr: Tracker, marks: Mark[], o: ClassifyOptions = {}): ClassifyResponse {
  const rules = o.rules ?? DEFAULT_RULES;
  const limit = o.limit ?? 10;
  const t = tr.buffers;
  const rule = classifier(tr, marks, rules);
  const groups = new Map<BufferClass, ClassGroup>(
    CLASSES.map((c) => [
      c,
      {
        class: c,
        label: CLASS_LABELS[c],
        hint: HINTS[c],
        count: 0,
        bytes: 0,
        buffers: [],
        more: 0,
      },
    ]),
  );
  const picked = new Map<BufferClass, number[]>(CLASSES.map((c) => [c, []]));
  const reasons = new Map<number, string>();
  for (let e = 0; e < t.count; e++) {
    const { cls, reason } = rule(e);
    const g = groups.get(cls)!;
    g.count++;
    g.bytes += t.size(e);
    picked.get(cls)!.push(e);
    reasons.set(e, reason);
  }
  for (const c of CLASSES) {
    if (c === 'left_behind') continue;
    const g = groups.get(c)!;
    const idx = picked.get(c)!.sort((a, b) => t.size(b) - t.size(a));
    const shown = limit === Infinity ? idx : idx.slice(0, limit);
    g.buffers = shown.map((e) => ({ ...bufferRow(t, e), class: c, reason: reasons.get(e)! }));
    g.more = g.count - shown.length;
  }
  leftBehindGroup(groups.get('left_behind')!, o.leftBehind ?? [], limit);
  return { schema_version: SCHEMA_VERSION, rules, classes: CLASSES.map((c) => groups.get(c)!) };
}
