// The byte-unit formats of every view, in one place. The seed's report: MB = bytes / 1,000,000
// and KB = bytes / 1024; live views and logs: binary units (formatBytes). Keep the page's copy
// (fmt in src/ui/web/app.js) in step with formatBytes.

/** "0.036864" below 1 MB (six significant digits, like C++ iostream), "5.79" from 1 MB up. */
export function formatMB(bytes: number): string {
  const mb = bytes / 1e6;
  if (mb >= 1) return mb.toFixed(2);
  if (mb === 0) return '0';
  return String(Number(mb.toPrecision(6)));
}

/** "12.0 KB": bytes / 1024 with one decimal. */
export function formatKB(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KB`;
}

/** Human-readable binary size for live views and logs: "1.50 GiB", "36.0 KiB", "512 B". */
export function formatBytes(bytes: number): string {
  const abs = Math.abs(bytes);
  if (abs < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes / 1024;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2)} ${units[u]}`;
}

/** "14:03:07": the local wall-clock time of an exit, as buffer lines show it. */
export function clockTime(ms: number): string {
  return new Date(ms).toTimeString().slice(0, 8);
}

/** The last second isoTime() formatted, and its "YYYY-MM-DDTHH:MM:SS." prefix. */
let isoSecond = NaN,
  isoPrefix = '';

/**
 * `new Date(ms).toISOString()`, cheaply for rows born in the same second (a dump of a million
 * buffers formats a million of these): only the milliseconds are formatted again.
 */
export function isoTime(ms: number): string {
  const sec = Math.floor(ms / 1000);
  if (sec !== isoSecond) {
    isoSecond = sec;
    isoPrefix = new Date(sec * 1000).toISOString().slice(0, 20);
  }
  const frac = ms - sec * 1000;
  return `${isoPrefix}${frac < 10 ? '00' : frac < 100 ? '0' : ''}${frac}Z`;
}

/** "1 buffer", "2 buffers": a count and its noun. */
export function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
