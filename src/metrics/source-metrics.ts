// Prometheus series of the machine's other sources (sources/merge.ts): per-chip SHM totals, the
// bytes crashed writers left, device holders and the holders that report nothing, by reason.
// Read at scrape time from the lazily cached scans; label sets are bounded by the hardware (one
// region per chip, at most MAX_REGIONS) and by the fixed lists of kinds and reasons.
import { Gauge, type Registry } from 'prom-client';
import { COMPARED_KINDS } from '../sources/merge.js';
import type { MergedView, RegionSummary, SilentCode } from '../sources/merge-types.js';
import type { CardSensors, DriverCard, MemoryTotals } from '../sources/types.js';

/** Regions beyond this many (sorted by chip id) get no per-chip series: labels stay bounded. */
export const MAX_REGIONS = 64;

const SILENT_CODES: SilentCode[] = [
  'known_tool',
  'tracking_disabled',
  'tracking_off',
  'other_user',
  'other_ipc_namespace',
  'other_pid_namespace',
  'slots_full',
  'no_allocation_yet',
  'unknown',
];

/** Memory kinds as label values, the socket's names (SHM's own kinds, upper case). */
const KIND_LABEL: Record<(typeof COMPARED_KINDS)[number], string> = {
  dram: 'DRAM',
  l1: 'L1',
  l1_small: 'L1_SMALL',
  trace: 'TRACE',
  cb: 'CB',
};

export function registerSourceMetrics(registers: Registry[], view: () => MergedView): void {
  // One merge per scrape: every collect() below within 100 ms reads the same view.
  let cached: MergedView | null = null,
    at = 0;
  const get = () => {
    const t = Date.now();
    if (!cached || t - at > 100) {
      cached = view();
      at = t;
    }
    return cached;
  };
  const regions = () =>
    get()
      .summary.shm.regions.filter((r) => r.status === 'ok')
      .sort((a, b) => (a.asic_id < b.asic_id ? -1 : 1))
      .slice(0, MAX_REGIONS);
  const perChip = (name: string, help: string, read: (r: RegionSummary) => MemoryTotals | null) =>
    new Gauge({
      name,
      help,
      labelNames: ['asic_id', 'device', 'type'],
      registers,
      collect() {
        this.reset();
        for (const r of regions()) {
          const t = read(r);
          if (!t) continue;
          const device = r.device === null ? '' : String(r.device);
          for (const k of COMPARED_KINDS)
            this.set({ asic_id: r.asic_id, device, type: KIND_LABEL[k] }, t[k]);
        }
      },
    });
  perChip(
    'ttalloc_shm_used_bytes',
    "Bytes in use on a chip by its SHM region's totals (all tt-metal processes; no SYSTEM_MEMORY)",
    (r) => r.totals,
  );
  perChip(
    'ttalloc_shm_live_bytes',
    'Bytes of the live process slots of a chip (SHM region)',
    (r) => r.live,
  );
  perChip(
    'ttalloc_shm_ghost_bytes',
    'Bytes crashed processes left in a v2/v3 SHM region (totals minus live slots)',
    (r) => r.ghost,
  );
  new Gauge({
    name: 'ttalloc_shm_slots',
    help: 'Process slots of an SHM region in use, by state (live, dead)',
    labelNames: ['asic_id', 'state'],
    registers,
    collect() {
      this.reset();
      for (const r of regions()) {
        this.set({ asic_id: r.asic_id, state: 'live' }, r.slots_live);
        this.set({ asic_id: r.asic_id, state: 'dead' }, r.slots_used - r.slots_live);
      }
    },
  });
  new Gauge({
    name: 'ttalloc_shm_regions',
    help: 'SHM regions found, by status (ok, unreadable, initialising, torn, bad)',
    labelNames: ['status'],
    registers,
    collect() {
      this.reset();
      const n: Record<string, number> = { ok: 0, unreadable: 0, initialising: 0, torn: 0, bad: 0 };
      for (const r of get().summary.shm.regions) n[r.status] = (n[r.status] ?? 0) + 1;
      for (const [status, v] of Object.entries(n)) this.set({ status }, v);
    },
  });
  new Gauge({
    name: 'ttalloc_device_holders',
    help: 'Processes holding /dev/tenstorrent/N open (the driver), by card index',
    labelNames: ['card'],
    registers,
    collect() {
      this.reset();
      for (const c of get().summary.driver.cards.slice(0, MAX_REGIONS))
        this.set({ card: String(c.index) }, c.holders.length + c.holders_outside_ns);
    },
  });
  // The cards' sensors (hwmon), as tt-smi and nvtop show them; absent readings are no sample.
  const cards = () => get().summary.driver.cards.slice(0, MAX_REGIONS);
  const cardLabels = (c: DriverCard) => ({
    card: String(c.index),
    type: c.card_type ?? '',
    serial: c.board_serial ?? '',
  });
  const sensor = (name: string, help: string, key: keyof CardSensors) =>
    new Gauge({
      name,
      help,
      labelNames: ['card', 'type', 'serial'],
      registers,
      collect() {
        this.reset();
        for (const c of cards()) {
          const v = c.sensors[key];
          if (v !== undefined) this.set(cardLabels(c), v);
        }
      },
    });
  sensor(
    'ttalloc_card_temperature_celsius',
    "A card's temperature (hwmon temp1_input)",
    'temperature_c',
  );
  sensor('ttalloc_card_power_watts', "A card's power draw (hwmon power1_input)", 'power_w');
  sensor('ttalloc_card_voltage_volts', "A card's core voltage (hwmon in0_input)", 'voltage_v');
  sensor('ttalloc_card_current_amperes', "A card's current (hwmon curr1_input)", 'current_a');
  sensor('ttalloc_card_fan_rpm', "A card's fan speed (hwmon fan1_input, Blackhole)", 'fan_rpm');
  new Gauge({
    name: 'ttalloc_card_info',
    help:
      'Cards under the driver (value 1): type, serial, asic id, chips (tt-metal devices), ' +
      'driver and firmware bundle version',
    labelNames: ['card', 'type', 'serial', 'asic_id', 'chips', 'driver', 'firmware'],
    registers,
    collect() {
      this.reset();
      const d = get().summary.driver;
      for (const c of cards())
        this.set(
          {
            ...cardLabels(c),
            asic_id: c.asic_id ?? '',
            chips: c.chips === null ? '' : String(c.chips),
            driver: d.version ?? '',
            firmware: c.firmware.bundle ?? '',
          },
          1,
        );
    },
  });
  new Gauge({
    name: 'ttalloc_silent_holders',
    help: 'Processes holding a device that no source reports memory for, by likely reason',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      const s = get().summary.silent;
      for (const reason of SILENT_CODES) this.set({ reason }, s[reason] ?? 0);
    },
  });
  new Gauge({
    name: 'ttalloc_processes_by_source',
    help: 'Processes each source speaks of (socket, shm, driver)',
    labelNames: ['source'],
    registers,
    collect() {
      this.reset();
      for (const [source, v] of Object.entries(get().summary.by_source)) this.set({ source }, v);
    },
  });
}
