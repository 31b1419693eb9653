// User names of region owners, from /etc/passwd (re-read when an unknown uid shows up, at most
// once a second, and a name we had none for is looked up again after a minute).
import { readFileSync } from 'node:fs';

const names = new Map<number, string | null>();
let passwdPath = '/etc/passwd';
let readAt = 0;

/** The name of `uid`, or null when /etc/passwd has none. */
export function userName(uid: number): string | null {
  const known = names.get(uid);
  const now = Date.now();
  if (known !== undefined && (known !== null || now - readAt < 60_000)) return known;
  if (now - readAt > 1000) {
    readAt = now;
    load();
    const again = names.get(uid);
    if (again !== undefined) return again;
  }
  names.set(uid, null);
  return null;
}

function load(): void {
  let text = '';
  try {
    text = readFileSync(passwdPath, 'utf8');
  } catch {
    return;
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 3) continue;
    const uid = Number(f[2]);
    if (Number.isInteger(uid)) names.set(uid, f[0]);
  }
}

/** Tests: a passwd file of their own. */
export function setPasswdPath(path: string): void {
  passwdPath = path;
  names.clear();
  readAt = 0;
}
