// The shared-memory reader against regions written by a real C writer (test/c/shm-writer.c,
// compiled here with the machine's cc from SHM-LAYOUT.md, as the runtime writes them), whose
// processes are real: live, killed with SIGKILL, left as zombies, or running as another user.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  mkdirSync,
  openSync,
  readSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from './helpers/server.js';
import { startShmWriter } from './helpers/shm-writer.js';
import { scanShm } from '../src/sources/shm-scan.js';
import { readRegion } from '../src/sources/shm-region.js';
import type { MemoryTotals, ShmRegion } from '../src/sources/types.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const hasCc = spawnSync('cc', ['--version']).status === 0;
const SKIP = hasCc
  ? false
  : 'no C compiler (`cc`) on this machine: install one (e.g. apt-get install gcc) to ' +
    'write regions as the runtime does';
const NOBODY = 65534;

let dir = '';
const children: ChildProcess[] = [];

before(() => {
  if (SKIP) return;
  dir = tempDir('ttalloc-shm-');
  chmodSync(dir, 0o755); // the writer runs as nobody in one test
});

after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

let rootCount = 0;
/** A fresh directory to scan, as /dev/shm would be. */
function newRoot(mode = 0o755): string {
  const root = join(dir, `root${rootCount++}`);
  mkdirSync(root);
  chmodSync(root, mode);
  return root;
}

const regionPath = (root: string, id: number | bigint) => join(root, `tt_device_${id}_memory`);

const bytes = (dram: number, l1: number, extra: Partial<MemoryTotals> = {}): MemoryTotals => ({
  dram,
  l1,
  l1_small: 0,
  trace: 0,
  cb: 0,
  ...extra,
});

function only(root: string): ShmRegion {
  const scan = scanShm({ root });
  assert.equal(scan.error, undefined);
  assert.equal(scan.regions.length, 1, JSON.stringify(scan.regions.map((r) => r.path)));
  return scan.regions[0];
}

describe('shared-memory regions', { skip: SKIP }, () => {
  test('every layout: totals, chips and named live slots; ids past 2^53 kept exact', async () => {
    const id = 2n ** 60n + 12345n; // beyond Number's exact integers
    for (const layout of ['v1a', 'v1b', 'v2', 'v3', 'v4'] as const) {
      const root = newRoot();
      const env = layout === 'v1a' ? { TT_METAL_SHM_STATS_PER_PID: '1' } : undefined;
      const w = await startShmWriter(regionPath(root, id), layout, [3, 4], { env });
      await w.send('alloc dram 1000');
      await w.send('alloc l1 200 4'); // on the remote chip
      if (layout === 'v1a') await w.send('alloc kernel 50');
      const r = only(root);
      const kernel = layout === 'v1a' ? { kernel: 50 } : {};
      assert.equal(r.layout, layout);
      assert.equal(r.status, 'ok', r.error);
      assert.equal(r.asic_id, id.toString());
      assert.equal(r.header_asic_id, id.toString(), `${layout}: the header's id`);
      assert.equal(r.board_serial, layout === 'v1b' ? (id >> 8n).toString() : null);
      assert.equal(r.device_id, 3);
      assert.equal(r.reference_count, 1);
      assert.equal(r.mode, layout === 'v3' || layout === 'v4' ? 0o600 : 0o666 & ~umask());
      assert.equal(r.owner_user, 'root');
      assert.deepEqual(r.totals, bytes(1000, 200, kernel));
      assert.deepEqual(r.chips, [
        { chip_id: 3, is_remote: false, bytes: bytes(1000, 0, kernel) },
        {
          chip_id: 4,
          is_remote: true,
          bytes: bytes(0, 200, layout === 'v1a' ? { kernel: 0 } : {}),
        },
      ]);
      assert.equal(r.slots.length, 1);
      const s = r.slots[0];
      assert.equal(s.pid, w.pid);
      assert.equal(s.name, 'python3');
      assert.equal(s.alive, true);
      assert.equal(s.dead_reason, undefined);
      assert.ok(s.updated_ms !== null && Math.abs(s.updated_ms - Date.now()) < 60_000);
      assert.deepEqual(s.bytes, bytes(1000, 200, kernel));
      assert.deepEqual(r.live, bytes(1000, 200, kernel));
      assert.deepEqual(r.ghost, layout === 'v2' || layout === 'v3' ? bytes(0, 0) : null);
      assert.equal(r.slots_full, false);
      await w.exit();
      // a clean exit takes its slot and, as the last process, the figures with it
      const gone = only(root);
      assert.deepEqual([gone.slots.length, gone.totals.dram, gone.reference_count], [0, 0, 0]);
    }
  });

  test('v1a without TT_METAL_SHM_STATS_PER_PID: totals, no slots, no ghost', async () => {
    const root = newRoot();
    const w = await startShmWriter(regionPath(root, 7), 'v1a', [0]);
    await w.send('alloc dram 64');
    const r = only(root);
    assert.deepEqual([r.layout, r.totals.dram, r.slots.length, r.ghost], ['v1a', 64, 0, null]);
    assert.deepEqual(
      r.chips.map((c) => c.chip_id),
      [0],
    );
    await w.exit();
  });

  test('v2/v3: a SIGKILLed writer leaves ghost bytes; its slot is dead (gone)', async () => {
    for (const layout of ['v2', 'v3']) {
      const root = newRoot();
      const path = regionPath(root, 99);
      const a = await startShmWriter(path, layout, [0]);
      const b = await startShmWriter(path, layout, [0], { comm: 'pytest' });
      await a.send('alloc dram 1000');
      await a.send('alloc l1 10');
      await b.send('alloc dram 300');
      await a.kill9();
      const r = only(root);
      assert.equal(r.status, 'ok');
      assert.equal(r.reference_count, 2, 'the crash leaks its reference');
      assert.deepEqual(r.totals, bytes(1300, 10));
      const dead = r.slots.find((s) => s.pid === a.pid)!;
      assert.deepEqual([dead.alive, dead.dead_reason, dead.name], [false, 'gone', 'python3']);
      const live = r.slots.find((s) => s.pid === b.pid)!;
      assert.deepEqual([live.alive, live.name], [true, 'pytest']);
      assert.deepEqual(r.live, bytes(300, 0));
      assert.deepEqual(r.ghost, bytes(1000, 10), `${layout}: what the crash left`);
      await b.exit();
    }
  });

  test('v4: a dead slot is not live until reaped; reaping takes its bytes; no ghost', async () => {
    const root = newRoot();
    const path = regionPath(root, 5);
    const a = await startShmWriter(path, 'v4', [0]);
    const b = await startShmWriter(path, 'v4', [0]);
    await a.send('alloc dram 1000');
    await b.send('alloc dram 300');
    await a.kill9();
    let r = only(root);
    assert.equal(r.ghost, null);
    assert.deepEqual(r.live, bytes(300, 0));
    assert.equal(r.slots.find((s) => s.pid === a.pid)?.dead_reason, 'gone');
    assert.equal(await b.send('reap'), 'ok reaped=1');
    r = only(root);
    assert.deepEqual([r.totals.dram, r.slots.length, r.slots[0].pid], [300, 1, b.pid]);
    await b.exit();
  });

  test('v4 mid-initialisation is reported as initialising, then read once ready', async () => {
    const root = newRoot();
    const w = await startShmWriter(regionPath(root, 6), 'v4', [0], { holdInit: true });
    let r = only(root);
    assert.deepEqual([r.layout, r.status, r.slots.length], ['v4', 'initialising', 0]);
    assert.match(r.error!, /init_state in progress/);
    assert.equal(await w.send('ready'), `ready pid=${w.pid} slot=0`);
    r = only(root);
    assert.deepEqual([r.status, r.slots.length, r.slots[0].pid], ['ok', 1, w.pid]);
    await w.exit();
  });

  test('a zombie slot owner is dead, though kill(pid, 0) still answers', async () => {
    const root = newRoot();
    // The writer's parent is a shell that execs `sleep` and never waits: once killed, it stays a
    // zombie until the sleep ends.
    const w = await startShmWriter(regionPath(root, 8), 'v3', [0], {
      wrap: ['sh', '-c', 'exec 3<&0; "$0" "$@" 0<&3 & exec sleep 600'],
    });
    await w.send('alloc dram 10');
    process.kill(w.pid, 'SIGKILL');
    await waitFor(() => /^Z/m.test(statOf(w.pid)));
    process.kill(w.pid, 0); // still there for the writer's own test
    const s = only(root).slots[0];
    assert.deepEqual([s.pid, s.alive, s.dead_reason], [w.pid, false, 'zombie']);
    w.child.kill('SIGKILL'); // the shell, which became its `sleep` (exec)
  });

  test('a PID handed out again: the process started after the slot was last updated', async () => {
    const root = newRoot();
    const w = await startShmWriter(regionPath(root, 9), 'v3', [0]);
    const sleeper = spawn('sleep', ['600']);
    children.push(sleeper);
    const hourAgoNs = BigInt(Date.now() - 3_600_000) * 1_000_000n;
    await w.send(`claim ${sleeper.pid} ${hourAgoNs} python3`);
    let s = only(root).slots.find((x) => x.pid === sleeper.pid)!;
    assert.deepEqual([s.alive, s.dead_reason], [false, 'pid_reused']);
    // the same PID with a slot written after it started is its owner
    const root2 = newRoot();
    const w2 = await startShmWriter(regionPath(root2, 9), 'v3', [0]);
    await w2.send(`claim ${sleeper.pid} now sleep`);
    s = only(root2).slots.find((x) => x.pid === sleeper.pid)!;
    assert.deepEqual([s.alive, s.dead_reason], [true, undefined]);
    sleeper.kill('SIGKILL');
    await w.exit();
    await w2.exit();
  });

  test('64 taken slots: slots_full, and a newcomer counts only in the totals', async () => {
    const root = newRoot();
    const path = regionPath(root, 10);
    const w = await startShmWriter(path, 'v3', [0]);
    // PIDs above the kernel's largest pid_max: never a process
    for (let i = 0; i < 64; i++) assert.match(await w.send(`claim ${5_000_000 + i} now x`), /^ok/);
    assert.equal(await w.send('claim 6000000 now x'), 'full');
    const late = await startShmWriter(path, 'v3', [0]);
    assert.equal(await late.send('alloc dram 77'), 'ok slot=-1');
    const r = only(root);
    assert.equal(r.slots_full, true);
    assert.equal(r.slots.length, 64);
    assert.ok(r.slots.every((s) => !s.alive && s.dead_reason === 'gone'));
    assert.deepEqual(r.ghost, bytes(77, 0), 'no slot accounts for it');
    await late.exit();
    await w.exit();
  });

  test('torn reads: a snapshot is one moment of a busy writer or "torn", never a mix', async () => {
    const root = newRoot();
    const path = regionPath(root, 11);
    const w = await startShmWriter(path, 'v3', [0]);
    // the hammer's own slot last, so its counters lie 8 KB from the totals: a single read
    // copying them spans more of the writer's rounds
    for (let i = 0; i < 63; i++) await w.send(`claim ${5_000_000 + i} now x`);
    assert.equal(await w.send('alloc dram 1'), 'ok slot=63');
    // bursts of 5 M rounds (tens of ms) with 1 ms pauses: reads land both inside and between them
    w.child.stdin!.write('hammer 0 5000000\n');
    const raw = Buffer.alloc(8576);
    const fd = openSync(path, 'r');
    let rawMixed = 0,
      ok = 0,
      torn = 0,
      rounds = 0;
    const until = Date.now() + 20_000;
    try {
      while (Date.now() < until && (rounds++ < 3000 || rawMixed === 0 || ok < 5 || !torn)) {
        readSync(fd, raw, 0, raw.length, 0);
        if (!isMoment(rawCounters(raw))) rawMixed++;
        // liveness is not what this test is about: no kill() for the 63 made-up PIDs
        const r = readRegion(path, { retries: 2, isAlive: () => false });
        if (r.status === 'torn') {
          torn++;
          assert.deepEqual([r.slots.length, r.totals.dram], [0, 0], 'a torn region shows nothing');
          continue;
        }
        assert.equal(r.status, 'ok');
        const mine = r.slots.find((x) => x.pid === w.pid)!;
        const seen = [r.totals, r.chips[0].bytes, mine.bytes].flatMap(fiveOf);
        assert.ok(isMoment(seen), `a mix of moments: ${seen.join(' ')}`);
        if (seen[0] > 1) ok++;
      }
    } finally {
      closeSync(fd);
    }
    assert.ok(rawMixed > 0, 'a single read never caught the writer mid-update: the test is moot');
    console.log(`# torn reads: ${rawMixed} mixed single reads, ${ok} snapshots, ${torn} torn`);
    assert.ok(ok >= 5, `only ${ok} agreeing snapshots`);
    assert.ok(torn > 0, 'never reported torn');
    await w.kill9();
  });

  test('another user’s 0600 region: unreadable, with its owner; their PIDs alive', async () => {
    const root = newRoot(0o777);
    const path = regionPath(root, 12);
    const w = await startShmWriter(path, 'v3', [0], { uid: NOBODY });
    await w.send('alloc dram 4096');
    // an early (v2) region of the same process, readable by all
    const early = await startShmWriter(regionPath(root, 13), 'v2', [1], { uid: NOBODY });
    await early.send('alloc l1 8');
    // root reads it (and names its owner)
    const asRoot = scanShm({ root }).regions[0];
    assert.deepEqual(
      [asRoot.status, asRoot.owner_uid, asRoot.owner_user, asRoot.totals.dram],
      ['ok', NOBODY, 'nobody', 4096],
    );
    // a third user may not
    const code =
      "import { scanShm } from './src/sources/shm-scan.ts';" +
      `process.stdout.write(JSON.stringify(scanShm({ root: ${JSON.stringify(root)} })));`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      cwd: REPO,
      uid: 12345,
      gid: 12345,
      env: { ...process.env, HOME: dir },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    const seen = JSON.parse(r.stdout).regions as ShmRegion[];
    assert.equal(seen.length, 2);
    assert.equal(seen[0].status, 'unreadable');
    assert.equal(seen[0].owner_uid, NOBODY);
    assert.equal(seen[0].owner_user, 'nobody');
    assert.equal(seen[0].mode, 0o600);
    assert.match(seen[0].error!, /owned by nobody with mode 0600/);
    // nobody's process is alive to a third user too: kill(pid, 0) fails with EPERM
    assert.equal(seen[1].status, 'ok');
    assert.deepEqual([seen[1].slots[0].pid, seen[1].slots[0].alive], [early.pid, true]);
    assert.deepEqual(seen[1].live.l1, 8);
    await early.exit();
    await w.exit();
  });

  test('files that are not regions: bad or initialising, and nothing blocks', () => {
    const root = newRoot();
    writeFileSync(regionPath(root, 1), Buffer.alloc(100)); // no layout has that size
    const v9 = Buffer.alloc(8576);
    v9.writeUInt32LE(9, 0);
    writeFileSync(regionPath(root, 2), v9);
    writeFileSync(regionPath(root, 3), Buffer.alloc(0)); // shm_open()ed, not yet sized
    writeFileSync(regionPath(root, 4), Buffer.alloc(8576)); // sized, version not yet written
    assert.equal(spawnSync('mkfifo', [regionPath(root, 5)]).status, 0);
    symlinkSync(regionPath(root, 2), regionPath(root, 6));
    writeFileSync(join(root, 'tt_device_x_memory'), v9); // not a region name: ignored
    writeFileSync(join(root, 'sem.other'), v9);
    const got = scanShm({ root }).regions.map((r) => [r.asic_id, r.status, r.error]);
    assert.deepEqual(got, [
      ['1', 'bad', '100 bytes: no layout has that size'],
      ['2', 'bad', 'version 9 in 8576 bytes: not a layout we know'],
      ['3', 'initialising', 'being created (no bytes yet)'],
      ['4', 'initialising', 'being created (version 0)'],
      ['5', 'bad', 'not a regular file'],
      ['6', 'bad', 'a symbolic link: not followed'],
    ]);
    assert.match(scanShm({ root: join(root, 'nope') }).error!, /cannot be listed \(ENOENT\)/);
  });

  test('random bytes under every version word: read, and negative PIDs never signalled', () => {
    const root = newRoot();
    const path = regionPath(root, 14);
    for (let i = 0; i < 200; i++) {
      const v1a = i % 6 === 0;
      const buf = randomBytes(v1a ? 9280 : 8576);
      buf.writeUInt32LE(v1a ? 1 : 1 + (i % 4), 0);
      if (i % 2) buf.writeUInt32LE(0x52454459, 8536); // v4 ready half the time
      writeFileSync(path, buf);
      const r = readRegion(path);
      assert.ok(['ok', 'initialising'].includes(r.status), `${r.status}: ${r.error}`);
      for (const s of r.slots) {
        // kill(-n, 0) would signal a process group: a negative PID is judged without it
        if (s.pid < 0) assert.equal(s.alive, false);
        assert.ok(s.name.length <= 64);
      }
    }
  });

  test('the real /dev/shm: found by the default scan, as tt-metal main writes it', async () => {
    const id = 2n ** 63n + BigInt(process.pid) * 1000n + BigInt(Date.now() % 1000);
    const path = regionPath('/dev/shm', id);
    try {
      const w = await startShmWriter(path, 'v3', [0]);
      await w.send('alloc trace 2048');
      const r = scanShm().regions.find((x) => x.asic_id === id.toString());
      assert.ok(r, 'not found in /dev/shm');
      assert.deepEqual([r.status, r.layout, r.totals.trace], ['ok', 'v3', 2048]);
      assert.deepEqual([r.slots[0].pid, r.slots[0].alive], [w.pid, true]);
      await w.exit();
    } finally {
      try {
        unlinkSync(path);
      } catch {
        /* not created */
      }
    }
  });
});

/** Counters in the order the hammer writes them: totals, the gateway chip, the last slot. */
function rawCounters(buf: Buffer): number[] {
  const out: number[] = [];
  for (const off of [48, 88 + 8, 856 + 63 * 120 + 8])
    for (let k = 0; k < 5; k++) out.push(Number(buf.readBigUInt64LE(off + 8 * k)));
  return out;
}

const fiveOf = (t: MemoryTotals) => [t.dram, t.l1, t.l1_small, t.trace, t.cb];

/**
 * One moment of the hammer: it writes round r into each counter in turn, so at any instant
 * the counters read r…r then r-1…r-1 in write order (the first alloc's dram 1 aside).
 */
function isMoment(v: number[]): boolean {
  if (v[0] <= 1) return true; // before the hammer
  for (let i = 1; i < v.length; i++) if (v[i] > v[i - 1] || v[0] - v[i] > 1) return false;
  return true;
}

function umask(): number {
  const m = process.umask(0);
  process.umask(m);
  return m;
}

function statOf(pid: number): string {
  const r = spawnSync('sh', ['-c', `cut -d')' -f2 /proc/${pid}/stat`], { encoding: 'utf8' });
  return r.stdout.trim();
}

async function waitFor(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), 'condition never met');
}

test('npm run bench:sources --quick prints the SHM refresh row', () => {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'src/bench/sources-bench.ts', '--quick', '--only', 'shm'],
    { cwd: REPO, encoding: 'utf8', timeout: 60_000 },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^refresh: scan \+ read 32 SHM regions.*\| median [\d.]+ ms \| p99 /m);
  const bad = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'src/bench/sources-bench.ts', '--only', 'nope'],
    { cwd: REPO, encoding: 'utf8' },
  );
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /unknown case nope \(cases: shm/);
});
