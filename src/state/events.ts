// What each accepted message does to the state: the one place where the semantics of ALLOC, FREE,
// CB_ALLOC/CB_FREE and KERNEL_LOAD/KERNEL_UNLOAD live (reference counts, repeats that add no
// memory, unknown frees). Live ingest, journal replay and the model tests all apply events here,
// so a restart replays exactly what the live server did.
import { MsgType, TWO32 } from '../protocol/constants.js';
import { ALLOC_NEW, RELEASE_REMOVED } from './object-table.js';
import { KIND_CB, KIND_KERNEL, type Tracker } from './tracker.js';

/** What an event did to the buffer table (the journal drops a created-then-removed pair). */
export const EFFECT_OTHER = 0;
export const EFFECT_CREATED = 1;
export const EFFECT_REMOVED = 2;

/**
 * One accepted event's fields, as the state uses them. Callers fill one instance per connection
 * (or per replay) and reuse it: applying an event allocates nothing.
 */
export class StateEvent {
  /** MsgType.ALLOC, FREE, CB_ALLOC, CB_FREE, KERNEL_LOAD or KERNEL_UNLOAD. */
  code = 0;
  /** Buffer type (ALLOC) or kernel type (KERNEL_LOAD); 0 for every other code. */
  sub = 0;
  device = 0;
  /** The PID that owns what the event creates (the kernel's, or the claimed one when trusted). */
  owner = 0;
  /** The 64-bit buffer address / CB address / kernel id as two 32-bit halves (signed or not). */
  lo = 0;
  hi = 0;
  /** Bytes, as two 32-bit halves (ALLOC, CB_ALLOC and KERNEL_LOAD; sizes are < 2^48). */
  sizeLo = 0;
  sizeHi = 0;
  /**
   * Allocation time, ms since 1970 (ALLOC, CB_ALLOC, KERNEL_LOAD): Tracker.stampOf() of the frame's
   * timestamp on ingest, the recorded value on replay.
   */
  bornMs = 0;

  get size(): number {
    return (this.sizeLo >>> 0) + (this.sizeHi >>> 0) * TWO32;
  }
}

/** Where accepted events are persisted (the state directory's journal). */
export interface EventJournal {
  /** `effect` is what applyEvent() returned for `ev`. */
  record(ev: StateEvent, effect: number): void;
  /** The buffer `ev` (an ALLOC) just created has this name and stack trace (648-byte clients). */
  note?(ev: StateEvent, name: string, trace: string): void;
}

/** Does `code` change the state (as opposed to a query, a dump request or a reply)? */
export function isStateEvent(code: number): boolean {
  return (
    code === MsgType.ALLOC ||
    code === MsgType.FREE ||
    (code >= MsgType.CB_ALLOC && code <= MsgType.KERNEL_UNLOAD)
  );
}

/**
 * ALLOC: a new buffer, or one more reference to a live one of the same key. A new buffer at an
 * address another live process holds also flags that one shared: not a clean pair the journal may
 * drop with its FREE (the flag on the other buffer would be lost).
 */
export function applyAlloc(tr: Tracker, ev: StateEvent): number {
  const r = tr.alloc(ev);
  return r === ALLOC_NEW && tr.buffers.conflictEntry < 0 ? EFFECT_CREATED : EFFECT_OTHER;
}

/** FREE: drops a reference; the last one removes the buffer; an unknown buffer is counted. */
export function applyFree(tr: Tracker, ev: StateEvent): number {
  const r = tr.free(ev);
  return r === RELEASE_REMOVED ? EFFECT_REMOVED : EFFECT_OTHER;
}

/**
 * Applies one state event (isStateEvent(ev.code)) and journals it with its effect. Returns the
 * effect.
 */
export function applyEvent(tr: Tracker, ev: StateEvent, journal: EventJournal | null): number {
  let effect = EFFECT_OTHER;
  switch (ev.code) {
    case MsgType.ALLOC:
      effect = applyAlloc(tr, ev);
      break;
    case MsgType.FREE:
      effect = applyFree(tr, ev);
      break;
    case MsgType.CB_ALLOC:
      // A CB_ALLOC repeated while the CB lives refreshes it and adds no memory.
      tr.loadObject(KIND_CB, ev);
      break;
    case MsgType.KERNEL_LOAD:
      // Sent on every dispatch of a cached kernel: only the first one adds memory.
      tr.loadObject(KIND_KERNEL, ev);
      break;
    case MsgType.CB_FREE:
      tr.unloadObject(KIND_CB, ev);
      break;
    case MsgType.KERNEL_UNLOAD:
      tr.unloadObject(KIND_KERNEL, ev);
      break;
    default:
      throw new Error(`applyEvent: code ${ev.code} is not a state event`);
  }
  if (journal !== null) journal.record(ev, effect);
  return effect;
}
