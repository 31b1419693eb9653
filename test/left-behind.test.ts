// What a run left behind (issue 12), through a real server and real client processes: the seed's
// workflow after the application exited, the CI gate, one owner per buffer when addresses repeat
// across processes, the left-behind budget, and forget.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { rawConnect, runCli, startServer, type TestServer } from './helpers/server.js';
import { frames, roundTrip, write } from './helpers/wire.js';
import { MsgType } from '../src/protocol/constants.js';

const INDEX = JSON.stringify(new URL('../dist/index.js', import.meta.url).href);
const KiB = 1024;
const DRAM = 0,
  L1 = 1;

/** [op, device, address, size?, type?]: what a client process reports, in order. */
type Op = ['alloc', number, number, number, number] | ['free', number, number];

interface App {
  child: ChildProcess;
  pid: number;
  /** Reports more (a process that stayed alive), once the server has read it. */
  send(ops: Op[]): Promise<void>;
  /** Ends a process that stayed alive (its buffers are then left behind). */
  exit(): Promise<void>;
}

/**
 * A real client process (the Node Reporter, owner = its own PID by the kernel's credentials) that
 * reports `ops`; it exits at once unless `stay` (then it reports each JSON line of its stdin), and
 * the promise resolves once the server has read everything it sent.
 */
async function app(srv: TestServer, ops: Op[], stay = false): Promise<App> {
  const script = `import { Reporter } from ${INDEX};
    import { createInterface } from 'node:readline';
    const r = new Reporter({ socketPath: process.argv[1] });
    const report = async (ops) => {
      for (const [op, d, a, s, t] of ops) op === 'alloc' ? r.alloc(d, a, s, t) : r.free(d, a);
      r.flush();
      await new Promise((res) => setTimeout(res, 20));
      console.log('sent');
    };
    await report(JSON.parse(process.argv[2]));
    if (process.argv[3] === 'stay')
      for await (const line of createInterface({ input: process.stdin }))
        await report(JSON.parse(line));
    else await r.close();`;
  const child = spawn(
    process.execPath,
    ['--input-type=module', '-e', script, srv.socket, JSON.stringify(ops), stay ? 'stay' : ''],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  running.add(child);
  const exited = new Promise<void>((r) =>
    child.once('exit', () => {
      running.delete(child);
      r();
    }),
  );
  const sent = () => new Promise<void>((r) => child.stdout!.once('data', () => r()));
  await sent();
  if (!stay) await exited;
  await roundTrip(srv);
  return {
    child,
    pid: child.pid!,
    send: async (more) => {
      const done = sent();
      child.stdin!.write(JSON.stringify(more) + '\n');
      await done;
      await roundTrip(srv);
    },
    exit: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Client processes still running when a test ends (a failed assertion) are killed. */
const running = new Set<ChildProcess>();
after(() => {
  for (const c of running) c.kill('SIGKILL');
});

const EXITED = (pid: number) => `PID ${pid}, exited \\d\\d:\\d\\d:\\d\\d, ref_count=1`;

test(
  "the seed's workflow after the application exited: its " + "buffers, in the seed's layout",
  async () => {
    const srv = await startServer(['--reap-interval', '0']);
    try {
      // The seed's example: 12 KB and 24 KB of DRAM on devices 0 and 1, never freed.
      const a = await app(srv, [
        ['alloc', 0, 0x40000000, 12 * KiB, DRAM],
        ['alloc', 0, 0x40003000, 24 * KiB, DRAM],
        ['alloc', 1, 0x40000000, 12 * KiB, DRAM],
        ['alloc', 1, 0x40003000, 24 * KiB, DRAM],
        ['alloc', 0, 0x10000, 64 * KiB, L1],
        ['free', 0, 0x10000],
      ]);
      // Step 3: dump after it completed (dump-remaining-buffers sends the seed's DUMP_REMAINING).
      const d = await runCli(['dump', '--socket', srv.socket]);
      assert.equal(d.code, 0, d.stderr);
      const part = d.stdout.split('Left behind by processes that exited (never freed):')[1];
      assert.ok(part, d.stdout);
      for (const dev of [0, 1])
        assert.match(
          part,
          new RegExp(
            `Device ${dev}:\n  DRAM: 2 buffers, 0\\.036864 MB total\n` +
              `    - Buffer 0x40003000: 24\\.0 KB \\(${EXITED(a.pid)}\\)\n` +
              `    - Buffer 0x40000000: 12\\.0 KB \\(${EXITED(a.pid)}\\)\n`,
          ),
        );
      assert.match(part, /Total left behind by exited processes: 4\n/);
      assert.match(d.stdout, /Total remaining buffers: 4 \(0 live, 4 left behind/);
      // The server printed the same report on its own terminal (step 4 of the seed).
      await srv.waitFor(/Left behind by processes that exited[^]*Total remaining buffers: 4 /);
    } finally {
      assert.equal(await srv.stop(), 0);
    }
  },
);

test(
  'mark → a leaking child exits → check exits 23 naming its ' + 'buffers; a clean one → 0',
  async () => {
    const srv = await startServer(['--reap-interval', '0']);
    try {
      assert.equal((await runCli(['mark', 'before', '--socket', srv.socket])).code, 0);
      const leak = await app(srv, [
        ['alloc', 0, 0x7000, 12 * KiB, DRAM],
        ['alloc', 1, 0x9000, 60 * KiB, L1],
      ]);
      const c = await runCli(['check', '--since', 'before', '--socket', srv.socket]);
      assert.equal(c.code, 23, c.stdout + c.stderr);
      assert.match(c.stdout, /LEAK since 'before': 2 buffers, 73728 bytes remain, 2 of them left/);
      assert.match(
        c.stdout,
        new RegExp(`Device 1 L1 Buffer 0x9000: 60\\.0 KiB \\(${EXITED(leak.pid)}`),
      );
      assert.match(
        c.stdout,
        /SUMMARY: ttalloc: 73728 byte\(s\) leaked in 2 buffer\(s\) on 2 device\(s\)\n$/,
      );
      const j = JSON.parse(
        (await runCli(['check', '--since', 'before', '--json', '--socket', srv.socket])).stdout,
      ) as { exited_buffers: number; devices: number[]; buffers: { state: string }[] };
      assert.deepEqual([j.exited_buffers, j.devices], [2, [0, 1]]);
      assert.ok(j.buffers.every((b) => b.state === 'exited'));
      // diff counts them too
      const diff = await runCli(['diff', 'before', '--socket', srv.socket]);
      assert.match(diff.stdout, /\+2 buffers/, diff.stdout);

      assert.equal((await runCli(['mark', 'after', '--socket', srv.socket])).code, 0);
      await app(srv, [
        ['alloc', 0, 0x7000, 12 * KiB, DRAM],
        ['free', 0, 0x7000],
      ]);
      const ok = await runCli(['check', '--since', 'after', '--socket', srv.socket]);
      assert.equal(ok.code, 0, ok.stdout);
      assert.match(ok.stdout, /OK since 'after': 0 buffers/);
      const none = await runCli(['check', '--since', 'no-such-mark', '--socket', srv.socket]);
      assert.notEqual(none.code, 0);
      assert.match(none.stderr, /no mark named 'no-such-mark'/);
    } finally {
      assert.equal(await srv.stop(), 0);
    }
  },
);

test(
  'a relaunch at the same addresses: the dead one is left ' + 'behind, the new one is live',
  async () => {
    // The periodic sweep is slow here: only the conflict on the repeated addresses releases it.
    const srv = await startServer(['--reap-interval', '60']);
    try {
      const ops: Op[] = [
        ['alloc', 0, 0x1000, 128 * KiB, DRAM],
        ['alloc', 0, 0x2000, 128 * KiB, L1],
      ];
      const first = await app(srv, ops);
      const second = await app(srv, ops, true);
      const r = await srv.client.text('GET', '/v1/report');
      const [live, left] = r.split('Left behind by processes that exited');
      assert.match(
        live,
        new RegExp(`Buffer 0x1000: 128\\.0 KB \\(PID ${second.pid}, ref_count=1\\)`),
      );
      assert.match(
        live,
        new RegExp(`Buffer 0x2000: 128\\.0 KB \\(PID ${second.pid}, ref_count=1\\)`),
      );
      assert.match(live, /Total live buffers: 2\n/);
      assert.match(left, new RegExp(`Buffer 0x1000: 128\\.0 KB \\(${EXITED(first.pid)}\\)`));
      assert.match(left, /Total left behind by exited processes: 2\n/);
      const ps = await srv.client.json<{ processes: { pid: number; bytes: number }[] }>(
        'GET',
        '/v1/processes',
      );
      assert.deepEqual(
        ps.processes.map((p) => [p.pid, p.bytes]),
        [[second.pid, 256 * KiB]],
      );
      await second.exit();
    } finally {
      assert.equal(await srv.stop(), 0);
    }
  },
);

test(
  'two live processes sharing an address: both counted, ' + 'flagged, each frees its own',
  async () => {
    const srv = await startServer(['--reap-interval', '0']);
    try {
      const a = await app(srv, [['alloc', 0, 0x5000, 4 * KiB, DRAM]], true);
      const b = await app(srv, [['alloc', 0, 0x5000, 8 * KiB, DRAM]], true);
      type Rep = { total_bytes: number; buffers: { pid: number; size: number; shared: boolean }[] };
      const rep = async () =>
        srv.client.json<Rep>('GET', '/v1/report?format=json&all=1&live=1') as Promise<Rep>;
      let r = await rep();
      assert.equal(r.total_bytes, 12 * KiB, "B's bytes are counted");
      assert.deepEqual(
        r.buffers.map((x) => [x.pid, x.size, x.shared]).sort(),
        [
          [a.pid, 4 * KiB, true],
          [b.pid, 8 * KiB, true],
        ].sort(),
      );
      await app(srv, [['free', 0, 0x5000]]); // a third process frees nothing of theirs
      await a.send([['free', 0, 0x5000]]); // A frees its own: B's stays
      r = await rep();
      assert.deepEqual(
        r.buffers.map((x) => [x.pid, x.size]),
        [[b.pid, 8 * KiB]],
      );
      const st = await srv.client.json<{ unknown_frees: { buffers: number } }>('GET', '/v1/stats');
      assert.equal(st.unknown_frees.buffers, 1, "the third process's FREE is an unknown free");
      await b.send([['free', 0, 0x5000]]);
      assert.equal((await rep()).total_bytes, 0, 'B freed its own');
      await a.exit();
      await b.exit();
    } finally {
      assert.equal(await srv.stop(), 0);
    }
  },
);

test('the left-behind budget drops the oldest processes and says so; forget clears', async () => {
  const srv = await startServer(['--reap-interval', '0', '--left-behind-budget', '3']);
  try {
    const pids: number[] = [];
    for (let i = 0; i < 3; i++) {
      const p = await app(srv, [
        ['alloc', 0, 0x1000 * (i + 1), 4 * KiB, DRAM],
        ['alloc', 0, 0x100000 * (i + 1), 4 * KiB, DRAM],
      ]);
      pids.push(p.pid);
      await srv.client.json('POST', '/v1/reap');
    }
    const d = await runCli(['dump', '--exited', '--socket', srv.socket]);
    assert.match(d.stdout, /Total left behind by exited processes: 2\n/);
    assert.match(d.stdout, new RegExp(`- PID ${pids[2]}`));
    assert.doesNotMatch(d.stdout, new RegExp(`PID ${pids[0]}\\b`));
    assert.match(d.stdout, /budget of 3 records dropped 4 records of 2 older exited processes/);
    const st = await runCli(['stats', '--socket', srv.socket]);
    assert.match(
      st.stdout,
      /left behind: 2 records of 1 exited process, 8\.00 KiB \(budget 3; 4 records of 2 older/,
    );
    const f = await runCli(['forget', '--pid', String(pids[2]), '--socket', srv.socket]);
    assert.equal(f.code, 0, f.stderr);
    assert.match(f.stdout, /forgot 2 left-behind records of 1 exited processes/);
    const after = await runCli(['dump', '--exited', '--socket', srv.socket]);
    assert.match(after.stdout, /Total left behind by exited processes: 0\n/);
    const bad = await runCli(['server', '--left-behind-budget', '0', '--socket', srv.socket + 'x']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--left-behind-budget must be an integer from 1/);
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('a child holding its exited parent’s socket: its frames stay under the parent', async () => {
  const srv = await startServer(['--reap-interval', '0']);
  const alloc = (id: number) =>
    frames([{ type: MsgType.ALLOC, deviceId: 0, size: 4096, bufferType: DRAM, bufferId: id }]);
  // The parent reports one buffer, hands its socket to a child (fd 3) and exits at once; the
  // child waits for the parent to be gone, reports one more and a FREE of the first, then waits.
  const child = `const net = await import('node:net');
    const parent = Number(process.argv[2]); // (it may exit before this child even starts)
    const s = new net.Socket({ fd: 3 });
    const alive = () => {
      try {
        process.kill(parent, 0);
        return true;
      } catch {
        return false;
      }
    };
    while (alive()) await new Promise((r) => setTimeout(r, 10));
    s.write(Buffer.from(process.argv[1], 'hex'));
    await new Promise((r) => setTimeout(r, 50));
    console.log('child ' + process.pid);
    setInterval(() => {}, 1000);`;
  const parent = `const net = await import('node:net');
    const { spawn } = await import('node:child_process');
    const s = net.connect(process.argv[1], () => {
      s.write(Buffer.from(process.argv[2], 'hex'), () => {
        const args = ['--input-type=module', '-e', process.argv[3], process.argv[4]];
        const c = spawn(process.execPath, [...args, String(process.pid)], {
          stdio: ['ignore', 'inherit', 'inherit', s],
        });
        c.unref();
        setTimeout(() => process.exit(0), 50);
      });
    });`;
  const later = Buffer.concat([
    alloc(0x2000),
    frames([{ type: MsgType.FREE, deviceId: 0, bufferId: 0x1000 }]),
  ]).toString('hex');
  const p = spawn(
    process.execPath,
    ['--input-type=module', '-e', parent, srv.socket, alloc(0x1000).toString('hex'), child, later],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let childPid = 0;
  try {
    const line = await new Promise<string>((r) => p.stdout!.once('data', (d: Buffer) => r(`${d}`)));
    childPid = Number(/child (\d+)/.exec(line)![1]);
    await roundTrip(srv);
    await srv.client.json('POST', '/v1/reap'); // the parent is gone, but its socket is not
    const rep = await srv.client.json<{ buffers: { pid: number; address: string }[] }>(
      'GET',
      '/v1/report?format=json&all=1&live=1',
    );
    assert.deepEqual(
      rep.buffers.map((b) => [b.pid, b.address]),
      [[p.pid, '0x2000']],
      'the FREE released the first, the second is live under the parent’s PID',
    );
    const st = await srv.client.json<{ unknown_frees: { buffers: number } }>('GET', '/v1/stats');
    assert.equal(st.unknown_frees.buffers, 0, 'nothing lost: no unknown free');
    await srv.waitFor(new RegExp(`process ${p.pid} is gone but its connection is still open`));
    process.kill(childPid, 'SIGKILL');
    childPid = 0;
    // the connection closes: what the parent's PID still held is left behind
    for (let i = 0; i < 200; i++) {
      const x = await srv.client.json<{ exited: { total_buffers: number } }>(
        'GET',
        '/v1/report?format=json&exited=1',
      );
      if (x.exited.total_buffers === 1) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const d = await runCli(['dump', '--exited', '--socket', srv.socket]);
    assert.match(d.stdout, new RegExp(`Buffer 0x2000: 4\\.0 KB \\(${EXITED(p.pid!)}\\)`));
  } finally {
    if (childPid) process.kill(childPid, 'SIGKILL');
    assert.equal(await srv.stop(), 0);
  }
});

test('allocation times: the frame’s own time when plausible, else the arrival time', async () => {
  const srv = await startServer(['--reap-interval', '0']);
  try {
    const s = await rawConnect(srv.socket);
    // the runtime's clock, 20 s before the frame arrives; half a millisecond in, so that the
    // double the test encodes (ns do not fit one exactly) still names that millisecond
    const sent = Date.now() - 20_000;
    const sentNs = sent * 1e6 + 500_000;
    await write(
      s,
      frames([
        { type: MsgType.ALLOC, size: 4096, bufferId: 0x1, timestampNs: sentNs },
        { type: MsgType.ALLOC, size: 4096, bufferId: 0x2 }, // no timestamp
        { type: MsgType.ALLOC, size: 4096, bufferId: 0x3, timestampNs: (sent + 9e7) * 1e6 },
      ]),
    );
    const t0 = Date.now();
    await roundTrip(srv);
    const rep = await srv.client.json<{ buffers: { address: string; allocated_at_ms: number }[] }>(
      'GET',
      '/v1/report?format=json&all=1',
    );
    const at = new Map(rep.buffers.map((b) => [b.address, b.allocated_at_ms]));
    assert.equal(at.get('0x1'), sent, 'to the millisecond');
    assert.ok(Math.abs(at.get('0x2')! - t0) < 5000, 'no timestamp: when it arrived');
    assert.ok(Math.abs(at.get('0x3')! - t0) < 5000, 'a time in the future: when it arrived');
    s.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});
