// Soak: a real server, 64 client processes allocating and freeing over the real socket for a
// bounded time, random SIGKILLs (replaced by fresh clients). At the end the survivors report what
// they hold; the server's counters (after its dead-PID sweep) must equal exactly that. Then the
// server is killed with SIGKILL and restarted, then stopped cleanly and restarted, on its state
// directory: each time the restored state must still equal what the survivors hold.
// Usage: npm run soak [-- SECONDS]   (loopback only: a private Unix socket in a temp dir)
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ControlClient } from '../src/client/control-client.js';
import { encodeFrame } from '../src/protocol/codec.js';
import { MsgType } from '../src/protocol/constants.js';

const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));

if (process.argv[2] === '--child') {
  // Child: keeps a model of its live buffers; on SIGUSR2 prints it (after its writes are out).
  const live = new Map<number, number>();
  const s = connect(process.argv[3]!);
  let events = 0,
    stopped = false;
  const pump = () => {
    if (stopped) return;
    const frames: Buffer[] = [];
    for (let i = 0; i < 256; i++) {
      const k = Math.floor(Math.random() * 20000);
      const addr = process.pid * 2 ** 28 + k * 4096; // per-process addresses: a key is one owner's
      const dev = k % 8;
      if (live.has(addr)) {
        frames.push(
          encodeFrame({ type: MsgType.FREE, deviceId: dev, pid: process.pid, bufferId: addr }),
        );
        live.delete(addr);
      } else {
        const size = 4096 * (1 + (k % 13));
        frames.push(
          encodeFrame({
            type: MsgType.ALLOC,
            deviceId: dev,
            size,
            pid: process.pid,
            bufferId: addr,
            timestampNs: 1,
          }),
        );
        live.set(addr, size);
      }
    }
    events += frames.length;
    if (s.write(Buffer.concat(frames))) setTimeout(pump, 5);
    else s.once('drain', () => setTimeout(pump, 5));
  };
  s.on('connect', pump);
  // After its report the child only waits (alive, so its buffers stay owned) while the server
  // restarts.
  s.on('error', (e) => {
    if (stopped) return;
    process.stderr.write(`child ${process.pid}: ${e.message}\n`);
    process.exit(3);
  });
  process.on('SIGUSR2', () => {
    stopped = true;
    setInterval(() => {}, 1 << 30); // stay alive without a connection
    s.write(Buffer.alloc(0), () => {
      let bytes = 0;
      for (const v of live.values()) bytes += v;
      process.stdout.write(
        JSON.stringify({ pid: process.pid, buffers: live.size, bytes, events }) + '\n',
      );
    });
  });
  process.stdout.write('ready\n'); // the SIGUSR2 handler is in place (before any frame is sent)
} else {
  const seconds = Number(process.argv[2] ?? 90);
  const dir = mkdtempSync(join(tmpdir(), 'ttalloc-soak-'));
  const sock = join(dir, 's.sock');
  let serverOut = '';
  const startServer = () => {
    serverOut = '';
    const p = spawn(
      process.execPath,
      [
        CLI,
        'server',
        '--socket',
        sock,
        '--stats-interval',
        '0',
        '--reap-interval',
        '5',
        '--state-dir',
        join(dir, 'state'),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    p.stdout!.on('data', (d: Buffer) => {
      serverOut += d.toString();
    });
    return p;
  };
  const listening = async () => {
    while (!serverOut.includes('listening on')) await new Promise((r) => setTimeout(r, 20));
  };
  let server = startServer();
  await listening();
  const ctl = new ControlClient(sock);
  const kids = new Set<ChildProcess>();
  const ready = new Set<ChildProcess>();
  let errors = 0,
    kills = 0,
    spawned = 0;
  const spawnKid = () => {
    const k = spawn(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', sock],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    k.stderr!.on('data', (d: Buffer) => {
      if (errors++ < 3) process.stderr.write(`client: ${d}`);
    });
    k.on('exit', (c, sig) => {
      kids.delete(k);
      if (sig !== 'SIGKILL' && c !== 0) {
        errors++;
        process.stderr.write(`client exited: code ${c}, signal ${sig}\n`);
      }
    });
    k.stdout!.once('data', () => ready.add(k));
    kids.add(k);
    spawned++;
  };
  for (let i = 0; i < 64; i++) spawnKid();
  const t0 = Date.now();
  const rss: string[] = [];
  while (Date.now() - t0 < seconds * 1000) {
    await new Promise((r) => setTimeout(r, 1000 + Math.random() * 2000));
    const victim = [...kids][Math.floor(Math.random() * kids.size)];
    if (victim) {
      victim.kill('SIGKILL');
      kills++;
      spawnKid();
    }
    const st = await ctl.json<{
      memory?: { rss_bytes?: number };
      frames: { total: number };
      live: { buffers: number };
    }>('GET', '/v1/stats');
    const mem = (st as { memory?: Record<string, number> }).memory ?? {};
    const secs = Math.round((Date.now() - t0) / 1000);
    const rssMiB = Math.round((mem.rss_bytes ?? mem.rss ?? 0) / 2 ** 20);
    rss.push(`${secs}s frames=${st.frames.total} live=${st.live.buffers} rss=${rssMiB}MiB`);
  }
  // Survivors stop and report what they hold.
  // A client still starting up has sent nothing: it is simply killed.
  for (const k of kids)
    if (!ready.has(k)) {
      k.kill('SIGKILL');
      kids.delete(k);
    }
  const reports = await Promise.all(
    [...kids].map(
      (k) =>
        new Promise<{ buffers: number; bytes: number; events: number }>((res) => {
          let out = '';
          k.stdout!.on('data', (d: Buffer) => {
            out += d.toString();
            const m = /^\{.*\}$/m.exec(out);
            if (m) res(JSON.parse(m[0]));
          });
          // died first: reaped, holds nothing
          k.once('exit', () => res({ buffers: 0, bytes: 0, events: 0 }));
          k.kill('SIGUSR2');
        }),
    ),
  );
  for (let last = -1; ;) {
    // settle: until the server's frame count stops moving
    const n = (await ctl.json<{ frames: { total: number } }>('GET', '/v1/stats')).frames.total;
    if (n === last) break;
    last = n;
    await new Promise((r) => setTimeout(r, 200));
  }
  const rep = await ctl.json<{ total_buffers: number; total_bytes: number }>(
    'GET',
    '/v1/report?format=json',
  ); // runs the dead-PID sweep
  const st = await ctl.json<{
    frames: { total: number; rejected: number };
    reaped_processes: number;
    persistence: { journal_bytes: number; snapshot_bytes: number; compactions: number };
  }>('GET', '/v1/stats');
  const want = reports.reduce(
    (a, r) => ({ buffers: a.buffers + r.buffers, bytes: a.bytes + r.bytes }),
    { buffers: 0, bytes: 0 },
  );

  // Restarts on the same state directory, with the survivors still alive.
  const restarts: { how: string; readyMs: number; buffers: number; bytes: number }[] = [];
  for (const how of ['SIGKILL', 'SIGTERM'] as const) {
    if (how === 'SIGKILL') await new Promise((r) => setTimeout(r, 300)); // past one flush interval
    server.kill(how);
    await new Promise((r) => server.once('exit', r));
    const t = Date.now();
    server = startServer();
    await listening();
    const after = await ctl.json<{ total_buffers: number; total_bytes: number }>(
      'GET',
      '/v1/report?format=json',
    );
    restarts.push({
      how,
      readyMs: Date.now() - t,
      buffers: after.total_buffers,
      bytes: after.total_bytes,
    });
  }
  for (const k of kids) k.kill('SIGKILL');
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
  const ok =
    rep.total_buffers === want.buffers &&
    rep.total_bytes === want.bytes &&
    restarts.every((r) => r.buffers === want.buffers && r.bytes === want.bytes);
  console.log(rss.filter((_, i) => i % 5 === 0).join('\n'));
  console.log(
    JSON.stringify(
      {
        seconds,
        clients: 64,
        spawned,
        kills,
        errors,
        frames: st.frames.total,
        rejected: st.frames.rejected,
        reaped_processes: st.reaped_processes,
        server: { buffers: rep.total_buffers, bytes: rep.total_bytes },
        survivors: want,
        persistence: {
          journal_bytes: st.persistence.journal_bytes,
          snapshot_bytes: st.persistence.snapshot_bytes,
          compactions: st.persistence.compactions,
        },
        restarts,
        ok,
      },
      null,
      1,
    ),
  );
  process.exit(ok ? 0 : 1);
}
