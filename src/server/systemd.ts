// Running under a service manager (systemd, packaging/systemd/): socket activation, readiness, and
// the file-descriptor store, so that a crash (kill -9 included) closes no client connection.
//
// - Socket activation (sd_listen_fds(3)): the manager creates the listening sockets and passes
//   them as fd 3, 4, … (LISTEN_PID = our PID, LISTEN_FDS = how many, LISTEN_FDNAMES = their names,
//   colon-separated). The socket outlives the server: clients connecting while it restarts wait in
//   the backlog instead of failing.
// - sd_notify(3): READY=1 once the sockets are served, STOPPING=1 when a stop begins, as datagrams
//   to $NOTIFY_SOCKET (a path, or "@name" in the abstract namespace).
// - The file-descriptor store: every accepted data connection is handed to the manager
//   ("FDSTORE=1", "FDNAME=conn-…", the descriptor attached with SCM_RIGHTS, through the addon's
//   sdNotify), and taken out again ("FDSTOREREMOVE=1") when it closes. The manager holds a
//   duplicate of each, so a connection stays open when the server dies; when it starts the server
//   again it passes the stored descriptors back after the listening ones, with their names, and
//   the new server reads them on (frame size detected again). What the dead server had read but
//   not yet journaled (at most one --flush-interval) is lost; the bytes it never read are still
//   in the socket. Reads are whole frames for a client that sends whole frames (socket-reader.ts),
//   so the stream resumes at a frame boundary.
// Only used when $FDSTORE says the manager keeps descriptors (systemd sets it to
// FileDescriptorStoreMax=, since v254); without a store a crash closes every connection (and a C++
// client dies of SIGPIPE on its next report).
import type { Socket } from 'node:net';
import { loadNative } from '../platform/native.js';

/** Stored data connections are named with this prefix; other descriptors are listening sockets. */
const CONN_PREFIX = 'conn-';

/** A descriptor passed by the manager at start. */
export interface PassedFd {
  fd: number;
  name: string;
}

type SdNotify = (path: string, text: string, fds: number[]) => void;

export class ServiceManager {
  /** Listening sockets passed at start, in the unit's order (data socket first, then control). */
  readonly listening: PassedFd[];
  /** Data connections a previous server stored, passed back at start. */
  readonly stored: PassedFd[];
  /** Connections now in the manager's store. */
  storedNow = 0;
  /** Why connections are not stored (null: they are). */
  readonly noStore: string | null;
  private readonly notifyPath: string | null;
  private readonly send: SdNotify | null;
  private seq = 0;
  /** At a stop the stored connections stay in the store (a restart hands them on). */
  private detached = false;
  private failures = 0;

  private constructor(
    passed: PassedFd[],
    env: NodeJS.ProcessEnv,
    private readonly log: (msg: string) => void,
  ) {
    this.listening = passed.filter((p) => !p.name.startsWith(CONN_PREFIX));
    this.stored = passed.filter((p) => p.name.startsWith(CONN_PREFIX));
    this.notifyPath = env.NOTIFY_SOCKET || null;
    const native = loadNative();
    const fn = native.addon?.sdNotify;
    this.send = typeof fn === 'function' ? (fn as SdNotify) : null;
    const max = Number(env.FDSTORE ?? 0);
    if (!this.notifyPath) this.noStore = 'no $NOTIFY_SOCKET';
    else if (!(max > 0)) this.noStore = 'no file-descriptor store ($FDSTORE unset or 0)';
    else if (!this.send)
      this.noStore = native.addon ? 'the addon has no sdNotify' : `no addon: ${native.reason}`;
    else this.noStore = null;
  }

  /**
   * What the manager passed in the environment (removed from it, as sd_listen_fds(3) does, so no
   * child inherits it). Descriptors are only ours when LISTEN_PID is our PID.
   */
  static fromEnv(log: (msg: string) => void, env: NodeJS.ProcessEnv = process.env): ServiceManager {
    const passed: PassedFd[] = [];
    const n = Number(env.LISTEN_FDS ?? 0);
    if (Number(env.LISTEN_PID) === process.pid && Number.isInteger(n) && n > 0) {
      const names = (env.LISTEN_FDNAMES ?? '').split(':');
      for (let i = 0; i < n; i++) passed.push({ fd: 3 + i, name: names[i] || 'unknown' });
    }
    const sm = new ServiceManager(passed, env, log);
    for (const k of ['LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES', 'NOTIFY_SOCKET', 'FDSTORE'])
      delete env[k];
    return sm;
  }

  /** Under a manager at all (sockets passed or a notification socket)? */
  get active(): boolean {
    return this.listening.length > 0 || this.stored.length > 0 || this.notifyPath !== null;
  }

  /** Connections are kept in the manager's store. */
  get storing(): boolean {
    return this.noStore === null;
  }

  /** READY=1, STOPPING=1, STATUS=…: one datagram; nothing without a manager. */
  notify(text: string): void {
    if (this.notifyPath === null || this.send === null) return;
    this.sendOrLog(text, []);
  }

  /** Puts a new data connection in the store (removed when it closes). */
  keep(sock: Socket, fd: number): void {
    if (!this.storing || fd < 0) return;
    const name = `${CONN_PREFIX}${process.pid}-${++this.seq}`;
    if (this.sendOrLog(`FDSTORE=1\nFDNAME=${name}`, [fd])) this.track(sock, name);
  }

  /** A connection passed back at start: in the store already, under `name`. */
  adopted(sock: Socket, name: string): void {
    if (this.storing) this.track(sock, name);
  }

  /**
   * A stop begins: the stored connections stay in the store when the server closes them, so that
   * the manager hands them to the next server (`systemctl restart`); a `systemctl stop` flushes
   * the store, and only then do the clients see their connections close.
   */
  detach(): void {
    this.detached = true;
    this.notify('STOPPING=1');
  }

  /** A stored connection that was passed back but is not served (refused): out of the store. */
  dropStored(name: string): void {
    if (this.storing) this.sendOrLog(`FDSTOREREMOVE=1\nFDNAME=${name}`, []);
  }

  private track(sock: Socket, name: string): void {
    this.storedNow++;
    sock.once('close', () => {
      this.storedNow--;
      if (!this.detached) this.sendOrLog(`FDSTOREREMOVE=1\nFDNAME=${name}`, []);
    });
  }

  private sendOrLog(text: string, fds: number[]): boolean {
    try {
      this.send!(this.notifyPath!, text, fds);
      return true;
    } catch (e) {
      // The first failure and every 1000th: a manager that stopped reading must not flood the log.
      if (this.failures++ % 1000 === 0)
        this.log(
          `service manager notification failed (${(e as Error).message}; ` +
            `${this.failures} so far): ${text.split('\n')[0]}`,
        );
      return false;
    }
  }
}
