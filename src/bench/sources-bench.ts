// What a refresh of the machine's other sources costs (issue 13: reading 32 SHM regions and the
// driver's holder lists ≤ 2 ms). Each case is a name, a set-up that builds real files (and real
// processes where liveness matters) and returns the refresh to time; add a case to CASES.
//
//   npm run bench:sources [-- --quick] [-- --only shm]
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  CHIP_UNUSED,
  ENTRY_COUNTERS,
  HDR,
  MAX_CHIPS,
  REGION_SIZE,
  V2_GEOMETRY as G,
} from '../sources/shm-layout.js';
import { scanShm } from '../sources/shm-scan.js';
import { removeDir, workDir } from './harness.js';
import { SourcesCache } from '../sources/merge-cache.js';
import { defaultReaders } from '../sources/merge-readers.js';

const LIMIT_MS = 2;

interface Prepared {
  /** One refresh; returns something so the work cannot be optimised away. */
  run(): unknown;
  /** What the figure is of, in words. */
  note: string;
  done(): void;
}

interface Case {
  name: string;
  /** The row's label. */
  label: string;
  prepare(): Prepared;
}

const CASES: Case[] = [
  {
    name: 'shm',
    label: 'refresh: scan + read 32 SHM regions (v3)',
    prepare: prepareShm,
  },
  {
    name: 'merge',
    label: 'merged view: 32 regions + identities + merge',
    prepare: prepareMerge,
  },
];

/**
 * The whole refresh `ps`, `top` and the server's routes pay once per second at most: the scan
 * of prepareShm's regions, the identity of every slot owner (/proc), and the merge.
 */
function prepareMerge(): Prepared {
  const shm = prepareShm();
  const root = shm.root;
  // TTL 0: every run a refresh, as one a second would be (identities kept across, as served).
  const cache = new SourcesCache(defaultReaders({ sysfs: workDir(), shm: root }), 0);
  return {
    run: () => cache.view(null).processes.length,
    note: `${shm.note}; the driver absent`,
    done: shm.done,
  };
}

/**
 * 32 regions of tt-metal main's layout, 4 slots each: 2 processes on every chip (ourselves and
 * our parent), 16 processes on 4 chips each (real `sleep`s), one crashed process per region.
 */
function prepareShm(): Prepared & { root: string } {
  const dir = workDir();
  const sleepers: ChildProcess[] = [];
  for (let i = 0; i < 16; i++) sleepers.push(spawn('sleep', ['600'], { stdio: 'ignore' }));
  const nowNs = BigInt(Date.now()) * 1_000_000n;
  const buf = Buffer.alloc(REGION_SIZE);
  for (let r = 0; r < 32; r++) {
    buf.fill(0);
    buf.writeUInt32LE(3, HDR.version);
    buf.writeBigUInt64LE(nowNs, HDR.updatedNs);
    buf.writeUInt32LE(4, HDR.referenceCount);
    buf.writeBigUInt64LE(2n ** 60n + BigInt(r), HDR.asicId);
    buf.writeUInt32LE(r, HDR.deviceId);
    for (let i = 0; i < MAX_CHIPS; i++) buf.writeUInt32LE(CHIP_UNUSED, G.chips + i * G.chipStride);
    buf.writeUInt32LE(r, G.chips);
    const pids = [process.pid, process.ppid, sleepers[r % 16].pid!, 4_000_000 + r];
    pids.forEach((pid, j) => {
      const off = G.procs + j * G.procStride;
      buf.writeInt32LE(pid, off);
      buf.writeBigUInt64LE(BigInt(1 << 20) * BigInt(j + 1), off + ENTRY_COUNTERS);
      buf.writeBigUInt64LE(nowNs, off + G.procUpdatedNs);
      buf.write('python3', off + G.procName);
    });
    writeFileSync(join(dir, `tt_device_${2n ** 60n + BigInt(r)}_memory`), buf);
  }
  return {
    root: dir,
    run: () => scanShm({ root: dir }).regions.length,
    note: '4 slots each, 19 live processes, 32 dead',
    done: () => {
      for (const s of sleepers) s.kill('SIGKILL');
      removeDir(dir);
    },
  };
}

function measure(c: Case, iterations: number): void {
  const p = c.prepare();
  try {
    for (let i = 0; i < Math.min(200, iterations); i++) p.run(); // warm the JIT and the caches
    const ms: number[] = [];
    for (let i = 0; i < iterations; i++) {
      const t = process.hrtime.bigint();
      p.run();
      ms.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    ms.sort((a, b) => a - b);
    const median = ms[ms.length >> 1],
      p99 = ms[Math.min(ms.length - 1, Math.floor(ms.length * 0.99))];
    const verdict = median <= LIMIT_MS ? `within ${LIMIT_MS} ms` : `OVER ${LIMIT_MS} ms`;
    console.log(
      `${c.label.padEnd(44)} | median ${median.toFixed(3)} ms | p99 ${p99.toFixed(3)} ms | ` +
        `${verdict} (${p.note}; ${iterations} refreshes)`,
    );
  } finally {
    p.done();
  }
}

function main(): void {
  const { values } = parseArgs({
    options: { quick: { type: 'boolean' }, only: { type: 'string' } },
  });
  const cases = values.only ? CASES.filter((c) => c.name === values.only) : CASES;
  if (cases.length === 0) {
    console.error(`unknown case ${values.only} (cases: ${CASES.map((c) => c.name).join(', ')})`);
    process.exit(2);
  }
  for (const c of cases) measure(c, values.quick ? 20 : 2000);
}

main();
