// The timeline export: every buffer lifetime (freed, live, left behind by an exited process) as
// a begin/end pair on its device's track, counters that add up to the slices, marks as instants,
// `--since MARK`, and an export of many lifetimes streamed to a file through the real CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MsgType } from '../src/protocol/constants.js';
import { rawConnect, runCli, startServer, tempDir } from './helpers/server.js';
import { frames, waitFrames } from './helpers/wire.js';

interface TraceEvent {
  ph: string;
  name: string;
  pid: number;
  tid?: number;
  ts?: number;
  id?: string;
  cat?: string;
  args?: Record<string, unknown>;
}
interface Trace {
  otherData: Record<string, number | string>;
  traceEvents: TraceEvent[];
}

const MiB = 1 << 20;
/** Above this machine's pid_max: a claimed PID that is surely gone. */
const DEAD_PID = 4_150_001;
/** Claimed PIDs that are alive (the buffers of a gone one are released as left behind). */
const A = process.pid,
  B = process.ppid;

function slices(t: Trace) {
  const begins = new Map<string, TraceEvent>();
  const out: { b: TraceEvent; e: TraceEvent }[] = [];
  for (const ev of t.traceEvents) {
    if (ev.ph === 'b') {
      assert.ok(!begins.has(ev.id!), `id ${ev.id} begins twice`);
      begins.set(ev.id!, ev);
    } else if (ev.ph === 'e') {
      const b = begins.get(ev.id!);
      assert.ok(b, `end without begin: ${ev.id}`);
      assert.ok(ev.ts! >= b.ts!, 'ends after it begins');
      assert.equal(ev.pid, b.pid);
      out.push({ b, e: ev });
    }
  }
  assert.equal(out.length, begins.size, 'every begin has its end');
  return out;
}

/** The last counter sample of a track (counters are levels: the latest one is now). */
function lastCounter(t: Trace, pid: number): Record<string, unknown> | undefined {
  const cs = t.traceEvents.filter((e) => e.ph === 'C' && e.pid === pid);
  return cs.sort((a, b) => a.ts! - b.ts!).at(-1)?.args;
}

test('export --format perfetto: lifetimes, counters, marks, --since', async () => {
  const srv = await startServer([
    '--devices',
    '2xwormhole_b0',
    '--trust-client-pid',
    '--reap-interval',
    '0',
  ]);
  const s = await rawConnect(srv.socket);
  const dir = tempDir();
  const cli = (...a: string[]) => runCli([...a, '--socket', srv.socket]);
  let sent = 0;
  const send = async (list: Parameters<typeof frames>[0]) => {
    s.write(frames(list));
    sent += list.length;
    await waitFrames(srv, sent);
  };
  // [pid, device, buffer type, address, size]
  const alloc = (...[pid, device, type, id, size]: [number, number, number, number, number]) => ({
    type: MsgType.ALLOC,
    deviceId: device,
    bufferType: type,
    pid,
    bufferId: id,
    size,
  });
  const free = (pid: number, device: number, id: number) => ({
    type: MsgType.FREE,
    deviceId: device,
    pid,
    bufferId: id,
  });
  try {
    await send([alloc(A, 0, 1, 0xa000, MiB), alloc(B, 1, 0, 0xb000, 2 * MiB)]);
    await new Promise((r) => setTimeout(r, 20));
    await send([free(A, 0, 0xa000), alloc(DEAD_PID, 0, 0, 0xd000, 3 * MiB)]);
    assert.equal((await cli('mark', 'm')).code, 0);
    await send([alloc(A, 0, 1, 0xc000, 4096)]);
    await new Promise((r) => setTimeout(r, 20));
    await send([free(A, 0, 0xc000)]);

    const file = join(dir, 'trace.json');
    const r = await cli('export', '--format', 'perfetto', '-o', file);
    assert.equal(r.code, 0, r.stderr);
    const t = JSON.parse(readFileSync(file, 'utf8')) as Trace;
    const all = slices(t);
    const byAddr = new Map(all.map((x) => [x.b.args!.address, x]));
    assert.deepEqual([...byAddr.keys()].sort(), ['0xa000', '0xb000', '0xc000', '0xd000']);
    assert.equal(byAddr.get('0xa000')!.b.args!.state, 'freed');
    assert.equal(byAddr.get('0xb000')!.b.args!.state, 'live');
    // the dead PID's buffer: released when the export swept, its slice ends at the exit
    assert.equal(byAddr.get('0xd000')!.b.args!.state, 'left_behind');
    assert.equal(byAddr.get('0xa000')!.b.name, 'L1 1.00 MiB');
    assert.equal(byAddr.get('0xa000')!.b.tid, A);
    const freed = byAddr.get('0xc000')!;
    assert.ok(freed.e.ts! - freed.b.ts! >= 10_000, 'alive ≥ 10 ms (µs timestamps)');
    // device tracks are named; the counters now equal what each device holds
    const names = t.traceEvents.filter((e) => e.ph === 'M' && e.name === 'process_name');
    const dev0 = names.find((e) => e.args!.name === 'Device 0 (Wormhole_B0)')!;
    const dev1 = names.find((e) => e.args!.name === 'Device 1 (Wormhole_B0)')!;
    assert.ok(dev0 && dev1);
    assert.equal(byAddr.get('0xa000')!.b.pid, dev0.pid);
    assert.deepEqual(lastCounter(t, dev1.pid), {
      DRAM: 2 * MiB,
      L1: 0,
      SYSTEM_MEMORY: 0,
      L1_SMALL: 0,
      TRACE: 0,
    });
    assert.equal(lastCounter(t, dev0.pid)!.L1, 0);
    assert.equal(lastCounter(t, dev0.pid)!.DRAM, 0, 'the left-behind buffer ended at the exit');
    assert.equal(lastCounter(t, B)!.bytes, 2 * MiB, 'per-process counter');
    assert.ok(t.traceEvents.some((e) => e.ph === 'i' && e.name === 'mark m'));
    assert.equal(t.otherData.lifetimes, 4);

    // --since m: what ended after the mark or is live (to stdout)
    const since = await cli('export', '--since', 'm');
    assert.equal(since.code, 0, since.stderr);
    const addrs = slices(JSON.parse(since.stdout) as Trace).map((x) => x.b.args!.address);
    // 0xa000 was freed before the mark; 0xd000's owner was found gone after it (at the export)
    assert.deepEqual(addrs.sort(), ['0xb000', '0xc000', '0xd000']);
    const bad = await cli('export', '--since', 'nope');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /no mark named 'nope'/);
  } finally {
    s.destroy();
    await srv.stop();
  }
});

test('export: the ring keeps the last frees, says where it is complete from', async () => {
  const srv = await startServer(['--timeline-events', '100', '--trust-client-pid']);
  const s = await rawConnect(srv.socket);
  try {
    const list: Parameters<typeof frames>[0] = [];
    for (let i = 0; i < 300; i++) {
      list.push({
        type: MsgType.ALLOC,
        deviceId: 0,
        bufferType: 1,
        pid: A,
        bufferId: i,
        size: 64,
      });
      list.push({ type: MsgType.FREE, deviceId: 0, pid: A, bufferId: i });
    }
    s.write(frames(list));
    await waitFrames(srv, list.length);
    const r = await runCli(['export', '--socket', srv.socket]);
    assert.equal(r.code, 0, r.stderr);
    const t = JSON.parse(r.stdout) as Trace;
    assert.equal(slices(t).length, 100, 'the last 100 frees');
    assert.equal(t.otherData.frees_recorded, 300);
    assert.equal(t.otherData.frees_kept, 100);
    assert.ok(Number(t.otherData.complete_from_ms) >= Number(t.otherData.from_ms));
    const ids = slices(t).map((x) => Number(x.b.args!.address));
    assert.deepEqual(
      ids,
      Array.from({ length: 100 }, (_, i) => 200 + i),
      'the newest ones',
    );
  } finally {
    s.destroy();
    await srv.stop();
  }
});
