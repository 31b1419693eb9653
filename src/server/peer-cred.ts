// Who is on the other end of a connection, from the kernel: getsockopt(SO_PEERCRED) on an accepted
// Unix socket, through the small N-API addon in native/ (built from source by `npm ci`, see
// scripts/build-native.mjs). Read once per connection, at accept.
//
// Without the addon (no compiler when installing, not Linux) the server still runs: it says so in
// one line, takes PIDs from the messages as before, and leaves other users to the socket
// permissions. `ttalloc stats` (peers) tells which case a server is in.
import type { Socket } from 'node:net';
import { ADDON_PATH, loadNative } from '../platform/native.js';
import { admitsPeer, type PeerPolicy } from './security.js';
import type { PeerStats } from '../report/types.js';

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

/**
 * Test hook: `TT_ALLOC_NO_PEER_CRED=1` makes the loader behave as if the addon were absent, so the
 * fallback is tested on a machine where the addon did build.
 */
export const NO_PEER_CRED_ENV = 'TT_ALLOC_NO_PEER_CRED';

export type PeerCredSource =
  { available: true; read(sock: Socket): PeerCred } | { available: false; reason: string };

let cached: PeerCredSource | null = null;

/** The addon, loaded once per process; or why it cannot be used. */
export function peerCredSource(): PeerCredSource {
  return (cached ??= loadAddon());
}

function loadAddon(): PeerCredSource {
  const unavailable = (reason: string): PeerCredSource => ({ available: false, reason });
  if (process.env[NO_PEER_CRED_ENV] === '1')
    return unavailable(`turned off by ${NO_PEER_CRED_ENV}=1`);
  const native = loadNative();
  if (!native.addon) return unavailable(native.reason);
  const fn = native.addon.peerCred;
  if (typeof fn !== 'function')
    return unavailable(`the addon ${ADDON_PATH} has no peerCred function`);
  const peerCred = fn as (fd: number) => PeerCred;
  return {
    available: true,
    read(sock: Socket): PeerCred {
      const fd = (sock as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
      if (typeof fd !== 'number' || fd < 0) throw new Error('the socket has no file descriptor');
      return peerCred(fd);
    },
  };
}

export interface PeerGateOptions {
  policy: PeerPolicy;
  /** Ownership follows the PIDs in the messages (relays, replays, simulators). */
  trustClientPid: boolean;
  log(msg: string): void;
  /** Replaceable in tests; default: the addon. */
  source?: PeerCredSource;
}

export type Admission = PeerCred | null | false;

/**
 * The door of both sockets: reads the peer's credentials at accept and refuses users the policy
 * does not admit. Refusals close the connection at once and are counted per UID; the first of each
 * UID and every 1000th after it are logged.
 */
export class PeerGate {
  readonly source: PeerCredSource;
  refused = 0;
  readonly refusedByUid = new Map<number, number>();
  /** Connections whose credentials could not be read although the addon works (refused). */
  readFailures = 0;

  constructor(private opts: PeerGateOptions) {
    this.source = opts.source ?? peerCredSource();
  }

  /** The start-up notice when the kernel cannot be asked; null when it can. */
  notice(): string | null {
    return this.source.available
      ? null
      : `peer credentials unavailable: ${this.source.reason}; PIDs are taken from the messages`;
  }

  /**
   * At accept. Returns the peer's credentials (admitted), null (credentials unavailable: admitted,
   * the socket permissions decide), or false (refused: the socket is already destroyed).
   */
  admit(sock: Socket, what: 'data' | 'control'): Admission {
    const src = this.source;
    if (!src.available) return null;
    let cred: PeerCred;
    try {
      cred = src.read(sock);
    } catch (e) {
      // The addon works but this socket does not answer: fail closed, it is never expected.
      sock.destroy();
      if (this.readFailures++ % 1000 === 0)
        this.opts.log(
          `refusing ${what} connection: cannot read its peer credentials ` +
            `(${(e as Error).message}); ${this.readFailures} so far`,
        );
      return false;
    }
    if (admitsPeer(this.opts.policy, cred)) return cred;
    sock.destroy();
    this.refused++;
    const n = (this.refusedByUid.get(cred.uid) ?? 0) + 1;
    this.refusedByUid.set(cred.uid, n);
    if (n % 1000 === 1) {
      const p = this.opts.policy;
      this.opts.log(
        `refusing ${what} connection from uid ${cred.uid} (pid ${cred.pid}): ` +
          `not this server's user (uid ${p.ownUid}) nor root` +
          `${p.groupName !== null ? ` nor a member of group ${p.groupName}` : ''}; ` +
          `admit it with --allow-uid ${cred.uid}` +
          ` (${n} refused from uid ${cred.uid} so far; logged again every 1000th)`,
      );
    }
    return false;
  }

  /** For `stats` (peers). */
  stats(): PeerStats {
    const p = this.opts.policy;
    const byUid: Record<string, number> = {};
    for (const [uid, n] of [...this.refusedByUid].sort((a, b) => a[0] - b[0]))
      byUid[String(uid)] = n;
    return {
      credentials: this.source.available ? 'kernel (SO_PEERCRED)' : 'unavailable',
      ...(this.source.available ? {} : { reason: this.source.reason }),
      pid_source: this.source.available && !this.opts.trustClientPid ? 'kernel' : 'messages',
      trust_client_pid: this.opts.trustClientPid,
      uid_check: this.source.available,
      admitted_uids: [...new Set([p.ownUid, 0, ...p.allowUids])].sort((a, b) => a - b),
      group: p.groupName,
      refused: { total: this.refused, by_uid: byUid, unreadable: this.readFailures },
    };
  }
}
