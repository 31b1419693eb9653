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
  /**
   * The start time of `pid` (any number that changes when the PID is handed out again; -1: gone):
   * an identity is read again only for a new process. Without it, every refresh reads them all.
   */
  startOf?(pid: number): number;
}

/** A scan is reused for this long (ms). */
export const SOURCES_TTL_MS = 1000;

export class SourcesCache {
  private snap: SourceSnapshot | null = null;
  private atMs = 0;
  /**
   * Identities of the last refresh by PID, with the start they were read at: who a process is
   * does not change while it runs (its environment is the one it started with), and reading it
   * costs ~10 files; a start time is one. Only PIDs asked for in the last refresh are kept.
   */
  private known = new Map<number, { start: number; id: ProcessIdentity | null }>();
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
    const before = this.known;
    const ids = (this.known = new Map());
    this.snap = {
      shm: r.shm(),
      driver: r.driver(),
      identity(pid) {
        let e = ids.get(pid);
        if (!e) {
          const start = r.startOf ? r.startOf(pid) : NaN;
          const old = before.get(pid);
          e = old && old.start === start ? old : { start, id: r.identity(pid) };
          ids.set(pid, e);
        }
        return e.id;
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
