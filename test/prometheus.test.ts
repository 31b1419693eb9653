// The metrics, recording rules, alerts and Grafana dashboard checked by the real engine: Debian's
// Prometheus (promtool and the server). Input series are real /metrics scrapes of two real servers
// after a real workload; every dashboard query is also a recording rule whose result must be the
// series this file expects, so a query whose label matching breaks returns nothing and fails here.
// Then a real Prometheus scrapes both servers and answers the fleet questions over its HTTP API.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import ts from 'typescript';
import { Reporter } from '../src/client/reporter.js';
import { settle, startServer, tempDir, type TestServer } from './helpers/server.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PROM_DIR = join(ROOT, 'docs/prometheus');
const DASHBOARD = join(ROOT, 'docs/grafana-dashboard.json');
const MiB = 1 << 20;

/** promtool and prometheus from Debian's package, installed here once if missing (as root). */
function promAvailable(): boolean {
  return spawnSync('promtool', ['--version']).status === 0;
}
function ensurePrometheus(): string | null {
  if (promAvailable()) return null;
  if (process.getuid?.() === 0) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const install = ['install', '-y', '--no-install-recommends', 'prometheus'];
    if (spawnSync('apt-get', install, { env, stdio: 'ignore' }).status !== 0)
      spawnSync('apt-get', ['update'], { env, stdio: 'ignore' });
    spawnSync('apt-get', install, { env, stdio: 'ignore' });
    if (promAvailable()) return null;
  }
  return 'promtool/prometheus not installed (apt-get install prometheus, Debian 2.42)';
}
const missing = ensurePrometheus();
// On CI a missing engine is a failure, never a silent skip.
if (missing && process.env.CI) throw new Error(`CI: ${missing}`);
const skip = missing ?? false;

// ---- series: scrapes, labels, values ------------------------------------------------------

type Labels = Record<string, string>;
/** One series over the two scrapes: v0 at minutes 0–59, v1 at minute 60 (undefined: absent). */
interface Series {
  labels: Labels;
  counter: boolean;
  v0?: number;
  v1?: number;
}
interface Host {
  server: TestServer;
  url: string;
  instance: string;
  reporters: Reporter[];
}
/** The labels a scrape config adds (docs/prometheus/prometheus.yml, with a target label). */
const TARGET = { job: 'ttalloc', cluster: 'galaxy-a' };

function key(l: Labels): string {
  return JSON.stringify(Object.entries(l).sort(([a], [b]) => a.localeCompare(b)));
}
/** The ttalloc series and the RSS of one /metrics text, with the scrape's target labels. */
function parseScrape(text: string, instance: string): { labels: Labels; v: number; c: boolean }[] {
  const out: { labels: Labels; v: number; c: boolean }[] = [];
  for (const f of parsePrometheusTextFormat(text)) {
    if (!f.name.startsWith('ttalloc_') && f.name !== 'process_resident_memory_bytes') continue;
    assert.ok(['GAUGE', 'COUNTER'].includes(f.type), `${f.name} is a gauge or counter`);
    for (const m of f.metrics)
      out.push({
        // An empty label is no label to Prometheus (an unknown serial).
        labels: Object.fromEntries(
          Object.entries({ __name__: f.name, ...m.labels, ...TARGET, instance }).filter(
            ([, v]) => v !== '',
          ),
        ),
        v: Number(m.value),
        c: f.type === 'COUNTER',
      });
  }
  return out;
}
function merge(s0: ReturnType<typeof parseScrape>, s1: ReturnType<typeof parseScrape>): Series[] {
  const all = new Map<string, Series>();
  const at = (e: (typeof s0)[0]) => {
    const k = key(e.labels);
    let s = all.get(k);
    if (!s) all.set(k, (s = { labels: e.labels, counter: e.c }));
    return s;
  };
  for (const e of s0) at(e).v0 = e.v;
  for (const e of s1) at(e).v1 = e.v;
  return [...all.values()];
}
function seriesText(l: Labels): string {
  const { __name__: name, ...rest } = l;
  const body = Object.entries(rest)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(',');
  return `${name ?? ''}{${body}}`;
}
/** promtool's values: v0 for an hour at 1m steps, then v1 ('_' absent, 'stale' gone). */
function values(s: Series): string {
  const first = s.v0 === undefined ? '_x59' : `${s.v0}x59`;
  return `${first} ${s.v1 === undefined ? 'stale' : s.v1}`;
}

// ---- a tiny evaluator of what each dashboard query must return at minute 60 ----------------

interface Sample {
  labels: Labels;
  value: number;
}
type Match = Record<string, RegExp>;
function select(all: Series[], name: string, m: Match = {}): Series[] {
  return all.filter(
    (s) =>
      s.labels.__name__ === name &&
      Object.entries(m).every(([k, re]) => re.test(s.labels[k] ?? '')),
  );
}
const gauge = (s: Series) => s.v1;
/** rate/increase/delta over a window ending at minute 60: v0 is the window's first sample. */
const change = (s: Series) =>
  s.v0 === undefined || s.v1 === undefined
    ? undefined
    : s.counter && s.v1 < s.v0
      ? s.v1
      : s.v1 - s.v0;
/** Sums `value` per group; `by` lists the labels kept, or `{ without }` the labels dropped. */
function sum(
  series: Series[],
  value: (s: Series) => number | undefined,
  by: string[] | { without: string[] },
): Sample[] {
  const groups = new Map<string, Sample>();
  for (const s of series) {
    const v = value(s);
    if (v === undefined) continue;
    const labels = Array.isArray(by)
      ? Object.fromEntries(by.filter((k) => s.labels[k]).map((k) => [k, s.labels[k]]))
      : Object.fromEntries(
          Object.entries(s.labels).filter(([k]) => k !== '__name__' && !by.without.includes(k)),
        );
    const g = groups.get(key(labels));
    if (g) g.value += v;
    else groups.set(key(labels), { labels, value: v });
  }
  return [...groups.values()];
}
function map(xs: Sample[], f: (v: number) => number): Sample[] {
  return xs.map((x) => ({ labels: x.labels, value: f(x.value) }));
}
/** used / capacity per device, matching every label but `memory` (and the dropped `type`). */
function utilisation(all: Series[], types: RegExp, memory: string): Sample[] {
  const used = sum(select(all, 'ttalloc_device_used_bytes', { type: types }), gauge, {
    without: ['type'],
  });
  const cap = sum(
    select(all, 'ttalloc_device_capacity_bytes', { memory: new RegExp(`^${memory}$`) }),
    gauge,
    { without: ['memory'] },
  );
  return used.flatMap((u) => {
    const c = cap.find((x) => key(x.labels) === key(u.labels));
    return c ? [{ labels: u.labels, value: u.value / c.value }] : [];
  });
}
/** Labels of an instant selector's result: the series' own, less the metric name. */
function plain(series: Series[]): Sample[] {
  return series.flatMap((s) => {
    const { __name__: _n, ...labels } = s.labels;
    return s.v1 === undefined ? [] : [{ labels, value: s.v1 }];
  });
}

const DRAM = /^(DRAM|TRACE)$/,
  L1 = /^(L1|L1_SMALL|CB|KERNEL)$/;
const ANY = /.*/;
/** What each dashboard target (panel id / refId) returns, from the series themselves. */
const EXPECTED: Record<string, (all: Series[]) => Sample[]> = {
  '2/A': (all) => sum(select(all, 'ttalloc_up'), gauge, []),
  '3/A': (all) => sum(select(all, 'ttalloc_live_buffers'), gauge, []),
  '4/A': (all) => sum(select(all, 'ttalloc_processes'), gauge, []),
  '5/A': (all) => sum(select(all, 'ttalloc_device_used_bytes', { type: DRAM }), gauge, []),
  '6/A': (all) => sum(select(all, 'ttalloc_rejected_frames_total'), change, []),
  '7/A': (all) => sum(select(all, 'ttalloc_reaped_processes_total'), change, []),
  '9/A': (all) => utilisation(all, DRAM, 'DRAM'),
  '10/A': (all) => utilisation(all, L1, 'L1'),
  '11/A': (all) =>
    sum(select(all, 'ttalloc_device_used_bytes', { type: DRAM }), gauge, [
      'instance',
      'device',
      'type',
    ]),
  '12/A': (all) =>
    sum(select(all, 'ttalloc_device_used_bytes', { type: L1 }), gauge, [
      'instance',
      'device',
      'type',
    ]),
  '13/A': (all) => sum(select(all, 'ttalloc_device_buffers'), gauge, ['instance', 'type']),
  '14/A': (all) =>
    map(
      sum(select(all, 'ttalloc_device_buffers', { type: /^(?!(CB|KERNEL)$)/ }), change, [
        'instance',
        'device',
      ]),
      (v) => v / 5,
    ),
  '16/A': (all) =>
    sum(select(all, 'ttalloc_process_used_bytes', { pid: ANY }), gauge, [
      'instance',
      'pid',
      'command',
    ]),
  '17/A': (all) =>
    sum(select(all, 'ttalloc_process_used_bytes'), gauge, ['instance', 'pid', 'command', 'type']),
  '19/A': (all) =>
    map(sum(select(all, 'ttalloc_frames_total'), change, ['instance', 'type']), (v) => v / 60),
  '20/A': (all) =>
    map(sum(select(all, 'ttalloc_rejected_frames_total'), change, ['instance']), (v) => v / 300),
  '20/B': (all) =>
    map(
      sum(select(all, 'ttalloc_unknown_frees_total'), change, ['instance', 'object']),
      (v) => v / 300,
    ),
  '21/A': (all) => plain(select(all, 'ttalloc_connections_open')),
  '21/B': (all) => plain(select(all, 'process_resident_memory_bytes', { job: /ttalloc/ })),
};

interface Target {
  refId: string;
  expr: string;
}
interface DashPanel {
  id: number;
  type: string;
  title: string;
  targets?: Target[];
}
/** The dashboard's queries, its template variables replaced as "All" selects them. */
function dashboardQueries(): { id: string; record: string; expr: string }[] {
  const d = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: DashPanel[] };
  return d.panels.flatMap((p) =>
    (p.targets ?? []).map((t) => {
      const expr = t.expr.replace(/\$instance|\$device/g, '.*');
      assert.ok(!expr.includes('$'), `panel ${p.id} ${t.refId}: no unknown variable in ${expr}`);
      return { id: `${p.id}/${t.refId}`, record: `dashboard:panel_${p.id}_${t.refId}`, expr };
    }),
  );
}

// ---- two real servers, a real workload ------------------------------------------------------

const hosts: Host[] = [];
const children: ChildProcess[] = [];
let work: string;
let scraped: Series[] = [];

async function host(args: string[]): Promise<Host> {
  const server = await startServer(['--http', '127.0.0.1:0', '--trust-client-pid', ...args]);
  const url = /dashboard on (http:\/\/\S+\/)/.exec(server.output())![1];
  return { server, url, instance: new URL(url).host, reporters: [] };
}
/** A reporter for a real process (a `sleep` child; its PID is in the messages). */
function processOn(h: Host): Reporter {
  const child = spawn('sleep', ['120'], { stdio: 'ignore' });
  children.push(child);
  const r = new Reporter({ socketPath: h.server.socket, pid: child.pid });
  h.reporters.push(r);
  return r;
}
async function settleAll(): Promise<void> {
  for (const h of hosts) {
    for (const r of h.reporters) r.flush();
    await settle(h.server);
  }
}
async function scrapeAll(): Promise<ReturnType<typeof parseScrape>> {
  const out: ReturnType<typeof parseScrape> = [];
  for (const h of hosts)
    out.push(...parseScrape(await (await fetch(`${h.url}metrics`)).text(), h.instance));
  return out;
}

before(async () => {
  if (skip) return;
  work = tempDir('ttalloc-prom-');
  // Host A keeps 2 processes of its 4 as their own series (the rest are pid="other").
  hosts.push(await host(['--devices', '2xwormhole_b0', '--metrics-top-processes', '2']));
  hosts.push(await host(['--devices', '2xblackhole']));
  const [a, b] = hosts;
  const pa = [processOn(a), processOn(a), processOn(a), processOn(a)];
  const pb = [processOn(b), processOn(b)];
  pa.forEach((r, i) => r.alloc(0, 0x1000000, (i + 1) * MiB, 0));
  pa[0].alloc(1, 0x2000000, 64 * MiB, 4); // TRACE
  pa[1].alloc(0, 0x100, 96 * 1024, 1); // L1
  pa[1].cbAlloc(0, 0x8000, 64 * 1024);
  pb[0].alloc(0, 0x1000000, 256 * MiB, 0);
  pb[1].alloc(1, 0x1000000, 8 * MiB, 0);
  pb[1].kernelLoad(1, 7, 4096, 0);
  await settleAll();
  const s0 = await scrapeAll();
  // The next minute: per-op buffers come and go, a model loads on B, bad frames arrive.
  for (let i = 0; i < 50; i++) {
    pa[2].alloc(0, 0x40000000 + i * 0x10000, 4096, 1);
    pa[2].free(0, 0x40000000 + i * 0x10000);
  }
  pa[3].alloc(1, 0x3000000, 3 * MiB, 0);
  pa[3].free(0, 0xbad000); // unknown buffer
  pa[3].alloc(0, 0xdead0000, 4096, 9); // invalid buffer type: rejected
  pb[0].alloc(1, 0x8000000, 512 * MiB, 0);
  await settleAll();
  scraped = merge(s0, await scrapeAll());
});

after(async () => {
  for (const h of hosts) for (const r of h.reporters) await r.close();
  for (const c of children) c.kill();
  for (const h of hosts) await h.server.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

function promtool(args: string[], cwd = PROM_DIR): { code: number | null; out: string } {
  const r = spawnSync('promtool', args, { cwd, encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout}\n${r.stderr}` };
}

test('promtool accepts the scrape example, the recording rules and the alerts', { skip }, () => {
  const cfg = promtool(['check', 'config', 'prometheus.yml']);
  assert.equal(cfg.code, 0, cfg.out);
  const rules = promtool(['check', 'rules', 'rules.yml', 'alerts.yml']);
  assert.equal(rules.code, 0, rules.out);
});

test('every dashboard query, as a recording rule, returns the expected series', { skip }, () => {
  assert.ok(scraped.length > 50, 'the scrapes have series');
  // The workload is visible in the input: per-process series bounded, devices labelled.
  const a = hosts[0].instance;
  const procs = select(scraped, 'ttalloc_process_buffers').filter((s) => s.labels.instance === a);
  assert.deepEqual(
    procs.map((s) => s.labels.pid).filter((p) => p === 'other'),
    ['other'],
  );
  assert.equal(procs.length, 3, 'host A: the top 2 processes and "other"');
  for (const s of select(scraped, 'ttalloc_device_used_bytes'))
    assert.ok(s.labels.arch, `arch label on ${seriesText(s.labels)}`);

  const queries = dashboardQueries();
  assert.deepEqual(queries.map((q) => q.id).sort(), Object.keys(EXPECTED).sort());
  const dir = join(work, 'dashboard');
  mkdirSync(dir, { recursive: true });
  const rules = {
    groups: [
      { name: 'dashboard', rules: queries.map((q) => ({ record: q.record, expr: q.expr })) },
    ],
  };
  writeFileSync(join(dir, 'dashboard-rules.yml'), JSON.stringify(rules, null, 2));
  const check = promtool(['check', 'rules', 'dashboard-rules.yml'], dir);
  assert.equal(check.code, 0, check.out);
  const tests = queries.map((q) => {
    const exp = EXPECTED[q.id](scraped);
    assert.ok(exp.length > 0, `${q.id}: the workload gives the query something to show`);
    return {
      expr: q.record,
      eval_time: '60m',
      exp_samples: exp.map((e) => ({
        labels: seriesText({ __name__: q.record, ...e.labels }),
        value: e.value,
      })),
    };
  });
  const unit = {
    rule_files: ['dashboard-rules.yml'],
    evaluation_interval: '1m',
    tests: [
      {
        interval: '1m',
        input_series: scraped.map((s) => ({ series: seriesText(s.labels), values: values(s) })),
        promql_expr_test: tests,
      },
    ],
  };
  writeFileSync(join(dir, 'dashboard-test.yml'), JSON.stringify(unit, null, 2));
  const run = promtool(['test', 'rules', 'dashboard-test.yml'], dir);
  assert.equal(run.code, 0, run.out);
});

/** `n` minutes of a value per minute. */
function minutes(n: number, f: (m: number) => number): string {
  return Array.from({ length: n }, (_, m) => String(f(m))).join(' ');
}

test(
  'alerts: DRAM almost full matches the capacity; growth alerts only on a leak',
  { skip },
  () => {
    // Real label sets from the scrape: host A's device 0, whose DRAM is made 95 % full.
    const a = hosts[0].instance;
    const dev0 = (name: string, m: Match) =>
      select(scraped, name, m).find((s) => s.labels.instance === a && s.labels.device === '0')!;
    const cap = dev0('ttalloc_device_capacity_bytes', { memory: /^DRAM$/ });
    const dram = dev0('ttalloc_device_used_bytes', { type: /^DRAM$/ });
    const full = Math.round(cap.v1! * 0.95);
    const on = (device: string, l: Labels) => ({ ...l, device });
    const used = (device: string, type: string) => seriesText(on(device, { ...dram.labels, type }));
    // Device 1: a healthy sawtooth on a steady floor, a model loaded at 1 h; device 2: a leak.
    const saw = (m: number) => (m % 2 ? 40 * MiB : 8 * MiB) + (m >= 60 ? 512 * MiB : 0);
    const leak = (m: number) => (m % 2 ? 40 * MiB : 8 * MiB) + m * MiB;
    const input = [
      { series: seriesText(cap.labels), values: `${cap.v1}x300` },
      { series: used('0', 'DRAM'), values: `${full}x300` },
      { series: used('1', 'DRAM'), values: minutes(300, saw) },
      { series: used('2', 'DRAM'), values: minutes(300, leak) },
      { series: used('1', 'L1'), values: minutes(300, (m) => (m % 3 ? 1 : 0) * MiB) },
    ];
    const { __name__: _n, type: _t, ...base } = dram.labels;
    const full0 = {
      exp_labels: { ...on('0', base), alertname: 'DeviceDramAlmostFull', severity: 'warning' },
      exp_annotations: { summary: `${a} device 0: DRAM 95% used` },
    };
    const leak2 = {
      exp_labels: { ...on('2', base), alertname: 'DeviceBuffersGrowing', severity: 'info' },
      exp_annotations: {
        summary:
          `${a} device 2: the lowest live buffer bytes rose in each of the last four half ` +
          'hours (a leak?)',
        description:
          'Run `ttalloc leaks` on the host to see which process and call site hold the growth.',
      },
    };
    const growing = (at: string, alerts: object[]) => ({
      alertname: 'DeviceBuffersGrowing',
      eval_time: at,
      exp_alerts: alerts,
    });
    const unit = {
      rule_files: [join(PROM_DIR, 'rules.yml'), join(PROM_DIR, 'alerts.yml')],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: input,
          alert_rule_test: [
            { alertname: 'DeviceDramAlmostFull', eval_time: '5m', exp_alerts: [] },
            { alertname: 'DeviceDramAlmostFull', eval_time: '15m', exp_alerts: [full0] },
            // The leak fires once its floor has risen for 2.5 h; the full but steady device 0
            // and the sawtooth with a model loaded at 1 h (device 1) never do.
            growing('90m', []),
            growing('2h', []),
            growing('3h', [leak2]),
            growing('4h', [leak2]),
            growing('290m', [leak2]),
          ],
        },
      ],
    };
    const dir = join(work, 'alerts');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'alerts-test.yml'), JSON.stringify(unit, null, 2));
    const run = promtool(['test', 'rules', 'alerts-test.yml'], dir);
    assert.equal(run.code, 0, run.out);
  },
);

// ---- a real Prometheus scraping both servers ----------------------------------------------

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}
interface PromResult {
  metric: Labels;
  value: [number, string];
}
async function query(api: string, q: string): Promise<PromResult[]> {
  const r = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(q)}`);
  const body = (await r.json()) as {
    status: string;
    data: { result: PromResult[] };
    error?: string;
  };
  assert.equal(body.status, 'success', `${q}: ${body.error}`);
  return body.data.result;
}
/** Polls until `ok` holds for the query's result (Prometheus scrapes and evaluates every 1 s). */
async function until(
  api: string,
  q: string,
  ok: (r: PromResult[]) => boolean,
  prom: () => string,
): Promise<PromResult[]> {
  const deadline = Date.now() + 30000;
  for (;;) {
    const r = await query(api, q).catch(() => [] as PromResult[]);
    if (ok(r)) return r;
    if (Date.now() > deadline)
      throw new Error(`no answer to ${q}: ${JSON.stringify(r)}\n${prom().slice(-3000)}`);
    await new Promise((res) => setTimeout(res, 250));
  }
}

/** The PromQL lines of docs/monitoring.md's "Fleet questions" (comments left out). */
function docQueries(): string[] {
  const doc = readFileSync(join(ROOT, 'docs/monitoring.md'), 'utf8');
  const block = /### Fleet questions[\s\S]*?```promql\n([\s\S]*?)```/.exec(doc);
  assert.ok(block, 'docs/monitoring.md has the fleet questions');
  const lines = block[1].split('\n').filter((l) => l.trim() && !l.startsWith('#'));
  assert.ok(lines.length >= 5);
  return lines;
}

test(
  'a real Prometheus answers the fleet questions per host, device and process',
  { skip },
  async () => {
    const port = await freePort();
    const dir = join(work, 'prometheus');
    mkdirSync(dir, { recursive: true });
    const config = {
      global: { scrape_interval: '1s', evaluation_interval: '1s' },
      rule_files: [join(PROM_DIR, 'rules.yml'), join(PROM_DIR, 'alerts.yml')],
      scrape_configs: [
        {
          job_name: 'ttalloc',
          static_configs: [{ targets: hosts.map((h) => h.instance), labels: { cluster: 'test' } }],
        },
      ],
    };
    writeFileSync(join(dir, 'prometheus.yml'), JSON.stringify(config, null, 2));
    const prom = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(prom);
    let log = '';
    prom.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    prom.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const api = `http://127.0.0.1:${port}`;
    try {
      const [a, b] = hosts;
      await until(
        api,
        'up == 1',
        (r) => r.length === 2,
        () => log,
      );
      // Per device: the dashboard's DRAM utilisation panel, 2 hosts × 2 devices.
      const panel9 = dashboardQueries().find((q) => q.id === '9/A')!.expr;
      const perDevice = await until(
        api,
        panel9,
        (r) => r.length === 4,
        () => log,
      );
      const want = utilisation(scraped, DRAM, 'DRAM');
      for (const w of want) {
        const got = perDevice.find(
          (r) => r.metric.instance === w.labels.instance && r.metric.device === w.labels.device,
        );
        assert.ok(got, `utilisation of ${w.labels.instance} device ${w.labels.device}`);
        assert.equal(Number(got.value[1]), w.value);
        assert.equal(got.metric.cluster, 'test', 'the target label survives the division');
      }
      // The recording rule gives the same answer once evaluated.
      await until(
        api,
        'instance_device:ttalloc_dram_utilisation:ratio',
        (r) => r.length === 4,
        () => log,
      );
      // Per host: DRAM in use, and how many devices.
      const perHost = await query(
        api,
        'sum by (instance) (instance_device:ttalloc_dram_used_bytes:sum)',
      );
      const hostBytes = (h: Host) =>
        Number(perHost.find((r) => r.metric.instance === h.instance)?.value[1]);
      assert.equal(hostBytes(a), (1 + 2 + 3 + 4 + 64 + 3) * MiB);
      assert.equal(hostBytes(b), (256 + 8 + 512) * MiB);
      const devices = await query(api, 'count by (instance) (ttalloc_device_info)');
      assert.deepEqual(
        devices.map((r) => [r.metric.instance, r.value[1]]).sort(),
        hosts.map((h) => [h.instance, '2']).sort(),
      );
      // Top processes across the fleet: B's model holder first; A's small ones are in "other".
      const top = await query(
        api,
        'topk(3, sum by (instance, pid, command) (ttalloc_process_used_bytes))',
      );
      const rows = top
        .map((r) => ({ l: r.metric, bytes: Number(r.value[1]) }))
        .sort((x, y) => y.bytes - x.bytes);
      const who = (r: (typeof rows)[0]) => [r.l.instance, r.l.pid, r.l.command, r.bytes];
      assert.deepEqual(rows.slice(0, 2).map(who), [
        [b.instance, String(b.reporters[0].pid), 'sleep', (256 + 512) * MiB],
        [a.instance, String(a.reporters[0].pid), 'sleep', 65 * MiB],
      ]);
      const other = await query(
        api,
        `sum(ttalloc_process_used_bytes{instance="${a.instance}", pid="other"})`,
      );
      assert.equal(Number(other[0]?.value[1]), (2 + 3) * MiB + 96 * 1024 + 64 * 1024);
      // The fleet questions of docs/monitoring.md, as written there, answer.
      for (const q of docQueries()) assert.ok((await query(api, q)).length > 0, `docs: ${q}`);
      // Every rule and alert evaluates without error against the real series.
      const rules = (await (await fetch(`${api}/api/v1/rules`)).json()) as {
        data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] };
      };
      const all = rules.data.groups.flatMap((g) => g.rules);
      assert.equal(all.length, 8);
      for (const r of all) assert.equal(r.health, 'ok', `${r.name}: ${r.lastError}`);
    } finally {
      prom.kill('SIGTERM');
      await new Promise((r) => prom.once('exit', r));
    }
  },
);

// ---- the Grafana dashboard against Grafana's own schema -------------------------------------

/**
 * Grafana publishes its dashboard schema on npm as TypeScript types generated from its CUE
 * schema (@grafana/schema; no JSON Schema is published), so the dashboard JSON is checked by the
 * TypeScript compiler: the whole file `satisfies Dashboard`, each panel's options and field
 * config the types of its panel plugin (partial, as Grafana fills in the defaults). Object
 * literals get excess-property checks: a misspelled key or a wrong enum value is an error.
 */
const PANEL_TYPES: Record<string, string> = {
  timeseries: 'timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen',
  stat: 'stat/panelcfg/x/StatPanelCfg_types.gen',
  table: 'table/panelcfg/x/TablePanelCfg_types.gen',
};
function dashboardCheckSource(json: string): string {
  const d = JSON.parse(json) as {
    panels: (DashPanel & {
      options?: unknown;
      fieldConfig?: { defaults?: { custom?: unknown } };
    })[];
  };
  const lines = [
    "import type { Dashboard } from '@grafana/schema';",
    // JSON spells a string enum member by its value: `${Enum}` is the union of the values.
    'type Json<T> = T extends string ? `${T}` : ' +
      'T extends object ? { [K in keyof T]: Json<T[K]> } : T;',
    'type DeepPartial<T> = T extends string ? `${T}` : ' +
      'T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;',
    `export const dashboard = ${json.trim()} satisfies Json<Dashboard>;`,
  ];
  const used = new Set<string>();
  for (const p of d.panels) {
    if (p.type === 'row') continue;
    const mod = PANEL_TYPES[p.type];
    assert.ok(mod, `panel ${p.id}: a known panel type (${p.type})`);
    const ns = `P_${p.type}`;
    if (!used.has(ns)) {
      used.add(ns);
      lines.unshift(
        `import type * as ${ns} from '@grafana/schema/dist/esm/raw/composable/${mod}';`,
      );
    }
    if (p.options !== undefined)
      lines.push(
        `export const options${p.id} = ${JSON.stringify(p.options)} ` +
          `satisfies DeepPartial<${ns}.Options>;`,
      );
    const custom = p.fieldConfig?.defaults?.custom;
    if (custom !== undefined && p.type !== 'stat')
      lines.push(
        `export const custom${p.id} = ${JSON.stringify(custom)} ` +
          `satisfies DeepPartial<${ns}.FieldConfig>;`,
      );
  }
  return lines.join('\n') + '\n';
}

test('the Grafana dashboard satisfies the schema Grafana publishes (@grafana/schema)', () => {
  // Under node_modules so that the module resolution finds @grafana/schema.
  const cache = join(ROOT, 'node_modules/.cache');
  mkdirSync(cache, { recursive: true });
  const dir = mkdtempSync(join(cache, 'ttalloc-grafana-'));
  try {
    const file = join(dir, 'dashboard-check.ts');
    writeFileSync(file, dashboardCheckSource(readFileSync(DASHBOARD, 'utf8')));
    const program = ts.createProgram([file], {
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
    });
    const errors = ts.getPreEmitDiagnostics(program).map((d) => {
      const msg = ts.flattenDiagnosticMessageText(d.messageText, '\n');
      const at =
        d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : null;
      return `${at ? `line ${at.line + 1}: ` : ''}${msg}`;
    });
    assert.deepEqual(errors, [], errors.join('\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
