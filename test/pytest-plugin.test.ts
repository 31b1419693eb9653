// The pytest plugin (examples/pytest/ttalloc_pytest.py) on small generated suites, run by the
// real `python3 -m pytest` against a real server: a clean suite passes; a leaking test is FAILED
// in its call phase with the buffers named; no server or tracking off: the checks are skipped
// with one warning and the tests pass on their own; every per-test mark is deleted.
//
// pytest comes with the machine image (pip, in pyenv's Python 3.11; Debian's python3 has none): the
// first of $PYTHON, python3 and pyenv's python3 that has it runs the suites. With none, the file
// skips, except on CI, where a missing pytest fails instead of leaving the plugin untested.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, tempDir, type TestServer } from './helpers/server.js';
import type { MarksResponse } from '../src/report/types.js';

const CANDIDATES = [
  process.env.PYTHON,
  'python3',
  join(process.env.PYENV_ROOT || join(homedir(), '.pyenv'), 'shims', 'python3'),
].filter((c): c is string => !!c);

/**
 * The first interpreter with pytest, as itself (sys.executable), not a version manager's shim
 * (~0.5 s less a run); null when none has it.
 */
function findPython(): string | null {
  const probe = 'import sys, pytest; print(sys.executable)';
  for (const cmd of CANDIDATES) {
    const r = spawnSync(cmd, ['-c', probe], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  }
  return null;
}
const FOUND = findPython();
const PYTHON = FOUND ?? 'python3';
const SKIP =
  FOUND || process.env.CI ? false : `no pytest in ${CANDIDATES.join(', ')} (python3 -m pytest)`;
const PLUGIN_DIR = fileURLToPath(new URL('../examples/pytest/', import.meta.url));

const version = spawnSync(PYTHON, ['-m', 'pytest', '--version'], { encoding: 'utf8' });

/** A data-socket client in Python: 144-byte ALLOC and FREE frames (docs/protocol.md). */
const DEVMEM = String.raw`
import os, socket, struct, time
_conn = None

def _send(code, device, size, btype, address, ts):
    global _conn
    if _conn is None:
        _conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        _conn.connect(os.environ["TT_ALLOC_SERVER_SOCKET"])
    head = struct.pack("<B3xiQB3xiQQ", code, device, size, btype, os.getpid(), address, ts)
    _conn.sendall(head + bytes(144 - len(head)))

def alloc(device, address, size, btype=0):
    _send(1, device, size, btype, address, time.time_ns())

def free(device, address):
    _send(2, device, 0, 0, address, 0)
`;

const CLEAN_TESTS = String.raw`
import pytest, devmem

def test_alloc_and_free():
    for i in range(10):
        devmem.alloc(0, 0x10000 + i * 0x1000, 4096)
    for i in range(10):
        devmem.free(0, 0x10000 + i * 0x1000)

@pytest.mark.parametrize("shape", ["1 x 32", "b[2]", "a/b:c"])
def test_parametrized(shape):
    devmem.alloc(1, 0x20000, 2048, 1)
    devmem.free(1, 0x20000)

def test_nothing():
    pass
`;

const LEAKY_TESTS = String.raw`
import devmem

def test_before():
    pass

def test_leaky():
    devmem.alloc(0, 0x7f000000, 36864)
    devmem.alloc(1, 0x7f009000, 36864, 1)

def test_fails_and_leaks():
    devmem.alloc(0, 0x7f100000, 1024)
    assert 1 == 2, "its own failure"

def test_after():
    devmem.alloc(0, 0x7f200000, 4096)
    devmem.free(0, 0x7f200000)
`;

interface Run {
  code: number | null;
  out: string;
}

/** Writes a suite (the example's conftest.py, devmem.py, the test files) to a temp dir. */
function suite(files: Record<string, string>): string {
  const dir = join(tempDir('ttalloc-pytest-'), 'suite');
  mkdirSync(dir);
  copyFileSync(join(PLUGIN_DIR, 'conftest.py'), join(dir, 'conftest.py'));
  writeFileSync(join(dir, 'devmem.py'), DEVMEM);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

function pytest(dir: string, env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(PYTHON, ['-m', 'pytest', '-rA', '-p', 'no:cacheprovider'], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        TT_ALLOC_TRACKING_ENABLED: undefined,
        TTALLOC_SUPPRESSIONS: undefined,
        TTALLOC_MAX_BYTES: undefined,
        PYTHONPATH: PLUGIN_DIR,
        PYTHONDONTWRITEBYTECODE: '1',
        PYTEST_DISABLE_PLUGIN_AUTOLOAD: '1', // only this plugin: the image's others stay out
        ...env,
      },
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('exit', (code) => {
      rmSync(join(dir, '..'), { recursive: true, force: true });
      resolve({ code, out });
    });
  });
}

async function marks(srv: TestServer): Promise<string[]> {
  const r = await srv.client.json<MarksResponse>('GET', '/v1/marks');
  return r.marks.map((m) => m.name);
}

const tracked = (srv: TestServer) => ({
  TT_ALLOC_TRACKING_ENABLED: '1',
  TT_ALLOC_SERVER_SOCKET: srv.socket,
});

test('pytest is there to run the plugin (python -m pytest --version)', { skip: SKIP }, () => {
  assert.equal(version.status, 0, `${PYTHON} -m pytest --version: ${version.stderr}`);
  assert.match(version.stdout + version.stderr, /pytest \d+/);
});

test('a clean suite passes; a mark per test, each deleted after it', { skip: SKIP }, async () => {
  const srv = await startServer(['--reap-interval', '0']);
  try {
    const r = await pytest(suite({ 'test_clean.py': CLEAN_TESTS }), tracked(srv));
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /ttalloc: leak checks on \(server pid \d+ on .*alloc\.sock\)/);
    assert.match(r.out, /= 5 passed in /);
    assert.doesNotMatch(r.out, /warning|FAILED|ERROR/i);
    // Five marks were set (one per test, for the pytest process) and all are gone again.
    const set = srv.output().match(/mark 'pytest-\d+-test_clean\.py::[^']*' for pid \d+ set/g);
    assert.equal(set?.length, 5, srv.output());
    assert.ok(set.some((l) => l.includes('test_parametrized_b_2__')));
    assert.deepEqual(await marks(srv), []);
  } finally {
    await srv.stop();
  }
});

test(
  'a leaking test is FAILED in its call phase with its buffers; the others pass',
  { skip: SKIP },
  async () => {
    const srv = await startServer(['--reap-interval', '0']);
    try {
      const r = await pytest(suite({ 'test_leaky.py': LEAKY_TESTS }), tracked(srv));
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, /= 2 failed, 2 passed in /);
      assert.doesNotMatch(r.out, /\berror\b/i, 'a leak is a failure, not an error at teardown');
      assert.match(r.out, /^FAILED test_leaky\.py::test_leaky - Failed: ttalloc: device memory/m);
      assert.match(r.out, /^PASSED test_leaky\.py::test_after$/m);
      assert.match(r.out, /^PASSED test_leaky\.py::test_before$/m);
      // The failure text lists both buffers, owned by the pytest process the mark was set for.
      const text = /_+ test_leaky _+\n([\s\S]*?)\n_+ test_fails_and_leaks/.exec(r.out)?.[1] ?? '';
      assert.match(text, /left behind by this test: 2 buffer\(s\), 73728 byte\(s\) \(budget 0\)/);
      const pid = /mark 'pytest-(\d+)-test_leaky\.py::test_leaky'/.exec(text)?.[1];
      assert.ok(pid, text);
      assert.match(text, new RegExp(`device 0, DRAM, 36864 B, at 0x7f000000, pid ${pid}, `));
      assert.match(text, new RegExp(`device 1, L1, 36864 B, at 0x7f009000, pid ${pid}, `));
      // A test failing on its own keeps its own error; the leak is said beside it.
      assert.match(
        r.out,
        /^FAILED test_leaky\.py::test_fails_and_leaks - AssertionError: its own/m,
      );
      assert.match(r.out, /-+ ttalloc: device memory left behind -+\n.*1 buffer\(s\), 1024 byte/);
      assert.deepEqual(await marks(srv), []);
    } finally {
      await srv.stop();
    }
  },
);

test('suppression rules (TTALLOC_SUPPRESSIONS) apply; a bad file stops the run', async (t) => {
  if (SKIP) return t.skip(SKIP);
  const srv = await startServer(['--reap-interval', '0']);
  const rules = join(srv.dir, 'rules.txt');
  try {
    writeFileSync(rules, '# the leaky test keeps these on purpose\ntype=DRAM min_size=1024\n');
    const r = await pytest(suite({ 'test_leaky.py': LEAKY_TESTS }), {
      ...tracked(srv),
      TTALLOC_SUPPRESSIONS: rules,
    });
    // test_leaky still leaks its L1 buffer; the DRAM one is suppressed.
    assert.match(
      r.out,
      /left behind by this test: 1 buffer\(s\), 36864 byte\(s\) \(budget 0\) \(1 suppressed\)/,
    );
    assert.doesNotMatch(r.out, /at 0x7f000000/);
    writeFileSync(rules, 'colour=blue\n');
    const bad = await pytest(suite({ 'test_clean.py': CLEAN_TESTS }), {
      ...tracked(srv),
      TTALLOC_SUPPRESSIONS: rules,
    });
    assert.equal(bad.code, 4, bad.out); // pytest's usage error
    assert.match(bad.out, /rules\.txt:1: 'colour=blue' is not key=value/);
    assert.deepEqual(await marks(srv), []);
  } finally {
    await srv.stop();
  }
});

test(
  'no server: the checks are skipped with one warning, tests pass on their own',
  { skip: SKIP },
  async () => {
    const dir = tempDir();
    try {
      const r = await pytest(suite({ 'test_clean.py': 'def test_a():\n    pass\n' }), {
        TT_ALLOC_TRACKING_ENABLED: '1',
        TT_ALLOC_SERVER_SOCKET: join(dir, 'nobody.sock'),
      });
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /= 1 passed, 1 warning in /);
      const said = r.out.match(
        /TtallocWarning: ttalloc: device-memory leak checks skipped: no all/g,
      );
      assert.equal(said?.length, 1, r.out);
      assert.match(r.out, /leak checks skipped: no allocation server on .*nobody\.sock/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'tracking off: the checks are skipped with one warning, no mark is set',
  { skip: SKIP },
  async () => {
    const srv = await startServer(['--reap-interval', '0']);
    try {
      const r = await pytest(suite({ 'test_leaky.py': LEAKY_TESTS }), {
        TT_ALLOC_SERVER_SOCKET: srv.socket,
      });
      assert.equal(r.code, 1, r.out); // only test_fails_and_leaks, on its own assertion
      assert.match(r.out, /= 1 failed, 3 passed, 1 warning in /);
      assert.match(r.out, /leak checks skipped: TT_ALLOC_TRACKING_ENABLED is not set to 1/);
      assert.doesNotMatch(srv.output(), /mark 'pytest-/);
    } finally {
      await srv.stop();
    }
  },
);

test(
  'the server going away mid-run: one warning, the remaining tests run unchecked',
  { skip: SKIP },
  async () => {
    const srv = await startServer(['--reap-interval', '0']);
    const stop = String.raw`
import os, signal, socket

def test_1():
    pass

def test_2_stops_the_server():
    os.kill(int(os.environ["SERVER_PID"]), signal.SIGKILL)
    while True:  # until its control socket refuses
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(os.environ["TT_ALLOC_SERVER_SOCKET"] + ".ctl")
        except OSError:
            break
        finally:
            s.close()

def test_3():
    pass
`;
    try {
      const r = await pytest(suite({ 'test_stop.py': stop }), {
        ...tracked(srv),
        SERVER_PID: String(srv.proc.pid),
      });
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /= 3 passed, 1 warning in /);
      assert.match(r.out, /leak checks stopped: /);
    } finally {
      await srv.stop();
    }
  },
);
