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
//    the frame check's business, as it always was).
//  - Exactly 144 bytes with zeros at 72, 112 and 136 still decide 144 at once, as before 648
//    existed: the current runtime's lone ALLOC or QUERY is served without waiting. The one case
//    misread is a 648-byte frame with neither name nor trace whose first 144 bytes arrive alone;
//    a real socket does not do that (the kernel hands a reader with room a 648-byte send() whole,
//    and the server reads 64 KiB at a time). A 144-byte stream cut shorter than 144 is decided
//    once more bytes come (at 137 or 145 instead of 113): its frame is not whole yet anyway.
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
    if (len > 136 && isText(b[136])) return FRAME_NOTES;
    if (len > 144) return b[144] === 0 ? FRAME_NOTES : 144;
    // Exactly one 144-byte frame: the current runtime's, decided at once as before 648 existed.
    if (len === 144) return 144;
  }
  if (!settled) return UNDECIDED;
  if (len === 72 || len === 112 || len === 144 || len === FRAME_NOTES) return len;
  return UNDECIDED;
}

/** A length at which a stream may be one whole frame of some size (the quiet wait's trigger). */
export function isFrameLength(len: number): boolean {
  return len === 72 || len === 112 || len === 144 || len === FRAME_NOTES;
}
