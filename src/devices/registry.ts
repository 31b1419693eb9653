// Which devices exist and what they hold: from the kernel driver's sysfs, a --devices
// declaration, or a config file. Devices that report allocations without being declared are
// still shown everywhere, with unknown capacity.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ARCH_TABLE, lookupArch, type ArchSpec } from './arch.js';
import { MAX_DEVICE_ID } from '../protocol/constants.js';

export interface DeviceInfo {
  id: number;
  spec: ArchSpec;
  source: 'driver' | 'declared' | 'config';
  cardType?: string;
}

export class DeviceError extends Error {}

/** "8xwormhole_b0", "n300,n300,p150", "2xblackhole,wormhole_b0" → architecture per device id. */
export function parseDeviceSpec(spec: string): ArchSpec[] {
  const out: ArchSpec[] = [];
  for (const part of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^(?:(\d+)\s*[x*]\s*)?([A-Za-z0-9_-]+)$/.exec(part);
    const arch = m ? lookupArch(m[2]) : undefined;
    if (!m || !arch) {
      throw new DeviceError(
        `bad device spec '${part}': expected [COUNT x]ARCH with ARCH one of ` +
          `${Object.keys(ARCH_TABLE).join(', ')} or a card type (n150, n300, p150, e150, ...)`,
      );
    }
    const n = m[1] ? Number(m[1]) : 1;
    if (n < 1 || out.length + n > MAX_DEVICE_ID + 1)
      throw new DeviceError(`bad device count in '${part}'`);
    for (let i = 0; i < n; i++) out.push(arch);
  }
  return out;
}

/** Reads /dev/tenstorrent/<N> and the driver's sysfs attributes (root overridable for tests). */
export function discoverDriverDevices(root = process.env.TT_ALLOC_SYSFS_ROOT ?? '/'): DeviceInfo[] {
  const devDir = join(root, 'dev/tenstorrent');
  if (!existsSync(devDir)) return [];
  const out: DeviceInfo[] = [];
  for (const name of readdirSync(devDir)) {
    if (!/^\d+$/.test(name)) continue;
    const id = Number(name);
    let card = '';
    try {
      card = readFileSync(
        join(root, `sys/class/tenstorrent/tenstorrent!${id}/tt_card_type`),
        'utf8',
      ).trim();
    } catch {
      /* attribute missing */
    }
    const spec = lookupArch(card) ?? {
      ...ARCH_TABLE.wormhole_b0,
      name: card ? `unknown (${card})` : 'unknown',
      arch: 0,
      dramChannels: 0,
      dramPerChannel: 0,
      l1PerCore: 0,
      workerCores: 0,
    };
    out.push({ id, spec, source: 'driver', cardType: card || undefined });
  }
  return out.sort((a, b) => a.id - b.id);
}

interface ConfigFile {
  devices?: (string | ({ id?: number; arch: string } & Partial<ArchSpec>))[] | string;
  arch?: Record<string, Partial<ArchSpec>>;
}

const CAPACITY_FIELDS = ['dramChannels', 'dramPerChannel', 'l1PerCore', 'workerCores'] as const;

/** A config file is user input: ids must fit the protocol's device range, capacities be counts. */
function checkConfigDevices(
  list: DeviceInfo[],
  overrides: Record<string, Partial<ArchSpec>>,
  path: string,
): void {
  const seen = new Set<number>();
  for (const d of list) {
    if (!Number.isInteger(d.id) || d.id < 0 || d.id > MAX_DEVICE_ID)
      throw new DeviceError(
        `device config ${path}: device id ${JSON.stringify(d.id)} ` +
          `is not an integer from 0 to ${MAX_DEVICE_ID}`,
      );
    if (seen.has(d.id))
      throw new DeviceError(`device config ${path}: device id ${d.id} is declared twice`);
    seen.add(d.id);
  }
  const specs: [string, Partial<ArchSpec>][] = [
    ...list.map((d) => [`device ${d.id}`, d.spec] as [string, Partial<ArchSpec>]),
    ...Object.entries(overrides),
  ];
  for (const [what, spec] of specs) {
    for (const f of CAPACITY_FIELDS) {
      const v = spec[f];
      if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0))
        throw new DeviceError(
          `device config ${path}: ${what}: ${f} must be a whole number ≥ 0, ` +
            `not ${JSON.stringify(v)}`,
        );
    }
  }
}

export class DeviceRegistry {
  private byId = new Map<number, DeviceInfo>();

  constructor(devices: DeviceInfo[] = []) {
    for (const d of devices) this.byId.set(d.id, d);
  }

  /** Builds the registry: explicit declaration > config file > driver discovery. */
  static resolve(opts: {
    devices?: string;
    configPath?: string;
    sysfsRoot?: string;
  }): DeviceRegistry {
    let overrides: Record<string, Partial<ArchSpec>> = {};
    let list: DeviceInfo[] = [];
    if (opts.configPath) {
      let cfg: ConfigFile;
      try {
        cfg = JSON.parse(readFileSync(opts.configPath, 'utf8')) as ConfigFile;
      } catch (e) {
        throw new DeviceError(
          `cannot read device config ${opts.configPath}: ${(e as Error).message}`,
        );
      }
      overrides = cfg.arch ?? {};
      if (typeof cfg.devices === 'string') {
        list = parseDeviceSpec(cfg.devices).map((spec, id) => ({ id, spec, source: 'config' }));
      } else if (Array.isArray(cfg.devices)) {
        list = cfg.devices.map((d, i) => {
          const o = typeof d === 'string' ? { arch: d } : d;
          const base = lookupArch(o.arch);
          if (!base)
            throw new DeviceError(`device config ${opts.configPath}: unknown arch '${o.arch}'`);
          const {
            id,
            arch: _a,
            ...fields
          } = o as { id?: number; arch: string } & Partial<ArchSpec>;
          return { id: id ?? i, spec: { ...base, ...fields }, source: 'config' as const };
        });
      }
    }
    if (opts.devices)
      list = parseDeviceSpec(opts.devices).map((spec, id) => ({ id, spec, source: 'declared' }));
    else if (opts.configPath) checkConfigDevices(list, overrides, opts.configPath);
    if (list.length === 0) list = discoverDriverDevices(opts.sysfsRoot);
    for (const d of list) {
      const key = Object.keys(ARCH_TABLE).find((k) => ARCH_TABLE[k].arch === d.spec.arch);
      const o = key ? (overrides[key] ?? overrides[d.spec.name]) : undefined;
      if (o) d.spec = { ...d.spec, ...o };
    }
    return new DeviceRegistry(list);
  }

  get(id: number): DeviceInfo | undefined {
    return this.byId.get(id);
  }
  get size(): number {
    return this.byId.size;
  }
  ids(): number[] {
    return [...this.byId.keys()].sort((a, b) => a - b);
  }
  list(): DeviceInfo[] {
    return this.ids().map((id) => this.byId.get(id)!);
  }
}
