// The old server's side of a restart: on the new server's request (takeover-channel.ts) it holds
// its compactions while the new one preloads the state, then stops reading every data connection
// (the clients' bytes wait in the kernel's socket buffers; a client blocks at worst for the
// pause), puts its journal on disk to the last event applied (or, without persistence, writes a
// snapshot for the new server), passes the listening sockets and every connection with its
// reading state, leaves the state directory once the new server has everything, and exits
// without removing the socket paths and without closing anything a client could see.
// Until the new server says it has the state, the old one can still go back to serving.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { basename } from 'node:path';
import { snapshotSource, writeSnapshot } from '../persist/snapshot.js';
import type { StateStore } from '../persist/state-store.js';
import type { Tracker } from '../state/tracker.js';
import type { Checkpoints } from '../state/marks.js';
import type { Connections } from './connections.js';
import type { Persistence } from './persistence.js';
import {
  FDS_PER_MESSAGE,
  PACKAGE_VERSION,
  TAKEOVER_PATH,
  TAKEOVER_PROTOCOL,
  fdOf,
  fdPassing,
  sendMessage,
  type FdNative,
  type TakeoverMessage,
} from './takeover-channel.js';

/** What the handover needs of the running server (server.ts givingPort()). */
export interface GivingServer {
  tracker: Tracker;
  marks: Checkpoints;
  persistence: Persistence;
  connections: Connections;
  /** The data and control listening sockets. */
  listeners(): [unknown, unknown];
  nextConnId(): number;
  /** Stops the timers (sweeps, ticks) and reading every data connection. */
  pause(): void;
  /** The takeover did not happen: back to serving. */
  resume(): void;
  /**
   * Stops accepting (the new server accepts on the passed listeners from now on: a connection
   * this process accepted now would be lost with it).
   */
  closeListeners(): void;
  /** After an abort with the listeners closed: listens on the socket paths anew. */
  relisten(): Promise<void>;
  /** Closes what cannot be passed (the dashboard's port, for the new server to bind). */
  releaseShared(): Promise<void>;
  log(msg: string): void;
  warn(msg: string): void;
}

export interface TakeoverInfo {
  pid: number;
  version: string;
  protocol: number;
  /** Why this server cannot be taken over (null: it can). */
  impossible: string | null;
  /** The `server` command's arguments. */
  args: string[];
  cwd: string;
  env: Record<string, string>;
}

/** How long the old server waits for the new one at each step before it goes back to serving. */
const STEP_TIMEOUT_MS = 60_000;

export class HandOver {
  /** Between the switch and the exit (or an abort): control requests are answered 503. */
  busy = false;
  private channel: Socket | null = null;
  private committed = false;
  private held: StateStore | null = null;
  private timer: NodeJS.Timeout | null = null;
  private listenersGone = false;

  constructor(private readonly s: GivingServer) {}

  /**
   * What `ttalloc restart` needs to start the new server as this one was started (GET
   * /v1/takeover/info): the server's arguments, directory and the environment that shapes its
   * configuration, and whether a takeover is possible here.
   */
  info(): TakeoverInfo {
    const a = process.argv.slice(2);
    const i = a.indexOf('server');
    const own = basename(process.argv[1] ?? '').startsWith('allocation-server') || i < 0;
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env))
      if (v !== undefined && (k.startsWith('TT_ALLOC_') || k === 'XDG_STATE_HOME' || k === 'HOME'))
        env[k] = v;
    return {
      pid: process.pid,
      version: PACKAGE_VERSION,
      protocol: TAKEOVER_PROTOCOL,
      impossible: fdPassing().reason,
      args: (own ? a : a.slice(i + 1)).filter((x) => x !== '--replace' && x !== '--takeover-stdio'),
      cwd: process.cwd(),
      env,
    };
  }

  /** The control server's 'upgrade': a new server asks for the takeover. */
  upgrade(req: IncomingMessage, sock: Socket): void {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== TAKEOVER_PATH) return void sock.destroy();
    const refuse = (why: string) => {
      this.s.log(`takeover refused: ${why}`);
      sock.end(`HTTP/1.1 409 Conflict\r\nConnection: close\r\n\r\n${why}`);
    };
    const protocol = Number(url.searchParams.get('protocol'));
    const who = `pid ${url.searchParams.get('pid')} (version ${url.searchParams.get('version')})`;
    if (protocol !== TAKEOVER_PROTOCOL)
      return refuse(
        `handover protocol ${protocol} asked by ${who}; this server (version ` +
          `${PACKAGE_VERSION}) speaks ${TAKEOVER_PROTOCOL}: stop and start instead`,
      );
    if (this.channel) return refuse(`another takeover is in progress (asked by ${who})`);
    const fds = fdPassing();
    if (!fds.native) return refuse(`this server cannot pass descriptors: ${fds.reason}`);
    const dir = this.s.persistence.configuredDir;
    const store = this.s.persistence.journal;
    if (dir !== false && !store)
      return refuse('persistence is stopped here: the new server could not load the state');
    this.channel = sock;
    this.s.log(`takeover requested by ${who}`);
    sock.write(
      'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n' +
        `Upgrade: ttalloc-takeover/${TAKEOVER_PROTOCOL}\r\n\r\n`,
      () => void this.hello(fds.native, store, dir),
    );
    let line = '';
    sock.on('data', (d: Buffer) => {
      line += d.toString();
      for (let i = line.indexOf('\n'); i >= 0; i = line.indexOf('\n')) {
        const msg = JSON.parse(line.slice(0, i)) as TakeoverMessage;
        line = line.slice(i + 1);
        this.step(fds.native, msg).catch((e: Error) => this.abort(`${e.message}`));
      }
    });
    sock.on('error', () => {});
    sock.on('close', () => this.abort('the new server closed the handover channel'));
    this.arm();
  }

  private async hello(n: FdNative, store: StateStore | null, dir: string | false): Promise<void> {
    if (store) {
      await store.holdCompaction();
      this.held = store;
    }
    const fd = fdOf(this.channel);
    const msg: TakeoverMessage = {
      type: 'hello',
      protocol: TAKEOVER_PROTOCOL,
      version: PACKAGE_VERSION,
      pid: process.pid,
      stateDir: dir,
    };
    sendMessage(n, fd, msg, []);
  }

  private async step(n: FdNative, msg: TakeoverMessage): Promise<void> {
    this.arm();
    const fd = fdOf(this.channel);
    if (msg.type === 'switch') return this.handOver(n, fd, msg.snapshotDir);
    if (msg.type === 'loaded') {
      // From here on the new server has everything: no way back.
      this.committed = true;
      this.held?.handOff();
      await this.s.releaseShared();
      sendMessage(n, fd, { type: 'released' }, []);
      return;
    }
    if (msg.type === 'done') this.exit();
  }

  /** Stops reading, puts the state where the new server reads it, and sends the descriptors. */
  private async handOver(n: FdNative, fd: number, snapshotDir: string | null): Promise<void> {
    const s = this.s;
    this.busy = true;
    s.pause();
    const open = [...s.connections.open];
    // Replies already written must reach their clients from this process's buffers first.
    await Promise.all(
      open
        .filter((c) => c.socket.writableLength > 0 && !c.socket.destroyed)
        .map((c) => new Promise<void>((r) => c.socket.write('', () => r()))),
    );
    if (this.held) await this.held.drain();
    else if (snapshotDir) {
      const src = snapshotSource(s.tracker, s.marks, true);
      await writeSnapshot(snapshotDir, src, 0, () => Promise.resolve());
    }
    const [data, ctl] = s.listeners();
    const tr = s.tracker;
    const state: TakeoverMessage = {
      type: 'state',
      counters: s.connections.counters(),
      framesByType: [...tr.framesByType],
      nextConnId: s.nextConnId(),
      connections: open.length,
    };
    sendMessage(n, fd, state, [fdOf(data), fdOf(ctl), 1, 2]);
    s.closeListeners();
    this.listenersGone = true;
    for (let i = 0; i < open.length; i += FDS_PER_MESSAGE) {
      const part = open.slice(i, i + FDS_PER_MESSAGE);
      const conns = part.map((c) => c.handOver());
      sendMessage(
        n,
        fd,
        { type: 'conns', conns },
        part.map((c) => c.fd),
      );
    }
    sendMessage(n, fd, { type: 'sent' }, []);
  }

  /** Each step must come within STEP_TIMEOUT_MS, else the takeover is abandoned. */
  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.abort('the new server stopped answering'), STEP_TIMEOUT_MS);
    this.timer.unref();
  }

  private abort(why: string): void {
    if (!this.channel) return;
    if (this.committed) return this.exit();
    if (this.timer) clearTimeout(this.timer);
    this.channel.destroy();
    this.channel = null;
    this.held?.releaseCompaction();
    this.held = null;
    if (this.busy) {
      this.busy = false;
      this.s.resume();
    }
    if (this.listenersGone) {
      this.listenersGone = false;
      this.s.relisten().catch((e: Error) => this.s.warn(`!!! cannot listen again: ${e.message}`));
    }
    this.s.warn(`takeover abandoned (${why}): this server goes on serving`);
  }

  /**
   * The new server serves: this one exits at once, without the stop path (which would remove
   * the socket paths and close connections). Its copies of the descriptors close with it; the
   * sockets stay open in the new server.
   */
  private exit(): void {
    this.s.log(`handed over to the new server; pid ${process.pid} exits`);
    process.exit(0);
  }
}
