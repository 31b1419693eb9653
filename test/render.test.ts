// The renderers of report/ as pure functions: fixed JSON in, exact text out. The expected texts
// are the README's examples (the seed's dump layout among them), so a change to a layout shows
// here first, without a server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatRemaining } from '../src/report/text-report.js';
import { renderCheck, renderClassified, renderDiff, renderMarks } from '../src/report/leak-text.js';
import { renderStats, renderStatsLines } from '../src/report/stats-text.js';
import { renderKernelReport } from '../src/report/kernel-report.js';
import { formatBytes, formatKB, formatMB, isoTime, plural } from '../src/report/format.js';
import { totalOverTypes, usage } from '../src/report/usage.js';
import type { BufferReport, ExitedReport } from '../src/report/buffer-report.js';
import type { ExitedProcess } from '../src/state/left-behind.js';
import { ROW_WORDS } from '../src/state/object-table.js';
import type {
  BufferRow,
  CheckResult,
  DeviceStats,
  DiffResponse,
  StatsResponse,
} from '../src/report/types.js';

// A left-behind buffer's line says when its process exited in local wall-clock time: the texts
// below are UTC's.
process.env.TZ = 'UTC';

const lines = (...l: string[]) => l.join('\n') + '\n';
const TITLE = [
  '╔══════════════════════════════════════════════════════════════╗',
  '║           REMAINING ALLOCATED BUFFERS                       ║',
  '╚══════════════════════════════════════════════════════════════╝',
];

const BORN = Date.parse('2026-11-24T22:41:55.120Z');
const EXITED = Date.parse('2026-11-24T22:43:07.473Z');

const row = (device: number, address: string): BufferRow => ({
  state: 'live',
  device,
  address,
  size: 36864,
  type: 'DRAM',
  pid: 21732,
  ref_count: 1,
  allocated_at_ms: BORN,
  allocated_at: new Date(BORN).toISOString(),
  age_ms: 1000,
  resized: false,
  shared: false,
});
/** A buffer PID 9948 left behind when it exited. */
const leftRow = (device: number, address: string): BufferRow => ({
  ...row(device, address),
  state: 'exited',
  pid: 9948,
  exited_at_ms: EXITED,
  exited_at: new Date(EXITED).toISOString(),
});

test('formats: seed MB and KB, binary units, plurals', () => {
  assert.equal(formatMB(73728), '0.073728');
  assert.equal(formatMB(5_790_000), '5.79');
  assert.equal(formatMB(0), '0');
  assert.equal(formatKB(36864), '36.0 KB');
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(36864), '36.0 KiB');
  assert.equal(formatBytes(1.5 * 2 ** 30), '1.50 GiB');
  assert.equal(plural(1, 'buffer'), '1 buffer');
  assert.equal(plural(2, 'buffer'), '2 buffers');
});

test('usage folds SYSTEM_MEMORY into L1_SMALL, and only there', () => {
  const per = { DRAM: 1, L1: 2, SYSTEM_MEMORY: 4, L1_SMALL: 8, TRACE: 16 };
  assert.equal(usage(per, 'L1_SMALL'), 12);
  assert.equal(usage(per, 'L1'), 2);
  assert.equal(usage(per, 'DRAM'), 1);
  assert.equal(usage(per, 'TRACE'), 16);
  assert.equal(totalOverTypes(per), 31);
});

/** The seed's device → type → buffer lines of the live report below. */
const LIVE_LINES = [
  'Device 0:',
  '  DRAM: 2 buffers, 0.073728 MB total',
  '    - Buffer 0x7f012000: 36.0 KB (PID 21732, ref_count=1)',
  '    - Buffer 0x7f01b000: 36.0 KB (PID 21732, ref_count=1)',
  '',
  'Device 1:',
  '  DRAM: 2 buffers, 0.073728 MB total',
  '    - Buffer 0x7f012000: 36.0 KB (PID 21732, ref_count=1)',
  '    - Buffer 0x7f01b000: 36.0 KB (PID 21732, ref_count=1)',
  '',
];
const SEED_DUMP = lines(...TITLE, '', ...LIVE_LINES, 'Total remaining buffers: 4');

const liveGroup = (device: number) => ({
  device,
  count: 2,
  bytes: 73728,
  types: [
    {
      type: 'DRAM',
      count: 2,
      bytes: 73728,
      buffers: [row(device, '0x7f012000'), row(device, '0x7f01b000')],
      more: 0,
    },
  ],
});
const live: BufferReport = {
  totalBuffers: 4,
  totalBytes: 4 * 36864,
  devices: [liveGroup(0), liveGroup(1)],
  filtered: true,
};
const noLive: BufferReport = { totalBuffers: 0, totalBytes: 0, devices: [], filtered: false };

const exitedProcess: ExitedProcess = {
  pid: 9948,
  ppid: 9940,
  cmdline: 'python3 -m pytest tests/test_matmul.py',
  startMs: Date.parse('2026-11-24T22:41:50.000Z'),
  reapedAtMs: EXITED,
  buffers: 12,
  bytes: 331776,
  cbs: 0,
  cbBytes: 0,
  kernels: 0,
  kernelBytes: 0,
  byDevice: {
    0: { DRAM: { count: 6, bytes: 165888 } },
    1: { DRAM: { count: 6, bytes: 165888 } },
  },
  recordsDropped: 0,
  rows: new Int32Array(12 * ROW_WORDS),
};
/** What PID 9948 left: 6 buffers on each of two devices, two listed per device. */
const leftGroup = (device: number) => ({
  device,
  count: 6,
  bytes: 165888,
  types: [
    {
      type: 'DRAM',
      count: 6,
      bytes: 165888,
      buffers: [leftRow(device, '0x7f012000'), leftRow(device, '0x7f01b000')],
      more: 4,
    },
  ],
});
const exited: ExitedReport = {
  totalBuffers: 12,
  totalBytes: 331776,
  devices: [leftGroup(0), leftGroup(1)],
  filtered: false,
  processes: [exitedProcess],
  droppedProcesses: 0,
  droppedRecords: 0,
  budget: 1_000_000,
};
const noExited: ExitedReport = {
  ...exited,
  totalBuffers: 0,
  totalBytes: 0,
  devices: [],
  processes: [],
};

test('the dump keeps the seed layout (README: dump-remaining-buffers --since run-2)', () => {
  // Nothing left behind by exited processes (or --live): exactly the seed's report.
  assert.equal(formatRemaining({ live, exited: noExited }), SEED_DUMP);
  assert.equal(formatRemaining({ live, exited: null }), SEED_DUMP);
  assert.equal(
    formatRemaining({ live: noLive, exited: noExited }),
    lines(
      ...TITLE,
      '',
      'No buffers remaining: every tracked allocation has been freed.',
      '',
      'Total remaining buffers: 0',
    ),
  );
  assert.equal(
    formatRemaining({ live: noLive, exited: null }),
    lines(
      ...TITLE,
      '',
      'No buffers remaining in running processes.',
      '',
      'Total remaining buffers: 0',
    ),
    '--live says it looked at running processes only',
  );
  assert.equal(
    formatRemaining({
      live: { ...noLive, filtered: true },
      exited: { ...noExited, filtered: true },
    }),
    lines(
      ...TITLE,
      '',
      'No buffers remaining that match the filter.',
      '',
      'Total remaining buffers: 0',
    ),
  );
});

/** The left-behind part of the dump below (PID 9948's 12 buffers). */
const LEFT_PART = [
  'Left behind by processes that exited (never freed):',
  '',
  'Device 0:',
  '  DRAM: 6 buffers, 0.165888 MB total',
  '    - Buffer 0x7f012000: 36.0 KB (PID 9948, exited 22:43:07, ref_count=1)',
  '    - Buffer 0x7f01b000: 36.0 KB (PID 9948, exited 22:43:07, ref_count=1)',
  '    ... and 4 more',
  '',
  'Device 1:',
  '  DRAM: 6 buffers, 0.165888 MB total',
  '    - Buffer 0x7f012000: 36.0 KB (PID 9948, exited 22:43:07, ref_count=1)',
  '    - Buffer 0x7f01b000: 36.0 KB (PID 9948, exited 22:43:07, ref_count=1)',
  '    ... and 4 more',
  '',
  'Total left behind by exited processes: 12',
  '  - PID 9948 python3 -m pytest tests/test_matmul.py: exited 2026-11-24T22:43:07.473Z, ' +
    '12 buffers, 0.331776 MB',
];

test('a dump after an exit lists, per buffer, what the exited process left (seed layout)', () => {
  assert.equal(
    formatRemaining({ live: noLive, exited }),
    lines(
      ...TITLE,
      '',
      'Live buffers (their processes are still running):',
      '',
      'None: no running process holds any.',
      '',
      'Total live buffers: 0',
      '',
      ...LEFT_PART,
      '',
      'Total remaining buffers: 12 (0 live, 12 left behind by exited processes)',
    ),
  );
  // Live and left-behind buffers: each part with its own total, then the grand total.
  assert.equal(
    formatRemaining({ live, exited }, "Since mark 'run-2':"),
    lines(
      ...TITLE,
      '',
      "Since mark 'run-2':",
      '',
      'Live buffers (their processes are still running):',
      '',
      ...LIVE_LINES,
      'Total live buffers: 4',
      '',
      ...LEFT_PART,
      '',
      'Total remaining buffers: 16 (4 live, 12 left behind by exited processes)',
    ),
  );
  // --exited: the left-behind part alone.
  assert.equal(formatRemaining({ live: null, exited }), lines(...TITLE, '', ...LEFT_PART));
  assert.equal(
    formatRemaining({ live: null, exited: noExited }),
    lines(
      ...TITLE,
      '',
      'Left behind by processes that exited (never freed):',
      '',
      'None.',
      '',
      'Total left behind by exited processes: 0',
    ),
  );
  // The budget's drops are said, whichever part is shown.
  const dropped = { droppedProcesses: 3, droppedRecords: 40, budget: 100 };
  const note =
    '(The left-behind budget of 100 records dropped 40 records of 3 older exited processes; ' +
    'ttalloc forget clears records on purpose.)';
  assert.equal(
    formatRemaining({ live: null, exited: { ...exited, ...dropped } }),
    lines(...TITLE, '', ...LEFT_PART, note),
  );
  assert.equal(
    formatRemaining({ live, exited: { ...noExited, ...dropped } }),
    lines(...TITLE, '', ...LIVE_LINES, 'Total remaining buffers: 4', note),
  );
});

test('diff and check render as in the README', () => {
  const iv = (from: string, to: string) => ({
    from,
    to,
    buffers: 2,
    bytes: 73728,
    groups: [0, 1].map((device) => ({ device, type: 'DRAM', size: 36864, count: 1, bytes: 36864 })),
  });
  const diff: DiffResponse = {
    schema_version: 2,
    from: 'run-1',
    to: 'now',
    buffers: 6,
    bytes: 221184,
    intervals: [iv('run-1', 'run-2'), iv('run-2', 'run-3'), iv('run-3', 'now')],
    accumulating: [
      {
        type: 'DRAM',
        size: 36864,
        count_per_run: 1,
        devices: [0, 1],
        runs: 3,
        bytes_per_run: 36864,
        text: '+36.0 KiB DRAM per run on every device (0, 1), 3 runs',
      },
    ],
  };
  const ivText = (from: string, to: string) => [
    '',
    `${from} → ${to}: +2 buffers, +72.0 KiB`,
    '  Device 0 DRAM: 1 × 36.0 KiB',
    '  Device 1 DRAM: 1 × 36.0 KiB',
  ];
  assert.equal(
    renderDiff(diff),
    lines(
      "Still alive, born between 'run-1' and 'now': 6 buffers, 216 KiB",
      ...ivText('run-1', 'run-2'),
      ...ivText('run-2', 'run-3'),
      ...ivText('run-3', 'now'),
      '',
      'Accumulating across runs (likely leaks):',
      '  +36.0 KiB DRAM per run on every device (0, 1), 3 runs',
    ),
  );
  const one = { ...diff, intervals: [iv('run-3', 'now')], accumulating: [] };
  assert.match(renderDiff(one), /\nMark more runs to detect accumulation/);
  const check: CheckResult = {
    schema_version: 2,
    since: 'run-3',
    ok: false,
    max_bytes: 0,
    leaked_buffers: 2,
    leaked_bytes: 73728,
    exited_buffers: 0,
    exited_bytes: 0,
    devices: [0, 1],
    suppressed_buffers: 0,
    summary: 'SUMMARY: ttalloc: 73728 byte(s) leaked in 2 buffer(s) on 2 device(s)',
    buffers: [row(0, '0x7f01b000'), row(1, '0x7f01b000')],
  };
  assert.equal(
    renderCheck(check),
    lines(
      "ttalloc check: LEAK since 'run-3': 2 buffers, 73728 bytes remain (budget 0)",
      '    - Device 0 DRAM Buffer 0x7f01b000: 36.0 KiB (PID 21732, ref_count=1)',
      '    - Device 1 DRAM Buffer 0x7f01b000: 36.0 KiB (PID 21732, ref_count=1)',
      '',
      'SUMMARY: ttalloc: 73728 byte(s) leaked in 2 buffer(s) on 2 device(s)',
    ),
  );
  // What a process that exited after the mark left counts, and its lines say so.
  assert.equal(
    renderCheck({
      ...check,
      leaked_buffers: 3,
      leaked_bytes: 110592,
      exited_buffers: 1,
      exited_bytes: 36864,
      summary: 'SUMMARY: ttalloc: 110592 byte(s) leaked in 3 buffer(s) on 2 device(s)',
      buffers: [...check.buffers, leftRow(1, '0x7f012000')],
    }),
    lines(
      "ttalloc check: LEAK since 'run-3': 3 buffers, 110592 bytes remain, " +
        '1 of them left behind by processes that exited (budget 0)',
      '    - Device 0 DRAM Buffer 0x7f01b000: 36.0 KiB (PID 21732, ref_count=1)',
      '    - Device 1 DRAM Buffer 0x7f01b000: 36.0 KiB (PID 21732, ref_count=1)',
      '    - Device 1 DRAM Buffer 0x7f012000: 36.0 KiB (PID 9948, exited 22:43:07, ref_count=1)',
      '',
      'SUMMARY: ttalloc: 110592 byte(s) leaked in 3 buffer(s) on 2 device(s)',
    ),
  );
  // More offenders than listed.
  assert.match(
    renderCheck({ ...check, leaked_buffers: 5, buffers: check.buffers }),
    /\n {4}\.\.\. and 3 more\n\nSUMMARY: /,
  );
  assert.equal(
    renderCheck({ ...check, ok: true, max_bytes: 1 << 20, suppressed_buffers: 3 }),
    "ttalloc check: OK since 'run-3': 2 buffers, 73728 bytes remain (budget 1048576)" +
      ' (3 suppressed)\n',
  );
});

test('marks and classes', () => {
  assert.equal(
    renderMarks({ schema_version: 2, marks: [] }),
    'no marks (ttalloc mark NAME sets one)\n',
  );
  assert.equal(
    renderMarks({
      schema_version: 2,
      marks: [{ name: 'run-1', time: '1970-01-01T00:00:00.000Z', time_ms: 0, pid: 7 }],
    }),
    '1970-01-01T00:00:00.000Z  run-1  (pid 7)\n',
  );
  const text = renderClassified({
    schema_version: 2,
    rules: { program_cache_max_bytes: 65536, model_state_min_bytes: 1 << 20 },
    classes: [
      {
        class: 'program_cache',
        label: 'program cache',
        hint: 'expected',
        count: 1,
        bytes: 36864,
        buffers: [{ ...row(0, '0x10'), class: 'program_cache', reason: 'kernel load' }],
        more: 2,
      },
      {
        class: 'other',
        label: 'other',
        hint: 'no rule matched',
        count: 0,
        bytes: 0,
        buffers: [],
        more: 0,
      },
    ],
  });
  assert.equal(
    text,
    lines(
      'Remaining buffers by class (rules: docs/leak-analysis.md):',
      '',
      'PROGRAM CACHE: 1 buffer, 36.0 KiB total — expected',
      '    - Device 0 DRAM Buffer 0x10: 36.0 KiB (PID 21732, ref_count=1) — kernel load',
      '    ... and 2 more',
      '',
      'Total remaining buffers: 1',
    ),
  );
});

const device: DeviceStats = {
  device: 0,
  arch: 'Wormhole_B0',
  declared: true,
  total_dram_bytes: 12 * 2 ** 30,
  total_l1_bytes: null,
  bytes: { DRAM: 2 ** 20, L1: 0, SYSTEM_MEMORY: 1024, L1_SMALL: 1024, TRACE: 0, CB: 0, KERNEL: 0 },
  peak_bytes: {
    DRAM: 2 ** 21,
    L1: 0,
    SYSTEM_MEMORY: 1024,
    L1_SMALL: 1024,
    TRACE: 0,
    CB: 0,
    KERNEL: 0,
  },
  usage: { DRAM: 2 ** 20, L1: 0, L1_SMALL: 2048, TRACE: 0 },
  buffers: { DRAM: 1, L1: 0, SYSTEM_MEMORY: 1, L1_SMALL: 1, TRACE: 0 },
  cbs: 0,
  kernels: 0,
  unknown_frees: 2,
};

test('stats: the periodic per-device line and `ttalloc stats`', () => {
  assert.deepEqual(renderStatsLines([]), ['no devices have reported yet']);
  assert.deepEqual(renderStatsLines([device]), [
    // SYSTEM_MEMORY is host memory: apart, not in L1_SMALL as the wire's usage counter has it
    'device 0 [Wormhole_B0]: 3 buffers, DRAM 1.00 MiB/12.0 GiB, L1 0 B, L1_SMALL 1.00 KiB, ' +
      'TRACE 0 B, CB 0 B (0), kernels 0 B (0); host SYSTEM_MEMORY 1.00 KiB, unknown frees 2',
  ]);
  const s = {
    pid: 42,
    uptime_seconds: 7,
    connections: { open: 1, total: 3 },
    frames: { total: 10, by_type: {}, rejected: 0 },
    unknown_frees: { buffers: 2, cbs: 0, kernels: 0 },
    table_full_drops: 0,
    live: { buffers: 3, cbs: 0, kernels: 0, processes: 1, tracked_pids: 1 },
    reaped_processes: 0,
    left_behind: {
      processes: 1,
      records: 2,
      bytes: 8192,
      budget_records: 3,
      dropped_processes: 2,
      dropped_records: 4,
    },
    peers: null,
    reads: {
      busy_connections: 'direct',
      direct_reads: 5,
      hand_backs: 1,
      hot_now: 0,
      per_read_buffer_connections: 0,
    },
    persistence: { enabled: false, reason: '--no-persist' },
    devices: [device],
  } as unknown as StatsResponse;
  assert.equal(
    renderStats(s),
    lines(
      'server pid 42, up 7s, 1 connections open (3 total)',
      'frames: 10 accepted, 0 rejected; unknown frees: 2 buffers, 0 CBs, 0 kernels',
      'live: 3 buffers, 0 CBs, 0 kernels from 1 processes; 0 dead processes reaped',
      'left behind: 2 records of 1 exited process, 8.00 KiB (budget 3; 4 records of 2 older ' +
        'ones dropped)',
      'reads: busy connections read directly, 5 reads, 1 hand-backs to epoll when idle',
      'persistence: OFF (--no-persist); a restart loses the state',
      'device 0 [Wormhole_B0]: DRAM 1.00 MiB / 12.0 GiB, L1 0 B, L1_SMALL 1.00 KiB, TRACE 0 B, ' +
        'CB 0 B, kernels 0 B; host SYSTEM_MEMORY 1.00 KiB; unknown frees 2',
    ),
  );
});

test('the kernel report lists kernels per device and type', () => {
  const k = (kernelId: string, size: number) => ({
    device: 0,
    kernel_id: kernelId,
    size,
    kernel_type: 'Application',
    pid: 5,
  });
  const text = renderKernelReport([k('0x1', 4096), k('0x2', 2048), k('0x3', 1024)], 2);
  assert.equal(
    text,
    lines(
      '╔══════════════════════════════════════════════════════════════╗',
      '║           LOADED KERNELS                                    ║',
      '╚══════════════════════════════════════════════════════════════╝',
      '',
      'Device 0:',
      '  Application: 3 kernels, 7.00 KiB total',
      '    - Kernel 0x1: 4.00 KiB (PID 5)',
      '    - Kernel 0x2: 2.00 KiB (PID 5)',
      '    ... and 1 more',
      '',
      'Total loaded kernels: 3',
    ),
  );
  assert.match(renderKernelReport([]), /No kernels loaded\.\n\nTotal loaded kernels: 0\n$/);
});

test('isoTime formats like Date.toISOString, within a second and across seconds', () => {
  for (const ms of [0, 7, 1796150000000, 1796150000001, 1796150000999, 1796150001010, 1e12 + 99])
    assert.equal(isoTime(ms), new Date(ms).toISOString(), String(ms));
});
