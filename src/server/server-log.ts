// The server's log: ordinary news on its output (silent with --quiet), problems on stderr too.
import { fstatSync } from 'node:fs';

export class ServerLog {
  constructor(
    private readonly out: (text: string) => void,
    private readonly quiet: boolean,
  ) {}

  readonly log = (msg: string): void => {
    if (!this.quiet) this.out(`[ttalloc] ${msg}\n`);
  };

  /** A problem the user must see: on stderr, and in the log too unless that is the same file. */
  readonly warn = (msg: string): void => {
    process.stderr.write(`[ttalloc] ${msg}\n`);
    if (!sameFile(1, 2)) this.out(`[ttalloc] ${msg}\n`);
  };
}

/** Do two file descriptors point at the same file (e.g. `> log 2>&1`, or one terminal)? */
function sameFile(a: number, b: number): boolean {
  try {
    const x = fstatSync(a);
    const y = fstatSync(b);
    return x.dev === y.dev && x.ino === y.ino && x.rdev === y.rdev;
  } catch {
    return false;
  }
}
