// What data connections see of the server (ConnectionHost): the tracker, the journal, and the
// rare non-hot messages (replies, dumps, event lines, close). Nothing else of the server.
import { MsgType, Off } from '../protocol/constants.js';
import { encodeReply, type WireDevice } from '../protocol/replies.js';
import { totalDram, totalL1 } from '../devices/arch.js';
import type { DeviceRegistry } from '../devices/registry.js';
import type { Tracker } from '../state/tracker.js';
import type { EventJournal } from '../state/events.js';
import type { ConnectionHost, DataConnection } from './data-connection.js';
import type { ReadPump } from './socket-reader.js';
import type { Connections } from './connections.js';
import type { ExitWatch } from './exit-watch.js';
import type { Persistence } from './persistence.js';
import type { ServerConfig } from './config.js';
import { formatEventLine } from './event-log.js';
import { knownDeviceIds } from './known-devices.js';

export interface DataHostDeps {
  cfg: Pick<ServerConfig, 'logEvents' | 'detectQuietMs' | 'maxUnreadReplyBytes' | 'out'>;
  tracker: Tracker;
  devices: DeviceRegistry;
  pump: ReadPump | null;
  connections: Connections;
  /** Checks whether a closed connection's owner has exited (null: the periodic sweep only). */
  exitWatch: Pick<ExitWatch, 'closed'> | null;
  persistence: Persistence;
  /** Prints the buffer (or kernel) report on the server's output, as DUMP messages ask. */
  dump: (kernels: boolean) => void;
  log: (msg: string) => void;
}

export class DataHost implements ConnectionHost {
  readonly tracker: Tracker;
  readonly pump: ReadPump | null;
  readonly logEvents: boolean;
  readonly detectQuietMs: number;

  constructor(private readonly d: DataHostDeps) {
    this.tracker = d.tracker;
    this.pump = d.pump;
    this.logEvents = d.cfg.logEvents;
    this.detectQuietMs = d.cfg.detectQuietMs;
  }

  get journal(): EventJournal | null {
    return this.d.persistence.journal;
  }

  reply(conn: DataConnection, dv: DataView, off: number): void {
    const size = conn.frameSize;
    const out = Buffer.alloc(size);
    const device = dv.getInt32(off + Off.deviceId, true);
    const query = dv.getUint8(off) === MsgType.QUERY;
    const d = this.d.devices.get(device);
    encodeReply(new DataView(out.buffer, out.byteOffset, size), {
      query,
      device,
      knownDevices: knownDeviceIds(this.d.devices, this.tracker),
      info: d ? wireDevice(d.spec) : null,
      usage: query ? this.tracker.usage(device) : null,
    });
    const sock = conn.socket;
    if (sock.destroyed) return;
    // Replies nobody reads would pile up in memory: such a client is closed, not served.
    if (sock.writableLength > this.d.cfg.maxUnreadReplyBytes)
      return conn.reject(`it does not read its replies (${sock.writableLength} bytes unread)`);
    sock.write(out);
  }

  dump(conn: DataConnection, kernels: boolean): void {
    this.d.dump(kernels);
    this.d.log(`${kernels ? 'kernel' : 'buffer'} report printed on request of ${conn.describe()}`);
  }

  logEvent(conn: DataConnection, dv: DataView, off: number): void {
    this.d.cfg.out(formatEventLine(dv, off, conn.describe()));
  }

  log(msg: string): void {
    this.d.log(msg);
  }

  closed(conn: DataConnection): void {
    this.d.connections.closed(conn);
    this.d.exitWatch?.closed(conn);
  }
}

function wireDevice(spec: Parameters<typeof totalDram>[0]): WireDevice {
  return {
    arch: spec.arch,
    dramChannels: spec.dramChannels,
    dramPerChannel: spec.dramPerChannel,
    l1PerCore: spec.l1PerCore,
    totalDramBytes: totalDram(spec),
    totalL1Bytes: totalL1(spec),
  };
}
