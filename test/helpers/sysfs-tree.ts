// A fake kernel-driver tree for tests (SHM-LAYOUT.md §2): /dev/tenstorrent/N, the class
// attributes under /sys/class/tenstorrent/tenstorrent!N, its hwmon sensors, the holder lists
// /proc/driver/tenstorrent/N/pids and /sys/module/tenstorrent/version. Point a reader at
// `tree.root` (scanDriver({ root }), or TT_ALLOC_SYSFS_ROOT for a server).
//
//   const tree = new SysfsTree().driver('2.7.0').card(0, N300).card(1, { type: 'p150a' });
//   tree.holders(0, [pid, pid, 0]);
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface FakeCard {
  /** tt_card_type; omitted: the firmware did not report it. */
  type?: string;
  serial?: string;
  asicId?: string;
  /** Any other class attribute by its file name (tt_aiclk, tt_fw_bundle_ver, tt_heartbeat…). */
  attrs?: Record<string, string | number>;
  /** hwmon files (temp1_input, in0_input, curr1_input, power1_input, fan1_input, name). */
  hwmon?: Record<string, string | number>;
  /** Class attributes whose read fails (made directories: reading one fails with EISDIR). */
  failing?: string[];
}

/** Cards as the driver shows them on real machines (values in the driver's units). */
export const CARDS = {
  n150: {
    type: 'n150',
    serial: '0000010A12345678',
    asicId: '0000000100000001',
    attrs: { tt_aiclk: 1000, tt_axiclk: 900, tt_arcclk: 540, tt_fw_bundle_ver: '80.15.0.0' },
    hwmon: { name: 'wormhole', temp1_input: 45250, in0_input: 850, curr1_input: 21000 },
  },
  n300: {
    type: 'n300',
    serial: '0000010B00000042',
    asicId: '00000002000000AA',
    attrs: { tt_aiclk: 1000, tt_fw_bundle_ver: '80.15.0.0', tt_eth_fw_ver: '6.14.0' },
    hwmon: { name: 'wormhole', temp1_input: 51000, power1_input: 36500000 },
  },
  p150: {
    type: 'p150a',
    serial: '0000043100000007',
    asicId: '00000003000000BB',
    attrs: { tt_aiclk: 1350, tt_fw_bundle_ver: '18.6.0', tt_heartbeat: 123456 },
    hwmon: { name: 'blackhole', temp1_input: 39500, fan1_input: 2100, power1_input: 55000000 },
  },
  galaxy: { type: 'galaxy-wormhole', serial: '0000020000000001' },
  p300: { type: 'p300c', serial: '0000050000000002' },
  unknown: { hwmon: { name: 'wormhole' } },
} satisfies Record<string, FakeCard>;

export class SysfsTree {
  readonly root: string;

  constructor(root = mkdtempSync(join(tmpdir(), 'ttalloc-sysfs-'))) {
    this.root = root;
  }

  private write(rel: string, value: string | number): void {
    const p = join(this.root, rel);
    mkdirSync(join(p, '..'), { recursive: true });
    writeFileSync(p, `${value}\n`);
  }

  /** /sys/module/tenstorrent/version. */
  driver(version: string): this {
    this.write('sys/module/tenstorrent/version', version);
    return this;
  }

  /** Card N: its /dev entry (an empty file: never opened), class attributes and hwmon. */
  card(index: number, c: FakeCard = {}): this {
    mkdirSync(join(this.root, 'dev/tenstorrent'), { recursive: true });
    writeFileSync(join(this.root, 'dev/tenstorrent', String(index)), '');
    const cls = `sys/class/tenstorrent/tenstorrent!${index}`;
    mkdirSync(join(this.root, cls), { recursive: true });
    if (c.type !== undefined) this.write(`${cls}/tt_card_type`, c.type);
    if (c.serial !== undefined) this.write(`${cls}/tt_serial`, c.serial);
    if (c.asicId !== undefined) this.write(`${cls}/tt_asic_id`, c.asicId);
    for (const [k, v] of Object.entries(c.attrs ?? {})) this.write(`${cls}/${k}`, v);
    for (const [k, v] of Object.entries(c.hwmon ?? {}))
      this.write(`${cls}/device/hwmon/hwmon${index + 3}/${k}`, v);
    for (const f of c.failing ?? []) {
      rmSync(join(this.root, cls, f), { force: true });
      mkdirSync(join(this.root, cls, f));
    }
    return this;
  }

  /** Several cards of one kind from index `from` (a T3K: cards(4, CARDS.n300)). */
  cards(n: number, c: FakeCard, from = 0): this {
    for (let i = 0; i < n; i++)
      this.card(from + i, { ...c, serial: c.serial && `${c.serial.slice(0, -1)}${i}` });
    return this;
  }

  /** /proc/driver/tenstorrent/N/pids: one line per descriptor, newest first (0: outside ns). */
  holders(index: number, pids: number[]): this {
    const p = join(this.root, `proc/driver/tenstorrent/${index}/pids`);
    mkdirSync(join(p, '..'), { recursive: true });
    writeFileSync(p, pids.map((x) => `${x}\n`).join(''));
    return this;
  }

  remove(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}
