// The new server's side of a restart (`ttalloc restart`, `ttalloc server --replace`): it asks the
// running server over the control socket for a takeover (takeover-channel.ts), loads the state
// *before* the switch (the state directory, followed as the old server writes it:
// takeover-journal.ts), then asks for the switch, applies the last events, takes the listening
// sockets and every data connection with its reading state, locks the state directory the old
// server has left, and reads on. No client sees its connection close; the pause a sending client
// sees is the switch alone.
import { connect, Socket } from 'node:net';
import { closeSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadState } from '../persist/replay.js';
import type { Tracker } from '../state/tracker.js';
import type { Checkpoints } from '../state/marks.js';
import type { ConnectionState } from './data-connection.js';
import type { Connections } from './connections.js';
import type { Persistence } from './persistence.js';
import { JournalFollower } from './takeover-journal.js';
import {
  MessageReader,
  PACKAGE_VERSION,
  TAKEOVER_PATH,
  TAKEOVER_PROTOCOL,
  fdOf,
  fdPassing,
  sendLine,
  type FdNative,
  type TakeoverMessage,
} from './takeover-channel.js';

/** What the takeover needs of the new server (server.ts takingPort()). */
export interface TakingServer {
  controlPath: string;
  tracker: Tracker;
  marks: Checkpoints;
  persistence: Persistence;
  connections: Connections;
  /** Listens on the passed data and control sockets. */
  adoptListeners(dataFd: number, ctlFd: number): Promise<void>;
  adoptConnection(sock: Socket, s: ConnectionState): void;
  setNextConnId(n: number): void;
  log(msg: string): void;
}

export interface TakeoverResult {
  fromPid: number;
  fromVersion: string;
  connections: number;
  /** From the switch request to reading again (what a sending client waits at most, about). */
  pauseMs: number;
  /** Loading the state before the switch. */
  preloadMs: number;
}

/** The journal tail is followed until one round brings fewer events than this. */
const SMALL_TAIL = 2000;
const MAX_ROUNDS = 50;
const STEP_TIMEOUT_MS = 60_000;

/** No server answers on the control socket: there is nothing to take over. */
export class NothingToReplace extends Error {}

/**
 * Called once serving, before this process writes to the old server's stdout and stderr
 * (`ttalloc restart` waits for what it says on this process's own stderr).
 */
export type Announce = (r: TakeoverResult) => void;

/**
 * Takes over from the server on the control socket. With `announce` (`ttalloc restart`), this
 * process writes to the old server's stdout and stderr from then on: its log goes on there.
 */
export async function takeOver(
  s: TakingServer,
  announce: Announce | null,
): Promise<TakeoverResult> {
  const fds = fdPassing();
  if (!fds.native) throw new Error(`a takeover is impossible here: ${fds.reason}`);
  const sock = await open(s.controlPath);
  try {
    return await run(s, fds.native, sock, announce);
  } finally {
    sock.destroy();
  }
}

function open(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    // Never read by libuv: recvFds reads it (a plain read would drop the descriptors).
    sock.pause();
    sock.once('connect', () => resolve(sock));
    sock.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
          ? new NothingToReplace(`no server is running on ${path}`)
          : e,
      ),
    );
  });
}

async function run(
  s: TakingServer,
  n: FdNative,
  sock: Socket,
  announce: Announce | null,
): Promise<TakeoverResult> {
  const q = `protocol=${TAKEOVER_PROTOCOL}&version=${encodeURIComponent(PACKAGE_VERSION)}`;
  sock.write(
    `GET ${TAKEOVER_PATH}?${q}&pid=${process.pid} HTTP/1.1\r\nHost: ttalloc\r\n` +
      'Connection: Upgrade\r\nUpgrade: ttalloc-takeover\r\n\r\n',
  );
  const rd = new MessageReader(n, fdOf(sock));
  const head = rd.head(STEP_TIMEOUT_MS);
  if (!head.startsWith('HTTP/1.1 101'))
    throw new Error(`the running server refused the takeover: ${rd.rest() || head}`);
  const hello = expect(rd.next(STEP_TIMEOUT_MS), 'hello');
  const mine = s.persistence.configuredDir;
  if (hello.stateDir !== mine)
    throw new Error(
      `the running server persists to ${hello.stateDir || 'nothing (--no-persist)'}, ` +
        `this one to ${mine || 'nothing (--no-persist)'}: give both the same --state-dir`,
    );
  s.log(`taking over from pid ${hello.pid} (version ${hello.version})`);
  const t0 = performance.now();
  const follower = mine === false ? null : preload(s, mine);
  const preloadMs = performance.now() - t0;
  const snapshotDir = follower ? null : mkdtempSync(join(tmpdir(), 'ttalloc-takeover-'));
  const tSwitch = performance.now();
  sendLine(sock, { type: 'switch', snapshotDir });
  const state = expect(rd.next(STEP_TIMEOUT_MS), 'state');
  const [dataFd, ctlFd, outFd, errFd] = rd.takeFds(4);
  const conns: { fd: number; s: ConnectionState }[] = [];
  for (let m = rd.next(STEP_TIMEOUT_MS); m.type !== 'sent'; m = rd.next(STEP_TIMEOUT_MS)) {
    const part = expect(m, 'conns').conns;
    const got = rd.takeFds(part.length);
    part.forEach((c, i) => conns.push({ fd: got[i], s: c }));
  }
  finishState(s, follower, snapshotDir);
  sendLine(sock, { type: 'loaded' });
  expect(rd.next(STEP_TIMEOUT_MS), 'released');
  if (follower) s.persistence.openLoaded(s.tracker, s.marks, follower.recovery);
  else s.tracker.resetFrameCounts();
  state.framesByType.forEach((count, type) => s.tracker.countFrames(type, count));
  await s.adoptListeners(dataFd, ctlFd);
  for (const c of conns)
    s.adoptConnection(new Socket({ fd: c.fd, readable: true, writable: true }), c.s);
  s.connections.adoptCounters(state.counters);
  s.setNextConnId(state.nextConnId);
  const r: TakeoverResult = {
    fromPid: hello.pid,
    fromVersion: hello.version,
    connections: conns.length,
    pauseMs: performance.now() - tSwitch,
    preloadMs,
  };
  sendLine(sock, { type: 'done' });
  if (announce) {
    announce(r);
    n.dup2(outFd, 1);
    n.dup2(errFd, 2);
  }
  closeSync(outFd);
  closeSync(errFd);
  return r;
}

/** Loads the state directory and follows its journal until the tail is small. */
function preload(s: TakingServer, dir: string): JournalFollower {
  const f = new JournalFollower(dir, s.tracker, s.marks);
  for (let round = 0; round < MAX_ROUNDS; round++)
    if (f.catchUp().events < SMALL_TAIL && round > 0) break;
  return f;
}

/** The events between the last preload round and the switch, or the handed snapshot. */
function finishState(
  s: TakingServer,
  follower: JournalFollower | null,
  snapshotDir: string | null,
): void {
  if (follower) {
    const r = follower.catchUp();
    if (r.problem) s.log(`state takeover: ${r.problem}; the journal after that point is ignored`);
    return;
  }
  if (!snapshotDir) return;
  try {
    loadState(snapshotDir, s.tracker, s.marks, { repair: false });
  } finally {
    rmSync(snapshotDir, { recursive: true, force: true });
  }
}

function expect<T extends TakeoverMessage['type']>(
  m: TakeoverMessage,
  type: T,
): Extract<TakeoverMessage, { type: T }> {
  if (m.type !== type) throw new Error(`handover: expected '${type}', got '${m.type}'`);
  return m as Extract<TakeoverMessage, { type: T }>;
}
