import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runCli, startServer } from './helpers/server.js';

const FAKE_APP = fileURLToPath(new URL('../examples/fake-llama.mjs', import.meta.url));

test(
  'after the application exited, the dump says what it left behind and ' + '--reaped lists it',
  async () => {
    const srv = await startServer(['--reap-interval', '0']);
    try {
      const app = spawn(process.execPath, [FAKE_APP, '3'], {
        env: { ...process.env, TT_ALLOC_TRACKING_ENABLED: '1', TT_ALLOC_SERVER_SOCKET: srv.socket },
        stdio: 'pipe',
      });
      const pid = app.pid!;
      const code = await new Promise<number | null>((r) => app.on('exit', (c) => r(c)));
      assert.equal(code, 0);
      const dump = await runCli(['dump', '--socket', srv.socket]);
      assert.equal(dump.code, 0, dump.stderr);
      assert.match(dump.stdout, /No buffers remaining in running processes\./);
      assert.doesNotMatch(dump.stdout, /every tracked allocation has been freed/);
      // 3 program-cache buffers + 3 leaked 36 KB buffers on each of 2 devices
      assert.match(
        dump.stdout,
        new RegExp(
          `- PID ${pid}: 12 buffers, 0\\.331776 MB \\(device 0: DRAM 6; device 1: DRAM 6\\)`,
        ),
      );
      const reaped = await runCli(['dump', '--reaped', '--socket', srv.socket]);
      assert.equal(reaped.code, 0, reaped.stderr);
      assert.match(
        reaped.stdout,
        new RegExp(`PID ${pid} \\(released [^)]+\\): 12 buffers, 0\\.331776 MB total`),
      );
      assert.match(reaped.stdout, /Device 1 DRAM: 6 buffers, 0\.165888 MB total/);
      assert.match(reaped.stdout, /- Buffer 0x7f012000 on device \d: 36\.0 KB \(ref_count=1\)/);
      const json = JSON.parse(
        (await runCli(['dump', '--reaped', '--json', '--socket', srv.socket])).stdout,
      ) as { schema_version: number; reaped: { pid: number; buffers: number; bytes: number }[] };
      assert.equal(json.schema_version, 1);
      assert.deepEqual(
        json.reaped.map((r) => [r.pid, r.buffers, r.bytes]),
        [[pid, 12, 331776]],
      );
    } finally {
      assert.equal(await srv.stop(), 0);
    }
  },
);

test(
  'a process that only freed unknown buffers is listed while it lives and ' +
    'forgotten once it is gone',
  async () => {
    const srv = await startServer(['--reap-interval', '0']);
    try {
      const index = JSON.stringify(new URL('../dist/index.js', import.meta.url).href);
      const script = `import { Reporter } from ${index};
      const r = new Reporter({ socketPath: process.argv[1] });
      r.free(0, 0xdead000);
      await r.close();
      console.log('sent');
      setInterval(() => {}, 1000);`;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script, srv.socket], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      await new Promise<void>((r) => child.stdout!.once('data', () => r()));
      type Procs = { processes: { pid: number; unknownFrees: number }[] };
      const listed = async () =>
        (await srv.client.json<Procs>('GET', '/v1/processes')).processes.find(
          (p) => p.pid === child.pid,
        );
      for (let i = 0; i < 100 && !(await listed()); i++)
        await new Promise((r) => setTimeout(r, 20));
      assert.equal((await listed())?.unknownFrees, 1);
      type Stats = { live: { trackedPids: number } };
      const tracked = async () =>
        (await srv.client.json<Stats>('GET', '/v1/stats')).live.trackedPids;
      assert.equal(await tracked(), 1);
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      await srv.client.json('POST', '/v1/reap');
      assert.equal(await listed(), undefined);
      assert.equal(await tracked(), 0, 'its per-PID stats are dropped, not kept forever');
    } finally {
      assert.equal(await srv.stop(), 0);
    }
  },
);
