// Socket permissions: owner-only by default; `--group NAME` shares both sockets with one group
// (chgrp + 0660), so the users of one machine opt in explicitly rather than by umask accident.
import { chmodSync, chownSync, readFileSync } from 'node:fs';

/** Group name (or numeric id) → gid, from /etc/group; Node has no getgrnam. Throws a clear error. */
export function resolveGroup(name: string): number {
  if (/^\d+$/.test(name)) return Number(name);
  let text = '';
  try { text = readFileSync('/etc/group', 'utf8'); } catch { /* handled below */ }
  for (const line of text.split('\n')) {
    const [n, , gid] = line.split(':');
    if (n === name && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new Error(`--group ${name}: no such group in /etc/group`);
}

/** Owner-only (0600), or owner + group (0660) when a gid is given. Run after listen. */
export function restrictSocket(path: string, gid: number | null): void {
  if (gid !== null) {
    try { chownSync(path, -1, gid); } catch (e) {
      throw new Error(`--group: cannot give ${path} to group ${gid} (${(e as NodeJS.ErrnoException).code}); you must be a member of that group`);
    }
  }
  chmodSync(path, gid === null ? 0o600 : 0o660);
}
