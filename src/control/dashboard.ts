// Live views served by the server: Prometheus /metrics, sample history and a server-sent-event
// stream for charts, buffer paging, and (with --http) a TCP listener for the web dashboard.
//
// Why the TCP listener is read-only: anyone on the host (or network) may reach a TCP port, while
// the control socket is owner-only. So it serves the dashboard and GET routes through the router
// with trusted=false, which refuses every state-changing route.
import { createServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { extname, join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { AllocationServer } from './server.js';
import { createMetrics } from '../metrics/registry.js';
import { Sampler, SAMPLE_KINDS, type Sample } from '../metrics/sampler.js';
import { bufferPage } from './buffer-page.js';
import { HttpError } from './http-router.js';

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|\[?::1\]?|localhost)$/;
const MAX_STREAMS = 64;

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

export class LiveViews {
  readonly metrics: Registry;
  readonly sampler: Sampler;
  private http: Server | null = null;
  private assets = new Map<string, Buffer>();
  private streams = new Set<ServerResponse>();
  /** Where the dashboard listens (set after start with --http). */
  url: string | null = null;

  private readonly address: { host: string; port: number } | null;

  constructor(private readonly s: AllocationServer) {
    this.address = s.opts.http ? parseHttpAddress(s.opts.http) : null;
    this.metrics = createMetrics(s);
    this.sampler = new Sampler(s, s.opts.sampleIntervalMs ?? 1000);
    const r = s.router;
    r.get('/metrics', async (c) => {
      const body = await this.metrics.metrics();
      c.res.writeHead(200, {
        'content-type': this.metrics.contentType,
        'content-length': Buffer.byteLength(body),
      });
      c.res.end(body);
      return undefined;
    });
    r.get('/v1/history', (c) => {
      const sec = c.url.searchParams.get('seconds');
      return {
        schema_version: 1,
        intervalMs: this.sampler.intervalMs,
        kinds: SAMPLE_KINDS,
        samples: this.sampler.history(sec ? Number(sec) : undefined),
      };
    });
    r.get('/v1/events', (c) => {
      this.openStream(c.res);
      return undefined;
    });
    r.get('/v1/buffers/page', (c) => ({ schema_version: 1, ...bufferPage(s.tracker, c.url) }));
  }

  async start(): Promise<void> {
    this.sampler.start();
    this.sampler.subscribe((smp) => this.broadcast(smp));
    if (!this.address) return;
    const { host, port } = this.address,
      spec = this.s.opts.http;
    this.loadAssets();
    this.http = createServer((req, res) => this.serve(req, res));
    await new Promise<void>((resolve, reject) => {
      this.http!.once('error', (e: NodeJS.ErrnoException) =>
        reject(new Error(`--http ${spec}: cannot listen (${e.code ?? e.message})`)),
      );
      this.http!.listen(port, host, () => resolve());
    });
    const a = this.http.address() as AddressInfo;
    this.url = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/`;
    this.s.log(`dashboard on ${this.url} (metrics: ${this.url}metrics)`);
  }

  async stop(): Promise<void> {
    this.sampler.stop();
    for (const r of this.streams) r.end();
    this.streams.clear();
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
      this.s.log(
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
    void this.s.router.handle(req, res, false);
  }

  /**
   * DNS rebinding guard: a web page from elsewhere can point its own name at 127.0.0.1 and read a
   * loopback-only dashboard. On loopback, accept only loopback names; on other interfaces the
   * names users type are unknown, so the network (firewall) is the guard there.
   */
  private hostAllowed(host: string | undefined): boolean {
    if (!this.address || !LOOPBACK.test(this.address.host)) return true;
    const name = (host ?? '').replace(/:\d+$/, '').toLowerCase();
    return name === 'localhost' || LOOPBACK.test(name);
  }

  private openStream(res: ServerResponse): void {
    // A bounded number of live streams: each costs a socket and a write per sample.
    if (this.streams.size >= MAX_STREAMS)
      throw new HttpError(503, `too many live streams (${MAX_STREAMS})`);
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
    res.write(
      `retry: 2000\nevent: history\ndata: ${JSON.stringify({ intervalMs: this.sampler.intervalMs, kinds: SAMPLE_KINDS, samples: this.sampler.history() })}\n\n`,
    );
    this.streams.add(res);
    res.on('close', () => this.streams.delete(res));
  }

  private broadcast(smp: Sample): void {
    if (this.streams.size === 0) return;
    const msg = `data: ${JSON.stringify(smp)}\n\n`;
    for (const r of this.streams) r.write(msg);
  }
}
