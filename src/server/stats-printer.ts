// The periodic statistics on the server's log: one line per device, printed only when something
// changed (an idle server stays quiet), and once more, always, at the stop.
import { formatStatsLines, type StatsSource } from '../report/stats.js';

export class StatsPrinter {
  private lastKey = '';

  constructor(
    private readonly src: StatsSource,
    private readonly out: (text: string) => void,
  ) {}

  print(final: boolean): void {
    const lines = formatStatsLines(this.src);
    const key = lines.join('\n');
    if (!final && key === this.lastKey) return;
    this.lastKey = key;
    const head = final ? '[ttalloc] final statistics\n' : '';
    this.out(head + lines.map((l) => `[stats] ${l}\n`).join(''));
  }
}
