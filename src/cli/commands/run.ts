// `ttalloc run -- COMMAND [ARGS…]`: the seed's four steps (start the server, run the application,
// dump what remains after it completes, read it) in one, the way LeakSanitizer and `memray run`
// work for host memory. The report covers the command's process tree: the command and every
// descendant the server saw (it records each PID's parent when it first sees it), live or exited.
import { Command } from 'commander';
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import {
  ControlClient,
  NoServerError,
  ServerError,
  resolveSocket,
} from '../../client/control-client.js';
import { isProcessAlive } from '../../platform/processes.js';
import { DEFAULT_SOCKET } from '../../protocol/transport.js';
import type {
  BufferReportJson,
  CheckResult,
  ProcessesResponse,
  StatsResponse,
} from '../../report/types.js';
import { action, intArg, socketOption } from '../common.js';
import { checkQuery, EXIT_LEAKS } from './leaks.js';
import { SCHEMA_VERSION } from '../../report/types.js';

/** `run` without a command. */
export const EXIT_USAGE = 2;
/** Like a shell: the command was not found / is not executable. */
export const EXIT_NOT_FOUND = 127;
export const EXIT_NOT_EXECUTABLE = 126;

/** This CLI's entry point (dist/cli/main.js), whose `server` command a run may start. */
const CLI = fileURLToPath(new URL('../main.js', import.meta.url));
/** How long a server started for the run may take to answer /v1/health. */
const START_TIMEOUT_MS = 10_000;
/** Bound of the wait for the server to catch up with the command's exit (see settle()). */
const SETTLE_MAX_MS = 2_000;
const SETTLE_POLL_MS = 50;
/** How long the server may take to notice an exit by itself (issue 12: ~100 ms). */
const EXIT_NOTICE_MS = 200;
/** A server started for the run gets this long to stop on SIGTERM before SIGKILL. */
const STOP_TIMEOUT_MS = 5_000;
const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
/** A signal this soon after the command's exit is taken for the one that ended it. */
const SAME_SIGNAL_MS = 1_000;

interface RunOptions {
  socket?: string;
  exitcode: number;
  ignore?: string;
  maxBytes: number;
  json?: boolean;
  all?: boolean;
  limit: number;
}

/** The server a run reports through, and the process when the run started it. */
interface RunServer {
  socket: string;
  client: ControlClient;
  started: ChildProcess | null;
}

type ChildEnd =
  | { pid: number; code: number | null; signal: NodeJS.Signals | null }
  | { error: NodeJS.ErrnoException };

export function runCommand(): Command {
  return new Command('run')
    .description(
      'run COMMAND with tracking on (TT_ALLOC_TRACKING_ENABLED=1), through the server on the ' +
        'socket or one started for the run, then report what its process tree still holds or ' +
        `left behind; exit status: the command's when it failed, else ${EXIT_LEAKS} on leaks, ` +
        'else 0',
    )
    .argument('[command...]', 'the command and its arguments (after --)')
    .addOption(socketOption())
    .option(
      '--exitcode <n>',
      "exit status when leaks remain (like LeakSanitizer's exitcode)",
      intArg('--exitcode', 0, 255),
      EXIT_LEAKS,
    )
    .option(
      '--max-bytes <n>',
      'bytes allowed to remain (0: any remaining buffer fails)',
      intArg('--max-bytes'),
      0,
    )
    .option('--ignore <file>', 'suppression rules file (docs/leak-analysis.md)')
    .option('-a, --all', 'list every remaining buffer, not only the largest per type')
    .option('-n, --limit <n>', 'buffers listed per device and type', intArg('--limit'), 10)
    .option('--json', "machine-readable report (after the command's own output)")
    .passThroughOptions()
    .action(action((argv: string[], o: RunOptions) => runAction(argv, o)));
}

async function runAction(argv: string[], o: RunOptions): Promise<void> {
  if (argv.length === 0) {
    process.stderr.write(
      'ttalloc run: no command given (usage: ttalloc run [options] -- COMMAND [ARGS…])\n',
    );
    process.exit(EXIT_USAGE);
  }
  const mark = `run-${process.pid}-${Date.now()}`;
  // Read before anything starts: a bad rules file must not cost a whole test suite's run.
  const query = checkQuery({ since: mark, maxBytes: o.maxBytes, ignore: o.ignore });
  const signals = new SignalRelay();
  // `ttalloc run … | head`: a reader that goes away must not end the run before its cleanup.
  process.stdout.on('error', () => {});
  const server = await attachOrStart(resolveSocket(o.socket), signals);
  let status: number;
  try {
    status = await runAndReport(argv, o, { server, mark, query, signals });
  } finally {
    signals.phase = 'done';
    await stopServer(server);
  }
  process.exit(status);
}

/**
 * SIGINT / SIGTERM / SIGHUP of `run`. While the command runs they are forwarded to it (a
 * terminal's Ctrl-C reaches it anyway, being in the same foreground process group; a `kill` of
 * `run` reaches it only this way), and the run goes on to report what it left, once it has
 * exited. Before the command starts, or while the report is being made, a signal stops the run:
 * the server it started is stopped and `run` exits 128+signal.
 */
class SignalRelay {
  phase: 'setup' | 'command' | 'report' | 'done' = 'setup';
  child: ChildProcess | null = null;
  cleanup: () => Promise<void> = async () => {};
  /** When the report phase began, and whether any signal came while the command ran. */
  private reportSince = 0;
  private seenWhileRunning = false;

  constructor() {
    for (const sig of FORWARDED) process.on(sig, () => this.on(sig));
  }

  /** The command has exited: what follows is the report. */
  reporting(): void {
    this.phase = 'report';
    this.reportSince = Date.now();
  }

  private on(sig: NodeJS.Signals): void {
    if (this.phase === 'done') return;
    if (this.phase === 'command') {
      this.seenWhileRunning = true;
      const c = this.child;
      // Already exited (the same Ctrl-C reached it first): the report follows.
      if (c && c.exitCode === null && c.signalCode === null) c.kill(sig);
      return;
    }
    // The Ctrl-C that ended the command reaches `run` at the same moment, and Node may tell of
    // the command's exit first: a first signal right after the exit is that one, not a second.
    if (
      this.phase === 'report' &&
      !this.seenWhileRunning &&
      Date.now() - this.reportSince < SAME_SIGNAL_MS
    ) {
      this.seenWhileRunning = true;
      return;
    }
    this.phase = 'done';
    process.stderr.write(`ttalloc run: ${sig} received, stopping\n`);
    void this.cleanup().finally(() => process.exit(128 + constants.signals[sig]));
  }
}

/** The server answering on `socket`, else one started for this run on that path. */
async function attachOrStart(socket: string, signals: SignalRelay): Promise<RunServer> {
  const client = new ControlClient(socket);
  const using = (): RunServer => {
    const note = runtimeNote(socket);
    process.stderr.write(`ttalloc: using the server on ${socket}${note ? ` (${note})` : ''}\n`);
    return { socket, client, started: null };
  };
  if (await answers(client)) return using();
  // Its own session: a Ctrl-C on the terminal must not stop it before it reports the command's
  // leftovers; `run` stops it itself (also on its own signals, below).
  const proc = spawn(
    process.execPath,
    [CLI, 'server', '--socket', socket, '--no-persist', '--quiet', '--stats-interval', '0'],
    { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
  );
  const server: RunServer = { socket, client, started: proc };
  signals.cleanup = () => stopServer(server);
  // Whatever ends `run` (an error's process.exit, an uncaught exception), the server goes too.
  process.once('exit', () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
  });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  proc.on('error', (e) => {
    err += `${e.message}\n`;
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (await answers(client)) break;
    if (proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) {
      // Another run (or a server) may have taken the path in the meantime: use it.
      if (await answers(client)) return using();
      const why = err.trim() || `exit status ${proc.exitCode ?? proc.signalCode}`;
      throw new Error(`cannot start a server on ${socket}: ${why}`);
    }
    if (Date.now() > deadline) {
      await stopServer(server);
      throw new Error(`the server started on ${socket} did not answer within 10 s: ${err}`);
    }
    await sleep(20);
  }
  const note = runtimeNote(socket);
  process.stderr.write(
    `ttalloc: started a server for this run on ${socket} ` +
      `(in memory, stopped afterwards${note ? `; ${note}` : ''})\n`,
  );
  return server;
}

/** The TT-Metal runtime's client connects to the default path only, whatever the environment. */
function runtimeNote(socket: string): string {
  return socket === DEFAULT_SOCKET ? '' : `the TT-Metal runtime reports to ${DEFAULT_SOCKET} only`;
}

async function answers(client: ControlClient): Promise<boolean> {
  try {
    await client.text('GET', '/v1/health');
    return true;
  } catch (e) {
    if (e instanceof NoServerError) return false;
    if (e instanceof ServerError) return true; // something answers there: not ours to replace
    throw e;
  }
}

async function stopServer(s: RunServer): Promise<void> {
  const p = s.started;
  if (!p || p.pid === undefined || p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(t);
}

interface RunContext {
  server: RunServer;
  mark: string;
  query: URLSearchParams;
  signals: SignalRelay;
}

/** Marks, runs the command, reports; returns the exit status of `run`. */
async function runAndReport(argv: string[], o: RunOptions, ctx: RunContext): Promise<number> {
  const { server, mark } = ctx;
  await server.client.json('POST', '/v1/marks', { name: mark, pid: null });
  const end = await runChild(argv, server.socket, ctx.signals);
  ctx.signals.reporting();
  if ('error' in end) {
    await deleteMark(ctx);
    const e = end.error;
    const missing = e.code === 'ENOENT';
    const why = missing ? 'command not found' : (e.code ?? e.message);
    process.stderr.write(`ttalloc run: cannot run '${argv[0]}': ${why}\n`);
    return missing ? EXIT_NOT_FOUND : EXIT_NOT_EXECUTABLE;
  }
  const own = end.signal ? 128 + constants.signals[end.signal] : (end.code ?? 1);
  let ok: boolean;
  try {
    ok = await report(argv, o, { ...ctx, pid: end.pid, own });
  } catch (e) {
    // The command's failure is the news: a report that could not be had does not hide it.
    if (own === 0) throw e;
    process.stderr.write(`ttalloc run: no report: ${(e as Error).message}\n`);
    return own;
  } finally {
    await deleteMark(ctx);
  }
  if (own !== 0) return own;
  return ok ? 0 : o.exitcode;
}

/** Spawns the command with stdio inherited and tracking on; resolves when it has exited. */
function runChild(argv: string[], socket: string, signals: SignalRelay): Promise<ChildEnd> {
  const env = { ...process.env, TT_ALLOC_TRACKING_ENABLED: '1', TT_ALLOC_SERVER_SOCKET: socket };
  const child = spawn(argv[0], argv.slice(1), { stdio: 'inherit', env });
  signals.child = child;
  signals.phase = 'command';
  return new Promise((resolve) => {
    child.on('error', (e: NodeJS.ErrnoException) => {
      // Only a failed spawn has no PID; a later error (a signal that could not be sent) is moot.
      if (child.pid === undefined) resolve({ error: e });
    });
    child.once('exit', (code, signal) => resolve({ pid: child.pid!, code, signal }));
  });
}

/**
 * The command has exited, but the server may not have caught up with it yet: what its processes
 * wrote last may still wait in the socket buffers, and the server notices an exit within ~100 ms
 * (pidfd, the data connection closing, or its periodic sweep). We wait until (a) the server's
 * frame count stood still between two polls SETTLE_POLL_MS apart (it answered in between, so its
 * loop turned: nothing the command sent is still unread), and (b) no process it lists as holding
 * buffers is gone (kill(pid, 0)): it has noticed every exit, so each buffer is counted where it
 * belongs. When (a) holds and (b) still does not after EXIT_NOTICE_MS (a server that only sweeps
 * periodically), we ask for the sweep now (POST /v1/reap: the one every dump runs first anyway).
 * Bounded by SETTLE_MAX_MS: a busy shared server whose frame count never stands still costs that
 * bound, and the report then says what the server knew at that moment.
 */
async function settle(client: ControlClient): Promise<void> {
  const deadline = Date.now() + SETTLE_MAX_MS;
  let last = -1;
  let stillSince = Date.now();
  let swept = false;
  while (Date.now() < deadline) {
    const st = await client.json<StatsResponse>('GET', '/v1/stats');
    const frames = st.frames.total + st.frames.rejected;
    if (frames !== last) stillSince = Date.now();
    else {
      const procs = await client.json<ProcessesResponse>('GET', '/v1/processes');
      const unnoticed = procs.processes.some(
        (p) => (p as { state?: string }).state !== 'exited' && !isProcessAlive(p.pid),
      );
      if (!unnoticed) return;
      if (!swept && Date.now() - stillSince >= EXIT_NOTICE_MS) {
        swept = true;
        await client.raw('POST', '/v1/reap');
        continue;
      }
    }
    last = frames;
    await sleep(SETTLE_POLL_MS);
  }
}

interface ReportContext extends RunContext {
  pid: number;
  /** The command's own exit status. */
  own: number;
}

/** Prints what the tree of `pid` holds or left behind since the mark; true when within budget. */
async function report(argv: string[], o: RunOptions, ctx: ReportContext): Promise<boolean> {
  const { client } = ctx.server;
  await settle(client);
  const tree = String(ctx.pid);
  const q = new URLSearchParams(ctx.query);
  q.set('tree', tree);
  const check = await client.json<CheckResult>('GET', `/v1/check?${q}`);
  const rq = new URLSearchParams({ tree, since: ctx.mark });
  if (o.all) rq.set('all', '1');
  else rq.set('limit', String(o.limit));
  if (o.json) {
    rq.set('format', 'json');
    const r = await client.json<BufferReportJson>('GET', `/v1/report?${rq}`);
    const out = {
      schema_version: SCHEMA_VERSION,
      command: argv,
      pid: ctx.pid,
      socket: ctx.server.socket,
      server_started: ctx.server.started !== null,
      command_status: ctx.own,
      status: ctx.own !== 0 ? ctx.own : check.ok ? 0 : o.exitcode,
      check,
      report: r,
    };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    return check.ok;
  }
  // A clean run prints one line, like LeakSanitizer prints nothing; otherwise the seed's report.
  if (check.leaked_buffers + check.suppressed_buffers > 0)
    process.stdout.write(await client.text('GET', `/v1/report?${rq}`));
  process.stdout.write(verdict(check, ctx.pid));
  return check.ok;
}

/** What the lead's CheckResult adds (optional here until the two branches meet). */
type CheckExtras = { summary?: string; exitedBuffers?: number; devices?: number[] };

function verdict(r: CheckResult & CheckExtras, pid: number): string {
  const notes = [
    r.exited_buffers ? `${r.exited_buffers} left by processes that exited` : '',
    `budget ${r.max_bytes}`,
    r.suppressed_buffers ? `${r.suppressed_buffers} suppressed` : '',
  ].filter(Boolean);
  const line =
    `ttalloc run: ${r.ok ? 'OK' : 'LEAK'}: ${r.leaked_buffers} buffers, ${r.leaked_bytes} bytes ` +
    `remain from pid ${pid} and its descendants (${notes.join('; ')})\n`;
  if (r.ok) return line;
  if (r.summary) return `${line}${r.summary}\n`;
  // The device count is exact only when the check listed every offender.
  const devices =
    r.buffers.length === r.leaked_buffers
      ? ` on ${new Set(r.buffers.map((b) => b.device)).size} device(s)`
      : '';
  return (
    line +
    `SUMMARY: ttalloc: ${r.leaked_bytes} byte(s) leaked in ` +
    `${r.leaked_buffers} buffer(s)${devices}\n`
  );
}

/** Removes the run's mark from a shared server (a started one goes away with its marks). */
async function deleteMark(ctx: RunContext): Promise<void> {
  if (ctx.server.started) return;
  try {
    const r = await ctx.server.client.raw('DELETE', `/v1/marks/${encodeURIComponent(ctx.mark)}`);
    // 404/405: a server without DELETE /v1/marks yet; the mark stays (harmless, listed by `marks`).
    if (r.status !== 200 && r.status !== 204 && r.status !== 404 && r.status !== 405)
      process.stderr.write(`ttalloc run: could not delete mark '${ctx.mark}': HTTP ${r.status}\n`);
  } catch (e) {
    process.stderr.write(`ttalloc run: could not delete mark '${ctx.mark}': ${String(e)}\n`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
