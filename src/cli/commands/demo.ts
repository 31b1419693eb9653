// `ttalloc demo`: a real server on a private socket, three client processes over four devices,
// one planted leak and one crashing process, then the dump. Stops everything it started.
import { Command } from 'commander';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ControlClient } from '../../client/control-client.js';
import { isListening } from '../../server/socket-path.js';
import { action } from '../common.js';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

function waitExit(c: ChildProcess): Promise<number | null> {
  return new Promise((r) => {
    if (c.exitCode !== null || c.signalCode) r(c.exitCode);
    else c.once('exit', (code) => r(code));
  });
}

export function demoCommand(): Command {
  return new Command('demo')
    .description(
      'run a real server and a realistic multi-process workload with a planted leak, then ' +
        'print the dump',
    )
    .option('--runs <n>', 'inference runs per process', '3')
    .option('--keep', 'leave the server running and print how to reach it')
    .action(
      action(async (o: { runs: string; keep?: boolean }) => {
        const dir = mkdtempSync(join(tmpdir(), 'ttalloc-demo-'));
        const socket = join(dir, 'alloc.sock');
        // Bold headings on a terminal; the escapes are stripped when stdout is a pipe.
        const say = (s: string) =>
          process.stdout.write(
            // eslint-disable-next-line no-control-regex -- the escape sequences are what it strips
            `\x1b[1m==> ${s}\x1b[0m\n`.replace(/\x1b\[[0-9;]*m/g, process.stdout.isTTY ? '$&' : ''),
          );
        say(`starting allocation server on ${socket} (4 x Wormhole_B0 declared)`);
        const server = spawn(
          process.execPath,
          [
            here('../main.js'),
            'server',
            '--socket',
            socket,
            '--devices',
            '4xwormhole_b0',
            '--stats-interval',
            '0',
            '--reap-interval',
            '1',
            '--no-persist',
          ],
          { stdio: ['ignore', 'pipe', 'inherit'] },
        );
        const serverOut: string[] = [];
        server.stdout!.on('data', (d: Buffer) => serverOut.push(d.toString()));
        const children: ChildProcess[] = [server];
        const cleanup = () => {
          for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
        };
        process.on('exit', cleanup);
        try {
          for (let i = 0; i < 100 && !(await isListening(socket)); i++)
            await new Promise((r) => setTimeout(r, 50));
          const worker = here('../../demo/workload.js');
          const start = (devices: string, role: string, steps: number) => {
            const c = spawn(
              process.execPath,
              [worker, socket, devices, role, o.runs, String(steps)],
              { stdio: ['pipe', 'pipe', 'inherit'] },
            );
            children.push(c);
            // Finished once it says "done" (it then stays alive holding its buffers) or dies.
            return new Promise<ChildProcess>((res) => {
              c.stdout!.on('data', () => res(c));
              c.once('exit', () => res(c));
            });
          };
          say(
            'running 3 client processes: llama on devices 0,1 (leaks 36 KiB DRAM per run), ' +
              'llama on devices 2,3, and a test worker on device 3 that crashes',
          );
          const procs = [
            start('0,1', 'leaky', 20),
            start('2,3', 'model', 20),
            start('3', 'crash', 5),
          ];
          const finished = await Promise.all(procs);
          // one reap interval: the crashed worker is noticed
          await new Promise((r) => setTimeout(r, 1500));
          const client = new ControlClient(socket);
          say('workload finished; dump-remaining-buffers:');
          process.stdout.write(await client.text('POST', '/v1/dump'));
          say(
            'the small DRAM buffers are hidden behind the large ones; ' +
              'dump-remaining-buffers --device 0 --type DRAM --all:',
          );
          process.stdout.write(await client.text('GET', '/v1/report?device=0&type=DRAM&all=1'));
          const reaped = serverOut
            .join('')
            .split('\n')
            .filter((l) => l.includes('is gone'));
          say('server log of the crashed process:');
          process.stdout.write(reaped.join('\n') + '\n');
          say(
            'what to read: weights/KV cache (48-96 MiB DRAM), program cache (12-24 KiB DRAM), ' +
              'infrastructure (2 MiB DRAM, L1_SMALL)\n    are expected; ' +
              'the "36.0 KB" (KiB) DRAM buffers at 0x7f0xxxxx on devices 0 and 1, one per run, ' +
              'are the planted leak.',
          );
          if (o.keep) {
            say(
              `server left running: TT_ALLOC_SERVER_SOCKET=${socket} ttalloc dump  (stop ` +
                `with: ttalloc stop --socket ${socket})`,
            );
            children.splice(0);
            server.unref();
            return;
          }
          for (const c of finished) c.stdin?.end();
          await Promise.all(finished.map(waitExit));
          await client.json('POST', '/v1/shutdown', { force: true }); // its clients have exited
          await waitExit(server);
          say('server stopped; demo done');
        } finally {
          cleanup();
          if (!o.keep) rmSync(dir, { recursive: true, force: true });
        }
      }),
    );
}
