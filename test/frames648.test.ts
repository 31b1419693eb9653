// Every client generation: the 648-byte frames (a buffer name and a stack trace per ALLOC) from a
// real C client and from the Node Reporter, through a real server: `dump --verbose`, JSON rows,
// the leak check, a restart with persistence, what a killed client left behind, the bounds of the
// notes; the snapshot's notes; and realtime_monitor.py's 24-byte request from a real Python
// script, closed with a reason instead of a hang.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Reporter } from '../src/client/reporter.js';
import { encodeFrame } from '../src/protocol/codec.js';
import { MsgType } from '../src/protocol/constants.js';
import { frameName, frameTrace } from '../src/protocol/notes.js';
import { BufferNotes } from '../src/state/buffer-notes.js';
import { Tracker } from '../src/state/tracker.js';
import { Checkpoints } from '../src/state/marks.js';
import { StateEvent, applyEvent } from '../src/state/events.js';
import { snapshotSource, writeSnapshot } from '../src/persist/snapshot.js';
import { loadState } from '../src/persist/replay.js';
import { bufferRow } from '../src/report/buffer-report.js';
import { RowArray } from '../src/state/left-behind.js';
import { runCli, startServer, tempDir, type TestServer } from './helpers/server.js';

const SOURCE = fileURLToPath(new URL('./c/client648.c', import.meta.url));
const hasCc = spawnSync('cc', ['--version']).status === 0;
const NO_CC = hasCc ? false : 'no C compiler (`cc`) on this machine';
const hasPython = spawnSync('python3', ['--version']).status === 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const TRACE_A = 'model.py:12:forward -> ttnn/tensor.py:88:to_device';
const TRACE_B = 'model.py:40:attention -> ttnn/ops.py:3:matmul';

let exe = '';
function client648(): string {
  if (exe) return exe;
  exe = join(tempDir(), 'client648');
  const flags = ['-std=c11', '-Wall', '-Wextra', '-Werror', '-pedantic', '-O1'];
  const r = spawnSync('cc', [...flags, '-o', exe, SOURCE], { encoding: 'utf8' });
  assert.equal(r.status, 0, `cc failed:\n${r.stderr}`);
  return exe;
}

/** Starts the C client; resolves once it printed "ready" (its frames are sent). */
async function startClient(socket: string, ...args: string[]): Promise<ChildProcess> {
  const p = spawn(client648(), [socket, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  await waitLine(p, 'ready');
  return p;
}

function waitLine(p: ChildProcess, line: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const on = (d: Buffer) => {
      out += d.toString();
      if (out.split('\n').includes(line)) {
        p.stdout!.off('data', on);
        resolve();
      }
    };
    p.stdout!.on('data', on);
    p.once('exit', (c) => reject(new Error(`client exited (${c}) before "${line}": ${out}`)));
  });
}

async function cli(srv: TestServer, ...args: string[]): Promise<string> {
  const r = await runCli([...args, '--socket', srv.socket]);
  assert.ok(r.code === 0 || r.code === 23, `ttalloc ${args.join(' ')}: ${r.code} ${r.stderr}`);
  return r.stdout;
}

/** Polls `dump` until `re` matches (the server applies frames as they arrive). */
async function dumpUntil(srv: TestServer, re: RegExp): Promise<string> {
  let out = '';
  for (let i = 0; i < 300; i++) {
    out = await cli(srv, 'dump', '--verbose');
    if (re.test(out)) return out;
    await sleep(20);
  }
  assert.match(out, re);
  return out;
}

interface JsonRow {
  address: string;
  device: number;
  state: string;
  name?: string;
  stack_trace?: string;
}

async function jsonRows(srv: TestServer, ...args: string[]): Promise<JsonRow[]> {
  type Devices = { types: { buffers: JsonRow[] }[] }[];
  const r = JSON.parse(await cli(srv, 'dump', '--json', ...args)) as {
    buffers?: JsonRow[];
    devices: Devices;
    exited?: { devices: Devices };
  };
  if (r.buffers) return r.buffers;
  const rows: JsonRow[] = [];
  for (const d of [...r.devices, ...(r.exited?.devices ?? [])])
    for (const t of d.types) rows.push(...t.buffers);
  return rows;
}

function byAddress(rows: JsonRow[]): Record<string, [string?, string?]> {
  const out: Record<string, [string?, string?]> = {};
  for (const r of rows) out[`${r.device}:${r.address}`] = [r.name, r.stack_trace];
  return out;
}

const EXPECTED = {
  '0:0x10000': ['layer0.weight', TRACE_A],
  '1:0x20000': [undefined, TRACE_B],
  '0:0x30000': ['kv_cache', undefined],
};

test(
  'a C 648-byte client: names and traces in dump --verbose, JSON, check, restart, left behind',
  { skip: NO_CC },
  async () => {
    const state = tempDir();
    let srv = await startServer(['--state-dir', state]);
    let c: ChildProcess | null = null;
    try {
      await cli(srv, 'mark', 'before');
      c = await startClient(srv.socket, 'report');
      const verbose = await dumpUntil(srv, /kv_cache/);
      assert.match(
        verbose,
        new RegExp(
          '    - Buffer 0x10000: 4\\.0 KB \\(PID \\d+, ref_count=1\\)\n' +
            '        name: layer0\\.weight\n' +
            `        stack: ${TRACE_A.replace(/\./g, '\\.')}\n`,
        ),
      );
      assert.match(verbose, /Buffer 0x20000: 8\.0 KB \(PID \d+, ref_count=1\)\n {8}stack: model/);
      assert.doesNotMatch(verbose, /scratch/, 'a freed buffer takes its note with it');
      // The default dump keeps the seed's layout: no note lines.
      const plain = await cli(srv, 'dump');
      assert.doesNotMatch(plain, /name:|stack:/);
      assert.match(plain, /Buffer 0x10000: 4\.0 KB \(PID \d+, ref_count=1\)\n {4}- Buffer/);
      assert.deepEqual(byAddress(await jsonRows(srv)), EXPECTED);
      assert.deepEqual(byAddress(await jsonRows(srv, '--all')), EXPECTED, 'the streamed dump');
      // The leak check lists each offender with its name and trace.
      const check = await cli(srv, 'check', '--since', 'before');
      assert.match(check, /Buffer 0x10000: 4\.00 KiB .*\n {8}name: layer0\.weight\n {8}stack: /);
      const st = await srv.client.json<{ notes: { strings: number; dropped: number } }>(
        'GET',
        '/v1/stats',
      );
      assert.deepEqual([st.notes.strings, st.notes.dropped], [4, 0], 'one copy of each string');
      const frames = await srv.client.json<{ connections?: unknown }>('GET', '/v1/stats');
      assert.ok(frames);

      // A restart with persistence: the names come back with the buffers.
      assert.equal(await srv.stop(), 0);
      srv = await startServer(['--state-dir', state]);
      assert.deepEqual(byAddress(await jsonRows(srv)), EXPECTED, 'after a restart');

      // The client is killed: what it left behind keeps its names, in the dump and its JSON.
      c.kill('SIGKILL');
      await new Promise((r) => c!.once('exit', r));
      c = null;
      const left = await dumpUntil(srv, /Left behind by processes that exited/);
      assert.match(
        left,
        new RegExp(
          'Left behind[^]*Buffer 0x10000: 4\\.0 KB \\(PID \\d+, exited [\\d:]+, ref_count=1\\)\n' +
            ' {8}name: layer0\\.weight\n {8}stack: model\\.py:12',
        ),
      );
      const exited = await jsonRows(srv, '--all');
      assert.ok(exited.every((r) => r.state === 'exited'));
      assert.deepEqual(byAddress(exited), EXPECTED);
      // And once more across a restart (the left-behind records with their notes).
      assert.equal(await srv.stop(), 0);
      srv = await startServer(['--state-dir', state]);
      assert.deepEqual(byAddress(await jsonRows(srv, '--all')), EXPECTED, 'left behind, restarted');
      assert.match(await cli(srv, 'dump', '--verbose'), /exited[^]*name: layer0\.weight/);
      // Forgetting them releases their strings.
      await cli(srv, 'forget');
      const after = await srv.client.json<{ notes: { strings: number } }>('GET', '/v1/stats');
      assert.equal(after.notes.strings, 0);
    } finally {
      c?.kill('SIGKILL');
      assert.equal(await srv.stop(), 0);
    }
  },
);

test(
  'notes are bounded: distinct traces beyond the budget are counted, not kept',
  {
    skip: NO_CC,
  },
  async () => {
    // 400 distinct traces of ~50 characters (~100 B each as UTF-16) against a 8 KiB budget
    const srv = await startServer(['--no-persist', '--notes-budget', '8192']);
    let c: ChildProcess | null = null;
    try {
      c = await startClient(srv.socket, 'many', '400');
      type Stats = {
        live: { buffers: number };
        notes: { strings: number; bytes: number; dropped: number; dropped_bytes: number };
      };
      let st: Stats | null = null;
      for (let i = 0; i < 300; i++) {
        st = await srv.client.json<Stats>('GET', '/v1/stats');
        if (st.live.buffers === 400) break;
        await sleep(20);
      }
      assert.equal(st!.live.buffers, 400, 'every buffer is tracked, noted or not');
      assert.ok(st!.notes.bytes <= 8192, `kept ${st!.notes.bytes} bytes`);
      assert.ok(st!.notes.strings > 10, 'the name and the first traces are kept');
      assert.equal(st!.notes.strings + st!.notes.dropped, 401, 'each string kept or counted');
      assert.ok(st!.notes.dropped_bytes > 0);
      const text = await runCli(['stats', '--socket', srv.socket]);
      assert.match(
        text.stdout,
        /buffer notes: \d+ strings, .*budget 8\.00 KiB; \d+ strings not kept/,
      );
      const rows = await jsonRows(srv, '--all');
      assert.ok(
        rows.every((r) => r.name === 'gen'),
        'the shared name is kept once for all',
      );
      const traced = rows.filter((r) => r.stack_trace !== undefined).length;
      assert.equal(traced, st!.notes.strings - 1);
      // Freed: every string goes with its last buffer.
      c.stdin!.write('free\n');
      await waitLine(c, 'freed');
      for (let i = 0; i < 300; i++) {
        st = await srv.client.json<Stats>('GET', '/v1/stats');
        if (st.live.buffers === 0) break;
        await sleep(20);
      }
      assert.deepEqual([st!.live.buffers, st!.notes.strings, st!.notes.bytes], [0, 0, 0]);
    } finally {
      c?.kill('SIGKILL');
      assert.equal(await srv.stop(), 0);
    }
  },
);

test('the Reporter sends 648-byte frames: exact names and traces, no stale bytes', async () => {
  const path = join(tempDir(), 'cap.sock');
  const chunks: Buffer[] = [];
  const socks = new Set<Socket>();
  const server = createServer((s) => {
    socks.add(s);
    s.on('data', (d) => chunks.push(d));
  });
  await new Promise<void>((r) => server.listen(path, () => r()));
  try {
    // Batches of 2: a named ALLOC's strings sit where the next batch's FREE goes.
    const r = new Reporter({ socketPath: path, frameSize: 648, pid: 77, batchFrames: 2 });
    const long = 'deep.py:1:f -> '.repeat(50);
    r.allocNamed(0, 0x1000, 64, { name: 'a'.repeat(100), stack: long, bufferType: 1 });
    for (let i = 0; i < 200 && !r.isConnected; i++) await sleep(10);
    r.allocNamed(1, 0x2000, 32, { name: 'w', stack: TRACE_A });
    await sleep(20);
    r.free(1, 0x2000);
    r.alloc(0, 0x3000, 16, 0);
    await r.close();
    for (let i = 0; i < 300 && Buffer.concat(chunks).length < 4 * 648; i++) await sleep(10);
    const got = Buffer.concat(chunks);
    assert.equal(got.length, 4 * 648);
    const frame = (i: number) => got.subarray(i * 648, (i + 1) * 648);
    assert.equal(frameName(frame(0), 0), 'a'.repeat(63));
    assert.equal(frameTrace(frame(0), 0), long.slice(0, 511));
    assert.equal(frame(0)[16], 1, 'buffer type');
    assert.deepEqual([frameName(frame(1), 0), frameTrace(frame(1), 0)], ['w', TRACE_A]);
    // A FREE and a plain ALLOC carry zeros past the head (stale strings would break detection).
    const free = encodeFrame({ type: MsgType.FREE, deviceId: 1, pid: 77, bufferId: 0x2000 }, 648);
    assert.deepEqual(frame(2), free);
    assert.ok(
      frame(3)
        .subarray(72)
        .every((b) => b === 0),
    );
    assert.equal(r.dropped, 0);
  } finally {
    for (const s of socks) s.destroy();
    await new Promise((r) => server.close(() => r(undefined)));
  }
});

test('the Reporter at 648 bytes through a real server: the names come back', async () => {
  const srv = await startServer(['--no-persist']);
  try {
    const r = new Reporter({ socketPath: srv.socket, frameSize: 648 });
    r.free(0, 0x5000); // no name first: the size is told apart from 144 at offset 144
    r.allocNamed(0, 0x6000, 4096, { name: 'cache', stack: TRACE_B });
    r.alloc(1, 0x7000, 512, 1);
    await r.close();
    let rows: JsonRow[] = [];
    for (let i = 0; i < 300 && rows.length < 2; i++) {
      rows = await jsonRows(srv, '--all');
      if (rows.length < 2) await sleep(20);
    }
    assert.deepEqual(byAddress(rows), {
      '0:0x6000': ['cache', TRACE_B],
      '1:0x7000': [undefined, undefined],
    });
    const st = await srv.client.json<{ frames: { rejected: number } }>('GET', '/v1/stats');
    assert.equal(st.frames.rejected, 0);
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('a snapshot keeps the notes of live buffers and of left-behind records', async () => {
  const tr = new Tracker();
  const ev = new StateEvent();
  const alloc = (owner: number, lo: number, name: string, trace: string) => {
    Object.assign(ev, { code: MsgType.ALLOC, sub: 0, device: 0, owner, lo, hi: 0 });
    Object.assign(ev, { sizeLo: 256, sizeHi: 0, bornMs: 1_796_150_000_000 });
    applyEvent(tr, ev, null);
    tr.noteAlloc(name, trace);
  };
  alloc(100, 0x100, 'live', 'a.py:1:f');
  alloc(100, 0x200, '', '');
  alloc(200, 0x300, 'dead', 'b.py:2:g');
  alloc(200, 0x400, 'dead', 'b.py:2:g');
  tr.releasePids(new Set([200]), 1_796_150_001_000);
  assert.equal(tr.notes.distinct, 4, 'live, a.py, dead, b.py: each once');
  const dir = tempDir();
  await writeSnapshot(dir, snapshotSource(tr, new Checkpoints(tr)), 0);
  const back = new Tracker();
  loadState(dir, back, new Checkpoints(back), { repair: false });
  const live = (t: Tracker) => {
    const out: string[] = [];
    for (let e = 0; e < t.buffers.count; e++) {
      const r = bufferRow(t.buffers, e);
      out.push(`${r.address} ${r.name ?? '-'} ${r.stack_trace ?? '-'}`);
    }
    return out.sort();
  };
  assert.deepEqual(live(back), ['0x100 live a.py:1:f', '0x200 - -']);
  const p = back.reaped[0];
  const rows = new RowArray(p.rows, p.notes, back.notes);
  const left = Array.from({ length: rows.count }, (_, e) => rows.noteOf(e));
  assert.deepEqual(left, [
    { name: 'dead', trace: 'b.py:2:g' },
    { name: 'dead', trace: 'b.py:2:g' },
  ]);
  assert.equal(back.notes.distinct, 4);
  back.forget({});
  assert.equal(back.notes.distinct, 2, 'forgetting the records releases their strings');
});

test('buffer notes: interned once, counted per holder, bounded by bytes', () => {
  const n = new BufferNotes(64);
  const a = n.noteOf('w', 'x.py:1:f');
  const b = n.noteOf('w', 'x.py:1:f');
  assert.equal(a, b);
  assert.equal(n.distinct, 2);
  assert.deepEqual(n.get(a), { name: 'w', trace: 'x.py:1:f' });
  const c = n.noteOf('', 'y'.repeat(40)); // 80 bytes: over the budget
  assert.equal(c, 0);
  assert.deepEqual([n.dropped, n.droppedBytes], [1, 80]);
  n.release(a);
  assert.equal(n.distinct, 2, 'still held once');
  n.release(b);
  assert.deepEqual([n.distinct, n.bytes], [0, 0]);
  const d = n.noteOf('', 'y'.repeat(20)); // fits once the others are gone
  assert.deepEqual(n.get(d), { name: '', trace: 'y'.repeat(20) });
});

test(
  "realtime_monitor.py's 24-byte request from Python: an error, not a hang; the server says why",
  { skip: hasPython ? false : 'no python3 on this machine' },
  async () => {
    const srv = await startServer(['--no-persist', '--partial-frame-timeout', '0.5']);
    try {
      // What realtime_monitor.py does: pack BxxxIQQ (type 2, "STATS"), send, wait for 24 bytes.
      const script = [
        'import socket, struct, sys',
        's = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
        's.settimeout(20)',
        's.connect(sys.argv[1])',
        "req = struct.pack('BxxxIQQ', 2, 0, 0, 0)",
        'assert len(req) == 24',
        's.sendall(req)',
        'try:',
        '    data = s.recv(24)',
        "    print('eof' if data == b'' else 'data %d' % len(data))",
        'except socket.timeout:',
        "    print('hang')",
        'except OSError as e:',
        "    print('error', e.errno)",
      ].join('\n');
      const r = spawnSync('python3', ['-c', script, srv.socket], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout.trim(), /^(eof|error \d+)$/, 'the script is told, not left waiting');
      await srv.waitFor(
        new RegExp(
          'connection #\\d+ \\(pid \\d+\\): closing: stopped in the middle of a frame ' +
            'for \\d+\\.\\d s \\(24 of 72, 112, 144 or 648 bytes\\)',
        ),
      );
    } finally {
      assert.equal(await srv.stop(), 0);
    }
  },
);
