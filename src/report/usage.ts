// Usage figures the views show, derived from the per-type figures of a reply by the protocol's
// rules (USAGE_COUNTER_TYPES: SYSTEM_MEMORY counts as L1_SMALL), so no view folds types itself.
import {
  BUFFER_TYPE_NAMES,
  NUM_BUFFER_TYPES,
  counterBytes,
  type UsageCounter,
} from '../protocol/constants.js';
import type { DeviceBufferCounts } from './types.js';

type PerType = DeviceBufferCounts;

/**
 * What a chart sample holds per device, in this order (bytes): the buffer types by code, then CBs
 * and kernels (the tracker's per-device kinds).
 */
export const SAMPLE_KINDS: readonly string[] = [...BUFFER_TYPE_NAMES, 'CB', 'KERNEL'];
/** Index of a sample's CB and kernel bytes. */
export const SAMPLE_CB = NUM_BUFFER_TYPES;
export const SAMPLE_KERNEL = NUM_BUFFER_TYPES + 1;

/** A usage counter (DRAM, L1, L1_SMALL, TRACE) from figures per buffer type name. */
export function usage(perType: PerType, counter: UsageCounter): number {
  return counterBytes(counter, (t) => perType[BUFFER_TYPE_NAMES[t] as keyof PerType]);
}

/** The sum over every buffer type, from a function of the type code. */
export function sumOverTypes(ofType: (type: number) => number): number {
  let sum = 0;
  for (let t = 0; t < NUM_BUFFER_TYPES; t++) sum += ofType(t);
  return sum;
}

/** The sum over every buffer type, from figures per type name. */
export function totalOverTypes(perType: PerType): number {
  return sumOverTypes((t) => perType[BUFFER_TYPE_NAMES[t] as keyof PerType]);
}
