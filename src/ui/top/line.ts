// Styled text for `ttalloc top`: a line is segments, each with its SGR attributes; the layout
// modules build lines, render.ts stacks them into a frame.

export type Seg = { t: string; sgr?: string };
export type Line = Seg[];

export const SGR = {
  bold: '1',
  dim: '2',
  inverse: '7',
  green: '32',
  yellow: '33',
  red: '31',
  cyan: '36',
};

/** Visible columns of a string (every character top draws is one column wide). */
export const cols = (s: string) => [...s].length;
export const lineWidth = (l: Line) => l.reduce((a, s) => a + cols(s.t), 0);

export const pad = (s: string, n: number) =>
  cols(s) >= n ? [...s].slice(0, n).join('') : s + ' '.repeat(n - cols(s));
export const rpad = (s: string, n: number) =>
  cols(s) >= n ? [...s].slice(0, n).join('') : ' '.repeat(n - cols(s)) + s;

/** `s` in at most `n` columns, an ellipsis saying when something was cut. */
export function ellipsis(s: string, n: number): string {
  if (cols(s) <= n) return s;
  return n <= 0 ? '' : [...s].slice(0, n - 1).join('') + '…';
}

/**
 * The first of `variants` (longest first) that fits `width`, else the last one cut: help and
 * legend lines say less on a small terminal instead of losing their end.
 */
export function firstFitting(variants: string[], width: number): string {
  return ellipsis(variants.find((v) => cols(v) <= width) ?? variants[variants.length - 1], width);
}

/**
 * Parts joined by `sep`, dropping parts in `dropOrder` (indexes) until the text fits `width`:
 * a title keeps what matters most.
 */
export function fitParts(parts: string[], sep: string, width: number, dropOrder: number[]) {
  const keep = parts.map(() => true);
  const text = () => parts.filter((_, i) => keep[i]).join(sep);
  for (const i of dropOrder) {
    if (cols(text()) <= width) break;
    keep[i] = false;
  }
  return text();
}

/** Pressure colour: green below 70 %, yellow below 90 %, red above. */
export function pressure(frac: number): string {
  return frac >= 0.9 ? SGR.red : frac >= 0.7 ? SGR.yellow : SGR.green;
}
