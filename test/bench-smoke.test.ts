// The benchmark must not rot: its quick mode runs the real server, the C reader and generators
// end to end and prints every row. Figures are not checked here (timing lives in `npm run bench`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BENCH = fileURLToPath(new URL('../dist/bench/bench.js', import.meta.url));

test('npm run bench --quick prints a row for every figure of the issue', () => {
  const r = spawnSync(process.execPath, [BENCH, '--quick'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const rows = [
    /^ingest, ALLOC\/FREE pairs.*batched.*\| +[\d.]+ M\/s \|.*\| [\d.]+ M\/s \(×[\d.]+\)/m,
    /^ingest, 4 clients send\(\) one frame at a time +\| +[\d.]+ M\/s \|/m,
    /^memory per live buffer at 100 k.*\| +[\d.]+ B \|/m,
    /^text dump, 100 k live buffers over 8 devices.*\| +[\d.]+ ms \|/m,
    /^full JSON dump of 100 k buffers.*\| +[\d.]+ ms \|/m,
    /^ {2}longest ingest stall during that dump +\| +[\d.]+ ms \|/m,
    /^QUERY reply latency p99.*\| +[\d.]+ ms \|/m,
    // Quick mode: 100 owners (the 90 live ones are real processes).
    new RegExp(
      /^dead-PID sweep, 100 k live buffers, 100 PIDs, 10 dead.*\| +[\d.]+ ms \|/.source +
        /.*the 90 live owners are real processes/.source,
      'm',
    ),
    /^dead-PID sweep, 100 k live buffers, 100 PIDs, 100 dead.*\| +[\d.]+ ms \|/m,
    /^memory per live buffer at 400 k.*\| +[\d.]+ B \|/m,
    /^ {2}longest ingest stall while growing to 400 k +\| +[\d.]+ ms \|/m,
  ];
  for (const re of rows) assert.match(r.stdout, re);
  assert.doesNotMatch(r.stdout, /NaN/);
});

test('bench --only rejects an unknown scenario name', () => {
  const r = spawnSync(process.execPath, [BENCH, '--only', 'nope'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown scenario nope/);
});
