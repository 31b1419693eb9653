// `ttalloc doctor`: why nothing shows up. Gathers the facts (the server on the socket and on the
// runtime's path, the socket file against our user, SHM regions and the driver read here, the
// merged view of the holders), runs the checks of sources/doctor.ts and prints each finding with
// its fix. Exit 0 when healthy, 1 when something is wrong.
import { Command } from 'commander';
import { accessSync, constants, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { action, socketOption } from '../common.js';
import { ControlClient, resolveSocket } from '../../client/control-client.js';
import { DEFAULT_SOCKET } from '../../protocol/transport.js';
import {
  diagnose,
  type DoctorFacts,
  type DoctorReport,
  type ServerFacts,
} from '../../sources/doctor.js';
import { SourcesCache } from '../../sources/merge-cache.js';
import { defaultReaders } from '../../sources/merge-readers.js';
import type { MergedProcess } from '../../sources/merge-types.js';
import type {
  ClientsResponse,
  ProcessesResponse,
  ProcessRow,
  StatsResponse,
} from '../../report/types.js';
import { SCHEMA_VERSION } from '../../report/types.js';

async function answers(c: ControlClient): Promise<boolean> {
  try {
    await c.json('GET', '/v1/health');
    return true;
  } catch {
    return false;
  }
}

async function serverFacts(c: ControlClient): Promise<ServerFacts> {
  const [st, cl] = await Promise.all([
    c.json<StatsResponse>('GET', '/v1/stats'),
    c.json<ClientsResponse>('GET', '/v1/clients').catch(() => ({ clients: [] })),
  ]);
  return {
    pid: st.pid,
    devices: st.devices.map((d) => ({ device: d.device, declared: d.declared, arch: d.arch })),
    frees: st.frames.by_type.FREE ?? 0,
    unknownFrees: st.unknown_frees.buffers,
    clients: cl.clients.map((x) => ({
      pid: x.pid,
      command: x.command,
      frameSizes: x.frame_sizes ?? [],
    })),
    admittedUids: st.peers?.admitted_uids ?? [],
  };
}

/** A row of the server's reply as the merged view's process (a server without sources: none). */
function merged(p: ProcessRow): MergedProcess {
  return {
    pid: p.pid,
    command: p.command,
    sources: p.sources ?? ['socket'],
    identity: p.identity ?? null,
    ns_pid: p.ns_pid ?? null,
    shm: p.shm ?? [],
    holds: p.holds ?? [],
    checks: p.checks ?? [],
    silent: p.silent ?? null,
  };
}

function socketFile(path: string): DoctorFacts['socketFile'] {
  try {
    const st = statSync(path);
    let writable = true;
    try {
      accessSync(path, constants.W_OK);
    } catch {
      writable = false;
    }
    return { uid: st.uid, gid: st.gid, mode: st.mode, writable };
  } catch (e) {
    // A directory on its path closed to us: we cannot even see it.
    if ((e as NodeJS.ErrnoException).code === 'EACCES')
      return { uid: -1, gid: -1, mode: 0, writable: false };
    return null;
  }
}

/** Everything the checks read. */
export async function gatherFacts(socketFlag?: string): Promise<DoctorFacts> {
  const socket = resolveSocket(socketFlag);
  const client = new ControlClient(socket);
  let server: ServerFacts | null = null;
  let serverError: string | null = null;
  try {
    server = await serverFacts(client);
  } catch (e) {
    serverError = (e as Error).message.replace(/ \(start one.*$/, '');
  }
  const cache = new SourcesCache(defaultReaders());
  const snap = cache.snapshot();
  let processes: MergedProcess[];
  const fromServer = server
    ? await client.json<ProcessesResponse>('GET', '/v1/processes').catch(() => null)
    : null;
  if (fromServer?.sources) processes = fromServer.processes.map(merged);
  else processes = cache.view(fromServer?.processes ?? null).processes;
  const uid = process.getuid?.() ?? 0;
  let user: string | null = null;
  try {
    user = userInfo().username;
  } catch {
    /* no passwd entry */
  }
  return {
    uid,
    user,
    socket,
    envSocket: process.env.TT_ALLOC_SERVER_SOCKET || null,
    server,
    serverError,
    serverOnDefault:
      socket === DEFAULT_SOCKET ? null : await answers(new ControlClient(DEFAULT_SOCKET)),
    socketFile: socketFile(socket),
    shm: snap.shm,
    driver: snap.driver,
    processes,
  };
}

const MARK = { ok: '✓', info: '·', warn: '!', fail: '✗' } as const;

export function renderDoctor(r: DoctorReport): string {
  const lines: string[] = [];
  for (const f of r.findings) {
    lines.push(`${MARK[f.severity]} ${f.check}: ${f.text}`);
    if (f.fix) lines.push(`    fix: ${f.fix}`);
  }
  const bad = r.findings.filter((f) => f.severity === 'fail').length;
  const warn = r.findings.filter((f) => f.severity === 'warn').length;
  lines.push(
    r.healthy
      ? `healthy${warn ? ` (${warn} warning${warn === 1 ? '' : 's'})` : ''}`
      : `${bad} problem${bad === 1 ? '' : 's'} found${warn ? `, ${warn} warning(s)` : ''}`,
  );
  return lines.join('\n') + '\n';
}

export function doctorCommand(): Command {
  return new Command('doctor')
    .description(
      'check the set-up when nothing shows up: server and its path, socket permissions, devices, ' +
        'holders and their tracking environment, SHM regions; each finding with its fix ' +
        '(exit 1 when something is wrong)',
    )
    .addOption(socketOption())
    .option('--json', 'the findings as JSON')
    .action(
      action(async (o: { socket?: string; json?: boolean }) => {
        const r = diagnose(await gatherFacts(o.socket));
        process.stdout.write(
          o.json
            ? JSON.stringify({ schema_version: SCHEMA_VERSION, ...r }, null, 2) + '\n'
            : renderDoctor(r),
        );
        process.exitCode = r.healthy ? 0 : 1;
      }),
    );
}
