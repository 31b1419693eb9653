// One view per process from every source: the allocation socket (per buffer, summed per device),
// tt-metal's SHM regions (per slot), the driver's holder lists (who has a device open). A process
// both the socket and SHM report gets a cross-check per region; a holder nothing reports gets its
// likely reason. Pure: the scans come in a SourceSnapshot (merge-cache.ts reads them).
import { silentReason } from './merge-reasons.js';
import type {
  CrossCheck,
  MergedProcess,
  MergedView,
  RegionSummary,
  SilentCode,
  SocketDeviceInput,
  SocketProcessInput,
  SourceName,
  SourceSnapshot,
} from './merge-types.js';
import type { MemoryTotals, ProcessIdentity, ShmRegion } from './types.js';

/** The kinds both the socket and SHM count (kernel only in v1a, and not on the socket's wire). */
export const COMPARED_KINDS = ['dram', 'l1', 'l1_small', 'trace', 'cb'] as const;

export const zeroTotals = (): MemoryTotals => ({ dram: 0, l1: 0, l1_small: 0, trace: 0, cb: 0 });

/** Bytes of the compared kinds. */
export function totalBytes(t: MemoryTotals): number {
  let n = 0;
  for (const k of COMPARED_KINDS) n += t[k];
  return n;
}

/** The socket's figures of one device as SHM counts them (SYSTEM_MEMORY left out). */
function socketTotals(d: SocketDeviceInput, into: MemoryTotals): void {
  into.dram += d.DRAM;
  into.l1 += d.L1;
  into.l1_small += d.L1_SMALL;
  into.trace += d.TRACE;
  into.cb += d.CB;
}

/** The tt-metal device ids a region speaks for: its device id and its chips' ids. */
export function regionDevices(r: ShmRegion): number[] {
  const ids = new Set<number>();
  if (r.device_id !== null) ids.add(r.device_id);
  for (const c of r.chips) ids.add(c.chip_id);
  return [...ids].sort((a, b) => a - b);
}

export function summarizeRegion(r: ShmRegion): RegionSummary {
  return {
    path: r.path,
    asic_id: r.asic_id,
    device: r.device_id,
    layout: r.layout,
    status: r.status,
    ...(r.error ? { error: r.error } : {}),
    owner_user: r.owner_user,
    owner_uid: r.owner_uid,
    mode: r.mode,
    totals: r.totals,
    live: r.live,
    ghost: r.ghost,
    slots_used: r.slots.length,
    slots_live: r.slots.filter((s) => s.alive).length,
    slots_full: r.slots_full,
  };
}

const SOURCE_ORDER: SourceName[] = ['socket', 'shm', 'driver'];

/**
 * The merged view. `socket` is null when no server answered (ps/top on their own): then only the
 * SHM and the driver speak.
 */
export function mergeView(socket: SocketProcessInput[] | null, snap: SourceSnapshot): MergedView {
  const rows = new Map<number, MergedProcess>();
  const seen = new Map<number, Set<SourceName>>();
  const row = (pid: number, src: SourceName): MergedProcess => {
    let r = rows.get(pid);
    if (!r) {
      r = {
        pid,
        command: null,
        sources: [],
        identity: null,
        ns_pid: null,
        shm: [],
        holds: [],
        checks: [],
        silent: null,
      };
      rows.set(pid, r);
      seen.set(pid, new Set());
    }
    seen.get(pid)!.add(src);
    return r;
  };
  const bySocket = new Map<number, SocketProcessInput>();
  for (const p of socket ?? []) {
    row(p.pid, 'socket').command = p.command;
    bySocket.set(p.pid, p);
  }
  for (const c of snap.driver.cards)
    for (const pid of c.holders) {
      const r = row(pid, 'driver');
      if (!r.holds.includes(c.index)) r.holds.push(c.index);
    }
  // Slot PIDs are in the writer's namespace: a process of ours in another PID namespace is found
  // by its innermost NSpid (and the name its slot carries), else the slot's PID is ours.
  const ids = new Map<number, ProcessIdentity | null>();
  const idOf = (pid: number) => {
    if (!ids.has(pid)) ids.set(pid, snap.identity(pid));
    return ids.get(pid)!;
  };
  const inner = new Map<number, ProcessIdentity[]>();
  for (const pid of rows.keys()) {
    const id = idOf(pid);
    if (!id?.other_pid_ns || id.ns_pids.length < 2) continue;
    const ns = id.ns_pids[id.ns_pids.length - 1];
    inner.set(ns, [...(inner.get(ns) ?? []), id]);
  }
  const named = (id: ProcessIdentity | null | undefined, name: string) =>
    !!id?.comm && !!name && id.comm.startsWith(name);
  /** Our PID of a slot's PID: a process of another namespace with that NSpid, else the same. */
  const ours = (slotPid: number, name: string): number => {
    const cands = inner.get(slotPid) ?? [];
    const byName = cands.find((id) => named(id, name));
    if (byName) return byName.pid;
    if (named(rows.has(slotPid) ? idOf(slotPid) : null, name)) return slotPid;
    return cands.length === 1 ? cands[0].pid : slotPid;
  };
  const regionOf = new Map<ShmUsageKey, ShmRegion>();
  for (const reg of snap.shm.regions) {
    if (reg.status !== 'ok') continue;
    for (const s of reg.slots) {
      if (!s.alive) continue;
      const pid = ours(s.pid, s.name);
      const r = row(pid, 'shm');
      r.shm.push({
        asic_id: reg.asic_id,
        device: reg.device_id,
        layout: reg.layout,
        slot_pid: s.pid,
        bytes: s.bytes,
        updated_at: s.updated_ms === null ? null : new Date(s.updated_ms).toISOString(),
        updated_at_ms: s.updated_ms,
      });
      regionOf.set(key(pid, reg.asic_id), reg);
      if (!r.command) r.command = s.name || null;
    }
  }
  const silent: Partial<Record<SilentCode, number>> = {};
  const ctx = { shm: snap.shm, uid: snap.uid, knownTool: snap.knownTool };
  for (const r of rows.values()) {
    const id = idOf(r.pid);
    r.identity = id;
    if (id) {
      if (!r.command) r.command = id.comm;
      const ns = id.ns_pids[id.ns_pids.length - 1];
      if (id.ns_pids.length > 1 && ns !== r.pid) r.ns_pid = ns;
    }
    const src = seen.get(r.pid)!;
    r.sources = SOURCE_ORDER.filter((s) => src.has(s));
    const sock = bySocket.get(r.pid);
    if (sock)
      for (const u of r.shm)
        r.checks.push(crossCheck(sock, regionOf.get(key(r.pid, u.asic_id))!, u.bytes));
    r.holds.sort((a, b) => a - b);
    if (r.holds.length > 0 && !sock && r.shm.length === 0) {
      r.silent = silentReason(id, ctx);
      silent[r.silent.code] = (silent[r.silent.code] ?? 0) + 1;
    }
  }
  const processes = [...rows.values()].sort((a, b) => a.pid - b.pid);
  const bySource = { socket: 0, shm: 0, driver: 0 };
  for (const p of processes) for (const s of p.sources) bySource[s]++;
  const d = snap.driver;
  return {
    processes,
    summary: {
      scanned_at: new Date(snap.shm.scanned_ms).toISOString(),
      scanned_at_ms: snap.shm.scanned_ms,
      shm: {
        root: snap.shm.root,
        regions: snap.shm.regions.map(summarizeRegion),
        ...(snap.shm.error ? { error: snap.shm.error } : {}),
      },
      driver: {
        present: d.present,
        version: d.driver_version,
        holders_listed: d.holders_listed,
        cards: d.cards,
        ...(d.error ? { error: d.error } : {}),
      },
      holders: processes.filter((p) => p.holds.length > 0).length,
      silent,
      by_source: bySource,
    },
  };
}

type ShmUsageKey = string;
const key = (pid: number, asic: string): ShmUsageKey => `${pid}/${asic}`;

/** The socket's figures on the region's devices against the region's slot. */
function crossCheck(p: SocketProcessInput, reg: ShmRegion, shm: MemoryTotals): CrossCheck {
  const devices = regionDevices(reg);
  const sock = zeroTotals();
  for (const d of p.devices) if (devices.includes(d.device)) socketTotals(d, sock);
  const differs = COMPARED_KINDS.filter((k) => sock[k] !== shm[k]);
  return { asic_id: reg.asic_id, devices, agree: differs.length === 0, socket: sock, shm, differs };
}
