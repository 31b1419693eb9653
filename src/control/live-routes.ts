// Live views of the control API: Prometheus /metrics, the sample history and a server-sent-event
// stream for charts, and buffer paging for the dashboard's table.
import type { ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { Tracker } from '../state/tracker.js';
import { SAMPLE_KINDS, type Sample, type Sampler } from '../metrics/sampler.js';
import { USAGE_COUNTER_TYPES } from '../protocol/constants.js';
import { HttpError, type Router } from './router.js';
import { bufferPage } from './buffer-page.js';
import type { Checkpoints } from '../state/marks.js';
import type { BufferPageResponse, HistoryResponse } from '../report/types.js';
import { SCHEMA_VERSION } from '../report/types.js';

/** Live streams at most: each costs a socket and a write per sample. */
const MAX_STREAMS = 64;

/** What the live routes read. */
export interface LiveContext {
  tracker: Tracker;
  /** For `since=MARK` on the buffer pages (buffers born after the mark). */
  marks: Checkpoints;
  metrics: Registry;
  sampler: Sampler;
}

/** The open /v1/events streams; each gets every new sample. */
export class LiveStreams {
  private streams = new Set<ServerResponse>();

  constructor(private readonly sampler: Sampler) {}

  /** Subscribes to the sampler (call after it started). */
  start(): void {
    this.sampler.subscribe((smp) => this.broadcast(smp));
  }

  stop(): void {
    for (const r of this.streams) r.end();
    this.streams.clear();
  }

  open(res: ServerResponse): void {
    if (this.streams.size >= MAX_STREAMS)
      throw new HttpError(503, `too many live streams (${MAX_STREAMS})`);
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
    const history = {
      intervalMs: this.sampler.intervalMs,
      kinds: SAMPLE_KINDS,
      counters: USAGE_COUNTER_TYPES,
      samples: this.sampler.history(),
    };
    res.write(`retry: 2000\nevent: history\ndata: ${JSON.stringify(history)}\n\n`);
    this.streams.add(res);
    res.on('close', () => this.streams.delete(res));
  }

  private broadcast(smp: Sample): void {
    if (this.streams.size === 0) return;
    const msg = `data: ${JSON.stringify(smp)}\n\n`;
    for (const r of this.streams) r.write(msg);
  }
}

export function registerLiveRoutes(r: Router, s: LiveContext): LiveStreams {
  const streams = new LiveStreams(s.sampler);
  r.get('/metrics', async (c) => {
    const body = await s.metrics.metrics();
    c.res.writeHead(200, {
      'content-type': s.metrics.contentType,
      'content-length': Buffer.byteLength(body),
    });
    c.res.end(body);
    return undefined;
  });
  r.get('/v1/history', (c): HistoryResponse => {
    const sec = c.url.searchParams.get('seconds');
    return {
      schema_version: SCHEMA_VERSION,
      interval_ms: s.sampler.intervalMs,
      kinds: SAMPLE_KINDS,
      counters: USAGE_COUNTER_TYPES,
      samples: s.sampler.history(sec ? Number(sec) : undefined),
    };
  });
  r.get('/v1/events', (c) => {
    streams.open(c.res);
    return undefined;
  });
  r.get('/v1/buffers/page', (c): BufferPageResponse => ({
    schema_version: SCHEMA_VERSION,
    ...bufferPage(s.tracker, c.url, s.marks),
  }));
  return streams;
}
