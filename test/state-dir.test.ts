// The state directory (src/persist/state-dir.ts): the lock and its owner's liveness, how the
// previous server stopped, the default place; and that a clean stop is claimed only when the
// journal's last segment reached the disk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs, { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  StateDir,
  StateDirError,
  defaultStateDir,
  segmentName,
  listSegments,
} from '../src/persist/state-dir.js';
import { StateStore } from '../src/persist/state-store.js';
import { Tracker } from '../src/state/tracker.js';
import { Checkpoints } from '../src/state/marks.js';

const fresh = () => join(mkdtempSync(join(tmpdir(), 'ttalloc-statedir-')), 'state');

test('a state directory is created, locked, and tells how the server before it stopped', () => {
  const path = fresh();
  const d = new StateDir(path);
  assert.equal(d.acquire(), 'none');
  assert.equal(readFileSync(join(path, 'lock'), 'utf8'), `${process.pid}\n`);
  writeFileSync(join(path, segmentName(1)), '');
  d.release(false);
  assert.equal(existsSync(join(path, 'lock')), false, 'the lock is released');
  assert.equal(d.acquire(), 'crash', 'no clean marker, but a journal');
  d.release(true);
  assert.equal(d.acquire(), 'clean');
  assert.equal(existsSync(join(path, 'clean')), false, 'the marker is taken back while in use');
  assert.deepEqual(listSegments(path), [{ gen: 1, name: 'journal-00000001.bin' }]);
});

test('a lock of a live process refuses the directory; a dead owner’s lock is taken', async () => {
  const path = fresh();
  new StateDir(path).acquire();
  const owner = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
  try {
    writeFileSync(join(path, 'lock'), `${owner.pid}\n`);
    assert.throws(
      () => new StateDir(path).acquire(),
      (e: Error) =>
        e instanceof StateDirError &&
        e.message.includes(`in use by server pid ${owner.pid}; use another --state-dir`),
    );
  } finally {
    const gone = new Promise((r) => owner.once('exit', r));
    owner.kill('SIGKILL');
    await gone;
  }
  new StateDir(path).acquire();
  assert.equal(readFileSync(join(path, 'lock'), 'utf8'), `${process.pid}\n`, 'stale lock taken');
});

test('a directory that cannot be created is a StateDirError that says what to do', () => {
  const file = join(mkdtempSync(join(tmpdir(), 'ttalloc-statedir-')), 'not-a-dir');
  writeFileSync(file, '');
  assert.throws(
    () => new StateDir(join(file, 'state')).acquire(),
    (e: Error) => e instanceof StateDirError && /ENOTDIR.*--no-persist/.test(e.message),
  );
});

test('the default directory is one per socket path, under XDG_STATE_HOME', () => {
  const saved = process.env.XDG_STATE_HOME;
  process.env.XDG_STATE_HOME = '/x/state';
  try {
    assert.equal(defaultStateDir('/tmp/tt alloc.sock'), '/x/state/ttalloc/tmp_tt_alloc.sock');
    assert.equal(defaultStateDir('/'), '/x/state/ttalloc/default');
  } finally {
    if (saved === undefined) delete process.env.XDG_STATE_HOME;
    else process.env.XDG_STATE_HOME = saved;
  }
});

test('a stop whose last segment could not be synced leaves no clean marker', async () => {
  const path = fresh();
  const tr = new Tracker(0);
  const store = new StateStore({
    dir: path,
    flushIntervalMs: 1e6,
    segmentBytes: 1 << 30,
    compactBytes: 1 << 30,
    warn: () => {},
    log: () => {},
    onState: () => {},
  });
  store.open(tr, new Checkpoints(tr));
  const realFsync = fs.fsyncSync;
  fs.fsyncSync = () => {
    throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
  };
  syncBuiltinESMExports();
  try {
    await store.close();
  } finally {
    fs.fsyncSync = realFsync;
    syncBuiltinESMExports();
  }
  assert.equal(existsSync(join(path, 'clean')), false, 'not claimed clean');
  assert.equal(existsSync(join(path, 'lock')), false, 'the lock is released all the same');
});
