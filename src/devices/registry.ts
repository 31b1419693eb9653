// Which devices exist and what they hold: from the kernel driver's sysfs, a --devices
// declaration, or a config file. Devices are tt-metal's: chips, not cards (cards.ts). Devices
// that report allocations without being declared are still shown everywhere, with unknown
// capacity.
import { readFileSync } from 'node:fs';
import { ARCH_TABLE, CARD_TYPES, cardKey, lookupArch, type ArchSpec } from './arch.js';
import { chipsOfCard, deviceIdsOfCards, numberChips } from './cards.js';
import { cardIndices, cardSysfsDir, readAttr } from './driver-files.js';
import { MAX_DEVICE_ID } from '../protocol/constants.js';

export interface DeviceInfo {
  id: number;
  spec: ArchSpec;
  source: 'driver' | 'declared' | 'config';
  cardType?: string;
  /** The card it is on: /dev/tenstorrent/N for the driver, the entry's position when declared. */
  cardIndex?: number;
  /** Reached through its card's local chip (the second chip of an n300). */
  remote?: boolean;
  /** The board's serial (tt_serial), shared by every chip of the card. */
  serial?: string;
  /** The local chip's ASIC id (tt_asic_id); remote chips have none in sysfs. */
  asicId?: string;
}

export class DeviceError extends Error {}

/** One card or one chip of a declaration: `chips` tt-metal devices of `spec`. */
export interface DeviceEntry {
  spec: ArchSpec;
  /** Set when the entry named a card (n300), not an architecture (wormhole_b0). */
  cardType?: string;
  chips: number;
  remote: number;
}

/**
 * One word of a declaration: an architecture is one chip; a card type is its chips (an n300
 * two); a card whose chips no source gives (galaxy, p300) is an error saying how to declare it.
 */
export function parseEntry(word: string): DeviceEntry | undefined {
  const arch = lookupArch(word);
  if (!arch) return undefined;
  const key = cardKey(word);
  if (!(key in CARD_TYPES)) return { spec: arch, chips: 1, remote: 0 };
  const c = chipsOfCard(word);
  if (c.chips === null)
    throw new DeviceError(
      `cannot declare '${word}': ${c.note.replace(/^[^:]*: /, '')}; ` +
        `e.g. --devices Nx${arch.name.toLowerCase()} with N its chips`,
    );
  return { spec: arch, cardType: key, chips: c.chips, remote: c.remote };
}

/** "8xwormhole_b0", "n300,n300,p150", "2xblackhole,wormhole_b0" → one entry per card or chip. */
export function parseDeviceSpec(spec: string): DeviceEntry[] {
  const out: DeviceEntry[] = [];
  let chips = 0;
  for (const part of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^(?:(\d+)\s*[x*]\s*)?([A-Za-z0-9_-]+)$/.exec(part);
    const entry = m ? parseEntry(m[2]) : undefined;
    if (!m || !entry) {
      throw new DeviceError(
        `bad device spec '${part}': expected [COUNT x]ARCH with ARCH one of ` +
          `${Object.keys(ARCH_TABLE).join(', ')} or a card type (n150, n300, p150, e150, ...)`,
      );
    }
    const n = m[1] ? Number(m[1]) : 1;
    chips += n * entry.chips;
    if (n < 1 || chips > MAX_DEVICE_ID + 1) throw new DeviceError(`bad device count in '${part}'`);
    for (let i = 0; i < n; i++) out.push({ ...entry });
  }
  return out;
}

/** Entries → devices numbered as tt-metal does (local chips first: see numberChips). */
function declareChips(entries: DeviceEntry[], source: 'declared' | 'config'): DeviceInfo[] {
  return numberChips(entries.map((e) => ({ chips: e.chips, remote: e.remote, item: e }))).map(
    (c, id) => chipInfo(id, c.item, source, c.item.cardType ? c : null),
  );
}

function chipInfo(
  id: number,
  e: DeviceEntry,
  source: DeviceInfo['source'],
  card: { entry: number; remote: boolean } | null,
): DeviceInfo {
  const d: DeviceInfo = { id, spec: { ...e.spec }, source };
  if (e.cardType) d.cardType = e.cardType;
  if (card) {
    d.cardIndex = card.entry;
    d.remote = card.remote;
  }
  return d;
}

/**
 * The chips of the cards the kernel driver shows (root overridable for tests), numbered as
 * tt-metal does (cards.ts). When one card's chips no source gives (galaxy, p300, a card whose
 * type the firmware did not report), nothing is declared and `notes` says why: numbering the
 * other cards' chips would then be a guess. Those devices appear as they report.
 */
export function discoverDriverDevices(
  root = process.env.TT_ALLOC_SYSFS_ROOT ?? '/',
  notes: string[] = [],
): DeviceInfo[] {
  const cards = cardIndices(root).map((index) => {
    const dir = cardSysfsDir(root, index);
    const cardType = readAttr(dir, 'tt_card_type');
    return { index, cardType, dir, spec: cardType ? lookupArch(cardType) : undefined };
  });
  const chips = cards.map((k) => (k.spec ? chipsOfCard(k.cardType) : chipsOfCard(null)));
  const ids = deviceIdsOfCards(chips);
  if (!ids) {
    cards.forEach((k, i) => {
      if (chips[i].chips === null)
        notes.push(`card ${k.index} (${k.cardType ?? 'type not reported'}): ${chips[i].note}`);
    });
    notes.push(
      'so no device is declared from the driver: declare them (--devices, --device-config)',
    );
    return [];
  }
  const out: DeviceInfo[] = [];
  cards.forEach((k, i) => {
    const serial = readAttr(k.dir, 'tt_serial'),
      asicId = readAttr(k.dir, 'tt_asic_id');
    ids[i].forEach((id, chip) => {
      const remote = chip >= chips[i].chips! - chips[i].remote;
      const d: DeviceInfo = { id, spec: { ...k.spec! }, source: 'driver', cardIndex: k.index };
      d.cardType = k.cardType!;
      d.remote = remote;
      if (serial) d.serial = serial;
      // tt_asic_id is the local chip's; a remote chip's is not in sysfs.
      if (asicId && !remote) d.asicId = asicId;
      out.push(d);
    });
  });
  return out.sort((a, b) => a.id - b.id);
}

type ConfigEntry = { id?: number; arch: string } & Partial<Omit<ArchSpec, 'arch'>>;

interface ConfigFile {
  devices?: (string | ConfigEntry)[] | string;
  arch?: Record<string, Partial<ArchSpec>>;
}

const CAPACITY_FIELDS = ['dramChannels', 'dramPerChannel', 'l1PerCore', 'workerCores'] as const;

/** A config file is user input: ids must fit the protocol's device range, capacities be counts. */
function checkConfigDevices(
  list: DeviceInfo[],
  overrides: Record<string, Partial<ArchSpec>>,
  path: string,
): void {
  const seen = new Set<number>();
  for (const d of list) {
    if (!Number.isInteger(d.id) || d.id < 0 || d.id > MAX_DEVICE_ID)
      throw new DeviceError(
        `device config ${path}: device id ${JSON.stringify(d.id)} ` +
          `is not an integer from 0 to ${MAX_DEVICE_ID}`,
      );
    if (seen.has(d.id))
      throw new DeviceError(`device config ${path}: device id ${d.id} is declared twice`);
    seen.add(d.id);
  }
  const specs: [string, Partial<ArchSpec>][] = [
    ...list.map((d) => [`device ${d.id}`, d.spec] as [string, Partial<ArchSpec>]),
    ...Object.entries(overrides),
  ];
  for (const [what, spec] of specs) {
    for (const f of CAPACITY_FIELDS) {
      const v = spec[f];
      if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0))
        throw new DeviceError(
          `device config ${path}: ${what}: ${f} must be a whole number ≥ 0, ` +
            `not ${JSON.stringify(v)}`,
        );
    }
  }
}

/**
 * A config file's device list → chips. A chip's id is its position in tt-metal order (as
 * --devices numbers them) unless the entry gives one; an id given to a card names its local chip.
 */
function configDevices(entries: (string | ConfigEntry)[], path: string): DeviceInfo[] {
  const parsed = entries.map((d) => {
    const o: ConfigEntry = typeof d === 'string' ? { arch: d } : d;
    let entry: DeviceEntry | undefined;
    try {
      entry = parseEntry(o.arch);
    } catch (e) {
      throw new DeviceError(`device config ${path}: ${(e as Error).message}`);
    }
    if (!entry) throw new DeviceError(`device config ${path}: unknown arch '${o.arch}'`);
    const { id, arch: _a, ...fields } = o;
    return { entry: { ...entry, spec: { ...entry.spec, ...fields } }, id };
  });
  const chips = numberChips(
    parsed.map((p) => ({ chips: p.entry.chips, remote: p.entry.remote, item: p })),
  );
  return chips.map((c, pos) => {
    const id = c.chip === 0 && c.item.id !== undefined ? c.item.id : pos;
    return chipInfo(id, c.item.entry, 'config', c.item.entry.cardType ? c : null);
  });
}

export class DeviceRegistry {
  private byId = new Map<number, DeviceInfo>();

  /** What discovery could not declare and why (cards whose chips no source gives). */
  readonly notes: readonly string[];

  constructor(devices: DeviceInfo[] = [], notes: readonly string[] = []) {
    for (const d of devices) this.byId.set(d.id, d);
    this.notes = notes;
  }

  /** Builds the registry: explicit declaration > config file > driver discovery. */
  static resolve(opts: {
    devices?: string;
    configPath?: string;
    sysfsRoot?: string;
  }): DeviceRegistry {
    let overrides: Record<string, Partial<ArchSpec>> = {};
    let list: DeviceInfo[] = [];
    if (opts.configPath) {
      let cfg: ConfigFile;
      try {
        cfg = JSON.parse(readFileSync(opts.configPath, 'utf8')) as ConfigFile;
      } catch (e) {
        throw new DeviceError(
          `cannot read device config ${opts.configPath}: ${(e as Error).message}`,
        );
      }
      overrides = cfg.arch ?? {};
      if (typeof cfg.devices === 'string')
        list = declareChips(parseDeviceSpec(cfg.devices), 'config');
      else if (Array.isArray(cfg.devices)) list = configDevices(cfg.devices, opts.configPath);
    }
    if (opts.devices) list = declareChips(parseDeviceSpec(opts.devices), 'declared');
    else if (opts.configPath) checkConfigDevices(list, overrides, opts.configPath);
    const notes: string[] = [];
    if (list.length === 0) list = discoverDriverDevices(opts.sysfsRoot, notes);
    for (const d of list) {
      const key = Object.keys(ARCH_TABLE).find((k) => ARCH_TABLE[k].arch === d.spec.arch);
      const o = key ? (overrides[key] ?? overrides[d.spec.name]) : undefined;
      if (o) d.spec = { ...d.spec, ...o };
    }
    return new DeviceRegistry(list, notes);
  }

  get(id: number): DeviceInfo | undefined {
    return this.byId.get(id);
  }
  get size(): number {
    return this.byId.size;
  }
  ids(): number[] {
    return [...this.byId.keys()].sort((a, b) => a - b);
  }
  list(): DeviceInfo[] {
    return this.ids().map((id) => this.byId.get(id)!);
  }
}
