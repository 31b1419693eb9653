// A real terminal for the tests of full-screen programs, from npm packages only (no tmux): a
// pseudo-terminal from @lydell/node-pty (prebuilt, so nothing to compile) runs the program, and
// @xterm/headless interprets its output into a screen the test reads, as a person would see it.
import xtermHeadless from '@xterm/headless';
import nodePty from '@lydell/node-pty';
import type { IBufferCell, Terminal as XtermTerminal } from '@xterm/headless';
import type { IPty } from '@lydell/node-pty';

export interface TerminalOptions {
  cols: number;
  rows: number;
  /** The program's whole environment (TERM is set to xterm-256color, the emulated terminal). */
  env?: Record<string, string | undefined>;
}

/** SGR parameters for a colour held by a cell: 30/40 base for palette 0-7, 90/100 for 8-15. */
function colourSgr(mode: 'fg' | 'bg', cell: IBufferCell): string | null {
  const fg = mode === 'fg';
  if (fg ? cell.isFgDefault() : cell.isBgDefault()) return null;
  const c = fg ? cell.getFgColor() : cell.getBgColor();
  if (fg ? cell.isFgRGB() : cell.isBgRGB()) {
    return `${fg ? 38 : 48};2;${c >> 16};${(c >> 8) & 0xff};${c & 0xff}`;
  }
  if (c < 8) return String((fg ? 30 : 40) + c);
  if (c < 16) return String((fg ? 90 : 100) + c - 8);
  return `${fg ? 38 : 48};5;${c}`;
}

/** The attributes of a cell as one escape sequence per attribute, the foreground colour last. */
function cellSgr(cell: IBufferCell): string {
  const on: string[] = [];
  const flags: [number, string][] = [
    [cell.isBold(), '1'],
    [cell.isDim(), '2'],
    [cell.isItalic(), '3'],
    [cell.isUnderline(), '4'],
    [cell.isBlink(), '5'],
    [cell.isInverse(), '7'],
    [cell.isInvisible(), '8'],
    [cell.isStrikethrough(), '9'],
  ];
  for (const [set, code] of flags) if (set) on.push(code);
  const bg = colourSgr('bg', cell);
  if (bg) on.push(bg);
  const fg = colourSgr('fg', cell);
  if (fg) on.push(fg);
  return on.map((p) => `\x1b[${p}m`).join('');
}

export class TestTerminal {
  private cursorShown = true;
  private exited: Promise<void>;

  constructor(
    private readonly pty: IPty,
    private readonly term: XtermTerminal,
  ) {
    pty.onData((data) => term.write(data));
    this.exited = new Promise((resolve) => pty.onExit(() => resolve()));
    // xterm keeps cursor visibility (DECTCEM, CSI ? 25 h / l) to itself: watch the sequences,
    // and return false so that xterm still handles them.
    const watch = (final: 'h' | 'l') =>
      term.parser.registerCsiHandler({ prefix: '?', final }, (params) => {
        if (params.includes(25)) this.cursorShown = final === 'h';
        return false;
      });
    watch('h');
    watch('l');
  }

  /** Types `keys` as a person at the keyboard would (Enter is '\r', Ctrl-C '\x03'). */
  write(keys: string): void {
    this.pty.write(keys);
  }

  /** The visible screen, each row with its trailing blanks cut and a newline after it. */
  text(): string {
    // Up to the screen's width: after a narrowing resize xterm keeps the cut-off cells.
    const cols = this.term.cols;
    return this.rows((y) => {
      const line = this.buffer().getLine(y);
      return (line?.translateToString(false, 0, cols) ?? '').replace(/ +$/, '');
    });
  }

  /**
   * The visible screen with each change of colour or attribute written as SGR escapes (after a
   * reset, '\x1b[0m'; one sequence per attribute, the foreground colour last).
   */
  styledText(): string {
    const buffer = this.buffer();
    const cell = buffer.getNullCell();
    return this.rows((y) => {
      const line = buffer.getLine(y);
      let out = '',
        sgr = '';
      for (let x = 0; line && x < this.term.cols; x++) {
        line.getCell(x, cell);
        if (cell.getWidth() === 0) continue; // the second half of a wide character
        const next = cellSgr(cell);
        if (next !== sgr) out += `\x1b[0m${next}`;
        sgr = next;
        out += cell.getChars() || ' ';
      }
      return (sgr ? out + '\x1b[0m' : out).replace(/ +$/, '');
    });
  }

  /** True while the program has the alternate screen (CSI ? 1049 h) up. */
  get alternateScreen(): boolean {
    return this.term.buffer.active.type === 'alternate';
  }

  get cursorVisible(): boolean {
    return this.cursorShown;
  }

  /** Resizes the screen and the pseudo-terminal (the program gets SIGWINCH). */
  resize(cols: number, rows: number): void {
    this.term.resize(cols, rows);
    this.pty.resize(cols, rows);
  }

  /** Polls the screen until `pred` holds; fails after `timeoutMs` with the screen's content. */
  async waitFor(
    pred: (screen: string) => boolean,
    what: string,
    timeoutMs = 10000,
  ): Promise<string> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      await this.parsed();
      const s = this.text();
      if (pred(s)) return s;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; screen:\n${s}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Ends the program (SIGHUP, as when a terminal window closes; SIGKILL after 2 s). */
  async kill(): Promise<void> {
    this.pty.kill('SIGHUP');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(true), 2000)));
    if (await Promise.race([this.exited.then(() => false), late])) {
      this.pty.kill('SIGKILL');
      await this.exited;
    }
    clearTimeout(timer);
    this.term.dispose();
  }

  /** Resolves once xterm has interpreted everything the program wrote so far. */
  private parsed(): Promise<void> {
    return new Promise((resolve) => this.term.write('', resolve));
  }

  private buffer() {
    return this.term.buffer.active;
  }

  private rows(row: (y: number) => string): string {
    const top = this.buffer().viewportY;
    let out = '';
    for (let y = top; y < top + this.term.rows; y++) out += row(y) + '\n';
    return out;
  }
}

/** Starts `cmd args` in a new pseudo-terminal of `cols` x `rows` with an empty screen. */
export function spawnTerminal(cmd: string, args: string[], opts: TerminalOptions): TestTerminal {
  const { cols, rows } = opts;
  // The parser hooks that watch cursor visibility are "proposed" API in xterm.
  const term = new xtermHeadless.Terminal({ cols, rows, allowProposedApi: true });
  const env = { ...(opts.env ?? process.env), TERM: 'xterm-256color' };
  const pty = nodePty.spawn(cmd, args, { name: 'xterm-256color', cols, rows, env });
  return new TestTerminal(pty, term);
}
