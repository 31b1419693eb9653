// The two strings of a 648-byte frame (docs/protocol.md): `char buffer_name[64]` at 72 and
// `char stack_trace[512]` at 136, each NUL-terminated and zero-filled. Only ALLOCs of Python code
// filled them; every other frame leaves them empty. Reading them allocates a string (only for
// 648-byte ALLOCs, a generation that sends a few allocations a second, never for 72/112/144).
import { Off648 } from './constants.js';

const utf8 = new TextDecoder('utf-8', { fatal: false });
const encoder = new TextEncoder();

/** The NUL-terminated string of at most `max` bytes at `off` of `b` ('' when empty). */
export function readCString(b: Uint8Array, off: number, max: number): string {
  if (b[off] === 0) return '';
  let end = off;
  const limit = off + max;
  while (end < limit && b[end] !== 0) end++;
  return utf8.decode(b.subarray(off, end));
}

/** The frame's buffer name ('' when absent). */
export function frameName(b: Uint8Array, off: number): string {
  return readCString(b, off + Off648.name, Off648.nameBytes);
}

/** The frame's stack trace ('' when absent). */
export function frameTrace(b: Uint8Array, off: number): string {
  return readCString(b, off + Off648.trace, Off648.traceBytes);
}

/**
 * Writes `s` at `off` of `b` as a C string of at most `max` bytes with its NUL (longer strings are
 * cut at a character boundary; the rest of the field is left as it is: zero in a fresh frame).
 */
export function writeCString(b: Uint8Array, off: number, max: number, s: string): void {
  const { written } = encoder.encodeInto(s, b.subarray(off, off + max - 1));
  b[off + written] = 0;
}

/** Writes a 648-byte frame's name and trace at frame offset `off` (zeroed before). */
export function writeFrameNotes(b: Uint8Array, off: number, name: string, trace: string): void {
  if (name) writeCString(b, off + Off648.name, Off648.nameBytes, name);
  if (trace) writeCString(b, off + Off648.trace, Off648.traceBytes, trace);
}
