// A C client compiled here with the machine's cc from a packed struct written from docs/protocol.md
// (test/c/runtime_client.c), in all three frame sizes, against a real server: the byte layout is
// checked by a real compiler, not by our own encoder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli, startServer, tempDir } from './helpers/server.js';
import { waitFrames } from './helpers/wire.js';

const SOURCE = fileURLToPath(new URL('./c/runtime_client.c', import.meta.url));
const hasCc = spawnSync('cc', ['--version']).status === 0;
const SKIP = hasCc
  ? false
  : 'no C compiler (`cc`) on this machine: install one (e.g. apt-get install gcc) to ' +
    'check the wire layout with a real compiler';

const TITLE = [
  '╔══════════════════════════════════════════════════════════════╗',
  '║           REMAINING ALLOCATED BUFFERS                       ║',
  '╚══════════════════════════════════════════════════════════════╝',
].join('\n');

function compile(dir: string, size: number): string {
  const out = join(dir, `runtime_client_${size}`);
  const r = spawnSync(
    'cc',
    [
      '-std=c11',
      '-Wall',
      '-Wextra',
      '-Werror',
      '-pedantic',
      '-O1',
      `-DFRAME_SIZE=${size}`,
      '-o',
      out,
      SOURCE,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, `cc failed for FRAME_SIZE=${size}:\n${r.stderr}`);
  return out;
}

/** Runs the client until it has printed its replies; it then stays alive until `release()`. */
const clients: ChildProcess[] = [];
function runClient(
  exe: string,
  socket: string,
): Promise<{ child: ChildProcess; lines: string[]; release: () => Promise<number | null> }> {
  const child = spawn(exe, [socket], { stdio: ['pipe', 'pipe', 'pipe'] });
  clients.push(child); // killed in `finally` if an assertion fails while it waits on stdin
  let out = '',
    err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (/^ready pid=\d+$/m.test(out)) {
        resolve({
          child,
          lines: out.trim().split('\n'),
          release: () =>
            new Promise((r) => {
              child.once('exit', (code) => r(code));
              child.stdin!.end();
            }),
        });
      }
    });
    child.once('exit', (code) =>
      reject(new Error(`client exited (${code}) before it was ready:\n${out}\n${err}`)),
    );
  });
}

test(
  'a C runtime client (144, 112 and 72-byte structs) reports exactly like the runtime',
  { skip: SKIP },
  async () => {
    const dir = tempDir();
    const srv = await startServer(['--devices', '2xwormhole_b0', '--reap-interval', '0']);
    try {
      let frames = 0;
      for (const size of [144, 112, 72]) {
        const exe = compile(dir, size);
        const { child, lines, release } = await runClient(exe, srv.socket);
        const pid = child.pid!;
        frames += 17;
        // The replies, as the C struct reads them.
        const cbk = size === 144 ? ' cb=65536 kernel=8192' : '';
        const cbk1 = size === 144 ? ' cb=0 kernel=0' : '';
        assert.equal(
          lines[0],
          `RESPONSE type=4 device=0 dram=24576 l1=1048576 l1_small=2048 trace=0${cbk}`,
          `${size}-byte client`,
        );
        assert.equal(
          lines[1],
          `RESPONSE type=4 device=1 dram=12288 l1=2097152 l1_small=0 trace=4096${cbk1}`,
        );
        if (size === 72) {
          assert.deepEqual(lines.slice(2, 4), [
            'DEVICE_INFO type=7 device=-1',
            'DEVICE_INFO type=7 device=1',
          ]);
        } else {
          assert.match(lines[2], /^DEVICE_INFO type=7 device=-1 available=1 num_devices=2 /);
          assert.equal(
            lines[3],
            `DEVICE_INFO type=7 device=1 available=1 num_devices=2 arch=2 channels=12 ` +
              `l1_per_core=${1464 * 1024} total_dram=${12 * 2 ** 30} total_l1=${1464 * 1024 * 64}`,
          );
        }
        assert.equal(lines[4], `ready pid=${pid}`);

        const st = await waitFrames(srv, frames);
        assert.equal(st.frames.rejected, 0, `${size}-byte frames all accepted`);
        assert.deepEqual(
          st.devices.map((d) => [
            d.device,
            d.bytes.DRAM,
            d.bytes.L1,
            d.bytes.SYSTEM_MEMORY,
            d.bytes.TRACE,
            d.bytes.CB,
            d.bytes.KERNEL,
          ]),
          [
            [0, 24576, 1048576, 2048, 0, 65536, 8192],
            [1, 12288, 2097152, 0, 4096, 0, 0],
          ],
        );
        // The wire's usage counters, as QUERY answers them: L1_SMALL includes SYSTEM_MEMORY.
        for (const d of st.devices) {
          const b = d.bytes;
          assert.deepEqual(d.usage, {
            DRAM: b.DRAM,
            L1: b.L1,
            L1_SMALL: b.L1_SMALL + b.SYSTEM_MEMORY,
            TRACE: b.TRACE,
          });
        }
        const dump = await runCli(['dump', '--socket', srv.socket]);
        const devices = `Device 0:
  DRAM: 1 buffer, 0.024576 MB total
    - Buffer 0x40003000: 24.0 KB (PID ${pid}, ref_count=1)
  L1: 1 buffer, 1.05 MB total
    - Buffer 0x10000: 1024.0 KB (PID ${pid}, ref_count=1)
  SYSTEM_MEMORY: 1 buffer, 0.002048 MB total
    - Buffer 0x7000: 2.0 KB (PID ${pid}, ref_count=1)

Device 1:
  DRAM: 1 buffer, 0.012288 MB total
    - Buffer 0x40000000: 12.0 KB (PID ${pid}, ref_count=1)
  L1: 1 buffer, 2.10 MB total
    - Buffer 0x20000: 2048.0 KB (PID ${pid}, ref_count=1)
  TRACE: 1 buffer, 0.004096 MB total
    - Buffer 0xfedcba9876543210: 4.0 KB (PID ${pid}, ref_count=2)

`;
        // The clients of the earlier sizes have exited at the same addresses: what they left is
        // listed after the live buffers (the first dump is the seed's layout exactly).
        const earlier = [144, 112, 72].indexOf(size);
        if (earlier === 0)
          assert.equal(dump.stdout, `${TITLE}\n\n${devices}Total remaining buffers: 6\n`);
        else {
          const [live, left = ''] = dump.stdout.split(
            'Left behind by processes that exited (never freed):\n',
          );
          assert.equal(
            live,
            `${TITLE}\n\nLive buffers (their processes are still running):\n\n${devices}` +
              'Total live buffers: 6\n\n',
          );
          assert.equal(
            (left.match(/^ {2}- PID \d+ [^\n]*: exited [^,]+, 6 buffers, 3\.19 MB/gm) ?? []).length,
            earlier,
          );
          assert.match(
            dump.stdout,
            new RegExp(`Total remaining buffers: ${6 * (earlier + 1)} \\(6 live, `),
          );
        }
        const k = await srv.client.json<{
          kernels: {
            device: number;
            kernel_id: string;
            kernel_type: string;
            size: number;
            pid: number;
          }[];
        }>('GET', '/v1/kernels');
        assert.deepEqual(k.kernels, [
          { device: 0, kernel_id: '0x1234567890', size: 8192, kernel_type: 'Dispatch', pid },
        ]);

        // The client exits: its next dump releases everything it owned, with one summary line.
        assert.equal(await release(), 0);
        const after = await runCli(['dump', '--socket', srv.socket]);
        assert.match(after.stdout, /None: no running process holds any\./);
        assert.match(after.stdout, new RegExp(`\\(PID ${pid}, exited \\d\\d:\\d\\d:\\d\\d, `));
        await srv.waitFor(
          new RegExp(
            `process ${pid} is gone: released 6 buffers \\(3\\.04 MiB\\), 1 CB \\(64\\.0 ` +
              `KiB\\), 1 kernel \\(8\\.00 KiB\\)`,
          ),
        );
      }

      // The legacy script's way, from C: one 72-byte DUMP_REMAINING, then close at once.
      const count = () => srv.output().split('REMAINING ALLOCATED BUFFERS').length;
      const before = count();
      const r = spawnSync(join(dir, 'runtime_client_72'), [srv.socket, 'dump'], {
        encoding: 'utf8',
      });
      assert.equal(r.status, 0, r.stderr);
      await waitFrames(srv, frames + 1);
      // (the three clients have exited: what they left is in the report the server prints)
      await srv.waitFor(
        /Total remaining buffers: 18 \(0 live, 18 left behind by exited processes\)/,
      );
      assert.equal(count(), before + 1);

      // The socket from the environment, as the runtime's users set it.
      const env = spawnSync(join(dir, 'runtime_client_144'), [], {
        encoding: 'utf8',
        input: '',
        env: { TT_ALLOC_SERVER_SOCKET: srv.socket },
      });
      assert.equal(env.status, 0, env.stderr);
      assert.match(env.stdout, /^RESPONSE type=4 device=0 dram=24576 /);
    } finally {
      for (const c of clients) if (c.exitCode === null) c.kill('SIGKILL');
      assert.equal(await srv.stop(), 0);
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
