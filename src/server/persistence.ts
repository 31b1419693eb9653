// The server's persistent state: opening the store (recovery before any client connects), what
// ingest journals to, and persistence as stats show it. One store; "the journal" is that store
// while it journals (null when persistence is off, or stopped after a failure until it resumes).
import type { ForgetFilter, ProcessIdentity, ReapedReport } from '../state/left-behind.js';
import {
  StateStore,
  StateDirError,
  defaultStateDir,
  type PersistenceStats,
} from '../persist/state-store.js';
import type { Tracker } from '../state/tracker.js';
import type { Recovery } from '../persist/replay.js';
import type { Checkpoints } from '../state/marks.js';
import type { ServerConfig } from './config.js';

export interface PersistenceLog {
  log(msg: string): void;
  warn(msg: string): void;
}

/** Segments are a quarter of the compaction threshold, within these bounds. */
const MIN_SEGMENT_BYTES = 64 << 10;
const MAX_SEGMENT_BYTES = 64 << 20;

export class Persistence {
  /** The open store, or null with --no-persist or an unusable default directory. */
  private store: StateStore | null = null;
  private journaling = false;
  /** Why persistence is off although it was not turned off (the default directory is unusable). */
  private offReason: string | null = null;

  constructor(
    private readonly cfg: Pick<
      ServerConfig,
      'stateDir' | 'socketPath' | 'flushIntervalMs' | 'compactBytes'
    >,
    private readonly say: PersistenceLog,
  ) {}

  /** Where accepted events go: the store while it journals, else null. */
  get journal(): StateStore | null {
    return this.journaling ? this.store : null;
  }

  /**
   * Recovers the persisted state into `tr` and `marks` and starts journaling. True when objects
   * were restored (their owners may have died while no server ran: the caller sweeps).
   */
  open(tr: Tracker, marks: Checkpoints): boolean {
    const cfg = this.cfg;
    if (cfg.stateDir === false) return false;
    const store = this.makeStore(cfg.stateDir ?? defaultStateDir(cfg.socketPath));
    let rec;
    try {
      rec = store.open(tr, marks);
    } catch (e) {
      // An explicit --state-dir that cannot be used is an error; the default one only costs
      // persistence.
      if (cfg.stateDir !== undefined || !(e instanceof StateDirError)) throw e;
      this.offReason = e.message;
      this.say.warn(
        `!!! PERSISTENCE OFF: ${this.offReason}. ` +
          'The server tracks in memory only; a restart loses state.',
      );
      return false;
    }
    this.store = store;
    this.journaling = true;
    const restored =
      rec.previousStop === 'none'
        ? 'new'
        : `restored ${tr.buffers.count} buffers, ${tr.cbs.count} CBs, ` +
          `${tr.kernels.count} kernels, ${marks.list().length} marks ` +
          `(snapshot: ${rec.snapshotObjects} objects, journal: ${rec.journalEvents} events) ` +
          `after a ${rec.previousStop} stop`;
    this.say.log(`state directory ${store.opts.dir}: ${restored}`);
    for (const p of rec.problems) this.say.log(`state recovery: ${p}`);
    if (rec.previousStop === 'crash')
      this.say.log(
        `the previous server did not stop cleanly: up to ${store.opts.flushIntervalMs} ms ` +
          'of events before it died may be missing',
      );
    return tr.buffers.count + tr.cbs.count + tr.kernels.count > 0;
  }

  /** The directory this server's configuration persists to (false: --no-persist). */
  get configuredDir(): string | false {
    const cfg = this.cfg;
    return cfg.stateDir === false ? false : (cfg.stateDir ?? defaultStateDir(cfg.socketPath));
  }

  /**
   * A restart's new server: takes the directory over with the state already loaded from it
   * (takeover-new.ts), and journals from here on.
   */
  openLoaded(tr: Tracker, marks: Checkpoints, rec: Recovery): void {
    const store = this.makeStore(this.configuredDir as string);
    store.openLoaded(tr, marks, rec);
    this.store = store;
    this.journaling = true;
    this.say.log(`state directory ${store.opts.dir}: taken over from the previous server`);
  }

  private makeStore(dir: string): StateStore {
    const cfg = this.cfg;
    return new StateStore({
      dir,
      flushIntervalMs: cfg.flushIntervalMs,
      compactBytes: cfg.compactBytes,
      segmentBytes: Math.max(MIN_SEGMENT_BYTES, Math.min(MAX_SEGMENT_BYTES, cfg.compactBytes / 4)),
      warn: (msg) => this.say.warn(msg),
      log: (msg) => this.say.log(msg),
      onState: (journaling) => {
        this.journaling = journaling;
      },
    });
  }

  /** Persistence as stats, metrics and the dashboard show it. */
  stats(): PersistenceStats {
    return this.store
      ? this.store.stats()
      : { enabled: false, reason: this.offReason ?? 'turned off (--no-persist)' };
  }

  /** Records that the objects of these exited processes were released at `atMs`. */
  reap(exited: readonly ReapedReport[], atMs: number): void {
    if (!this.store) return;
    const ids: Record<string, ProcessIdentity> = {};
    for (const p of exited) ids[p.pid] = { ppid: p.ppid, cmdline: p.cmdline, startMs: p.startMs };
    this.store.reap({ pids: exited.map((p) => p.pid), atMs, ids });
  }

  /** Left-behind records forgotten on request (on disk before it is answered). */
  async forget(f: ForgetFilter): Promise<void> {
    await this.store?.forget(f);
  }

  async mark(m: unknown): Promise<void> {
    await this.store?.mark(m);
  }

  async unmark(name: string): Promise<void> {
    await this.store?.unmark(name);
  }

  async reset(): Promise<void> {
    await this.store?.reset();
  }

  /** Stops journaling and closes the store (everything on disk and synced). */
  async close(): Promise<void> {
    if (!this.store) return;
    this.journaling = false;
    await this.store.close();
  }
}
