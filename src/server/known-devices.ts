// The devices the server knows of: the declared ones plus any that reported without being
// declared, in order. Replies, stats, metrics and the control API all list these.
import type { DeviceRegistry } from '../devices/registry.js';
import type { Tracker } from '../state/tracker.js';

export function knownDeviceIds(devices: DeviceRegistry, tracker: Tracker): number[] {
  const ids = new Set(devices.ids());
  for (let d = 0; d <= tracker.maxDeviceSeen; d++) if (tracker.usageSeen(d)) ids.add(d);
  return [...ids].sort((a, b) => a - b);
}

/** "2x Wormhole_B0, 1x Blackhole": the declared devices, for the start-up line. */
export function summarizeDevices(reg: DeviceRegistry): string {
  const counts = new Map<string, number>();
  for (const d of reg.list()) counts.set(d.spec.name, (counts.get(d.spec.name) ?? 0) + 1);
  return [...counts].map(([n, c]) => `${c}x ${n}`).join(', ');
}
