// Bytes → frames for one stream, however the bytes arrive: detects the frame size from the first
// bytes (frame-size.ts), keeps a partial frame across reads, hands whole frames to a sink, and
// rejects a stream that is not frames. No sockets here: the connection pushes its reads in, and
// the tests push bytes cut at every point.
//
// Hot path: a read's whole frames go to the sink as one run over the caller's DataView (no copy,
// no object per frame or per read); only a partial frame at either end is copied.
import { MAX_FRAME, MsgType } from './constants.js';
import { detectFrameSize, isFrameLength, NOT_FRAMES, UNDECIDED } from './frame-size.js';

/** Consecutive frames with an unknown code after which the stream is judged not to be frames. */
export const MAX_CONSECUTIVE_GARBAGE = 8;

/** A stream's reading state, as a restart hands it to the new server (JSON). */
export interface ReaderState {
  frameSize: number;
  /** The partial frame held (base64). */
  pending: string;
  headApplied: boolean;
  skipPending: boolean;
  garbageRun: number;
}

/** Where whole frames go. */
export interface FrameSink {
  /**
   * The whole frames at off, off + frameSize, … below `end` of `dv` (the hot loop). Returns the
   * offset after the last frame it took (it may stop early once the stream is rejected).
   */
  frameRun(dv: DataView, off: number, end: number): number;
  /** One frame at `off` of `dv` (a frame reassembled across reads, or the early first head). */
  frame(dv: DataView, off: number): void;
  /** The stream cannot be frames: the reader stops, and the sink closes it, saying why. */
  reject(reason: string): void;
}

/** The timer the quiet detection waits with (injected by tests; setTimeout by default). */
export interface QuietTimer {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const NODE_TIMER: QuietTimer = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export interface FrameReaderOptions {
  /** 72, 112, 144 or 648 to skip detection; 0 (default) detects. */
  frameSize?: number;
  /** Detection wait after the stream goes quiet on an exact single-frame length. */
  quietMs: number;
  timer?: QuietTimer;
}

export class FrameReader {
  /** 72, 112, 144 or 648; 0 while undecided. */
  frameSize: number;
  private readonly pending = new Uint8Array(MAX_FRAME * 2);
  private readonly pendingDv = new DataView(this.pending.buffer);
  private pendingLen = 0;
  private garbageRun = 0;
  private quietTimer: unknown = null;
  /** The first frame was applied from its 40-byte head while the size was still unknown. */
  private headApplied = false;
  /** The partial frame in `pending` is that already-applied first frame: drop it when complete. */
  private skipPending = false;
  private stopped = false;
  private readonly quietMs: number;
  private readonly timer: QuietTimer;

  constructor(
    private readonly sink: FrameSink,
    opts: FrameReaderOptions,
  ) {
    this.frameSize = opts.frameSize ?? 0;
    this.quietMs = opts.quietMs;
    this.timer = opts.timer ?? NODE_TIMER;
  }

  /**
   * Bytes of a partial frame held, or of an undecided head that cannot be whole frames. An
   * undecided head of an exact frame length (one lone 144-byte ALLOC, say, then silence) may be a
   * whole frame: that is no stream stopped mid-frame, and a client idling so is not closed.
   */
  get partialBytes(): number {
    if (this.frameSize === 0 && isFrameLength(this.pendingLen)) return 0;
    return this.pendingLen;
  }

  /**
   * The first `n` bytes of `chunk` arrived. `view`, when given, is a DataView over all of `chunk`
   * (the connection's one read buffer has one; else one is made per push that holds frames).
   */
  push(chunk: Uint8Array, view: DataView | null, n: number): void {
    if (this.frameSize === 0) this.detect(chunk.subarray(0, n), false);
    else this.ingest(chunk, view, n);
  }

  /**
   * The stream ended: an undecided head is decided as it stands. Returns the bytes of a partial
   * frame left over (dropped), 0 if none.
   */
  end(): number {
    if (this.frameSize === 0 && this.pendingLen > 0) this.detect(null, true);
    if (this.stopped) return 0;
    const left = this.pendingLen;
    this.pendingLen = 0;
    return left;
  }

  /** No more frames are wanted (the stream is being closed): stops the reader and its timer. */
  stop(): void {
    this.stopped = true;
    this.clearTimer();
  }

  /**
   * What a restart's new server needs to go on with this stream exactly where this one stopped
   * (server/takeover-old.ts): the size, the partial frame's bytes and the detection flags. The
   * detection timer is cleared (the new server arms its own).
   */
  handOver(): ReaderState {
    this.clearTimer();
    return {
      frameSize: this.frameSize,
      pending: Buffer.from(this.pending.subarray(0, this.pendingLen)).toString('base64'),
      headApplied: this.headApplied,
      skipPending: this.skipPending,
      garbageRun: this.garbageRun,
    };
  }

  /** Takes over a stream another server's reader handed over (nothing read yet here). */
  adopt(s: ReaderState): void {
    this.frameSize = s.frameSize;
    const bytes = Buffer.from(s.pending, 'base64');
    this.pending.set(bytes.subarray(0, this.pending.length));
    this.pendingLen = Math.min(bytes.length, this.pending.length);
    this.headApplied = s.headApplied;
    this.skipPending = s.skipPending;
    this.garbageRun = s.garbageRun;
    // An undecided head that was waiting out the quiet time waits again.
    if (this.frameSize === 0 && this.pendingLen > 0) this.detect(null, false);
  }

  /** The sink found a frame with an unknown code: too many in a row reject the stream. */
  unknownFrame(): void {
    if (++this.garbageRun < MAX_CONSECUTIVE_GARBAGE) return;
    this.reject(
      `${this.garbageRun} consecutive frames with unknown codes: ` +
        `the stream is not ${this.frameSize}-byte frames`,
    );
  }

  /** The sink accepted a frame: the run of unknown codes is over. */
  accepted(): void {
    this.garbageRun = 0;
  }

  private reject(reason: string): void {
    this.stop();
    this.sink.reject(reason);
  }

  private clearTimer(): void {
    if (this.quietTimer === null) return;
    this.timer.clear(this.quietTimer);
    this.quietTimer = null;
  }

  /**
   * Buffers the first bytes until the frame size is known, then replays them. `settled` means no
   * more bytes are coming for now (the peer closed, or went quiet).
   */
  private detect(chunk: Uint8Array | null, settled: boolean): void {
    if (chunk) {
      const room = this.pending.length - this.pendingLen;
      const n = Math.min(room, chunk.length);
      this.pending.set(chunk.subarray(0, n), this.pendingLen);
      this.pendingLen += n;
      if (n < chunk.length) {
        // Detection is always decided within 145 bytes, so the buffer cannot overflow undecided.
        const size = detectFrameSize(this.pending, this.pendingLen, settled);
        if (size > 0) return this.decided(size, chunk.subarray(n));
      }
    }
    const size = detectFrameSize(this.pending, this.pendingLen, settled);
    if (size === NOT_FRAMES) return this.reject(notFramesReason(this.pending, this.pendingLen));
    if (size !== UNDECIDED) return this.decided(size, null);
    const len = this.pendingLen;
    if (!settled && isFrameLength(len)) {
      // An exact single-frame length: a client waiting for a reply, or one that paused.
      this.clearTimer();
      this.quietTimer = this.timer.set(() => {
        this.quietTimer = null;
        this.quiet();
      }, this.quietMs);
    }
  }

  /**
   * The stream went quiet on an exact 72, 112, 144 or 648 bytes: one whole frame, or the start of
   * a longer one. Only a client waiting for a reply must be answered now, so its length decides.
   * Any other frame's 40-byte head means the same in every size: apply it now and let later bytes
   * decide (a 112/144-byte frame that paused after 72 bytes is then not misread as 72-byte frames;
   * a 648-byte ALLOC applied so loses its name and trace, which only the whole frame carries).
   */
  private quiet(): void {
    if (this.frameSize !== 0 || this.stopped) return;
    const t = this.pending[0];
    if (t === MsgType.QUERY || t === MsgType.DEVICE_INFO_QUERY) return this.detect(null, true);
    this.applyHead();
  }

  /** Applies the undecided first frame from its 40-byte head, once. */
  private applyHead(): void {
    if (this.headApplied) return;
    this.headApplied = true;
    this.sink.frame(this.pendingDv, 0);
  }

  private decided(size: number, rest: Uint8Array | null): void {
    this.clearTimer();
    this.frameSize = size;
    // A copy, once per stream: the pending buffer then holds the partial frame after the head.
    let head = this.pending.slice(0, this.pendingLen);
    this.pendingLen = 0;
    if (this.headApplied) {
      // never apply that first frame twice
      if (head.length >= size) head = head.subarray(size);
      else {
        this.pending.set(head);
        this.pendingLen = head.length;
        this.skipPending = true;
        head = head.subarray(head.length);
      }
    }
    this.ingest(head, null, head.length);
    if (rest && rest.length) this.ingest(rest, null, rest.length);
  }

  /** Frames the first `len` bytes of `chunk`, after any partial frame held from before. */
  private ingest(chunk: Uint8Array, view: DataView | null, len: number): void {
    const fs = this.frameSize;
    let off = 0;
    if (this.pendingLen > 0) {
      const need = fs - this.pendingLen;
      if (len < need) {
        this.pending.set(chunk.subarray(0, len), this.pendingLen);
        this.pendingLen += len;
        return;
      }
      this.pending.set(chunk.subarray(0, need), this.pendingLen);
      this.pendingLen = 0;
      if (this.skipPending) this.skipPending = false;
      else this.sink.frame(this.pendingDv, 0);
      off = need;
    }
    if (len - off >= fs && !this.stopped) {
      const dv = view ?? new DataView(chunk.buffer, chunk.byteOffset, len);
      off = this.sink.frameRun(dv, off, len);
    }
    if (off < len && !this.stopped) {
      this.pending.set(chunk.subarray(off, len), 0);
      this.pendingLen = len - off;
    }
  }
}

/** Why a stream's first bytes are not frames, with those bytes in hex and as text. */
function notFramesReason(b: Uint8Array, len: number): string {
  const head = Buffer.from(b.subarray(0, Math.min(len, 16)));
  const text = JSON.stringify(head.toString('latin1').replace(/[^\x20-\x7e]/g, '.'));
  return (
    `stream is not allocation-protocol frames (first bytes ${head.toString('hex')}, ` + `${text})`
  );
}
