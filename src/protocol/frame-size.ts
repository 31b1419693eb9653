// Telling a connection's frame size from its first bytes (docs/protocol.md): request bytes 40… are
// zero, so at offset 72 a 72-byte stream has the next frame's type byte (1–12) where 112/144-byte
// streams have zero; likewise at offset 112 between 112 and 144.

export const UNDECIDED = 0;
export const NOT_FRAMES = -1;

export function isRequestType(t: number): boolean {
  return t >= 1 && t <= 12;
}

/**
 * Decides the frame size from the first `len` bytes of a stream.
 * `settled` means no more bytes are coming for now (the peer closed, or went quiet), so an exact
 * single-frame length decides. Returns 72/112/144, UNDECIDED, or NOT_FRAMES.
 */
export function detectFrameSize(b: Uint8Array, len: number, settled: boolean): number {
  if (len === 0) return UNDECIDED;
  if (!isRequestType(b[0])) return NOT_FRAMES;
  for (let i = 1; i < Math.min(len, 4); i++) if (b[i] !== 0) return NOT_FRAMES;
  if (len > 72) {
    if (b[72] !== 0) return isRequestType(b[72]) ? 72 : NOT_FRAMES;
    if (len > 112) return b[112] !== 0 ? (isRequestType(b[112]) ? 112 : NOT_FRAMES) : 144;
  }
  if (!settled) return UNDECIDED;
  if (len === 72) return 72;
  if (len === 112) return 112;
  if (len === 144) return 144;
  return UNDECIDED;
}
