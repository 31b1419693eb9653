// Suppression rules for `ttalloc check --ignore FILE`: one rule per line, `key=value` pairs that
// must all match for a buffer to be ignored. Keys: type, device, pid, min_size, max_size, class
// (a class of `ttalloc leaks`: CLASSES in report/types.ts).
//   # program cache binaries are expected
//   type=DRAM max_size=24576
//   pid=4242
import { BUFFER_TYPE_NAMES } from '../protocol/constants.js';
import { CLASSES } from '../report/types.js';

const CLASS_NAMES: readonly string[] = CLASSES;

export interface Rule {
  line: number;
  class?: string;
  type?: number;
  device?: number;
  pid?: number;
  minSize?: number;
  maxSize?: number;
}
export class RuleError extends Error {}

const KEYS = ['type', 'device', 'pid', 'min_size', 'max_size', 'class'];

export function parseRules(text: string, source = 'rules'): Rule[] {
  const rules: Rule[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) return;
    const rule: Rule = { line: i + 1 };
    for (const part of line.split(/\s+/)) {
      const m = /^([a-z_]+)=(\S+)$/.exec(part);
      if (!m || !KEYS.includes(m[1]))
        throw new RuleError(
          `${source}:${i + 1}: '${part}' is not key=value with key one of ${KEYS.join(', ')}`,
        );
      const [, key, value] = m;
      if (key === 'class') {
        if (!CLASS_NAMES.includes(value))
          throw new RuleError(
            `${source}:${i + 1}: unknown class '${value}' (one of ${CLASS_NAMES.join(', ')})`,
          );
        rule.class = value;
        continue;
      }
      if (key === 'type') {
        const t = BUFFER_TYPE_NAMES.indexOf(value.toUpperCase());
        if (t < 0)
          throw new RuleError(
            `${source}:${i + 1}: unknown type '${value}' (one of ${BUFFER_TYPE_NAMES.join(', ')})`,
          );
        rule.type = t;
        continue;
      }
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0)
        throw new RuleError(
          `${source}:${i + 1}: ${key} must be a whole number ≥ 0, got '${value}'`,
        );
      if (key === 'device') rule.device = n;
      else if (key === 'pid') rule.pid = n;
      else if (key === 'min_size') rule.minSize = n;
      else rule.maxSize = n;
    }
    rules.push(rule);
  });
  return rules;
}

export function suppressed(
  rules: readonly Rule[],
  b: { type: number; device: number; pid: number; size: number; cls?: () => string },
): Rule | undefined {
  return rules.find(
    (r) =>
      (r.class === undefined || (b.cls !== undefined && b.cls() === r.class)) &&
      (r.type === undefined || r.type === b.type) &&
      (r.device === undefined || r.device === b.device) &&
      (r.pid === undefined || r.pid === b.pid) &&
      (r.minSize === undefined || b.size >= r.minSize) &&
      (r.maxSize === undefined || b.size <= r.maxSize),
  );
}
