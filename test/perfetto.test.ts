// The timeline export: every buffer lifetime (freed, live, left behind by an exited process) as
// a begin/end pair on its device's track, counters that add up to the slices, marks as instants,
// `--since MARK`, and an export of many lifetimes streamed to a file through the real CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { MsgType } from '../src/protocol/constants.js';
import { rawConnect, runCli, startServer, tempDir } from './helpers/server.js';
import { frames, waitFrames } from './helpers/wire.js';
import { importInCatapult, loadTrace, type CatapultCounter } from './helpers/trace-parsers.js';

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

/** [pid, device, buffer type, address, size] */
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

test('export: real parsers read it — Perfetto trace processor and chrome://tracing', async () => {
  const srv = await startServer(['--devices', '2xwormhole_b0', '--trust-client-pid']);
  const s = await rawConnect(srv.socket);
  const dir = tempDir();
  let sent = 0;
  const send = async (list: Parameters<typeof frames>[0]) => {
    s.write(frames(list));
    sent += list.length;
    await waitFrames(srv, sent);
  };
  const DRAM = 0,
    L1 = 1;
  /** Wall-clock windows (ms) the server's times for each step must fall in. */
  const during = async (f: () => Promise<unknown>) => {
    const from = Date.now();
    await f();
    return [from - 1, Date.now() + 1] as const;
  };
  try {
    // lifetimes on both devices from both processes
    const born1 = await during(() =>
      send([
        alloc(A, 0, L1, 0xa000, MiB),
        alloc(B, 1, DRAM, 0xb000, 2 * MiB),
        alloc(A, 1, L1, 0xe000, 64 << 10),
        alloc(B, 0, DRAM, 0xf000, 8 * MiB),
      ]),
    );
    await new Promise((r) => setTimeout(r, 20));
    const freed1 = await during(() => send([free(A, 0, 0xa000), free(B, 0, 0xf000)]));
    const marked = await during(async () => {
      assert.equal((await runCli(['mark', 'm', '--socket', srv.socket])).code, 0);
    });
    const born2 = await during(() => send([alloc(A, 0, L1, 0xc000, 4096)]));
    await new Promise((r) => setTimeout(r, 20));
    const freed2 = await during(() => send([free(A, 0, 0xc000)]));

    const file = join(dir, 'trace.json');
    const r = await runCli(['export', '--format', 'perfetto', '-o', file, '--socket', srv.socket]);
    assert.equal(r.code, 0, r.stderr);
    const json = readFileSync(file, 'utf8');
    const meta = (JSON.parse(json) as Trace).otherData;
    const exportedAt = Number(meta.exported_at_ms);
    const inside = (t: number, [lo, hi]: readonly [number, number], what: string) =>
      assert.ok(t >= lo && t <= hi, `${what}: ${t} not in [${lo}, ${hi}] (ms)`);
    const names = [A, B].map((p) => `PID ${p} ${readFileSync(`/proc/${p}/comm`, 'utf8').trim()}`);
    const [nameA, nameB] = names;

    // --- chrome://tracing (catapult): the whole model, lifetimes included ---
    const cat = await importInCatapult(json);
    assert.deepEqual(cat.warnings, [], 'no import warnings');
    const proc = (name: string) => {
      const p = cat.processes.find((x) => x.name === name);
      assert.ok(p, `process ${name} in ${cat.processes.map((x) => x.name).join(', ')}`);
      return p;
    };
    const dev = [proc('Device 0 (Wormhole_B0)'), proc('Device 1 (Wormhole_B0)')];
    const slices = dev.flatMap((p, device) =>
      p.threads.flatMap((t) => t.asyncSlices.map((sl) => ({ ...sl, device, thread: t }))),
    );
    assert.equal(slices.length, 5, 'one slice per lifetime');
    const at = (addr: string) => slices.find((x) => x.args.address === addr)!;
    const expect: [string, number, number, string, number, string][] = [
      // address, device, owner, slice name, size, state
      ['0xa000', 0, A, 'L1 1.00 MiB', MiB, 'freed'],
      ['0xb000', 1, B, 'DRAM 2.00 MiB', 2 * MiB, 'live'],
      ['0xc000', 0, A, 'L1 4.00 KiB', 4096, 'freed'],
      ['0xe000', 1, A, 'L1 64.0 KiB', 64 << 10, 'live'],
      ['0xf000', 0, B, 'DRAM 8.00 MiB', 8 * MiB, 'freed'],
    ];
    for (const [addr, device, owner, title, size, state] of expect) {
      const x = at(addr);
      assert.ok(x, `a slice for ${addr}`);
      assert.equal(x.device, device, `${addr} on device ${device}`);
      assert.equal(x.title, title);
      assert.equal(x.category, title.split(' ')[0]);
      assert.deepEqual(x.args, { address: addr, size, pid: owner, state });
      // the slice sits in its owner's thread, named like the owner's process
      assert.equal(x.thread.tid, owner);
      assert.equal(x.thread.name, owner === A ? nameA : nameB);
    }
    // times in ms on the wall clock: a trace in other units lands far outside these windows
    for (const a of ['0xa000', '0xb000', '0xe000', '0xf000']) inside(at(a).start, born1, a);
    inside(at('0xc000').start, born2, '0xc000 born');
    inside(at('0xa000').start + at('0xa000').duration, freed1, '0xa000 freed');
    inside(at('0xf000').start + at('0xf000').duration, freed1, '0xf000 freed');
    inside(at('0xc000').start + at('0xc000').duration, freed2, '0xc000 freed');
    assert.ok(at('0xc000').duration >= 10, '0xc000 lived through a 20 ms sleep');
    for (const a of ['0xb000', '0xe000'])
      assert.equal(at(a).start + at(a).duration, exportedAt, `${a} is live up to the export`);
    // the counters, at the middle of each lifetime, equal the bytes of the slices over it
    const level = (c: CatapultCounter | undefined, series: string, t: number) => {
      const sm = c?.series.find((x) => x.name === series)?.samples ?? [];
      return sm.filter(([ts]) => ts <= t).at(-1)?.[1] ?? 0;
    };
    const bytesOf = (device: number) => dev[device].counters.find((c) => c.name === 'bytes');
    for (const x of slices) {
      const mid = x.start + x.duration / 2;
      const over = slices.filter((y) => y.start <= mid && y.start + y.duration > mid);
      const sum = (ys: typeof over) => ys.reduce((n, y) => n + Number(y.args.size), 0);
      assert.equal(
        level(bytesOf(x.device), x.category, mid),
        sum(over.filter((y) => y.device === x.device && y.category === x.category)),
        `device ${x.device} ${x.category} during ${String(x.args.address)}`,
      );
      const owner = proc(x.thread.tid === A ? nameA : nameB);
      const mem = owner.counters.find((c) => c.name === 'device memory');
      assert.equal(
        level(mem, 'bytes', mid),
        sum(over.filter((y) => y.thread.tid === x.thread.tid)),
        `PID ${x.thread.tid} during ${String(x.args.address)}`,
      );
    }
    assert.equal(level(bytesOf(0), 'L1', exportedAt), 0);
    assert.equal(level(bytesOf(1), 'L1', exportedAt), 64 << 10);
    const mark = cat.instants.filter((e) => e.title === 'mark m');
    assert.equal(mark.length, 1, 'the mark as one instant');
    inside(mark[0].start, marked, 'the mark');

    // --- Perfetto's trace processor: what its JSON importer reads, and its own complaints ---
    // (v20.1 skips async slices: the lifetimes were checked above)
    const tp = await loadTrace(new Uint8Array(readFileSync(file)));
    assert.deepEqual(
      tp.query(
        `select name, idx, value from stats where severity in ('error', 'data_loss') and value > 0`,
      ),
      [],
      'no import errors',
    );
    const procNames = tp.query(`select name from process where name is not null order by name`);
    assert.deepEqual(
      procNames.map((p) => p.name),
      ['Device 0 (Wormhole_B0)', 'Device 1 (Wormhole_B0)', ...names].sort(),
    );
    const tracks = tp.query(
      `select p.name as process, t.name as track, max(c.value) as peak,
         (select value from counter where track_id = t.id order by ts desc limit 1) as last,
         min(c.ts) / 1000 as first_us, max(c.ts) / 1000 as last_us
       from process_counter_track t join process p using (upid) join counter c on c.track_id = t.id
       group by t.id order by process, track`,
    );
    const track = (process: string, name: string) => {
      const t = tracks.find((x) => x.process === process && x.track === name);
      assert.ok(t, `counter track ${process} / ${name}`);
      return t;
    };
    const expectTrack = (process: string, name: string, peak: number, last: number) => {
      const t = track(process, name);
      assert.deepEqual([t.peak, t.last], [peak, last], `${process} / ${name}: peak, last`);
      // ns in the engine; µs in the file: the samples lie between the first birth and the export
      inside(Number(t.first_us) / 1000, [born1[0], exportedAt], `${process} / ${name} first`);
      inside(Number(t.last_us) / 1000, [born1[0], exportedAt], `${process} / ${name} last`);
    };
    expectTrack('Device 0 (Wormhole_B0)', 'bytes L1', MiB, 0);
    expectTrack('Device 0 (Wormhole_B0)', 'bytes DRAM', 8 * MiB, 0);
    expectTrack('Device 1 (Wormhole_B0)', 'bytes L1', 64 << 10, 64 << 10);
    expectTrack('Device 1 (Wormhole_B0)', 'bytes DRAM', 2 * MiB, 2 * MiB);
    expectTrack(nameA, 'device memory bytes', MiB + (64 << 10), 64 << 10);
    expectTrack(nameB, 'device memory bytes', 10 * MiB, 2 * MiB);
    assert.equal(tracks.length, 2 * 5 + 2, 'a track per device and type, one per process');
    const marks = tp.query(`select name, ts / 1000 as us, dur from slice where name = 'mark m'`);
    assert.equal(marks.length, 1);
    assert.equal(marks[0].dur, 0);
    inside(Number(marks[0].us) / 1000, marked, 'the mark in Perfetto');
  } finally {
    s.destroy();
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
