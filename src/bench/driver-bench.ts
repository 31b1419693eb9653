// The driver source's cost per refresh: the holder lists of a T3K's four cards (what the views
// read every refresh next to the SHM regions) and the full scan with sysfs and hwmon, on a fake
// tree in tmpfs shaped like the real one. `node dist/bench/driver-bench.js [--quick]`; the shm
// helper's sources-bench adds these cases to its table when the lead merges the two.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DriverReader, readHolders, scanDriver } from '../sources/driver.js';
import { readIdentity } from '../platform/processes.js';

const CARDS = 4;

/** A T3K-like tree: four n300 with attributes, hwmon and a pids file of 3 holders each. */
function buildTree(): string {
  const root = mkdtempSync(join(tmpdir(), 'ttalloc-driver-bench-'));
  const put = (rel: string, v: string | number) => {
    mkdirSync(join(root, rel, '..'), { recursive: true });
    writeFileSync(join(root, rel), `${v}\n`);
  };
  put('sys/module/tenstorrent/version', '2.7.0');
  for (let i = 0; i < CARDS; i++) {
    put(`dev/tenstorrent/${i}`, '');
    const c = `sys/class/tenstorrent/tenstorrent!${i}`;
    put(`${c}/tt_card_type`, 'n300');
    put(`${c}/tt_serial`, `0000010B0000004${i}`);
    put(`${c}/tt_asic_id`, `00000002000000A${i}`);
    for (const a of ['tt_aiclk', 'tt_axiclk', 'tt_arcclk']) put(`${c}/${a}`, 1000);
    for (const a of ['tt_fw_bundle_ver', 'tt_arc_fw_ver', 'tt_eth_fw_ver', 'tt_m3app_fw_ver'])
      put(`${c}/${a}`, '80.15.0.0');
    put(`${c}/tt_heartbeat`, 12345);
    const h = `${c}/device/hwmon/hwmon${i}`;
    put(`${h}/name`, 'wormhole');
    for (const [f, v] of [
      ['temp1_input', 51000],
      ['in0_input', 850],
      ['curr1_input', 21000],
      ['power1_input', 36500000],
    ] as const)
      put(`${h}/${f}`, v);
    put(`proc/driver/tenstorrent/${i}/pids`, `${process.pid}\n${process.pid}\n0\n`);
  }
  return root;
}

/** Median µs per call of `fn` over `rounds` rounds (after a warm-up). */
function median(rounds: number, fn: () => void): number {
  for (let i = 0; i < 20; i++) fn();
  const t: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const s = process.hrtime.bigint();
    fn();
    t.push(Number(process.hrtime.bigint() - s) / 1000);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)];
}

function main(): void {
  const rounds = process.argv.includes('--quick') ? 50 : 1000;
  const root = buildTree();
  const reader = new DriverReader({ root });
  try {
    const rows: [string, number][] = [
      [
        `holder lists of ${CARDS} cards (readHolders ×${CARDS})`,
        median(rounds, () => {
          for (let i = 0; i < CARDS; i++) readHolders(root, i);
        }),
      ],
      [
        `full scan of ${CARDS} cards (scanDriver: sysfs, hwmon, holders)`,
        median(rounds, () => scanDriver({ root })),
      ],
      [
        `refresh of ${CARDS} cards (DriverReader.scan: identity kept)`,
        median(rounds, () => reader.scan()),
      ],
      [
        `identity of one holder (readIdentity, our own process)`,
        median(rounds, () => readIdentity(process.pid)),
      ],
    ];
    for (const [name, us] of rows)
      console.log(`${name.padEnd(64)} | ${us.toFixed(1).padStart(8)} µs |`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

main();
