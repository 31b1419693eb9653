// The kernel driver as a source: which cards there are, what each is (sysfs.ts), how many
// tt-metal devices (chips) each holds, and which processes hold each device open
// (/proc/driver/tenstorrent/N/pids). Read-only and never opens /dev/tenstorrent/N (see
// devices/driver-files.ts). Runs on refresh, never on the ingest path.
import { existsSync, readFileSync } from 'node:fs';
import { chipsOfCard, deviceIdsOfCards } from '../devices/cards.js';
import {
  cardIndices,
  driverModuleDir,
  numberedEntries,
  pidsPath,
  readAttr,
} from '../devices/driver-files.js';
import { join } from 'node:path';
import { readCardIdentity, readCardLive, type CardIdentity, type CardLive } from './sysfs.js';
import type { DriverCard, DriverScan } from './types.js';

export interface Holders {
  /** PIDs in our namespace, newest first, each once. */
  pids: number[];
  /** Lines of 0: descriptors held by processes outside our PID namespace (driver ≥ 2.7.0). */
  outside: number;
}

/**
 * The holders of device `index`, or null when the driver lists none (no pids file: driver
 * < 2.5.0, or no such device). One line per open descriptor, newest first: a process with two
 * descriptors is listed twice and kept once, at its newest place. The driver prints 0 for a
 * holder outside our PID namespace; those cannot be told apart, so they are counted per
 * descriptor.
 */
export function readHolders(root: string, index: number): Holders | null {
  let text: string;
  try {
    text = readFileSync(pidsPath(root, index), 'latin1');
  } catch {
    return null;
  }
  const pids: number[] = [];
  let outside = 0;
  for (const line of text.split('\n')) {
    const s = line.trim();
    if (!/^\d+$/.test(s)) continue;
    const pid = Number(s);
    if (pid === 0) outside++;
    else if (!pids.includes(pid)) pids.push(pid);
  }
  return { pids, outside };
}

export interface DriverScanOptions {
  /** The tree to read (/ on a real machine; a fake tree in tests). */
  root?: string;
}

/** Cards the driver shows anywhere: /dev/tenstorrent/N, sysfs, or its /proc directory. */
function allCardIndices(root: string): number[] {
  const set = new Set([
    ...cardIndices(root),
    ...numberedEntries(join(root, 'sys/class/tenstorrent'), 'tenstorrent!'),
    ...numberedEntries(join(root, 'proc/driver/tenstorrent')),
  ]);
  return [...set].sort((a, b) => a - b);
}

/**
 * A card's identity and firmware are kept this long: they change only when a card is replaced
 * or reflashed and reset, which may keep its index, so what was kept ages out.
 */
export const IDENTITY_KEEP_MS = 10_000;

/**
 * The driver source for a view that refreshes: a card's identity and firmware are read at most
 * every IDENTITY_KEEP_MS (and again whenever the set of cards or the driver version changes),
 * its clocks, heartbeat, sensors and holders on every scan().
 */
export class DriverReader {
  readonly root: string;
  private ids = new Map<number, CardIdentity>();
  private indexKey = '';
  private readMs = 0;

  constructor(opts: DriverScanOptions = {}) {
    this.root = opts.root ?? '/';
  }

  /**
   * Everything the driver says, card by card. `present` is false when no part of the driver
   * is there (no module version, no cards): then `cards` is empty and `error` says so.
   */
  scan(): DriverScan {
    const root = this.root;
    const version = readAttr(driverModuleDir(root), 'version');
    const indices = allCardIndices(root);
    const key = `${version}:${indices.join(',')}`;
    const now = Date.now();
    if (key !== this.indexKey || now - this.readMs > IDENTITY_KEEP_MS) {
      this.ids.clear();
      this.indexKey = key;
      this.readMs = now;
    }
    let holdersListed = false;
    const cards = indices.map((index) => {
      let id = this.ids.get(index);
      if (!id) {
        id = readCardIdentity(root, index);
        this.ids.set(index, id);
      }
      const h = readHolders(root, index);
      if (h) holdersListed = true;
      return cardOf(index, id, readCardLive(id), h);
    });
    assignDeviceIds(cards);
    const present =
      version !== null || cards.length > 0 || existsSync(join(root, 'dev/tenstorrent'));
    const scan: DriverScan = {
      present,
      driver_version: version,
      holders_listed: holdersListed,
      cards,
    };
    if (!present)
      scan.error = 'the tenstorrent driver is not loaded (no /dev/tenstorrent, no sysfs)';
    return scan;
  }
}

/** One scan, nothing kept (a CLI run, doctor). */
export function scanDriver(opts: DriverScanOptions = {}): DriverScan {
  return new DriverReader(opts).scan();
}

function cardOf(index: number, id: CardIdentity, live: CardLive, h: Holders | null): DriverCard {
  const c = chipsOfCard(id.card_type);
  return {
    index,
    card_type: id.card_type,
    arch: id.arch,
    board_serial: id.board_serial,
    asic_id: id.asic_id,
    chips: c.chips,
    remote_chips: c.chips === null ? null : c.remote,
    chips_note: c.note,
    device_ids: null,
    firmware: { ...id.firmware },
    clocks_mhz: live.clocks_mhz,
    heartbeat: live.heartbeat,
    sensors: live.sensors,
    holders: h ? h.pids : [],
    holders_outside_ns: h ? h.outside : 0,
  };
}

/** tt-metal device ids per card, as the registry numbers them (devices/cards.ts). */
function assignDeviceIds(cards: DriverCard[]): void {
  const ids = deviceIdsOfCards(cards.map((c) => ({ chips: c.chips, remote: c.remote_chips ?? 0 })));
  if (ids) cards.forEach((c, i) => (c.device_ids = ids[i]));
}
