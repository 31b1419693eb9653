// Talking to a running server's control API (HTTP/JSON over the control Unix socket).
import { request, type IncomingMessage } from 'node:http';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { controlPathFor, resolveSocket } from '../protocol/transport.js';

export { resolveSocket };

export class NoServerError extends Error {}
export class ServerError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export type Method = 'GET' | 'POST' | 'DELETE';

export interface ControlResponse {
  status: number;
  body: string;
  contentType: string;
}

export class ControlClient {
  readonly controlPath: string;
  constructor(readonly socketPath: string) {
    this.controlPath = controlPathFor(socketPath);
  }

  raw(method: Method, path: string, body?: unknown): Promise<ControlResponse> {
    return this.send(method, path, body, (res, resolve) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString('utf8'),
          contentType: String(res.headers['content-type'] ?? ''),
        }),
      );
    });
  }

  /**
   * GET `path` and pipe a 200 answer's body into `sink` as it arrives (an export of millions of
   * events is never held whole); any other answer is an error with the server's message.
   */
  async download(path: string, sink: Writable): Promise<void> {
    const r = await this.send('GET', path, undefined, (res, resolve, reject) => {
      if (res.statusCode !== 200) {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, body, contentType: '' });
        });
        return;
      }
      pipeline(res, sink).then(
        () => resolve({ status: 200, body: '', contentType: '' }),
        (e: unknown) => reject(e as Error),
      );
    });
    if (r.status !== 200) throw new ServerError(r.status, errorMessage(r));
  }

  private send(
    method: Method,
    path: string,
    body: unknown,
    onResponse: (
      res: IncomingMessage,
      resolve: (r: ControlResponse) => void,
      reject: (e: Error) => void,
    ) => void,
  ): Promise<ControlResponse> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        {
          socketPath: this.controlPath,
          path,
          method,
          headers: payload
            ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
            : {},
        },
        (res) => {
          res.on('error', reject);
          onResponse(res, resolve, reject);
        },
      );
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') {
          reject(
            new NoServerError(
              `no allocation server is running on ${this.socketPath} ` +
                "(start one with 'allocation-server' or 'ttalloc server', " +
                'or point --socket / TT_ALLOC_SERVER_SOCKET at it)',
            ),
          );
        } else if (e.code === 'EACCES') {
          reject(
            new NoServerError(
              `permission denied on ${this.controlPath}: the server belongs to another user`,
            ),
          );
        } else reject(e);
      });
      if (payload) req.write(payload);
      req.end();
    });
  }

  async text(method: Method, path: string, body?: unknown): Promise<string> {
    const r = await this.raw(method, path, body);
    if (r.status !== 200) throw new ServerError(r.status, errorMessage(r));
    return r.body;
  }

  async json<T = unknown>(method: Method, path: string, body?: unknown): Promise<T> {
    return JSON.parse(await this.text(method, path, body)) as T;
  }
}

function errorMessage(r: ControlResponse): string {
  try {
    return (JSON.parse(r.body) as { error?: string }).error ?? r.body;
  } catch {
    return r.body || `HTTP ${r.status}`;
  }
}
