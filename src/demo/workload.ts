// A realistic model process for the demo: opens its devices, loads weights and a KV cache, builds
// a program cache, runs decode steps with per-op L1 buffers and CBs, and (for role "leaky") keeps
// one 36 KB DRAM buffer per run that it never frees. Reports through the Reporter, like an app.
import { Reporter } from '../client/reporter.js';
import { BufferType } from '../protocol/constants.js';

const KiB = 1024,
  MiB = 1024 * KiB;

export interface WorkloadOptions {
  socketPath: string;
  devices: number[];
  role: 'model' | 'leaky' | 'crash';
  runs: number;
  steps: number;
}

export async function runWorkload(o: WorkloadOptions): Promise<void> {
  const r = new Reporter({ socketPath: o.socketPath });
  // The crashing test worker shares a device with a model process: its buffers live elsewhere.
  let dramNext = o.role === 'crash' ? 0x70000000 : 0x40000000;
  const l1Base = 0x10000;
  for (const dev of o.devices) {
    if (o.role === 'crash') {
      for (let i = 0; i < 4; i++) r.alloc(dev, dramNext + i * 8 * MiB, 8 * MiB, BufferType.DRAM);
      continue;
    }
    // Infrastructure at device open: command queues and dispatch kernels.
    r.alloc(dev, 0x3f000000, 2 * MiB, BufferType.DRAM);
    r.alloc(dev, 0x8000, 64 * KiB, BufferType.L1_SMALL);
    r.kernelLoad(dev, 0x900 + dev, 24 * KiB, 2);
    // Model weights and KV cache: large DRAM buffers that persist.
    for (let i = 0; i < 8; i++) r.alloc(dev, dramNext + i * 64 * MiB, 48 * MiB, BufferType.DRAM);
    r.alloc(dev, dramNext + 8 * 64 * MiB, 96 * MiB, BufferType.DRAM); // KV cache
    r.alloc(dev, 0x180000, 1 * MiB, BufferType.TRACE);
  }
  dramNext += 9 * 64 * MiB;
  for (let run = 0; run < o.runs; run++) {
    for (const dev of o.devices) {
      if (o.role === 'crash') continue;
      // Program cache: small DRAM buffers for kernel binaries, kept across runs (compiled once).
      if (run === 0)
        for (let p = 0; p < 6; p++)
          r.alloc(dev, 0x20000000 + p * 0x8000, (12 + 4 * (p % 4)) * KiB, BufferType.DRAM);
      for (let step = 0; step < o.steps; step++) {
        for (let op = 0; op < 12; op++) {
          const a = l1Base + op * 0x20000;
          // repeated on every dispatch: must not inflate
          r.kernelLoad(dev, 0x1000 + op, 8 * KiB, 0);
          r.cbAlloc(dev, 0x1a0000 + op * 0x1000, 32 * KiB);
          r.alloc(dev, a, 96 * KiB, BufferType.L1);
          r.alloc(dev, a + 0x18000, 16 * KiB, BufferType.L1);
          r.free(dev, a + 0x18000);
          r.free(dev, a);
        }
        for (let op = 0; op < 12; op++) r.cbFree(dev, 0x1a0000 + op * 0x1000, 32 * KiB);
        await new Promise((res) => setImmediate(res));
      }
      // The planted leak: one 36 KB DRAM buffer per run that is never freed.
      if (o.role === 'leaky') r.alloc(dev, 0x7f000000 + run * 0x9000, 36 * KiB, BufferType.DRAM);
    }
  }
  if (o.role === 'crash') {
    await r.close();
    process.kill(process.pid, 'SIGKILL'); // dies without freeing anything
  }
  await r.close();
  // Stay alive (still owning the buffers, like a model server or a pytest session that has not
  // exited) until the parent closes our stdin.
  process.stdout.write('done\n');
  await new Promise((res) => {
    process.stdin.on('end', res);
    process.stdin.on('error', res);
    process.stdin.resume();
  });
}

const isMain = process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!);
if (isMain) {
  const [socketPath, devices, role, runs, steps] = process.argv.slice(2);
  runWorkload({
    socketPath,
    devices: devices.split(',').map(Number),
    role: role as WorkloadOptions['role'],
    runs: Number(runs),
    steps: Number(steps),
  }).catch((e) => {
    process.stderr.write(`workload: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
