// Per-architecture capacities: the one table the server uses for DEVICE_INFO replies and
// "used / total" figures. Users override any field with --arch-config or a device config file.
import { ARCH_NAMES, ArchType } from '../protocol/constants.js';

export interface ArchSpec {
  arch: number;
  name: string;
  dramChannels: number;
  dramPerChannel: number;
  l1PerCore: number;
  workerCores: number;
}

const KiB = 1024,
  MiB = 1024 * KiB,
  GiB = 1024 * MiB;

export const ARCH_TABLE: Record<string, ArchSpec> = {
  grayskull: {
    arch: ArchType.GRAYSKULL,
    name: ARCH_NAMES[ArchType.GRAYSKULL],
    dramChannels: 8,
    dramPerChannel: 1 * GiB,
    l1PerCore: 1 * MiB,
    workerCores: 12 * 9,
  },
  wormhole_b0: {
    arch: ArchType.WORMHOLE_B0,
    name: ARCH_NAMES[ArchType.WORMHOLE_B0],
    dramChannels: 12,
    dramPerChannel: 1 * GiB,
    l1PerCore: 1464 * KiB,
    workerCores: 8 * 8,
  },
  blackhole: {
    arch: ArchType.BLACKHOLE,
    name: ARCH_NAMES[ArchType.BLACKHOLE],
    dramChannels: 8,
    dramPerChannel: 4 * GiB,
    l1PerCore: 1536 * KiB,
    workerCores: 14 * 10,
  },
  quasar: {
    arch: ArchType.QUASAR,
    name: ARCH_NAMES[ArchType.QUASAR],
    dramChannels: 0,
    dramPerChannel: 0,
    l1PerCore: 0,
    workerCores: 0,
  },
};

/**
 * Card types → architecture key. The driver's `tt_card_type` values (SHM-LAYOUT.md §2: n150, n300,
 * galaxy-wormhole, p100, p100a, p150a/b/c, p300a/b/c, galaxy-blackhole) plus the names users write
 * (p150, p300, galaxy) and the Grayskull cards. Keys are as lookupArch normalises them ('-' → '_').
 * How many chips each card holds is in cards.ts.
 */
export const CARD_TYPES: Record<string, string> = {
  e75: 'grayskull',
  e150: 'grayskull',
  e300: 'grayskull',
  n150: 'wormhole_b0',
  n300: 'wormhole_b0',
  galaxy: 'wormhole_b0',
  galaxy_wormhole: 'wormhole_b0',
  tt_galaxy_wh: 'wormhole_b0',
  p100: 'blackhole',
  p100a: 'blackhole',
  p150: 'blackhole',
  p150a: 'blackhole',
  p150b: 'blackhole',
  p150c: 'blackhole',
  p300: 'blackhole',
  p300a: 'blackhole',
  p300b: 'blackhole',
  p300c: 'blackhole',
  galaxy_blackhole: 'blackhole',
};

/** A card type as CARD_TYPES keys it ("galaxy-wormhole" → "galaxy_wormhole"). */
export function cardKey(name: string): string {
  return name.trim().toLowerCase().replace(/-/g, '_');
}

/** Accepts an architecture key, its display name, or a card type (case-insensitive). */
export function lookupArch(name: string): ArchSpec | undefined {
  const k = cardKey(name);
  const key = ARCH_TABLE[k] ? k : (CARD_TYPES[k] ?? (k === 'wormhole' ? 'wormhole_b0' : undefined));
  return key ? { ...ARCH_TABLE[key] } : undefined;
}

export function totalDram(a: ArchSpec): number {
  return a.dramChannels * a.dramPerChannel;
}
export function totalL1(a: ArchSpec): number {
  return a.l1PerCore * a.workerCores;
}
