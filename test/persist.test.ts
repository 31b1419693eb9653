// Persistence through real server processes: kill -9 and clean restarts resume the state; a torn
// journal tail, a full disk and a second server on the same directory are handled.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  readdirSync,
  rmSync,
  statSync,
  statfsSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { Reporter } from '../src/client/reporter.js';
import { CLI, runCli, settle, startServer, tempDir, type TestServer } from './helpers/server.js';

const KiB = 1024;
/** A pattern written in parts (each part a String.raw: the pattern's own escapes). */
const re = (...parts: string[]) => new RegExp(parts.join(''));

async function kill9(srv: TestServer): Promise<void> {
  const exited = new Promise((r) => srv.proc.once('exit', r));
  srv.proc.kill('SIGKILL');
  await exited;
}

/** A workload with everything the state holds: ref counts, CBs, kernels, frees, a mark. */
async function workload(srv: TestServer): Promise<void> {
  const r = new Reporter({ socketPath: srv.socket });
  for (let i = 0; i < 300; i++) r.alloc(i % 3, 0x10000000 + i * 0x1000, 4 * KiB + i, i % 5);
  r.alloc(0, 0x10000000, 4 * KiB, 0); // ref_count 2
  for (let i = 0; i < 30; i++) r.free(1, 0x10000000 + (3 * i + 1) * 0x1000);
  r.free(2, 0xdead0000); // unknown
  r.kernelLoad(2, 0x5555, 8 * KiB, 2);
  r.cbAlloc(1, 0x6600, 32 * KiB);
  r.alloc(0, 0x1_0000_0000_1000n, 12 * KiB, 0); // a 64-bit address
  await r.close();
  await settle(srv);
  assert.equal((await runCli(['mark', 'm1', '--socket', srv.socket])).code, 0);
  const r2 = new Reporter({ socketPath: srv.socket });
  r2.alloc(1, 0x7f000000, 36 * KiB, 0);
  await r2.close();
  await settle(srv);
}

type DeviceView = { bytes: unknown; peak_bytes: unknown };
/** The state a restart must bring back. Peaks are not state: they restart at the restored level. */
const devicesOf = async (srv: TestServer) =>
  (await srv.client.json<{ devices: DeviceView[] }>('GET', '/v1/stats')).devices;
const view = async (srv: TestServer) => ({
  dump: (await runCli(['dump', '--all', '--socket', srv.socket])).stdout,
  since: (await runCli(['dump', '--since', 'm1', '--socket', srv.socket])).stdout,
  devices: (await devicesOf(srv)).map(({ peak_bytes: _peaks, ...state }) => state),
  kernels: (await runCli(['dump-kernels', '--json', '--socket', srv.socket])).stdout,
});

type Persist = {
  persistence: {
    enabled: boolean;
    failed: string | null;
    note: string | null;
    recovery: { previous_stop: string; truncated_bytes: number; problems: string[] };
  };
};

test(
  'kill -9 then restart resumes exactly the journaled state;' +
    ' a clean stop restarts from a snapshot',
  async () => {
    const state = join(tempDir(), 'state');
    const a = await startServer(['--state-dir', state, '--reap-interval', '0']);
    await workload(a);
    const before = await view(a);
    assert.match(before.dump, /ref_count=2/);
    assert.match(before.since, /Buffer 0x7f000000: 36\.0 KB/);
    await new Promise((r) => setTimeout(r, 300)); // past one flush interval
    await kill9(a);

    const b = await startServer(['--state-dir', state, '--reap-interval', '0']);
    await b.waitFor(
      re(
        String.raw`restored 272 buffers, 1 CBs, 1 kernels, 1 marks`,
        String.raw` \(snapshot: 0 objects, journal: \d+ events\) after a crash stop`,
      ),
    );
    assert.match(
      b.output(),
      /did not stop cleanly: up to 100 ms of events before it died may be missing/,
    );
    assert.deepEqual(await view(b), before);
    for (const d of await devicesOf(b)) assert.deepEqual(d.peak_bytes, d.bytes, 'peaks restart');
    const st = await b.client.json<Persist>('GET', '/v1/stats');
    assert.equal(st.persistence.recovery.previous_stop, 'crash');
    assert.match(st.persistence.note!, /may be missing/);
    assert.equal(await b.stop(), 0); // clean: journal synced, clean marker, lock released
    assert.ok(existsSync(join(state, 'clean')));
    assert.equal(existsSync(join(state, 'lock')), false);

    const c = await startServer(['--state-dir', state, '--reap-interval', '0']);
    await c.waitFor(
      re(
        String.raw`restored 272 buffers, 1 CBs, 1 kernels, 1 marks`,
        String.raw` \(snapshot: 0 objects, journal: \d+ events\) after a clean stop`,
      ),
    );
    assert.deepEqual(await view(c), before);
    // Reset forgets the persisted state too.
    assert.equal((await runCli(['reset', '--yes', '--socket', c.socket])).code, 0);
    await kill9(c);
    const d = await startServer(['--state-dir', state]);
    assert.match(
      (await runCli(['dump', '--socket', d.socket])).stdout,
      /Total remaining buffers: 0/,
    );
    assert.equal(
      (await runCli(['marks', '--json', '--socket', d.socket])).stdout.includes('m1'),
      false,
    );
    await d.stop();
  },
);

test(
  'owners that died while no server ran are released after recovery;' + ' reaped reports persist',
  async () => {
    const state = join(tempDir(), 'state');
    const a = await startServer(['--state-dir', state, '--reap-interval', '0']);
    const reporterUrl = new URL('../dist/index.js', import.meta.url).href;
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { Reporter } from ${JSON.stringify(reporterUrl)};
     const r = new Reporter({ socketPath: process.argv[1] });
     r.alloc(0, 0x4000, 8192, 0);
     await r.close();
     console.log('ok');
     setInterval(() => {}, 1000);`,
        a.socket,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise((r) => child.stdout!.once('data', r));
    await settle(a);
    await new Promise((r) => setTimeout(r, 300));
    await kill9(a);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const b = await startServer(['--state-dir', state, '--reap-interval', '0']);
    await b.waitFor(`process ${child.pid} is gone: released 1 buffer (8.00 KiB)`);
    await b.stop();
    const c = await startServer(['--state-dir', state]);
    // what it left behind survives the restart, buffer by buffer
    const left = JSON.parse(
      (await runCli(['dump', '--exited', '--json', '--all', '--socket', c.socket])).stdout,
    ) as {
      exited: { processes: { pid: number; bytes: number }[] };
      buffers: { state: string; pid: number; size: number }[];
    };
    assert.deepEqual(
      left.exited.processes.map((r) => [r.pid, r.bytes]),
      [[child.pid, 8192]],
    );
    assert.deepEqual(
      left.buffers.map((r) => [r.state, r.pid, r.size]),
      [['exited', child.pid, 8192]],
    );
    await c.stop();
  },
);

test(
  'a torn or corrupt journal tail is cut at the last good record and reported;' +
    ' start-up goes on',
  async () => {
    const state = join(tempDir(), 'state');
    const a = await startServer(['--state-dir', state]);
    const r = new Reporter({ socketPath: a.socket });
    for (let i = 0; i < 50; i++) r.alloc(0, 0x1000 * (i + 1), 4096, 0);
    await r.close();
    await settle(a);
    await new Promise((res) => setTimeout(res, 300));
    await kill9(a);
    const journal = join(
      state,
      readdirSync(state)
        .filter((n) => n.startsWith('journal-'))
        .sort()
        .pop()!,
    );
    const good = statSync(journal).size;
    appendFileSync(journal, Buffer.from('TTJ1\x40\x00\x00\x00garbage-of-a-torn-write'));
    const b = await startServer(['--state-dir', state]);
    await b.waitFor(
      re(
        String.raw`state recovery: journal journal-\d{8}\.bin`,
        String.raw`: torn batch at byte \d+ .*; cut 31 bytes at the last good record`,
      ),
    );
    assert.equal(statSync(journal).size, good, 'the torn tail was cut off the file');
    const st = await b.client.json<Persist>('GET', '/v1/stats');
    assert.equal(st.persistence.recovery.truncated_bytes, 31);
    assert.match((await runCli(['dump', '--socket', b.socket])).stdout, /DRAM: 50 buffers/);
    await b.stop();
  },
);

test(
  'a full disk stops persistence with one loud warning,' +
    ' tracking goes on, and persistence resumes once there is room',
  async () => {
    // A real full file system: a 16 MiB tmpfs, filled up to the last few KiB by another file.
    const mnt = tempDir();
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', mnt]);
    try {
      const state = join(mnt, 'state');
      const a = await startServer([
        '--state-dir',
        state,
        '--flush-interval',
        '20',
        '--reap-interval',
        '0',
      ]);
      const free = statfsSync(mnt);
      writeFileSync(join(mnt, 'filler'), Buffer.alloc(Number(free.bavail * free.bsize) - 64 * KiB));
      const r = new Reporter({ socketPath: a.socket });
      for (let i = 0; i < 20000; i++) r.alloc(1, 0x1000 * (i + 1), 4096, 1);
      await r.close();
      assert.equal(r.dropped, 0);
      await settle(a);
      await a.waitFor('PERSISTENCE STOPPED: ENOSPC');
      assert.match(a.stderr(), /PERSISTENCE STOPPED: ENOSPC/);
      const r2 = new Reporter({ socketPath: a.socket });
      r2.alloc(1, 0xffff0000, 4096, 1);
      await r2.close();
      await settle(a);
      assert.match(
        (await runCli(['dump', '--socket', a.socket])).stdout,
        /L1: 20001 buffers/,
        'tracking went on in memory',
      );
      const st = await a.client.json<Persist>('GET', '/v1/stats');
      assert.match(st.persistence.failed!, /ENOSPC/);
      assert.equal(a.output().split('PERSISTENCE STOPPED').length, 2, 'one warning');

      // room again: persistence resumes by itself, from a fresh snapshot
      rmSync(join(mnt, 'filler'));
      await a.waitFor(/persistence resumed in .*: snapshot of 20001 objects written/);
      const r3 = new Reporter({ socketPath: a.socket });
      r3.free(1, 0x1000);
      await r3.close();
      await settle(a);
      await new Promise((res) => setTimeout(res, 200)); // past one flush interval
      await kill9(a);
      const b = await startServer(['--state-dir', state]);
      await b.waitFor(
        re(
          String.raw`restored 20000 buffers, 0 CBs, 0 kernels, 0 marks`,
          String.raw` \(snapshot: 20001 objects, journal: 1 events\) after a crash stop`,
        ),
      );
      assert.match((await runCli(['dump', '--socket', b.socket])).stdout, /L1: 20000 buffers/);
      await b.stop();
    } finally {
      execFileSync('umount', ['-l', mnt]);
    }
  },
);

test(
  'closed journal segments are folded into a snapshot in the background;' +
    ' restart reads snapshot + journal',
  async () => {
    const state = join(tempDir(), 'state');
    const a = await startServer([
      '--state-dir',
      state,
      '--journal-mib',
      '1',
      '--flush-interval',
      '20',
      '--reap-interval',
      '0',
    ]);
    // 100 k events (~4 MB of journal): allocations, frees of half of them, repeats (ref counts).
    const r = new Reporter({ socketPath: a.socket });
    for (let i = 0; i < 50000; i++) r.alloc(i % 4, 0x100000 + i * 0x100, 256 + (i % 7), i % 5);
    for (let i = 0; i < 50000; i += 2) r.free(i % 4, 0x100000 + i * 0x100);
    for (let i = 1; i < 1000; i += 2) r.alloc(i % 4, 0x100000 + i * 0x100, 256 + (i % 7), i % 5);
    await r.close();
    await settle(a);
    assert.equal((await runCli(['mark', 'after-load', '--socket', a.socket])).code, 0);
    const before = (await runCli(['dump', '--all', '--json', '--socket', a.socket])).stdout;
    let st = await a.client.json<
      Persist & {
        persistence: { compactions: number; journal_segments: number; snapshot_bytes: number };
      }
    >('GET', '/v1/stats');
    for (let i = 0; st.persistence.compactions === 0 && i < 200; i++) {
      await new Promise((res) => setTimeout(res, 50));
      st = await a.client.json('GET', '/v1/stats');
    }
    assert.ok(st.persistence.compactions >= 1, 'a compaction ran');
    assert.ok(existsSync(join(state, 'snapshot.bin')));
    assert.ok(st.persistence.snapshot_bytes > 0);
    const segments = readdirSync(state).filter((n) => n.startsWith('journal-'));
    assert.ok(segments.length < 16, `old segments were removed (${segments.length} left)`);
    await new Promise((res) => setTimeout(res, 100));
    await kill9(a);
    const b = await startServer(['--state-dir', state]);
    await b.waitFor(
      re(
        String.raw`restored 25000 buffers, 0 CBs, 0 kernels, 1 marks`,
        String.raw` \(snapshot: [1-9]\d* objects, journal: \d+ events\) after a crash stop`,
      ),
    );
    const after = (await runCli(['dump', '--all', '--json', '--socket', b.socket])).stdout;
    const strip = (j: string) =>
      JSON.stringify(
        { ...JSON.parse(j), generated_at: null, generated_at_ms: null, server_pid: null },
        (k, v) => (k === 'age_ms' ? null : v),
      );
    assert.equal(strip(after), strip(before));
    assert.match(
      (await runCli(['dump', '--since', 'after-load', '--socket', b.socket])).stdout,
      /Total remaining buffers: 0/,
    );
    await b.stop();
  },
);

test(
  'a second server on the same state directory is refused;' + ' --no-persist writes nothing',
  async () => {
    const state = join(tempDir(), 'state');
    const a = await startServer(['--state-dir', state]);
    const other = join(tempDir(), 'b.sock');
    const second = await runCli(['server', '--socket', other, '--state-dir', state]);
    assert.notEqual(second.code, 0);
    assert.match(
      second.stderr,
      /state directory .* is in use by server pid \d+; use another --state-dir/,
    );
    assert.equal(existsSync(other), false, 'it left no socket behind');
    await a.stop();

    const none = join(tempDir(), 'none');
    const b = await startServer(['--state-dir', none, '--no-persist']);
    const r = new Reporter({ socketPath: b.socket });
    r.alloc(0, 0x1000, 4096, 0);
    await r.close();
    await settle(b);
    assert.equal((await b.client.json<Persist>('GET', '/v1/stats')).persistence.enabled, false);
    await b.stop();
    assert.equal(existsSync(none) && readdirSync(none).length > 0, false);
  },
);

test(
  'an unusable state directory: --state-dir is an error at start-up;' +
    ' the default one leaves the server running in memory, loudly',
  async () => {
    const dir = tempDir();
    const file = join(dir, 'not-a-dir');
    writeFileSync(file, 'x');
    const explicit = await runCli([
      'server',
      '--socket',
      join(dir, 'a.sock'),
      '--state-dir',
      join(file, 'state'),
    ]);
    assert.equal(explicit.code, 1);
    assert.match(
      explicit.stderr,
      re(
        String.raw`cannot create state directory .*not-a-dir/state: ENOTDIR`,
        String.raw`.*\(use --state-dir DIR or --no-persist\)`,
      ),
    );
    assert.equal(existsSync(join(dir, 'a.sock')), false, 'no socket left behind');

    // The default directory lives under $XDG_STATE_HOME: here, under a regular file.
    const sock = join(dir, 'b.sock');
    const p = spawn(process.execPath, [CLI, 'server', '--socket', sock, '--stats-interval', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, XDG_STATE_HOME: file },
    });
    let out = '',
      err = '';
    p.stdout!.on('data', (d: Buffer) => {
      out += d;
    });
    p.stderr!.on('data', (d: Buffer) => {
      err += d;
    });
    try {
      for (let i = 0; !out.includes('listening on') && i < 500; i++)
        await new Promise((r) => setTimeout(r, 10));
      assert.match(out, /listening on/);
      assert.match(
        err,
        /!!! PERSISTENCE OFF: cannot create state directory .*not-a-dir\/ttalloc\/.*: ENOTDIR/,
      );
      const st = JSON.parse((await runCli(['stats', '--json', '--socket', sock])).stdout) as {
        persistence: { enabled: boolean; reason: string };
      };
      assert.equal(st.persistence.enabled, false);
      assert.match(st.persistence.reason, /ENOTDIR/);
      assert.match(
        (await runCli(['stats', '--socket', sock])).stdout,
        /persistence: OFF \(cannot create state directory .*\); a restart loses the state/,
      );
      const r = new Reporter({ socketPath: sock });
      r.alloc(0, 0x1000, 4096, 0);
      await r.close();
      for (
        let i = 0;
        i < 10 && !(await runCli(['dump', '--socket', sock])).stdout.includes('DRAM: 1 buffer,');
        i++
      )
        await new Promise((res) => setTimeout(res, 20));
      const dump = (await runCli(['dump', '--socket', sock])).stdout;
      assert.match(dump, /DRAM: 1 buffer, /, 'it tracks');
    } finally {
      p.kill('SIGTERM');
      await new Promise((r) => p.once('exit', r));
    }
  },
);
