// A tiny router for the control API (HTTP/JSON). Route modules register their own routes, each
// with the small context it reads, so no file grows with every feature.
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface RouteContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** True on the owner-only control socket; false on a TCP listener (read-only routes only). */
  trusted: boolean;
  body: () => Promise<unknown>;
}
export type Handler = (ctx: RouteContext) => unknown | Promise<unknown>;

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** More fields of the error body, beside `error`. */
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

interface Route {
  method: string;
  path: string;
  handler: Handler;
  mutating: boolean;
  /** `path` is a prefix followed by one name (DELETE /v1/marks/NAME). */
  prefix?: boolean;
}

function matches(r: Route, pathname: string): boolean {
  return r.prefix
    ? pathname.startsWith(r.path) && pathname.length > r.path.length
    : r.path === pathname;
}

const MAX_BODY = 1 << 20;

/** Answers a `format=text` request with the CLI's rendering (a handler returns its result). */
export function plainText(c: RouteContext, body: string): undefined {
  c.res.writeHead(200, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  c.res.end(body);
  return undefined;
}

export class Router {
  private routes: Route[] = [];
  get(path: string, handler: Handler): void {
    this.routes.push({ method: 'GET', path, handler, mutating: false });
  }
  /** POST routes change state: only reachable with the control socket's permission. */
  post(path: string, handler: Handler): void {
    this.routes.push({ method: 'POST', path, handler, mutating: true });
  }
  /**
   * DELETE on `prefix` + a name (the handler reads it from `url.pathname`); mutating like POST.
   */
  deletePrefix(prefix: string, handler: Handler): void {
    this.routes.push({ method: 'DELETE', path: prefix, handler, mutating: true, prefix: true });
  }

  async handle(req: IncomingMessage, res: ServerResponse, trusted: boolean): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://ttalloc');
    const route = this.routes.find((r) => matches(r, url.pathname) && r.method === req.method);
    try {
      if (!route) {
        const other = this.routes.some((r) => matches(r, url.pathname));
        throw new HttpError(
          other ? 405 : 404,
          other
            ? `method ${req.method} not allowed on ${url.pathname}`
            : `no such endpoint: ${url.pathname}`,
        );
      }
      if (route.mutating && !trusted)
        throw new HttpError(403, 'state-changing endpoints are only served on the control socket');
      const body = () => readJson(req);
      const result = await route.handler({ req, res, url, trusted, body });
      if (result !== undefined && !res.headersSent) sendJson(res, 200, result);
    } catch (e) {
      const status = e instanceof HttpError ? e.status : 500;
      const details = e instanceof HttpError ? e.details : {};
      if (!res.headersSent) sendJson(res, status, { error: (e as Error).message, ...details });
      else res.destroy();
    }
  }
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > MAX_BODY) {
        reject(new HttpError(413, 'request body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (!text) return resolve({});
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new HttpError(400, 'request body is not JSON'));
      }
    });
    req.on('error', reject);
  });
}
