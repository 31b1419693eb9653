// `ttalloc ps`: every process that holds device memory or a device, from every source, one line
// per process and device, like nvidia-smi's process table. Works with no server (SHM and the
// driver read directly; the header line says so). --json: the whole reply, whole command lines.
import { Command } from 'commander';
import { action, clientFor, socketOption } from '../common.js';
import {
  countOption,
  csvLines,
  loopOption,
  parseFormat,
  rounds,
  unitsOption,
} from '../output-format.js';
import { bytesIn, type Unit } from '../../report/query-fields.js';
import { fetchProcesses, sourcesHeader } from '../../ui/top/processes.js';
import { formatBytes } from '../../report/format.js';
import {
  checkText,
  commandLine,
  displayDevices,
  shortCommand,
  sourcesLabel,
} from '../../report/process-view.js';
import type { ProcessesResponse } from '../../report/types.js';
import { SCHEMA_VERSION } from '../../report/types.js';

const COLS: [string, number][] = [
  ['PID', 8],
  ['NSPID', 7],
  ['USER', 10],
  ['CONTAINER', 14],
  ['SOURCE', 18],
  ['DEV', 4],
  ['DRAM', 10],
  ['L1', 10],
  ['L1_SMALL', 10],
  ['TRACE', 10],
  ['CB', 10],
  ['HOST', 10],
  ['BUFFERS', 8],
];
const RIGHT = new Set(['DEV', 'DRAM', 'L1', 'L1_SMALL', 'TRACE', 'CB', 'HOST', 'BUFFERS']);

function cell(text: string, [name, w]: [string, number]): string {
  const t = text.length > w ? text.slice(0, w - 1) + '…' : text;
  return RIGHT.has(name) ? t.padStart(w) + ' ' : t.padEnd(w) + ' ';
}

/** The table as text lines (`width`: the terminal's; the command line is cut to fit). */
export function renderPs(r: ProcessesResponse, socket: string, width: number): string[] {
  const out = [sourcesHeader(r, socket)];
  const fixed = COLS.reduce((a, [, w]) => a + w + 1, 0);
  const cmdW = Math.max(20, width - fixed);
  out.push(COLS.map((c) => cell(c[0], c)).join('') + 'COMMAND');
  const rows = r.processes.filter((p) => displayDevices(p).length > 0 || p.holds?.length);
  for (const p of rows) {
    const id = p.identity;
    const head = [
      String(p.pid),
      p.ns_pid != null ? String(p.ns_pid) : '-',
      id?.user ?? (id?.uid != null ? String(id.uid) : '?'),
      id?.container ?? '-',
      sourcesLabel(p),
    ];
    const cmd = shortCommand(commandLine(p), cmdW);
    const devs = displayDevices(p);
    if (devs.length === 0) {
      const holds = `holds /dev/tenstorrent/${(p.holds ?? []).join(',')}`;
      out.push(head.map((t, i) => cell(t, COLS[i])).join('') + cell('-', COLS[5]) + holds);
      out.push(`${''.padEnd(9)}  command: ${cmd}`);
    }
    devs.forEach((d, i) => {
      const figures = [
        d.device < 0 ? '?' : String(d.device),
        formatBytes(d.DRAM),
        formatBytes(d.L1),
        formatBytes(d.L1_SMALL),
        formatBytes(d.TRACE),
        formatBytes(d.CB),
        d.SYSTEM_MEMORY === null ? '-' : formatBytes(d.SYSTEM_MEMORY),
        d.buffers === null ? '(shm)' : String(d.buffers),
      ];
      const left = i === 0 ? head : head.map(() => '');
      out.push(
        [...left, ...figures].map((t, j) => cell(t, COLS[j])).join('') + (i === 0 ? cmd : ''),
      );
    });
    const check = checkText(p, formatBytes);
    if (check) out.push(`${''.padEnd(9)}↳ cross-check: ${check}`);
    if (p.silent) {
      out.push(`${''.padEnd(9)}↳ reports nothing (${p.silent.code}): ${p.silent.text}`);
      out.push(`${''.padEnd(9)}  fix: ${p.silent.fix}`);
    }
  }
  if (rows.length === 0) out.push('no process holds device memory or a device');
  for (const g of r.sources?.shm.regions ?? []) {
    if (g.status !== 'ok')
      out.push(`region ${g.path} (${g.layout}): ${g.status}: ${g.error ?? ''}`);
    else if (g.ghost && g.ghost.dram + g.ghost.l1 + g.ghost.l1_small + g.ghost.trace > 0)
      out.push(
        `region ${g.path}: ${formatBytes(g.ghost.dram)} DRAM, ${formatBytes(g.ghost.l1)} L1 ` +
          'left by crashed processes (ghost bytes: totals minus live slots)',
      );
  }
  return out;
}

/** The table's figures per process and device as flat records (CSV and NDJSON). */
type PsRecord = Record<(typeof PS_FIELDS)[number], string | number | null>;

function psRecords(r: ProcessesResponse, atMs: number): PsRecord[] {
  const out: PsRecord[] = [];
  for (const p of r.processes) {
    const base = {
      timestamp: new Date(atMs).toISOString(),
      pid: p.pid,
      ns_pid: p.ns_pid ?? null,
      user: p.identity?.user ?? null,
      container: p.identity?.container ?? null,
      sources: sourcesLabel(p),
    };
    const devs = displayDevices(p);
    const command = commandLine(p);
    for (const d of devs)
      out.push({
        ...base,
        device: d.device < 0 ? null : d.device,
        dram_bytes: d.DRAM,
        l1_bytes: d.L1,
        l1_small_bytes: d.L1_SMALL,
        trace_bytes: d.TRACE,
        cb_bytes: d.CB,
        system_memory_bytes: d.SYSTEM_MEMORY,
        buffers: d.buffers,
        silent: p.silent?.code ?? null,
        command,
      });
    if (devs.length === 0 && p.holds?.length)
      for (const card of p.holds)
        out.push({
          ...base,
          device: null,
          dram_bytes: 0,
          l1_bytes: 0,
          l1_small_bytes: 0,
          trace_bytes: 0,
          cb_bytes: 0,
          system_memory_bytes: 0,
          buffers: 0,
          silent: p.silent?.code ?? null,
          command: `${command} (holds /dev/tenstorrent/${card})`,
        });
  }
  return out;
}

/** The record's fields, in CSV column order. */
const PS_FIELDS = [
  'timestamp',
  'pid',
  'ns_pid',
  'user',
  'container',
  'sources',
  'device',
  'dram_bytes',
  'l1_bytes',
  'l1_small_bytes',
  'trace_bytes',
  'cb_bytes',
  'system_memory_bytes',
  'buffers',
  'silent',
  'command',
] as const;
const BYTE_FIELDS = new Set<string>([
  'dram_bytes',
  'l1_bytes',
  'l1_small_bytes',
  'trace_bytes',
  'cb_bytes',
  'system_memory_bytes',
]);

interface PsOpts {
  socket?: string;
  json?: boolean;
  format?: string;
  units: Unit;
  loop?: number;
  count?: number;
}

export function psCommand(): Command {
  return new Command('ps')
    .description(
      'every process holding device memory or a device, from the socket, SHM and the driver ' +
        '(works with no server)',
    )
    .addOption(socketOption())
    .option('--json', 'the whole reply as JSON (whole command lines)')
    .option(
      '--format <format>',
      'csv[,noheader][,nounits] or ndjson: one record per process and device; json: --json',
    )
    .addOption(unitsOption())
    .addOption(loopOption())
    .addOption(countOption())
    .action(
      action(async (o: PsOpts) => {
        const client = clientFor(o);
        const style = o.format ? parseFormat(o.format) : null;
        await rounds(o, async (round) => {
          const r = await fetchProcesses(client);
          if (o.json || style?.kind === 'json') {
            process.stdout.write(JSON.stringify(r, null, 2) + '\n');
            return;
          }
          if (style === null) {
            const width = process.stdout.columns || Number(process.env.COLUMNS) || 160;
            process.stdout.write(renderPs(r, client.socketPath, width).join('\n') + '\n');
            return;
          }
          const now = Date.now();
          const recs = psRecords(r, now);
          if (style.kind === 'csv') {
            const head = PS_FIELDS.map((k) =>
              BYTE_FIELDS.has(k) ? `${k.replace(/_bytes$/, '')} [${o.units}]` : k,
            );
            const cell = (k: string, v: string | number | null) =>
              v === null
                ? ''
                : BYTE_FIELDS.has(k)
                  ? bytesIn(Number(v), o.units, style.nounits)
                  : String(v);
            const rows = recs.map((x) => PS_FIELDS.map((k) => cell(k, x[k])));
            process.stdout.write(csvLines(style, head, rows, round));
          } else
            process.stdout.write(
              recs
                .map(({ timestamp, ...x }) => {
                  const head = { schema_version: SCHEMA_VERSION, time: timestamp, time_ms: now };
                  return JSON.stringify({ ...head, ...x }) + '\n';
                })
                .join(''),
            );
        });
      }),
    );
}
