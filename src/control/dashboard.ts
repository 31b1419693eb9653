// The --http listener: the web dashboard's files and the control API over TCP, read-only.
//
// Why read-only: anyone on the host (or network) may reach a TCP port, while the control socket
// is owner-only. So it serves the dashboard and GET routes through the router with
// trusted=false, which refuses every state-changing route.
import { createServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { extname, join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Router } from './router.js';

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|\[?::1\]?|localhost)$/;

export const UI_DIR = fileURLToPath(new URL('../ui/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
};

/**
 * "8080", ":8080", "127.0.0.1:8080", "[::1]:8080" → host and port; a bare port binds loopback only.
 */
export function parseHttpAddress(spec: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]:|([^:[\]]*):)?(\d{1,5})$/.exec(spec.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535)
    throw new Error(`--http: expected [HOST:]PORT (e.g. 127.0.0.1:9478), got '${spec}'`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

export class Dashboard {
  private http: Server | null = null;
  private assets = new Map<string, Buffer>();
  /** Where the dashboard listens (set after start). */
  url: string | null = null;
  private readonly address: { host: string; port: number };

  /** Throws on a malformed `spec` (before anything listens). */
  constructor(
    private readonly spec: string,
    private readonly router: Router,
    private readonly log: (msg: string) => void,
  ) {
    this.address = parseHttpAddress(spec);
  }

  async start(): Promise<void> {
    const { host, port } = this.address;
    this.loadAssets();
    const http = (this.http = createServer((req, res) => this.serve(req, res)));
    await new Promise<void>((resolve, reject) => {
      http.once('error', (e: NodeJS.ErrnoException) =>
        reject(new Error(`--http ${this.spec}: cannot listen (${e.code ?? e.message})`)),
      );
      http.listen(port, host, () => resolve());
    });
    const a = http.address() as AddressInfo;
    this.url = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/`;
    this.log(`dashboard on ${this.url} (metrics: ${this.url}metrics)`);
  }

  async stop(): Promise<void> {
    const h = this.http;
    this.http = null;
    if (h)
      await new Promise<void>((resolve) => {
        h.closeAllConnections();
        h.close(() => resolve());
      });
  }

  private loadAssets(): void {
    try {
      // Only the page's files (dist/ui also holds the compiled TUI modules, in a subdirectory).
      for (const f of readdirSync(UI_DIR, { withFileTypes: true }))
        if (f.isFile() && TYPES[extname(f.name)])
          this.assets.set(f.name, readFileSync(join(UI_DIR, f.name)));
      if (!this.assets.has('index.html')) throw new Error('no index.html');
    } catch {
      this.log(
        `dashboard assets not found in ${UI_DIR} (run 'npm run build'); serving the API only`,
      );
    }
  }

  private serve(req: IncomingMessage, res: ServerResponse): void {
    if (!this.hostAllowed(req.headers.host)) {
      res.writeHead(403, { 'content-type': 'text/plain' });
      res.end('forbidden host name (this listener is bound to loopback)\n');
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    const name = path === '/' ? 'index.html' : path.startsWith('/ui/') ? path.slice(4) : null;
    if (name !== null && req.method === 'GET') {
      const body = this.assets.get(name);
      if (!body) {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end(`not found: ${path}\n`);
        return;
      }
      res.writeHead(200, {
        'content-type': TYPES[extname(name)] ?? 'application/octet-stream',
        'content-length': body.length,
        'cache-control': 'no-cache',
      });
      res.end(body);
      return;
    }
    void this.router.handle(req, res, false);
  }

  /**
   * DNS rebinding guard: a web page from elsewhere can point its own name at 127.0.0.1 and read a
   * loopback-only dashboard. On loopback, accept only loopback names; on other interfaces the
   * names users type are unknown, so the network (firewall) is the guard there.
   */
  private hostAllowed(host: string | undefined): boolean {
    if (!LOOPBACK.test(this.address.host)) return true;
    const name = (host ?? '').replace(/:\d+$/, '').toLowerCase();
    return name === 'localhost' || LOOPBACK.test(name);
  }
}
