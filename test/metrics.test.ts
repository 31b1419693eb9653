// GET /metrics from a real server after a known workload from real clients, parsed with a
// Prometheus text-format parser; served on the control socket and on the --http listener.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { Reporter } from '../src/client/reporter.js';
import { settle, startServer, type TestServer } from './helpers/server.js';

const KiB = 1024,
  MiB = 1 << 20;

interface Family {
  name: string;
  help: string;
  type: string;
  metrics: { value?: string; labels?: Record<string, string> }[];
}
let server: TestServer, child: ChildProcess, httpUrl: string, r: Reporter, other: Reporter;

async function scrape(via: 'control' | 'http' = 'control'): Promise<Map<string, Family>> {
  const text =
    via === 'control'
      ? await server.client.text('GET', '/metrics')
      : await (await fetch(`${httpUrl}metrics`)).text();
  const fams = parsePrometheusTextFormat(text) as Family[];
  return new Map(fams.map((f) => [f.name, f]));
}
/** The value of the one sample of `name` whose labels include `labels` (undefined if none). */
function value(
  m: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const f = m.get(name);
  assert.ok(f, `metric ${name} exists`);
  const hits = f.metrics.filter((s) =>
    Object.entries(labels).every(([k, v]) => s.labels?.[k] === v),
  );
  assert.ok(hits.length <= 1, `${name}${JSON.stringify(labels)} is one series`);
  return hits[0] ? Number(hits[0].value) : undefined;
}

before(async () => {
  // --trust-client-pid: `other` reports for the `sleep` child (its PID in the messages) from this
  // process.
  server = await startServer([
    '--devices',
    '2xwormhole_b0',
    '--reap-interval',
    '0.3',
    '--http',
    '127.0.0.1:0',
    '--trust-client-pid',
  ]);
  httpUrl = /dashboard on (http:\/\/\S+\/)/.exec(server.output())![1];
  child = spawn('sleep', ['60'], { stdio: 'ignore' });
  r = new Reporter({ socketPath: server.socket });
  for (let i = 0; i < 3; i++) r.alloc(0, 0x1000000 + i * MiB, MiB, 0);
  r.alloc(0, 0x100, 4 * KiB, 1);
  r.alloc(0, 0x2000, 4 * KiB, 1);
  r.alloc(0, 0x8000, 8 * KiB, 2);
  r.alloc(0, 0x9000, 16 * KiB, 3);
  r.alloc(1, 0x40000000, 64 * MiB, 4);
  r.alloc(0, 0x7000000, 2 * MiB, 0);
  r.free(0, 0x7000000); // allocated and freed: counts nowhere
  r.free(0, 0xbad000); // unknown buffer
  r.cbAlloc(0, 0x5000, 32 * KiB);
  r.cbAlloc(0, 0x5000, 32 * KiB); // a repeat is one CB
  r.cbFree(1, 0x6000); // unknown CB
  r.kernelLoad(0, 77, 2 * KiB, 0);
  r.kernelUnload(1, 78); // unknown kernel
  r.alloc(0, 0xdead0000, 4096, 9); // invalid buffer type: rejected
  other = new Reporter({ socketPath: server.socket, pid: child.pid });
  other.alloc(1, 0x100000, 5 * MiB, 0);
  r.flush();
  other.flush();
  await settle(server);
});

after(async () => {
  // The reporters' connections stayed open until here: they count as open connections.
  await r?.close();
  await other?.close();
  child?.kill();
  await server?.stop();
});

test('device usage, counts and capacity match the workload', async () => {
  const m = await scrape();
  const used = (device: string, type: string) =>
    value(m, 'ttalloc_device_used_bytes', { device, type });
  const bufs = (device: string, type: string) =>
    value(m, 'ttalloc_device_buffers', { device, type });
  assert.equal(used('0', 'DRAM'), 3 * MiB);
  assert.equal(used('0', 'L1'), 8 * KiB);
  assert.equal(used('0', 'SYSTEM_MEMORY'), 8 * KiB);
  assert.equal(used('0', 'L1_SMALL'), 16 * KiB);
  assert.equal(used('0', 'CB'), 32 * KiB);
  assert.equal(used('0', 'KERNEL'), 2 * KiB);
  assert.equal(used('1', 'TRACE'), 64 * MiB);
  assert.equal(used('1', 'DRAM'), 5 * MiB);
  assert.equal(used('1', 'CB'), 0);
  assert.deepEqual(
    [
      bufs('0', 'DRAM'),
      bufs('0', 'L1'),
      bufs('0', 'CB'),
      bufs('0', 'KERNEL'),
      bufs('1', 'TRACE'),
      bufs('1', 'DRAM'),
    ],
    [3, 2, 1, 1, 1, 1],
  );
  assert.equal(
    value(m, 'ttalloc_device_capacity_bytes', { device: '0', memory: 'DRAM' }),
    12 * 1024 * MiB,
  );
  assert.equal(
    value(m, 'ttalloc_device_capacity_bytes', { device: '1', memory: 'L1' }),
    1464 * KiB * 64,
  );
  assert.equal(value(m, 'ttalloc_device_info', { device: '1', arch: 'Wormhole_B0' }), 1);
  assert.equal(value(m, 'ttalloc_live_buffers'), 9);
  assert.equal(m.get('ttalloc_device_used_bytes')!.type, 'GAUGE');
});

test('ingest counters and health', async () => {
  const m = await scrape();
  const frames = (type: string) => value(m, 'ttalloc_frames_total', { type });
  assert.deepEqual(
    ['ALLOC', 'FREE', 'CB_ALLOC', 'CB_FREE', 'KERNEL_LOAD', 'KERNEL_UNLOAD'].map(frames),
    [10, 2, 2, 1, 1, 1],
  );
  assert.equal(value(m, 'ttalloc_rejected_frames_total'), 1);
  assert.equal(value(m, 'ttalloc_unknown_frees_total', { object: 'buffer' }), 1);
  assert.equal(value(m, 'ttalloc_unknown_frees_total', { object: 'cb' }), 1);
  assert.equal(value(m, 'ttalloc_unknown_frees_total', { object: 'kernel' }), 1);
  assert.equal(value(m, 'ttalloc_connections_open'), 2);
  assert.ok(value(m, 'ttalloc_connections_total')! >= 2);
  assert.equal(value(m, 'ttalloc_up'), 1);
  assert.equal(value(m, 'ttalloc_persistence_up'), 1);
  // On CI the native addon must have been built; elsewhere it may be missing.
  if (process.env.CI) assert.equal(value(m, 'ttalloc_direct_reads_enabled'), 1);
  assert.equal(m.get('ttalloc_direct_reads_total')?.type, 'COUNTER');
  assert.ok(
    value(m, 'ttalloc_persistence_bytes', { file: 'journal' })! > 0,
    'the workload is in the journal',
  );
  assert.equal(value(m, 'ttalloc_persistence_bytes', { file: 'snapshot' }), 0);
  assert.equal(value(m, 'ttalloc_persistence_compactions_total'), 0);
  assert.ok(value(m, 'ttalloc_uptime_seconds')! >= 0);
  assert.ok(value(m, 'process_resident_memory_bytes')! > 10 * MiB);
  for (const [name, f] of m) {
    if (!name.startsWith('ttalloc_')) continue;
    // Prometheus conventions: counters end in _total, gauges do not; every metric has help.
    assert.equal(f.type === 'COUNTER', name.endsWith('_total'), `${name} is a ${f.type}`);
    assert.ok(f.help.length > 10, `${name} has help`);
  }
});

test(
  'per-process series exist only for live processes; reaping is counted; ' + 'HTTP serves the same',
  async () => {
    let m = await scrape('http');
    const mine = (type: string, device: string) =>
      value(m, 'ttalloc_process_used_bytes', { pid: String(process.pid), device, type });
    assert.equal(mine('DRAM', '0'), 3 * MiB);
    // host memory apart, as in the device series: a process's types sum to its device's
    assert.equal(mine('L1_SMALL', '0'), 16 * KiB);
    assert.equal(mine('SYSTEM_MEMORY', '0'), 8 * KiB);
    assert.equal(mine('TRACE', '1'), 64 * MiB);
    assert.equal(
      value(m, 'ttalloc_process_used_bytes', {
        pid: String(child.pid),
        device: '1',
        type: 'DRAM',
        command: 'sleep',
      }),
      5 * MiB,
    );
    assert.equal(value(m, 'ttalloc_process_buffers', { pid: String(process.pid) }), 8);
    assert.equal(value(m, 'ttalloc_processes'), 2);
    assert.equal(value(m, 'ttalloc_reaped_processes_total'), 0);

    child.kill('SIGKILL');
    await server.waitFor(`process ${child.pid} is gone`);
    m = await scrape();
    assert.equal(
      m
        .get('ttalloc_process_used_bytes')!
        .metrics.filter((s) => s.labels?.pid === String(child.pid)).length,
      0,
      'no series for the dead process',
    );
    assert.equal(value(m, 'ttalloc_reaped_processes_total'), 1);
    assert.equal(value(m, 'ttalloc_device_used_bytes', { device: '1', type: 'DRAM' }), 0);
    assert.equal(value(m, 'ttalloc_processes'), 1);
  },
);
