// What sysfs says of one card: identity, firmware, clocks, heartbeat (class attributes of
// /sys/class/tenstorrent/tenstorrent!N) and sensors (its hwmon directory), as tt-smi shows them.
// Every attribute is optional: the driver shows it only when the firmware reports it, and a
// read can fail (ENODATA, ENODEV); such an attribute is left out, never shown as 0.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { lookupArch } from '../devices/arch.js';
import { attributesOf, cardSysfsDir } from '../devices/driver-files.js';
import type { CardSensors } from './types.js';

/**
 * Firmware versions by the name we show. Attribute names: tt-kmd's telemetry attributes
 * (SHM-LAYOUT.md §2 names tt_fw_bundle_ver; the others as tt-kmd's telemetry table lists them:
 * eth, m3bl, arc and ttflash on Wormhole only).
 */
const FIRMWARE: readonly [string, string][] = [
  ['bundle', 'tt_fw_bundle_ver'],
  ['arc', 'tt_arc_fw_ver'],
  ['eth', 'tt_eth_fw_ver'],
  ['m3app', 'tt_m3app_fw_ver'],
  ['m3bl', 'tt_m3bl_fw_ver'],
  ['ttflash', 'tt_ttflash_ver'],
];

/** Clocks in MHz (SHM-LAYOUT.md §2). */
const CLOCKS: readonly [string, string][] = [
  ['aiclk', 'tt_aiclk'],
  ['axiclk', 'tt_axiclk'],
  ['arcclk', 'tt_arcclk'],
];

/**
 * hwmon inputs → sensor field and the divisor to its unit (m°C, mV, mA, µW; RPM as is).
 * A fanless card reports the all-ones word as its fan speed: that is no reading.
 */
const SENSORS: readonly [keyof CardSensors, string, number][] = [
  ['temperature_c', 'temp1_input', 1000],
  ['voltage_v', 'in0_input', 1000],
  ['current_a', 'curr1_input', 1000],
  ['power_w', 'power1_input', 1e6],
  ['fan_rpm', 'fan1_input', 1],
];
const NO_READING = 0xffffffff;

/** What does not change while a card stays (its identity and firmware): read once a card. */
export interface CardIdentity {
  /** The card's class directory. */
  dir: string;
  /** Its hwmon directory (null: none). */
  hwmon: string | null;
  card_type: string | null;
  arch: string | null;
  board_serial: string | null;
  asic_id: string | null;
  firmware: Record<string, string>;
}

/** What changes from one refresh to the next. */
export interface CardLive {
  clocks_mhz: Record<string, number>;
  /** The firmware heartbeat counter (tt_heartbeat, driver ≥ 2.7.0): a stall is no change. */
  heartbeat: number | null;
  sensors: CardSensors;
}

type Attr = (name: string) => string | null;

function intAttr(attr: Attr, name: string): number | null {
  const v = attr(name);
  if (v === null || !/^-?\d+$/.test(v)) return null;
  return Number(v);
}

/** The hwmon directory of a card (…/tenstorrent!N/device/hwmon/hwmonK), null if none. */
function hwmonDir(cardDir: string): string | null {
  const base = join(cardDir, 'device/hwmon');
  try {
    const first = readdirSync(base).find((n) => n.startsWith('hwmon'));
    return first ? join(base, first) : null;
  } catch {
    return null;
  }
}

/** Card `index`'s identity and firmware under `root`. */
export function readCardIdentity(root: string, index: number): CardIdentity {
  const dir = cardSysfsDir(root, index);
  const attr = attributesOf(dir);
  const hwmon = hwmonDir(dir);
  const card_type = attr('tt_card_type');
  const firmware: Record<string, string> = {};
  for (const [k, name] of FIRMWARE) {
    const v = attr(name);
    if (v !== null) firmware[k] = v;
  }
  // The card type names the architecture; the hwmon name (wormhole, blackhole) when it does not.
  const hwmonName = hwmon ? attributesOf(hwmon)('name') : null;
  const spec = (card_type && lookupArch(card_type)) || (hwmonName && lookupArch(hwmonName));
  return {
    dir,
    hwmon,
    card_type,
    arch: spec ? spec.name : null,
    board_serial: attr('tt_serial'),
    asic_id: attr('tt_asic_id'),
    firmware,
  };
}

/** A card's clocks, heartbeat and sensors now. */
export function readCardLive(card: Pick<CardIdentity, 'dir' | 'hwmon'>): CardLive {
  const attr = attributesOf(card.dir);
  const clocks_mhz: Record<string, number> = {};
  for (const [k, name] of CLOCKS) {
    const v = intAttr(attr, name);
    if (v !== null) clocks_mhz[k] = v;
  }
  const sensors: CardSensors = {};
  if (card.hwmon) {
    const hw = attributesOf(card.hwmon);
    for (const [field, file, div] of SENSORS) {
      const v = intAttr(hw, file);
      if (v === null || v === NO_READING) continue;
      sensors[field] = v / div;
    }
  }
  return { clocks_mhz, heartbeat: intAttr(attr, 'tt_heartbeat'), sensors };
}
