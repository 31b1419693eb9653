// Per-process usage (nvidia-smi style) from the tracker's incremental per-PID counters.
import { readFileSync } from 'node:fs';
import { BufferType, counterBytes } from '../protocol/constants.js';
import { KINDS, KIND_CB, KIND_KERNEL, KIND_UNKNOWN_FREE, type Tracker } from '../state/tracker.js';
import type { ProcessDeviceUsage, ProcessRow } from './types.js';
import { sumOverTypes } from './usage.js';

export type { ProcessDeviceUsage, ProcessRow };

/** The command name from /proc (null when the process is gone or not visible). */
export function commandName(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return null;
  }
}

/** `claims`: kernel PID → claimed PID where they differ (the server's connections). */
export function listProcesses(tr: Tracker, claims?: Map<number, number>): ProcessRow[] {
  const rows: ProcessRow[] = [];
  for (const s of tr.pids.values()) {
    const devices: ProcessDeviceUsage[] = [];
    let buffers = 0,
      bytes = 0,
      unknown = 0;
    for (let d = 0; d < s.devices; d++) {
      const b = (k: number) => s.bytes[d * KINDS + k],
        c = (k: number) => s.counts[d * KINDS + k];
      const n = sumOverTypes(c);
      unknown += c(KIND_UNKNOWN_FREE);
      if (n + c(KIND_CB) + c(KIND_KERNEL) === 0) continue;
      const u = {
        device: d,
        DRAM: counterBytes('DRAM', b),
        L1: counterBytes('L1', b),
        L1_SMALL: b(BufferType.L1_SMALL),
        TRACE: counterBytes('TRACE', b),
        CB: b(KIND_CB),
        KERNEL: b(KIND_KERNEL),
        SYSTEM_MEMORY: b(BufferType.SYSTEM_MEMORY),
        buffers: n,
      };
      devices.push(u);
      buffers += n;
      bytes += sumOverTypes(b);
    }
    // A live PID that only sent frees of unknown buffers is listed too: that is where they are
    // counted.
    if (s.live <= 0 && (unknown === 0 || commandName(s.pid) === null)) continue;
    const claimed = claims?.get(s.pid);
    rows.push({
      pid: s.pid,
      ...(claimed !== undefined ? { claimed_pid: claimed } : {}),
      command: commandName(s.pid),
      buffers,
      bytes,
      unknown_frees: unknown,
      devices,
    });
  }
  return rows.sort((a, b) => b.bytes - a.bytes);
}
