// The interactive loop of `ttalloc top`: alternate screen, hidden cursor, raw keys, one write per
// frame (no clear-then-draw, hence no flicker), redraw on resize, and the terminal restored on
// every way out (q, Ctrl-C, signals, errors).
import type { ControlClient } from '../../client/control-client.js';
import { fetchTopData, type TopData } from './model.js';
import { frame, initialView, renderFrame, SORT_KEYS, type ViewState } from './render.js';

const ENTER = '\x1b[?1049h\x1b[?25l';
const LEAVE = '\x1b[0m\x1b[?25h\x1b[?1049l';

export function colorWanted(stream: NodeJS.WriteStream): boolean {
  // https://no-color.org: any non-empty NO_COLOR turns colour off.
  return !process.env.NO_COLOR && stream.isTTY === true;
}

export async function runTop(client: ControlClient, intervalMs: number): Promise<void> {
  const out = process.stdout,
    input = process.stdin;
  const view: ViewState = { ...initialView(), socket: client.socketPath };
  const color = colorWanted(out);
  // Without a server, SHM and the driver are read here (the header line says so).
  let data: TopData | null = await fetchTopData(client);
  let timer: NodeJS.Timeout | null = null;
  let restored = false;
  // Processes the last frame showed: a page is that many.
  let page = 1;

  const draw = () => {
    const w = out.columns || 100,
      h = out.rows || 30;
    const f = renderFrame(data, view, w, h);
    // Kept as drawn, so scrolling back from past the end moves at once.
    view.scroll = f.list.first;
    page = Math.max(1, f.list.shown);
    out.write(frame(f.lines, w, color));
  };
  const restore = () => {
    if (restored) return;
    restored = true;
    if (timer) clearTimeout(timer);
    if (input.isTTY) input.setRawMode(false);
    input.pause();
    out.write(LEAVE);
  };
  process.on('exit', restore);

  return new Promise<void>((resolve) => {
    const quit = () => {
      restore();
      out.off('resize', draw);
      input.off('data', onKey);
      resolve();
    };
    const onKey = (buf: Buffer) => {
      for (const key of keyTokens(buf.toString('utf8'))) {
        if (key === 'q' || key === 'Q' || key === '\x03' || key === '\x04') return quit();
        const move = SCROLL[key];
        if (move) {
          view.scroll = move(view.scroll, page);
          continue;
        }
        // Other escape sequences (function keys) are not commands: their letters must not sort.
        if (key.startsWith('\x1b')) continue;
        const lower = key.toLowerCase();
        const sort = SORT_KEYS[lower];
        if (sort) {
          // Same key again flips the direction; names and PIDs start ascending, sizes descending.
          view.descending =
            view.sort === sort ? !view.descending : !(sort === 'pid' || sort === 'command');
          view.sort = sort;
        } else if (lower === 'r') view.descending = !view.descending;
        else if (lower === 'a') view.device = null;
        else if (key >= '0' && key <= '9') view.device = Number(key);
        else if (lower === 'f') {
          const ids = data?.devices.map((d) => d.device) ?? [];
          const i = view.device === null ? -1 : ids.indexOf(view.device);
          view.device = i + 1 < ids.length ? ids[i + 1] : null;
        } else continue;
        // A new order or filter starts from its top.
        view.scroll = 0;
      }
      draw();
    };
    const tick = async () => {
      try {
        // A server that was there and went away: the last frame stays, the message says why.
        data = await fetchTopData(client, 60, data?.server == null);
        view.message = undefined;
      } catch (e) {
        view.message = `server not reachable: ${(e as Error).message}`;
      }
      if (restored) return;
      draw();
      timer = setTimeout(() => void tick(), intervalMs);
    };
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, quit);
    out.write(ENTER);
    if (input.isTTY) input.setRawMode(true);
    input.resume();
    input.on('data', onKey);
    out.on('resize', draw);
    draw();
    timer = setTimeout(() => void tick(), intervalMs);
  });
}

/** Keys that scroll the process list: the new first process from the old one and the page. */
const SCROLL: Record<string, (first: number, page: number) => number> = {};
const on = (keys: string[], f: (first: number, page: number) => number) => {
  for (const k of keys) SCROLL[k] = f;
};
// Both cursor-key modes (CSI and SS3), and the Home/End spellings of xterm, VT220 and rxvt.
on(['\x1b[A', '\x1bOA', 'k'], (i) => i - 1);
on(['\x1b[B', '\x1bOB', 'j'], (i) => i + 1);
on(['\x1b[5~'], (i, page) => i - page);
on(['\x1b[6~', ' '], (i, page) => i + page);
on(['\x1b[H', '\x1bOH', '\x1b[1~', '\x1b[7~', 'g'], () => 0);
// Past the end: the frame shows the last page and says where it stands.
on(['\x1b[F', '\x1bOF', '\x1b[4~', '\x1b[8~', 'G'], () => Infinity);

/** Key presses in what the terminal sent: escape sequences whole, other characters one by one. */
export function keyTokens(text: string): string[] {
  // eslint-disable-next-line no-control-regex -- escape sequences are what it splits out
  return text.match(/\x1b(\[[0-9;?]*[ -/]*[@-~]|O.|.)?|[^\x1b]/gsu) ?? [];
}
