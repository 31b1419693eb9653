// Telling a connection's frame size from its first bytes (docs/protocol.md). Request bytes 40… are
// zero in the 72-, 112- and 144-byte layouts, so the next frame's type byte (1–12) shows where a
// frame ends: at offset 72 a 72-byte stream has it where 112/144-byte streams have zero; likewise
// at offset 112 between 112 and 144.
//
// The 648-byte variant (the 72-byte fields, then `char buffer_name[64]` at 72 and
// `char stack_trace[512]` at 136, NUL-terminated and zero-filled) is told apart the same way, by
// what lies where the other sizes put a type byte or a zero:
//  - offset 72 holds the name's first character. A name is text: printable ASCII, or a UTF-8
//    lead byte followed by a continuation byte; never a type byte (1–12) and never the zero of a
//    112/144-byte request, so it decides 648 at once. Anything else there is not frames (as
//    before: a 72-byte stream whose second frame has a code such as 200 is no stream of ours).
//  - An empty name (FREE and every non-ALLOC frame, or an ALLOC without a name) leaves zeros at 72
//    and at 112 (inside the name), exactly like a 144-byte request. Offsets 136 and 144 tell them
//    apart. A 144-byte request has zero at 136 (ringbuffer_num_programs) and the next frame's code
//    at 144, never zero. A 648-byte frame has the trace there: text at 136 (and text or its NUL at
//    144), or, with no trace, zeros at both. So: text at 136, or zero at 144, decides 648; a zero
//    at 136 with a non-zero byte at 144 decides 144, whatever that byte is (a bad code is then
//    the frame check's business, as it always was). A 144-byte stream is decided at 145 bytes
//    instead of 113.
//  - One exact frame and then silence (a client waiting for its reply) is decided by its length
//    once the stream is quiet (frame-reader.ts): 144 is now such a length too, because 144 bytes
//    of zeros after 72 may be the start of a 648-byte frame with an empty name. A lone 144-byte
//    QUERY therefore waits the quiet time (5 ms by default) once per connection, as 72/112-byte
//    ones always have; any other lone 144-byte frame has its head applied at once (it means the
//    same in both sizes), so a runtime client's first ALLOC still counts without delay.
//  - The wire cannot say more: a 648-byte frame whose first 145 bytes were all that arrived, with
//    an empty name, a trace of at most eight characters, is still 648 by the zero at 144.

import { FRAME_NOTES } from './constants.js';

export const UNDECIDED = 0;
export const NOT_FRAMES = -1;

export function isRequestType(t: number): boolean {
  return t >= 1 && t <= 12;
}

/** Printable ASCII, or a UTF-8 lead byte (its continuation checked by nameStarts). */
function isText(c: number): boolean {
  return (c >= 0x20 && c <= 0x7e) || (c >= 0xc2 && c <= 0xf4);
}

/** Does a 648-byte frame's name start at 72 (text; a UTF-8 lead byte with its continuation)? */
function nameStarts(b: Uint8Array, len: number): boolean {
  const c = b[72];
  if (c >= 0x20 && c <= 0x7e) return true;
  return c >= 0xc2 && c <= 0xf4 && (len <= 73 || (b[73] & 0xc0) === 0x80);
}

/**
 * Decides the frame size from the first `len` bytes of a stream.
 * `settled` means no more bytes are coming for now (the peer closed, or went quiet), so an exact
 * single-frame length decides. Returns 72/112/144/648, UNDECIDED, or NOT_FRAMES.
 */
export function detectFrameSize(b: Uint8Array, len: number, settled: boolean): number {
  if (len === 0) return UNDECIDED;
  if (!isRequestType(b[0])) return NOT_FRAMES;
  for (let i = 1; i < Math.min(len, 4); i++) if (b[i] !== 0) return NOT_FRAMES;
  if (len > 72) {
    const at72 = b[72];
    if (at72 !== 0) return isRequestType(at72) ? 72 : nameStarts(b, len) ? FRAME_NOTES : NOT_FRAMES;
    if (len > 112 && b[112] !== 0) return isRequestType(b[112]) ? 112 : NOT_FRAMES;
    if (len > 144) return isText(b[136]) || b[144] === 0 ? FRAME_NOTES : 144;
  }
  if (!settled) return UNDECIDED;
  if (len === 72 || len === 112 || len === 144 || len === FRAME_NOTES) return len;
  return UNDECIDED;
}

/** A length at which a stream may be one whole frame of some size (the quiet wait's trigger). */
export function isFrameLength(len: number): boolean {
  return len === 72 || len === 112 || len === 144 || len === FRAME_NOTES;
}
