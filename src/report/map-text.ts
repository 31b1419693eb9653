// `ttalloc map` as text: the bank's address space as a bar (how full each column is), the owner
// of each column as a letter, then the figures that explain an out-of-memory with free space.
import { formatBytes, plural } from './format.js';
import type { MemoryMapResponse } from './types.js';

/** Column glyphs by covered fraction: empty, under a third, under two thirds, partly, full. */
const SHADES = [' ', '░', '▒', '▓', '█'];
const OWNER_LETTERS = 'ABCDEFGH';

const perBank = (n: number) => `${formatBytes(n)} per bank`;
const hex = (n: number) => `0x${n.toString(16)}`;

function shade(used: number): string {
  if (used <= 0) return SHADES[0];
  if (used >= 1) return SHADES[4];
  return SHADES[1 + Math.min(2, Math.floor(used * 3))];
}

export function formatMemoryMap(m: MemoryMapResponse): string {
  const out: string[] = [];
  const bank = m.model.bank_bytes === null ? 'size unknown' : formatBytes(m.model.bank_bytes);
  const banks = m.model.banks === 1 ? '' : `${m.model.banks} banks × `;
  out.push(`Device ${m.device} ${m.memory} (${m.arch ?? 'arch unknown'}): ${banks}${bank}`);
  out.push(`  ${m.model.note}`);
  if (m.objects === 0) {
    out.push('', `  nothing allocated in ${m.memory}`);
    return out.join('\n') + '\n';
  }
  const bar = m.bins.map((b) => shade(b.used)).join('');
  const owners = m.bins
    .map((b) => (b.owner === null ? ' ' : b.owner < 0 ? '.' : OWNER_LETTERS[b.owner]))
    .join('');
  out.push('', `  ${hex(m.range.start)}`, `  |${bar}|`, `  |${owners}|`);
  out.push(
    `  ${' '.repeat(Math.max(0, bar.length + 2 - hex(m.range.end).length))}${hex(m.range.end)}`,
  );
  const pct = (n: number) =>
    `${((100 * n) / Math.max(1, m.range.end - m.range.start)).toFixed(1)}%`;
  out.push(
    '',
    `  used ${formatBytes(m.used_per_bank_bytes)} per bank (${pct(m.used_per_bank_bytes)}), ` +
      `free ${formatBytes(m.free_per_bank_bytes)} in ${plural(m.gap_count, 'gap')}`,
  );
  const lf = m.largest_free;
  if (lf) {
    out.push(
      `  largest free block: ${formatBytes(lf.size)} per bank at ${hex(lf.start)}` +
        (m.model.banks > 1
          ? ` (an interleaved buffer of at most ${formatBytes(lf.interleaved_bytes)})`
          : ''),
    );
    const freeAll = m.free_per_bank_bytes * m.model.banks;
    if (m.gap_count > 1 && lf.size < m.free_per_bank_bytes)
      out.push(
        `  fragmentation: ${formatBytes(freeAll)} is free in all, but no buffer larger than ` +
          `${formatBytes(lf.interleaved_bytes)} fits`,
      );
  } else out.push('  no free block: the bank is full');
  if (m.overlap.objects > 0)
    out.push(
      `  overlap: ${formatBytes(m.overlap.per_bank_bytes)} per bank held by more than one object ` +
        `(${plural(m.overlap.objects, 'object')}: two processes, or a CB over an L1 buffer)`,
    );
  if (m.beyond_bank > 0)
    out.push(
      `  ${plural(m.beyond_bank, 'object')} end beyond the bank's size: not interleaved as ` +
        'modelled (sharded, or addresses of another kind)',
    );
  out.push('', '  by kind:');
  for (const [k, v] of Object.entries(m.by_kind))
    if (v.objects > 0)
      out.push(`    ${k.padEnd(9)} ${plural(v.objects, 'object')}, ${perBank(v.per_bank_bytes)}`);
  if (m.gaps.length > 0) {
    out.push('', '  largest gaps (per bank):');
    for (const g of m.gaps) out.push(`    ${formatBytes(g.size).padStart(10)} at ${hex(g.start)}`);
  }
  out.push('', '  owners:');
  m.owners.forEach((o, i) =>
    out.push(
      `    ${OWNER_LETTERS[i]} PID ${o.pid}${o.command ? ` ${o.command}` : ''}: ` +
        `${formatBytes(o.per_bank_bytes)} per bank`,
    ),
  );
  if (owners.includes('.')) out.push('    . other processes');
  return out.join('\n') + '\n';
}
