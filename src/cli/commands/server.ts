import { Command, InvalidArgumentError, Option } from 'commander';
import { AllocationServer } from '../../server/server.js';
import { DeviceRegistry } from '../../devices/registry.js';
import { parseUidList } from '../../server/security.js';
import { resolveSocket } from '../../client/control-client.js';
import { action, intArg, secondsArg, socketOption } from '../common.js';
import { DEFAULTS } from '../../server/config.js';
import { NothingToReplace } from '../../server/takeover-new.js';

/** The line `ttalloc restart` waits for on the new server's stderr. */
export const TAKEOVER_LINE = 'ttalloc-takeover:';

export function serverCommand(name = 'server'): Command {
  return new Command(name)
    .description('run the allocation server: tracks every buffer reported by clients on the socket')
    .addOption(socketOption())
    .addOption(
      new Option(
        '--frame-size <bytes>',
        'force a frame size instead of detecting it per connection',
      )
        .choices(['auto', '72', '112', '144', '648'])
        .default('auto'),
    )
    .option(
      '--reap-interval <seconds>',
      'how often buffers of dead processes are released (0 = only before dumps)',
      secondsArg('--reap-interval'),
      5,
    )
    .option(
      '--stats-interval <seconds>',
      'print one line per device this often, when something changed (0 = off)',
      secondsArg('--stats-interval'),
      10,
    )
    .option(
      '--devices <spec>',
      'declare devices, e.g. "8xwormhole_b0" or "n300,n300" (env TT_ALLOC_DEVICES; default: ' +
        "the kernel driver's /dev/tenstorrent)",
    )
    .option(
      '--device-config <file>',
      'JSON file declaring devices and overriding per-architecture capacities',
    )
    .option(
      '--expected-buffers <n>',
      'pre-size the buffer table for this many live buffers',
      intArg('--expected-buffers'),
      0,
    )
    .option(
      '--partial-frame-timeout <seconds>',
      'close a data connection stopped in the middle of a frame this long, saying why (0 = never)',
      secondsArg('--partial-frame-timeout'),
      DEFAULTS.partialFrameTimeoutMs / 1000,
    )
    .option(
      '--left-behind-budget <n>',
      'buffer records kept of what exited processes left behind (oldest processes dropped first)',
      intArg('--left-behind-budget', 1),
      DEFAULTS.leftBehindBudget,
    )
    .option(
      '--timeline-events <n>',
      'the last frees kept with their lifetimes for `ttalloc export` (40 bytes each; 0 = none)',
      intArg('--timeline-events', 0),
      DEFAULTS.timelineEvents,
    )
    .option(
      '--notes-budget <bytes>',
      'bytes of distinct buffer names and stack traces kept (648-byte clients; more are counted)',
      intArg('--notes-budget', 0),
      DEFAULTS.notesBudget,
    )
    .option(
      '--state-dir <dir>',
      'where state persists (default: $XDG_STATE_HOME or ~/.local/state, /ttalloc/<socket path>)',
    )
    .option('--no-persist', 'keep state in memory only (a restart forgets it)')
    .option(
      '--flush-interval <ms>',
      'journal flush interval: at most this much is lost on a crash',
      intArg('--flush-interval', 1, 60000),
      100,
    )
    .option(
      '--journal-mib <n>',
      "journal kept before a background snapshot folds it in (at least the snapshot's size)",
      intArg('--journal-mib', 1, 1 << 20),
      256,
    )
    .option('-q, --quiet', 'print only reports (no log or statistics lines)')
    .option('--log-events', 'print every event, like the original server (slow)')
    .option(
      '--http <[host:]port>',
      'serve the read-only web dashboard and /metrics over HTTP (a bare port binds ' +
        '127.0.0.1 only; env TT_ALLOC_HTTP; default off)',
    )
    .option(
      '--metrics-top-processes <n>',
      'processes with their own /metrics series, the largest first (default 10; the rest ' +
        'are summed into pid="other"; 0: only that sum)',
      intArg('--metrics-top-processes', 0, 10000),
    )
    .option(
      '--sample-interval <seconds>',
      'how often live charts sample the counters',
      secondsArg('--sample-interval'),
      1,
    )
    .option(
      '--group <name>',
      'share the data and control sockets with this group (mode 0660; default owner-only ' +
        '0600) and admit its members',
    )
    .option(
      '--allow-uid <uids>',
      'also admit connections from these users (UIDs or names, comma-separated; default: ' +
        "only the server's user, root and --group members)",
      uidListArg,
      [],
    )
    .option(
      '--trust-client-pid',
      'buffers belong to the PID each message claims, not to the connecting process ' +
        '(relays, replays, simulators reporting for many processes over one connection)',
    )
    .option(
      '--max-connections <n>',
      'refuse data connections beyond this many open ones',
      intArg('--max-connections'),
      4096,
    )
    .option(
      '--replace',
      'take over from the server running on the socket (an upgrade from another install): ' +
        'its sockets, connections and state pass to this one; no client sees a change',
    )
    .addOption(new Option('--takeover-stdio').hideHelp())
    .action(
      action(
        async (o: {
          replace?: boolean;
          takeoverStdio?: boolean;
          socket?: string;
          frameSize: string;
          reapInterval: number;
          statsInterval: number;
          devices?: string;
          deviceConfig?: string;
          expectedBuffers: number;
          leftBehindBudget: number;
          timelineEvents: number;
          notesBudget: number;
          partialFrameTimeout: number;
          quiet?: boolean;
          logEvents?: boolean;
          http?: string;
          sampleInterval: number;
          metricsTopProcesses?: number;
          maxConnections: number;
          group?: string;
          allowUid: number[];
          trustClientPid?: boolean;
          stateDir?: string;
          persist: boolean;
          flushInterval: number;
          journalMib: number;
        }) => {
          // A reader that goes away (`allocation-server | head`) must not take the tracked state
          // with it.
          let stdoutGone = false;
          process.stdout.on('error', (e: NodeJS.ErrnoException) => {
            if (stdoutGone) return;
            stdoutGone = true;
            process.stderr.write(
              `ttalloc: stdout is closed (${e.code}); the server keeps running without printing\n`,
            );
          });
          const devices = DeviceRegistry.resolve({
            devices: o.devices ?? process.env.TT_ALLOC_DEVICES,
            configPath: o.deviceConfig,
          });
          const server = new AllocationServer({
            socketPath: resolveSocket(o.socket),
            frameSize: o.frameSize === 'auto' ? 0 : (Number(o.frameSize) as 72 | 112 | 144 | 648),
            reapIntervalMs: o.reapInterval * 1000,
            statsIntervalMs: o.statsInterval * 1000,
            quiet: o.quiet,
            logEvents: o.logEvents,
            devices,
            expectedBuffers: o.expectedBuffers,
            leftBehindBudget: o.leftBehindBudget,
            timelineEvents: o.timelineEvents,
            notesBudget: o.notesBudget,
            partialFrameTimeoutMs: o.partialFrameTimeout * 1000,
            http: o.http ?? (process.env.TT_ALLOC_HTTP || undefined),
            sampleIntervalMs: o.sampleInterval * 1000,
            metricsTopProcesses: o.metricsTopProcesses,
            maxConnections: o.maxConnections,
            group: o.group,
            allowUids: o.allowUid,
            trustClientPid: o.trustClientPid,
            stateDir: o.persist === false ? false : o.stateDir,
            flushIntervalMs: o.flushInterval,
            compactBytes: o.journalMib * 1024 * 1024,
          });
          // Handlers go in before start(): a signal during start-up must still end in a clean exit
          // 0.
          let stopping = false;
          const stop = (sig: string) => {
            if (stopping) return;
            stopping = true;
            server.log(`${sig} received, shutting down`);
            server.warnConnectedClients();
            void server.stop().then(
              () => process.exit(0),
              () => process.exit(0),
            );
          };
          process.on('SIGINT', () => stop('SIGINT'));
          process.on('SIGTERM', () => stop('SIGTERM'));
          process.on('SIGHUP', () => stop('SIGHUP'));
          if (o.replace) return replaceOrStart(server, o.takeoverStdio === true);
          await server.start();
        },
      ),
    );
}

/**
 * `--replace`: takes over from the running server; with none running, starts as usual. For
 * `ttalloc restart` (--takeover-stdio) the outcome goes to stderr on one line it waits for
 * (before this process writes to the old server's stdout and stderr).
 */
async function replaceOrStart(server: AllocationServer, adoptStdio: boolean): Promise<void> {
  const say = (line: string) => {
    if (adoptStdio) process.stderr.write(`${TAKEOVER_LINE} ${line}\n`);
  };
  try {
    await server.replace(
      adoptStdio
        ? (r) => say(`ok ${process.pid} ${r.fromPid} ${r.connections} ${r.pauseMs.toFixed(1)}`)
        : null,
    );
  } catch (e) {
    if (!(e instanceof NothingToReplace)) {
      say(`failed ${(e as Error).message}`);
      throw e;
    }
    server.log(`${(e as Error).message}: starting as a new server`);
    await server.start();
    say(`started ${process.pid}`);
  }
}

/** `--allow-uid 1000,alice` (repeatable): UIDs or user names. */
function uidListArg(v: string, prev: number[]): number[] {
  try {
    return [...prev, ...parseUidList(v)];
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}
