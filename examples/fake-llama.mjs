#!/usr/bin/env node
// A stand-in for a TT-Metal application on a machine without accelerators: it reports device
// buffers exactly like the runtime's AllocationClient, and only when TT_ALLOC_TRACKING_ENABLED=1.
// Loads "weights" and a KV cache on two devices, compiles a few programs (small DRAM buffers that
// the program cache keeps), runs decode steps with per-op L1 buffers, and forgets to free one
// 36 KB DRAM buffer per run.
import { Reporter } from '../dist/index.js';

const runs = Number(process.argv[2] ?? 1);
if (process.env.TT_ALLOC_TRACKING_ENABLED !== '1') {
  console.log('tracking disabled (set TT_ALLOC_TRACKING_ENABLED=1)');
  process.exit(0);
}
const KiB = 1024,
  MiB = 1024 * KiB;
const DRAM = 0,
  L1 = 1;
const r = new Reporter();
for (const dev of [0, 1]) {
  for (let i = 0; i < 4; i++) r.alloc(dev, 0x40000000 + i * 0x4000000, 64 * MiB, DRAM); // weights
  r.alloc(dev, 0x60000000, 128 * MiB, DRAM); // KV cache
}
for (let run = 0; run < runs; run++) {
  for (const dev of [0, 1]) {
    if (run === 0)
      // program cache
      for (let p = 0; p < 3; p++) r.alloc(dev, 0x20000000 + p * 0x8000, (12 + 6 * p) * KiB, DRAM);
    for (let step = 0; step < 32; step++) {
      r.alloc(dev, 0x10000, 256 * KiB, L1);
      r.free(dev, 0x10000);
    }
    r.alloc(dev, 0x7f000000 + run * 0x9000, 36 * KiB, DRAM); // the leak
  }
}
// Tear-down frees the weights and KV cache but, like a real program cache, keeps the programs.
for (const dev of [0, 1]) {
  for (let i = 0; i < 4; i++) r.free(dev, 0x40000000 + i * 0x4000000);
  r.free(dev, 0x60000000);
}
await r.close();
console.log(`fake-llama: ${runs} run(s) done, ${r.sent} events reported`);
