// The seed's text layout, exactly (see ../shared/seeds and README "The dump report").
import { formatKB, formatMB } from './format.js';
import type { BufferReport } from './buffer-report.js';

const TITLE = [
  '╔══════════════════════════════════════════════════════════════╗',
  '║           REMAINING ALLOCATED BUFFERS                       ║',
  '╚══════════════════════════════════════════════════════════════╝',
];

export function formatBufferReport(r: BufferReport, heading?: string): string {
  const out: string[] = [...TITLE, ''];
  if (heading) out.push(heading, '');
  if (r.totalBuffers === 0) {
    out.push(r.filtered ? 'No buffers remaining that match the filter.' : 'No buffers remaining: every tracked allocation has been freed.', '');
  }
  for (const d of r.devices) {
    out.push(`Device ${d.device}:`);
    for (const g of d.types) {
      out.push(`  ${g.type}: ${g.count} buffer${g.count === 1 ? '' : 's'}, ${formatMB(g.bytes)} MB total`);
      for (const b of g.buffers) {
        out.push(`    - Buffer ${b.address}: ${formatKB(b.size)} (PID ${b.pid}, ref_count=${b.refCount})`);
      }
      if (g.more > 0 && g.buffers.length > 0) out.push(`    ... and ${g.more} more`);
    }
    out.push('');
  }
  out.push(`Total remaining buffers: ${r.totalBuffers}`);
  return out.join('\n') + '\n';
}
