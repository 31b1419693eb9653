// --log-events: one line per accepted frame, for debugging a client (slow: off by default).
import {
  BUFFER_TYPE_NAMES,
  KERNEL_TYPE_NAMES,
  MSG_NAMES,
  MsgType,
  Off,
} from '../protocol/constants.js';
import { readU64 } from '../protocol/codec.js';

/** The event line of the frame at `off`; `who` names the connection. */
export function formatEventLine(dv: DataView, off: number, who: string): string {
  const type = dv.getUint8(off);
  const dev = dv.getInt32(off + Off.deviceId, true);
  const pid = dv.getInt32(off + Off.processId, true);
  const id = dv.getBigUint64(off + Off.bufferId, true).toString(16);
  const size = readU64(dv, off + Off.size);
  const bt = dv.getUint8(off + Off.bufferType);
  const names = type === MsgType.KERNEL_LOAD ? KERNEL_TYPE_NAMES : BUFFER_TYPE_NAMES;
  const what = names[bt] ?? bt;
  const name = MSG_NAMES[type] ?? `code ${type}`;
  return `[event] ${name} device=${dev} pid=${pid} id=0x${id} size=${size} type=${what} (${who})\n`;
}
