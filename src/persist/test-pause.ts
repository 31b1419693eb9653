// A test-only hook (test/fault-injection.test.ts): with TTALLOC_TEST_PAUSE=<point> in the
// environment, the thread that reaches that point of a snapshot write leaves a file
// `paused-<point>` in the state directory and stops there for good, so that a test can kill the
// server at exactly that moment. Unset (always, outside that test) it costs one comparison per
// snapshot write. Points: 'snapshot-mid-write' (the temporary file holds part of the rows),
// 'snapshot-before-cleanup' (the new snapshot is in place, the segments it covers not yet deleted).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const TEST_PAUSE_ENV = 'TTALLOC_TEST_PAUSE';

export type PausePoint = 'snapshot-mid-write' | 'snapshot-before-cleanup';

export function testPause(point: PausePoint, dir: string): void {
  if (process.env[TEST_PAUSE_ENV] !== point) return;
  writeFileSync(join(dir, `paused-${point}`), `${process.pid}\n`);
  // Blocks this thread only (the compactor's worker): the server's loop goes on.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
}
