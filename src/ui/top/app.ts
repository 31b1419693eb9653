// The interactive loop of `ttalloc top`: alternate screen, hidden cursor, raw keys, one write per
// frame (no clear-then-draw, hence no flicker), redraw on resize, and the terminal restored on
// every way out (q, Ctrl-C, signals, errors).
import type { ControlClient } from '../../client/control-client.js';
import { fetchTopData, type TopData } from './model.js';
import { frame, initialView, renderLines, SORT_KEYS, type ViewState } from './render.js';

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

  const draw = () => {
    const w = out.columns || 100,
      h = out.rows || 30;
    out.write(frame(renderLines(data, view, w, h), w, color));
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
      // Escape sequences (arrows, function keys) are not commands: their letters must not sort.
      // eslint-disable-next-line no-control-regex -- the escape sequences are what it strips
      const text = buf.toString('utf8').replace(/\x1b(\[[0-9;?]*[ -/]*[@-~]|O.|.)?/g, '');
      for (const ch of text) {
        if (ch === 'q' || ch === 'Q' || ch === '\x03' || ch === '\x04') return quit();
        const lower = ch.toLowerCase();
        const sort = SORT_KEYS[lower];
        if (sort) {
          // Same key again flips the direction; names and PIDs start ascending, sizes descending.
          view.descending =
            view.sort === sort ? !view.descending : !(sort === 'pid' || sort === 'command');
          view.sort = sort;
        } else if (lower === 'r') view.descending = !view.descending;
        else if (lower === 'a') view.device = null;
        else if (ch >= '0' && ch <= '9') view.device = Number(ch);
        else if (lower === 'f') {
          const ids = data?.devices.map((d) => d.device) ?? [];
          const i = view.device === null ? -1 : ids.indexOf(view.device);
          view.device = i + 1 < ids.length ? ids[i + 1] : null;
        }
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
