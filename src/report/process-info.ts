// Per-process usage (nvidia-smi style) from the tracker's incremental per-PID counters.
import { readFileSync } from 'node:fs';
import { KINDS, KIND_CB, KIND_KERNEL, KIND_UNKNOWN_FREE, type Tracker } from '../state/tracker.js';

export interface ProcessDeviceUsage {
  device: number;
  DRAM: number;
  L1: number;
  L1_SMALL: number;
  TRACE: number;
  CB: number;
  KERNEL: number;
  buffers: number;
}
export interface ProcessRow {
  pid: number;
  /** The PID this process's messages claim, when it differs from the kernel's (display only). */
  claimedPid?: number;
  command: string | null;
  buffers: number;
  bytes: number;
  unknownFrees: number;
  devices: ProcessDeviceUsage[];
}

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
      const n = c(0) + c(1) + c(2) + c(3) + c(4);
      unknown += c(KIND_UNKNOWN_FREE);
      if (n + c(KIND_CB) + c(KIND_KERNEL) === 0) continue;
      const u = {
        device: d,
        DRAM: b(0),
        L1: b(1),
        L1_SMALL: b(2) + b(3),
        TRACE: b(4),
        CB: b(KIND_CB),
        KERNEL: b(KIND_KERNEL),
        buffers: n,
      };
      devices.push(u);
      buffers += n;
      bytes += b(0) + b(1) + b(2) + b(3) + b(4);
    }
    // A live PID that only sent frees of unknown buffers is listed too: that is where they are
    // counted.
    if (s.live <= 0 && (unknown === 0 || commandName(s.pid) === null)) continue;
    const claimed = claims?.get(s.pid);
    rows.push({
      pid: s.pid,
      ...(claimed !== undefined ? { claimedPid: claimed } : {}),
      command: commandName(s.pid),
      buffers,
      bytes,
      unknownFrees: unknown,
      devices,
    });
  }
  return rows.sort((a, b) => b.bytes - a.bytes);
}
