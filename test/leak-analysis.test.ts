import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Reporter } from '../src/client/reporter.js';
import { runCli, settle, startServer, type TestServer } from './helpers/server.js';

const KiB = 1024;

/**
 * One "inference run": per-op L1 buffers that are freed, and (when leaky) one 36 KB DRAM buffer per
 * device that is not.
 */
async function run(srv: TestServer, r: Reporter, n: number, leaky: boolean): Promise<void> {
  for (const dev of [0, 1]) {
    for (let op = 0; op < 20; op++) {
      r.alloc(dev, 0x10000 + op * 0x1000, 64 * KiB, 1);
      r.free(dev, 0x10000 + op * 0x1000);
    }
    if (leaky) r.alloc(dev, 0x7f000000 + n * 0x9000, 36 * KiB, 0);
  }
  r.flush();
  await settle(srv);
}

async function mark(srv: TestServer, name: string): Promise<void> {
  const m = await runCli(['mark', name, '--socket', srv.socket]);
  assert.equal(m.code, 0, m.stderr);
  assert.match(m.stdout, new RegExp(`mark '${name}' set at `));
}

test(
  'a three-run workload leaking 36 KB DRAM per run per device is named as accumulating; ' +
    'check fails with 23',
  async () => {
    const srv = await startServer(['--reap-interval', '0']);
    const r = new Reporter({ socketPath: srv.socket });
    try {
      r.alloc(0, 0x3f000000, 2 * 1024 * KiB, 0); // infrastructure before any mark
      for (let i = 1; i <= 3; i++) {
        await mark(srv, `run-${i}`);
        await run(srv, r, i, true);
      }

      const diff = await runCli(['diff', 'run-1', '--socket', srv.socket]);
      assert.equal(diff.code, 0, diff.stderr);
      assert.match(diff.stdout, /Still alive, born between 'run-1' and 'now': 6 buffers, 216 KiB/);
      assert.match(
        diff.stdout,
        new RegExp(
          String.raw`run-1 → run-2: \+2 buffers, \+72\.0 KiB\n {2}Device 0 DRAM: 1 × 36\.0 KiB` +
            String.raw`\n {2}Device 1 DRAM: 1 × 36\.0 KiB`,
        ),
      );
      assert.match(
        diff.stdout,
        new RegExp(
          String.raw`Accumulating across runs \(likely leaks\):\n` +
            String.raw` {2}\+36\.0 KiB DRAM per run on every device \(0, 1\), 3 runs\n`,
        ),
      );
      const dj = JSON.parse(
        (await runCli(['diff', 'run-1', 'run-3', '--json', '--socket', srv.socket])).stdout,
      ) as {
        schema_version: number;
        intervals: unknown[];
        accumulating: { type: string; size: number; devices: number[]; runs: number }[];
      };
      assert.equal(dj.schema_version, 2);
      assert.equal(dj.intervals.length, 2, 'run-1→run-2 and run-2→run-3');
      assert.deepEqual(
        dj.accumulating.map((a) => [a.type, a.size, a.devices, a.runs]),
        [['DRAM', 36 * KiB, [0, 1], 2]],
      );

      const since = await runCli(['dump', '--since', 'run-3', '--socket', srv.socket]);
      assert.equal(since.code, 0, since.stderr);
      assert.match(
        since.stdout,
        new RegExp(
          String.raw`Device 0:\n {2}DRAM: 1 buffer, 0\.036864 MB total\n` +
            String.raw` {4}- Buffer 0x7f01b000: 36\.0 KB \(PID \d+, ref_count=1\)\n\nDevice 1:`,
        ),
      );
      assert.match(since.stdout, /Total remaining buffers: 2\n/);

      const check = await runCli(['check', '--since', 'run-2', '--socket', srv.socket]);
      assert.equal(check.code, 23, check.stdout + check.stderr);
      assert.match(check.stdout, /LEAK since 'run-2': 4 buffers, 147456 bytes remain \(budget 0\)/);
      assert.match(check.stdout, /- Device 1 DRAM Buffer 0x7f012000: 36\.0 KiB/);
      assert.equal(
        (
          await runCli([
            'check',
            '--since',
            'run-2',
            '--max-bytes',
            '147456',
            '--socket',
            srv.socket,
          ])
        ).code,
        0,
      );
      assert.equal(
        (
          await runCli([
            'check',
            '--since',
            'run-2',
            '--max-bytes',
            '147455',
            '--socket',
            srv.socket,
          ])
        ).code,
        23,
      );

      const rules = join(srv.dir, 'leaks.supp');
      writeFileSync(
        rules,
        '# the 36 KB buffers are a known cache\ntype=DRAM min_size=36864 max_size=36864\n',
      );
      const ok = await runCli([
        'check',
        '--since',
        'run-2',
        '--ignore',
        rules,
        '--socket',
        srv.socket,
      ]);
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      assert.match(
        ok.stdout,
        /OK since 'run-2': 0 buffers, 0 bytes remain \(budget 0\) \(4 suppressed\)/,
      );
      writeFileSync(rules, 'type=DRAM device=1\n');
      const half = JSON.parse(
        (
          await runCli([
            'check',
            '--since',
            'run-2',
            '--ignore',
            rules,
            '--json',
            '--socket',
            srv.socket,
          ])
        ).stdout,
      ) as { ok: boolean; leaked_buffers: number; suppressed_buffers: number };
      assert.deepEqual([half.ok, half.leaked_buffers, half.suppressed_buffers], [false, 2, 2]);
    } finally {
      await r.close();
      assert.equal(await srv.stop(), 0);
    }
  },
);

test(
  'a workload that cleans up passes check; ' + 'bad input gives clear errors and exact exit codes',
  async () => {
    // --trust-client-pid: the per-PID mark step reports as PID 1 from this process.
    const srv = await startServer(['--reap-interval', '0', '--trust-client-pid']);
    const r = new Reporter({ socketPath: srv.socket });
    try {
      await mark(srv, 'test-clean');
      await run(srv, r, 1, false);
      const ok = await runCli(['check', '--since', 'test-clean', '--socket', srv.socket]);
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      assert.match(ok.stdout, /OK since 'test-clean': 0 buffers, 0 bytes remain/);
      const diff = await runCli(['diff', 'test-clean', '--socket', srv.socket]);
      assert.match(diff.stdout, /Mark more runs to detect accumulation/);

      const missing = await runCli(['check', '--since', 'nope', '--socket', srv.socket]);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /no mark named 'nope'/);
      assert.equal((await runCli(['dump', '--since', 'nope', '--socket', srv.socket])).code, 1);
      const badName = await runCli(['mark', 'has space', '--socket', srv.socket]);
      assert.equal(badName.code, 1);
      assert.match(badName.stderr, /bad mark name/);
      const rules = join(srv.dir, 'bad.supp');
      writeFileSync(rules, 'type=DRAM colour=red\n');
      const badRules = await runCli([
        'check',
        '--since',
        'test-clean',
        '--ignore',
        rules,
        '--socket',
        srv.socket,
      ]);
      assert.equal(badRules.code, 1);
      assert.match(badRules.stderr, /bad\.supp:1: 'colour=red' is not key=value/);
      const noFile = await runCli([
        'check',
        '--since',
        'test-clean',
        '--ignore',
        join(srv.dir, 'absent'),
        '--socket',
        srv.socket,
      ]);
      assert.equal(noFile.code, 1);
      assert.match(noFile.stderr, /cannot read rules file .*ENOENT/);

      // Marks per PID: only that process's buffers count.
      // PID 1 is alive: never reaped.
      const other = new Reporter({ socketPath: srv.socket, pid: 1 });
      const m = await runCli([
        'mark',
        'worker',
        '--pid',
        String(process.pid),
        '--socket',
        srv.socket,
      ]);
      assert.equal(m.code, 0, m.stderr);
      other.alloc(0, 0x5000, 4096, 0);
      other.flush();
      await settle(srv);
      assert.equal(
        (await runCli(['check', '--since', 'worker', '--socket', srv.socket])).code,
        0,
        "another PID's buffer does not count",
      );
      r.alloc(0, 0x6000, 4096, 0);
      r.flush();
      await settle(srv);
      assert.equal((await runCli(['check', '--since', 'worker', '--socket', srv.socket])).code, 23);
      const marks = JSON.parse(
        (await runCli(['marks', '--json', '--socket', srv.socket])).stdout,
      ) as { marks: { name: string; pid: number | null }[] };
      assert.deepEqual(
        marks.marks.map((x) => [x.name, x.pid]),
        [
          ['test-clean', null],
          ['worker', process.pid],
        ],
      );
      await other.close();
    } finally {
      await r.close();
      assert.equal(await srv.stop(), 0);
    }
  },
);

test('no server running: leak commands exit 2', async () => {
  const r = await runCli(['check', '--since', 'x', '--socket', '/tmp/ttalloc-none/alloc.sock']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /no allocation server is running/);
});

test('ttalloc leaks labels every remaining buffer with a class and its reason', async () => {
  const srv = await startServer(['--reap-interval', '0']);
  const r = new Reporter({ socketPath: srv.socket });
  const flush = async () => {
    r.flush();
    await settle(srv);
  };
  try {
    r.alloc(0, 0x3f000000, 2 * 1024 * KiB, 0);
    r.alloc(0, 0x8000, 64 * KiB, 3); // device open
    await flush();
    await mark(srv, 'run-1');
    r.alloc(0, 0x40000000, 64 * 1024 * KiB, 0); // weights
    r.kernelLoad(0, 0x1000, 8 * KiB, 0);
    r.alloc(0, 0x20000000, 12 * KiB, 0); // a program compiled
    r.alloc(0, 0x21000000, 4 * KiB, 1);
    r.alloc(0, 0x21000000, 4 * KiB, 1); // ref_count 2
    r.alloc(0, 0x7f000000, 36 * KiB, 0);
    await flush();
    await mark(srv, 'run-2');
    r.alloc(0, 0x7f009000, 36 * KiB, 0);
    await flush();
    await mark(srv, 'run-3');
    r.alloc(0, 0x7f012000, 36 * KiB, 0);
    r.alloc(0, 0x30000000, 100, 1);
    await flush();
    // Accumulation is judged on complete intervals only: 'end' closes the third run.
    await mark(srv, 'end');
    // the weights are now from the first half of the run
    await new Promise((res) => setTimeout(res, 1500));

    const out = await runCli(['leaks', '--socket', srv.socket]);
    assert.equal(out.code, 0, out.stderr);
    const line = (cls: string, buf: string, reason: string) =>
      assert.match(
        out.stdout,
        new RegExp(`${cls}: [\\s\\S]*?- Device 0 \\w+ Buffer ${buf}: [^\\n]* — ${reason}`),
        `${buf} is ${cls}`,
      );
    assert.match(out.stdout, /SUSPICIOUS: 4 buffers, 112 KiB total/);
    line(
      'SUSPICIOUS',
      '0x7f009000',
      'accumulates across marks: \\+36\\.0 KiB DRAM per run on device 0, 3 runs',
    );
    line('SUSPICIOUS', '0x21000000', 'ref_count 2 never came down');
    line(
      'PROGRAM CACHE',
      '0x20000000',
      'small DRAM buffer that appeared with a kernel load on device 0',
    );
    assert.match(out.stdout, /mesh_device\.disable_and_clear_program_cache\(\)/);
    line('MODEL STATE', '0x40000000', "large buffer from the first part of PID \\d+'s run");
    line('INFRASTRUCTURE', '0x3f000000', 'allocated when its process opened the device');
    line('INFRASTRUCTURE', '0x8000', 'allocated when its process opened the device');
    line('OTHER', '0x30000000', 'no rule matched');
    assert.match(out.stdout, /Total remaining buffers: 9\n/, 'no buffer is hidden');

    // Rules are overridable: with a 1 KiB program-cache limit the 12 KB binary is no longer one.
    const j = JSON.parse(
      (await runCli(['leaks', '--json', '--program-cache-max', '1024', '--socket', srv.socket]))
        .stdout,
    ) as {
      schema_version: number;
      classes: { class: string; count: number; buffers: { address: string }[] }[];
    };
    assert.equal(j.schema_version, 2);
    assert.equal(j.classes.find((c) => c.class === 'program_cache')!.count, 0);
    assert.equal(
      j.classes.reduce((n, c) => n + c.count, 0),
      9,
    );

    // Suppression by class: since run-1, only the suspicious buffers should fail the gate.
    const rules = join(srv.dir, 'classes.supp');
    writeFileSync(rules, 'class=program_cache\nclass=model_state\nclass=other\n');
    const chk = JSON.parse(
      (
        await runCli([
          'check',
          '--since',
          'run-1',
          '--ignore',
          rules,
          '--json',
          '--socket',
          srv.socket,
        ])
      ).stdout,
    ) as {
      ok: boolean;
      leaked_buffers: number;
      suppressed_buffers: number;
      buffers: { address: string }[];
    };
    assert.deepEqual([chk.ok, chk.leaked_buffers, chk.suppressed_buffers], [false, 4, 3]);
    assert.deepEqual(chk.buffers.map((b) => b.address).sort(), [
      '0x21000000',
      '0x7f000000',
      '0x7f009000',
      '0x7f012000',
    ]);
    writeFileSync(rules, 'class=leaky\n');
    const bad = await runCli([
      'check',
      '--since',
      'run-1',
      '--ignore',
      rules,
      '--socket',
      srv.socket,
    ]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /unknown class 'leaky'/);
  } finally {
    await r.close();
    assert.equal(await srv.stop(), 0);
  }
});
