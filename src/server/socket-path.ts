// Owning a Unix socket path safely: refuse when a live server answers there, remove a stale file
// left by a dead one, and on exit remove only the file we created (checked by inode).
import { connect, type Server as NetServer } from 'node:net';
import type { Server as HttpServer } from 'node:http';
import { linkSync, lstatSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';

export class SocketInUseError extends Error {}

/** Resolves true when something accepts connections on `path`. */
export function isListening(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const done = (v: boolean) => {
      clearTimeout(t);
      s.destroy();
      resolve(v);
    };
    // a connect that hangs means a live but busy owner
    const t = setTimeout(() => done(true), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** Makes `path` free for us to listen on, or throws SocketInUseError. */
export async function claimSocketPath(path: string, what: string): Promise<void> {
  checkLength(path);
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket())
    throw new SocketInUseError(
      `${path} exists and is not a socket; refusing to replace it ` +
        `(remove it or choose another ${what} path)`,
    );
  if (
    typeof process.getuid === 'function' &&
    st.uid !== process.getuid() &&
    process.getuid() !== 0
  ) {
    throw new SocketInUseError(
      `${path} belongs to another user (uid ${st.uid}); refusing to replace it`,
    );
  }
  if (await isListening(path)) {
    throw new SocketInUseError(
      `another allocation server is already running on ${path}; ` +
        'stop it first (ttalloc stop) or use --socket PATH',
    );
  }
  unlinkSync(path); // stale: left by a server that died
}

/** Remembers the inode we created so that exit never removes someone else's socket. */
export class OwnedPath {
  private ino = -1;
  constructor(readonly path: string) {}
  taken(): void {
    try {
      this.ino = lstatSync(this.path).ino;
    } catch {
      this.ino = -1;
    }
  }
  release(): void {
    if (this.ino < 0) return;
    try {
      if (lstatSync(this.path).ino === this.ino) unlinkSync(this.path);
    } catch {
      /* already gone */
    }
    this.ino = -1;
  }
}

let privateSeq = 0;
export const MAX_SOCKET_PATH = 107;

/** sun_path holds 107 bytes; a longer path would be silently truncated by the kernel. */
function checkLength(path: string): void {
  const n = Buffer.byteLength(path);
  if (n > MAX_SOCKET_PATH)
    throw new Error(
      `socket path ${path} is ${n} bytes; Unix sockets allow ${MAX_SOCKET_PATH} ` +
        '(choose a shorter --socket; the control socket adds ".ctl")',
    );
}

/**
 * Listens on a Unix socket path without ever deleting someone else's file later. libuv unlinks a
 * pipe server's path when it closes, whoever owns that path by then; so we bind a private name,
 * hard-link the real path to it (link() fails rather than replace anything) and drop the private
 * name. libuv's unlink on close then hits nothing, and OwnedPath removes the real path only while
 * it is still ours.
 */
export async function listenUnix(s: NetServer | HttpServer, path: string): Promise<void> {
  checkLength(path);
  const tmp = join(dirname(path), `.tt${process.pid}.${++privateSeq}`);
  if (Buffer.byteLength(tmp) > MAX_SOCKET_PATH) return listenOn(s, path);
  try {
    unlinkSync(tmp);
  } catch {
    /* normally absent */
  }
  try {
    await listenOn(s, tmp);
  } catch (e) {
    throw new Error(
      `cannot listen on ${path}: ${(e as Error).message.replace(tmp, dirname(path))}`,
    );
  }
  try {
    linkSync(tmp, path);
  } catch (e) {
    s.close();
    if ((e as NodeJS.ErrnoException).code === 'EEXIST')
      throw new SocketInUseError(
        `${path} was taken by another process while starting; refusing to replace it`,
      );
    throw e;
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      /* gone */
    }
  }
}

function listenOn(s: NetServer | HttpServer, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.listen(path, () => {
      s.off('error', reject);
      resolve();
    });
  });
}
