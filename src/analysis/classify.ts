// Classification of remaining buffers: a label and the reason for each, so the report reads
// itself. Rules are few and ordered (first match wins); they only label and order, never hide.
//   1. suspicious      ref_count > 1, re-allocated with another size, or part of a pattern that
//                      accumulates across marks
//   2. program cache   small DRAM buffer (≤ programCacheMaxBytes) born in the same epoch as a
//                      kernel load on its device: a compiled program binary
//   3. infrastructure  born before any mark in the first second of its owner (device open)
//   4. model state     large buffer (≥ modelStateMinBytes) born in the first half of its owner's
//                      life so far (weights, KV cache)
//   5. infrastructure  otherwise born before the first mark
//   6. other           none of the above
import type { Tracker } from '../state/tracker.js';
import { FLAG_RESIZED } from '../state/object-table.js';
import { BUFFER_TYPE_NAMES, BufferType, TWO32 } from '../protocol/constants.js';
import { bufferRow } from '../report/buffer-report.js';
import {
  CLASSES,
  type BufferClass,
  type ClassGroup,
  type ClassifiedRow,
  type ClassifyResponse,
  type ClassifyRules,
} from '../report/types.js';
import type { Mark } from '../state/marks.js';
import { diffMarks, findAccumulation } from './leaks.js';

export type { BufferClass, ClassGroup, ClassifiedRow, ClassifyRules, ClassifyResponse };
export { CLASSES };
export const DEFAULT_RULES: ClassifyRules = {
  programCacheMaxBytes: 64 * 1024,
  modelStateMinBytes: 1024 * 1024,
};

const HINTS: Record<BufferClass, string> = {
  suspicious: 'likely leaks: check who should have freed these',
  program_cache:
    'expected while the program cache lives; ' +
    'clear it with mesh_device.disable_and_clear_program_cache()',
  model_state: 'expected while the model is loaded (weights, KV cache)',
  infrastructure: 'expected: allocated at device open (command queues, system buffers)',
  other: 'no rule matched',
};

/** Builds the per-buffer rule (entry index → class and reason) for the current state. */
export function classifier(
  tr: Tracker,
  marks: Mark[],
  rules: ClassifyRules = DEFAULT_RULES,
): (e: number) => { cls: BufferClass; reason: string } {
  const t = tr.buffers;
  const kernelEpochs = new Set<number>();
  for (let e = 0; e < tr.kernels.count; e++)
    kernelEpochs.add(tr.kernels.device(e) * TWO32 + Math.floor(tr.kernels.bornMs(e) / 1000));
  const global = marks.filter((m) => m.pid === null);
  const firstMarkEpoch = global.length ? global[0].cutMs : Infinity;
  const accumulating = global.length >= 2 ? findAccumulation(diffMarks(tr, global, true)) : [];
  const accKey = new Map<string, string>();
  for (const a of accumulating)
    for (const d of a.devices) accKey.set(`${d}/${a.type}/${a.size}`, a.text);
  const now = tr.nowMs;
  return (e) => {
    const size = t.size(e);
    const type = t.type(e);
    const dev = t.device(e);
    const born = t.bornMs(e);
    const epoch = born;
    const ref = t.ref(e);
    const owner = tr.pids.get(t.pid(e));
    const firstSeen = owner ? owner.firstSeenMs : born;
    const acc =
      epoch >= firstMarkEpoch ? accKey.get(`${dev}/${BUFFER_TYPE_NAMES[type]}/${size}`) : undefined;
    if (ref > 1) return { cls: 'suspicious', reason: `ref_count ${ref} never came down` };
    if (t.flags(e) & FLAG_RESIZED)
      return { cls: 'suspicious', reason: 'address re-allocated with a different size while live' };
    if (acc) return { cls: 'suspicious', reason: `accumulates across marks: ${acc}` };
    if (
      type === BufferType.DRAM &&
      size <= rules.programCacheMaxBytes &&
      kernelEpochs.has(dev * TWO32 + Math.floor(born / 1000))
    ) {
      return {
        cls: 'program_cache',
        reason: `small DRAM buffer that appeared with a kernel load on device ${dev}`,
      };
    }
    if (epoch < firstMarkEpoch && born - firstSeen <= 1000)
      return { cls: 'infrastructure', reason: 'allocated when its process opened the device' };
    if (size >= rules.modelStateMinBytes && born - firstSeen <= (now - firstSeen) / 2) {
      return {
        cls: 'model_state',
        reason: `large buffer from the first part of PID ${t.pid(e)}'s run`,
      };
    }
    if (epoch < firstMarkEpoch)
      return {
        cls: 'infrastructure',
        reason: `allocated before the first mark '${global[0].name}'`,
      };
    return { cls: 'other', reason: 'no rule matched' };
  };
}

export function classify(
  tr: Tracker,
  marks: Mark[],
  rules: ClassifyRules = DEFAULT_RULES,
  limit = 10,
): ClassifyResponse {
  const t = tr.buffers;
  const rule = classifier(tr, marks, rules);
  const groups = new Map<BufferClass, ClassGroup>(
    CLASSES.map((c) => [c, { class: c, hint: HINTS[c], count: 0, bytes: 0, buffers: [], more: 0 }]),
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
    const g = groups.get(c)!;
    const idx = picked.get(c)!.sort((a, b) => t.size(b) - t.size(a));
    const shown = limit === Infinity ? idx : idx.slice(0, limit);
    g.buffers = shown.map((e) => ({ ...bufferRow(t, e), class: c, reason: reasons.get(e)! }));
    g.more = g.count - shown.length;
  }
  return { schema_version: 1, rules, classes: CLASSES.map((c) => groups.get(c)!) };
}

/** The text of /v1/classify?format=text (the route's name for report/leak-text.ts's view). */
