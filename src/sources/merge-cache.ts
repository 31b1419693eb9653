// The sources read lazily: a scan of the SHM regions and the driver happens when someone asks
// (a control request, a scrape, a frame of `top`) and is kept for a short while, so a dashboard,
// a Prometheus and a `top` together cost one scan a second, and an idle server none. Never on
// the ingest path: only the control API's handlers and the views call it.
import { mergeView } from './merge.js';
import type { MergedView, SocketProcessInput, SourceSnapshot } from './merge-types.js';
import type { DriverScan, ProcessIdentity, ShmScan } from './types.js';

/** How each source is read (merge-readers.ts has the real ones; tests give fakes). */
export interface SourceReaders {
  shm(): ShmScan;
  driver(): DriverScan;
  identity(pid: number): ProcessIdentity | null;
  knownTool(id: ProcessIdentity): string | null;
}

/** A scan is reused for this long (ms). */
export const SOURCES_TTL_MS = 1000;

export class SourcesCache {
  private snap: SourceSnapshot | null = null;
  private atMs = 0;
  /** Scans made (for tests and the bench: requests within the TTL share one). */
  scans = 0;

  constructor(
    private readonly readers: SourceReaders,
    private readonly ttlMs = SOURCES_TTL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** The scans, read again when older than the TTL. */
  snapshot(): SourceSnapshot {
    const t = this.now();
    if (this.snap && t - this.atMs < this.ttlMs) return this.snap;
    const r = this.readers;
    const ids = new Map<number, ProcessIdentity | null>();
    this.snap = {
      shm: r.shm(),
      driver: r.driver(),
      identity(pid) {
        if (!ids.has(pid)) ids.set(pid, r.identity(pid));
        return ids.get(pid)!;
      },
      knownTool: (id) => r.knownTool(id),
      uid: process.getuid?.() ?? 0,
    };
    this.atMs = t;
    this.scans++;
    return this.snap;
  }

  /** The merged view with the socket's processes of now (null: no server's figures). */
  view(socket: SocketProcessInput[] | null): MergedView {
    return mergeView(socket, this.snapshot());
  }
}
