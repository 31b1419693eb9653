// The open data connections and what is counted about them: totals, refusals at the limit,
// rejected frames of closed connections, and the PIDs connections claimed (display only).
import type { Socket } from 'node:net';
import type { DataConnection } from './data-connection.js';
import { readProcessInfo } from '../platform/processes.js';

/** A process with data connections open (report/types.ts DataClient). */
export interface ClientProcess {
  pid: number;
  command: string;
  connections: number;
  /** Per connection: the frame size it speaks (0 while not detected). */
  frame_sizes: number[];
}

export interface ConnectionCounters {
  total: number;
  refused: number;
  rejectedFramesClosed: number;
  pastClaims: [number, number][];
}

export class Connections {
  readonly open = new Set<DataConnection>();
  /** Accepted since the start. */
  total = 0;
  /** Refused at the limit (--max-connections). */
  refused = 0;
  /** Data connections that read through Node's per-read buffers (socket-reader.ts). */
  perReadBuffer = 0;
  private rejectedFramesClosed = 0;
  /** Claimed PIDs of closed connections whose kernel PID still owns something. */
  private pastClaims = new Map<number, number>();

  constructor(
    private readonly max: number,
    private readonly log: (msg: string) => void,
  ) {}

  get size(): number {
    return this.open.size;
  }

  /** False (and the socket closed) when the limit is reached. */
  admits(sock: Socket): boolean {
    if (this.open.size < this.max) return true;
    sock.destroy();
    // The first refusal and every 1000th are logged, not each one.
    if (this.refused++ % 1000 === 0) {
      this.log(
        `refusing data connection: ${this.open.size} open, the limit (--max-connections); ` +
          `${this.refused} refused so far`,
      );
    }
    return false;
  }

  add(c: DataConnection): void {
    this.open.add(c);
    this.total++;
    if (!c.ownBuffer) this.perReadBuffer++;
  }

  closed(c: DataConnection): void {
    this.open.delete(c);
    if (claimsOther(c)) this.pastClaims.set(c.ownerPid, c.claimedPid);
    this.rejectedFramesClosed += c.rejected;
  }

  /**
   * Does a connection that PID `pid` opened (the kernel's credentials) stay open? After that
   * process exited, someone still holds its socket: a child it shared it with.
   */
  heldOpen(pid: number): boolean {
    for (const c of this.open) if (c.ownerPid === pid) return true;
    return false;
  }

  /** Forgets the claims of PIDs the tracker no longer knows (after a sweep). */
  forgetClaims(known: { has(pid: number): boolean }): void {
    for (const p of this.pastClaims.keys()) if (!known.has(p)) this.pastClaims.delete(p);
  }

  /** Kernel PID → the PID its connection claims, where they differ (for the process listings). */
  claimedPids(): Map<number, number> {
    const m = new Map(this.pastClaims);
    for (const c of this.open) if (claimsOther(c)) m.set(c.ownerPid, c.claimedPid);
    return m;
  }

  /** Frames rejected so far, by open and closed connections. */
  rejectedFrames(): number {
    let n = this.rejectedFramesClosed;
    for (const c of this.open) n += c.rejected;
    return n;
  }

  /**
   * The processes with data connections open: by the kernel's PID, else the one the connection
   * claims (0 when neither is known yet); the command from /proc (its command line, else its name).
   */
  clients(): ClientProcess[] {
    const byPid = new Map<number, ClientProcess>();
    for (const c of this.open) {
      const pid = c.ownerPid || c.peerPid || c.claimedPid;
      const seen = byPid.get(pid);
      if (seen) {
        seen.connections++;
        seen.frame_sizes.push(c.frameSize);
        continue;
      }
      const info = pid > 0 ? readProcessInfo(pid) : null;
      const command = info ? info.cmdline || info.comm || '?' : pid > 0 ? '(exited)' : '(unknown)';
      byPid.set(pid, { pid, command, connections: 1, frame_sizes: [c.frameSize] });
    }
    return [...byPid.values()].sort((a, b) => a.pid - b.pid);
  }

  /** The counters a restart carries over to the new server (takeover-*.ts). */
  counters(): ConnectionCounters {
    return {
      total: this.total,
      refused: this.refused,
      rejectedFramesClosed: this.rejectedFramesClosed,
      pastClaims: [...this.pastClaims],
    };
  }

  adoptCounters(c: ConnectionCounters): void {
    this.total = c.total;
    this.refused = c.refused;
    this.rejectedFramesClosed = c.rejectedFramesClosed;
    this.pastClaims = new Map(c.pastClaims);
  }

  destroyAll(): void {
    for (const c of this.open) c.socket.destroy();
  }
}

function claimsOther(c: DataConnection): boolean {
  return c.ownerPid !== 0 && c.claimedPid !== 0 && c.claimedPid !== c.ownerPid;
}
