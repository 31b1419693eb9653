// `ttalloc restart`: a new server process of this install takes over from the running one
// (server/takeover-*.ts): the same arguments, directory and configuring environment, the same
// sockets, connections and state, and the old one's stdout and stderr for its log. Where a
// takeover is impossible (no addon on either side), it stops and starts instead, saying loudly
// what the clients see.
import { spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { NoServerError, ServerError } from '../../client/control-client.js';
import { action, clientFor, intArg, socketOption } from '../common.js';
import { exited } from './admin.js';
import { TAKEOVER_LINE } from './server.js';
import { fdPassing } from '../../server/takeover-channel.js';
import type { TakeoverInfo } from '../../server/takeover-old.js';

const MAIN = fileURLToPath(new URL('../main.js', import.meta.url));

export function restartCommand(): Command {
  return new Command('restart')
    .description(
      'replace the running server by a new process of this install: every client connection ' +
        'stays open, no event is lost (stop and start, with a warning, where that is impossible)',
    )
    .addOption(socketOption())
    .option('--timeout <s>', 'how long the takeover may take', intArg('--timeout', 1), 120)
    .action(
      action(async (o: { socket?: string; timeout: number }) => {
        const client = clientFor(o);
        let info: TakeoverInfo;
        try {
          info = await client.json<TakeoverInfo>('GET', '/v1/takeover/info');
        } catch (e) {
          if (e instanceof NoServerError)
            throw new NoServerError(
              `no server is running on ${client.socketPath}: nothing to restart ` +
                '(start one with `ttalloc server`)',
            );
          if (e instanceof ServerError && e.status === 404)
            throw new Error(
              'the running server is of a version without takeover: stop it and start anew',
            );
          throw e;
        }
        const why = info.impossible ?? fdPassing().reason;
        if (why) return stopAndStart(client, info, why, o.timeout);
        await takeOver(info, o.timeout);
      }),
    );
}

/** Starts the new server with --replace and waits for the line that says how it went. */
function takeOver(info: TakeoverInfo, timeoutS: number): Promise<void> {
  const child = spawn(
    process.execPath,
    [MAIN, 'server', ...info.args, '--replace', '--takeover-stdio'],
    {
      cwd: info.cwd,
      env: { ...process.env, ...info.env },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let err = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the new server did not take over within ${timeoutS} s:\n${err}`));
    }, timeoutS * 1000);
    // What the new server says up to the takeover (its log goes on in the old server's output).
    child.stdout!.on('data', (d: Buffer) => process.stdout.write(d));
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = new RegExp(`^${TAKEOVER_LINE} (ok|started|failed) ?(.*)$`, 'm').exec(err);
      if (!m) return;
      clearTimeout(timer);
      child.unref();
      child.stdout!.destroy();
      child.stderr!.destroy();
      if (m[1] === 'failed') return reject(new Error(`takeover failed: ${m[2]}`));
      if (m[1] === 'started') {
        process.stdout.write(`the old server had gone; server ${m[2]} started anew\n`);
        return resolve();
      }
      const [pid, from, conns, pause] = m[2].split(' ');
      process.stdout.write(
        `server ${pid} took over from server ${from} (version ${info.version}): ${conns} data ` +
          `connection(s) kept open, reading again ${pause} ms after the switch\n`,
      );
      resolve();
    });
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`the new server exited (${code ?? sig}) before taking over:\n${err}`));
    });
  });
}

/** No takeover possible: stop (forced) and start, after a loud warning of what clients see. */
async function stopAndStart(
  client: ReturnType<typeof clientFor>,
  info: TakeoverInfo,
  why: string,
  timeoutS: number,
): Promise<void> {
  const log = `${client.socketPath}.log`;
  process.stderr.write(
    `!!! ttalloc restart: a takeover is impossible (${why}).\n` +
      '!!! Falling back to STOP AND START: every data connection closes now. A C++ client ' +
      '(it sends without MSG_NOSIGNAL) dies of SIGPIPE on its next report; a Python client ' +
      'reconnects, and what it reports until the new server listens is lost. top and the ' +
      'dashboard reconnect by themselves.\n',
  );
  const r = await client.raw('POST', '/v1/shutdown', { force: true });
  if (r.status !== 200) throw new ServerError(r.status, r.body);
  if (!(await exited(info.pid, timeoutS * 1000)))
    throw new Error(`server ${info.pid} did not exit within ${timeoutS} s`);
  const out = openSync(log, 'a');
  const child = spawn(process.execPath, [MAIN, 'server', ...info.args], {
    cwd: info.cwd,
    env: { ...process.env, ...info.env },
    detached: true,
    stdio: ['ignore', out, out],
  });
  child.unref();
  const deadline = Date.now() + timeoutS * 1000;
  for (;;) {
    try {
      await client.json('GET', '/v1/stats');
      break;
    } catch (e) {
      if (!(e instanceof NoServerError) || Date.now() > deadline || child.exitCode !== null)
        throw new Error(`the new server did not start (its output: ${log})`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }
  process.stdout.write(
    `server ${info.pid} stopped; server ${child.pid} started (its output goes to ${log})\n`,
  );
}
