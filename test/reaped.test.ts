import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runCli, startServer } from './helpers/server.js';

const FAKE_APP = fileURLToPath(new URL('../examples/fake-llama.mjs', import.meta.url));

test(
  'after the application exited, the dump lists what it left behind, buffer by buffer, ' +
    'in the seed layout; --exited (alias --reaped) and --json say the same',
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
      const [live, left] = dump.stdout.split('Left behind by processes that exited');
      assert.match(live, /None: no running process holds any\./);
      assert.match(live, /Total live buffers: 0\n/);
      // 3 program-cache buffers + 3 leaked 36 KB buffers on each of 2 devices, each one listed
      const exited = `PID ${pid}, exited \\d\\d:\\d\\d:\\d\\d, ref_count=1`;
      for (const dev of [0, 1]) {
        assert.match(left, new RegExp(`Device ${dev}:\n  DRAM: 6 buffers, 0\\.165888 MB total\n`));
      }
      for (const [addr, kb] of [
        ['0x7f000000', '36.0'],
        ['0x7f009000', '36.0'],
        ['0x7f012000', '36.0'],
        ['0x20010000', '24.0'],
        ['0x20000000', '12.0'],
      ])
        assert.match(
          left,
          new RegExp(`- Buffer ${addr}: ${kb.replace('.', '\\.')} KB \\(${exited}\\)`),
        );
      assert.match(left, /Total left behind by exited processes: 12\n/);
      assert.match(
        left,
        new RegExp(`- PID ${pid} [^\n]*fake-llama[^\n]*: exited [^,]+, 12 buffers`),
      );
      assert.match(
        dump.stdout,
        /Total remaining buffers: 12 \(0 live, 12 left behind by exited processes\)\n$/,
      );
      for (const flag of ['--exited', '--reaped']) {
        const r = await runCli(['dump', flag, '--socket', srv.socket]);
        assert.equal(r.code, 0, r.stderr);
        assert.doesNotMatch(r.stdout, /Live buffers/);
        assert.match(r.stdout, /Total left behind by exited processes: 12\n/);
      }
      const live2 = await runCli(['dump', '--live', '--socket', srv.socket]);
      assert.match(live2.stdout, /No buffers remaining in running processes\./);
      assert.match(live2.stdout, /Total remaining buffers: 0\n$/);
      // every filter applies to what was left behind too
      const one = await runCli(['dump', '--device', '1', '--limit', '1', '--socket', srv.socket]);
      assert.doesNotMatch(one.stdout, /Device 0:/);
      assert.match(one.stdout, /DRAM: 6 buffers[^]*\.\.\. and 5 more/);
      const json = JSON.parse(
        (await runCli(['dump', '--exited', '--json', '--all', '--socket', srv.socket])).stdout,
      ) as {
        exited: { total_buffers: number; total_bytes: number; processes: { pid: number }[] };
        buffers: {
          state: string;
          type: string;
          pid: number;
          allocated_at: string;
          exited_at: string;
        }[];
      };
      assert.deepEqual(
        [json.exited.total_buffers, json.exited.total_bytes, json.exited.processes[0].pid],
        [12, 331776, pid],
      );
      assert.equal(json.buffers.length, 12);
      for (const b of json.buffers) {
        assert.deepEqual([b.state, b.type, b.pid], ['exited', 'DRAM', pid]);
        assert.match(b.allocated_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        assert.ok(Date.parse(b.exited_at) >= Date.parse(b.allocated_at));
      }
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
      type Procs = { processes: { pid: number; unknown_frees: number }[] };
      const listed = async () =>
        (await srv.client.json<Procs>('GET', '/v1/processes')).processes.find(
          (p) => p.pid === child.pid,
        );
      for (let i = 0; i < 100 && !(await listed()); i++)
        await new Promise((r) => setTimeout(r, 20));
      assert.equal((await listed())?.unknown_frees, 1);
      type Stats = { live: { tracked_pids: number } };
      const tracked = async () =>
        (await srv.client.json<Stats>('GET', '/v1/stats')).live.tracked_pids;
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
