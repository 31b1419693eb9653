// Socket permissions: owner-only by default; `--group NAME` shares both sockets with one group
// (chgrp + 0660), so the users of one machine opt in explicitly rather than by umask accident;
// and the peer-UID policy applied at accept (below).
import { chmodSync, chownSync, readFileSync } from 'node:fs';

/**
 * Group name (or numeric id) → gid, from /etc/group; Node has no getgrnam. Throws a clear error.
 */
export function resolveGroup(name: string): number {
  if (/^\d+$/.test(name)) return Number(name);
  let text = '';
  try {
    text = readFileSync('/etc/group', 'utf8');
  } catch {
    /* handled below */
  }
  for (const line of text.split('\n')) {
    const [n, , gid] = line.split(':');
    if (n === name && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new Error(`--group ${name}: no such group in /etc/group`);
}

/** Owner-only (0600), or owner + group (0660) when a gid is given. Run after listen. */
export function restrictSocket(path: string, gid: number | null): void {
  if (gid !== null) {
    try {
      chownSync(path, -1, gid);
    } catch (e) {
      throw new Error(
        `--group: cannot give ${path} to group ${gid} ` +
          `(${(e as NodeJS.ErrnoException).code}); you must be a member of that group`,
      );
    }
  }
  chmodSync(path, gid === null ? 0o600 : 0o660);
}

// ------------------------------------------------------------------ who may connect (peer UID)
// Both sockets are owner-only unless --group shares them, so this is defence in depth: a socket
// path created by root, a --group setup, or permissions changed by hand still admit only the
// server's own user, root, the users named by --allow-uid and (with --group) that group's members.

export interface PeerPolicy {
  ownUid: number;
  allowUids: Set<number>;
  /** --group: its gid and name, and the UIDs that belong to it per /etc/passwd and /etc/group. */
  groupGid: number | null;
  groupName: string | null;
  groupMembers: Set<number>;
}

export function peerPolicy(o: {
  ownUid: number;
  allowUids?: Iterable<number>;
  group?: { gid: number; name: string } | null;
}): PeerPolicy {
  const gid = o.group?.gid ?? null;
  return {
    ownUid: o.ownUid,
    allowUids: new Set(o.allowUids ?? []),
    groupGid: gid,
    groupName: o.group?.name ?? null,
    groupMembers: gid === null ? new Set() : groupMemberUids(gid),
  };
}

/** Root, the server's user, an allowed UID, or (with --group) a member of the group. */
export function admitsPeer(
  p: PeerPolicy,
  cred: { pid: number; uid: number; gid: number },
): boolean {
  if (cred.uid === p.ownUid || cred.uid === 0 || p.allowUids.has(cred.uid)) return true;
  if (p.groupGid === null) return false;
  if (cred.gid === p.groupGid || p.groupMembers.has(cred.uid)) return true;
  // Supplementary groups of the connecting process (members known only to NSS/LDAP, newgrp).
  return processGroups(cred.pid).includes(p.groupGid);
}

/** UIDs whose primary group is `gid` (/etc/passwd) or who are listed in it (/etc/group). */
export function groupMemberUids(gid: number): Set<number> {
  const users = passwd();
  const uids = new Set<number>();
  for (const u of users.values()) if (u.gid === gid) uids.add(u.uid);
  for (const line of readText('/etc/group').split('\n')) {
    const [, , g, members] = line.split(':');
    if (g !== String(gid) || !members) continue;
    for (const m of members.trim().split(',')) {
      const u = users.get(m);
      if (u) uids.add(u.uid);
    }
  }
  return uids;
}

/** `--allow-uid 1000,alice`: numeric UIDs or user names from /etc/passwd. Throws a clear error. */
export function parseUidList(text: string): number[] {
  const users = passwd();
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      if (/^\d+$/.test(s)) return Number(s);
      const u = users.get(s);
      if (!u) throw new Error(`--allow-uid ${s}: not a number and no such user in /etc/passwd`);
      return u.uid;
    });
}

function processGroups(pid: number): number[] {
  if (!(pid > 0)) return [];
  const m = /^Groups:\s*([\d ]*)$/m.exec(readText(`/proc/${pid}/status`));
  return m ? m[1]!.trim().split(/\s+/).filter(Boolean).map(Number) : [];
}

function passwd(): Map<string, { uid: number; gid: number }> {
  const users = new Map<string, { uid: number; gid: number }>();
  for (const line of readText('/etc/passwd').split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (name && uid && gid && /^\d+$/.test(uid) && /^\d+$/.test(gid))
      users.set(name, { uid: Number(uid), gid: Number(gid) });
  }
  return users;
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
