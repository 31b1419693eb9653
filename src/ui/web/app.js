// @ts-check
// ttalloc dashboard: charts fed by the server's sample stream (SSE), tables polled from the
// read-only JSON API. Plain browser JavaScript, no framework, no CDN: uPlot is served by ttalloc.
// The replies it reads are the shapes declared in src/report/types.ts (typedefs below), and
// `npm run typecheck` checks this file against them (tsconfig.web.json), so the page reads no
// field the server does not send.
'use strict';
/** @typedef {import('../../report/types.js').StatsResponse} StatsResponse */
/** @typedef {import('../../report/types.js').DeviceStats} DeviceStats */
/** @typedef {import('../../report/types.js').DeviceBytes} DeviceBytes */
/** @typedef {import('../../report/types.js').ProcessesResponse} ProcessesResponse */
/** @typedef {import('../../report/types.js').ProcessRow} ProcessRow */
/** @typedef {import('../../report/types.js').BufferPage} BufferPage */
/** @typedef {import('../../report/types.js').MarksResponse} MarksResponse */
/** @typedef {import('../../report/types.js').MarkJson} MarkJson */
/** @typedef {import('../../report/types.js').HistoryResponse} HistoryResponse */
/** @typedef {import('../../report/types.js').Sample} Sample */
/** @typedef {import('../../report/types.js').ReportResponse} ReportResponse */
/** @typedef {import('../../report/types.js').ClassifyResponse} ClassifyResponse */
/** @typedef {import('../../report/types.js').ClassGroup} ClassGroup */
/** @typedef {import('../../report/types.js').DiffResponse} DiffResponse */
/** @typedef {import('../../sources/merge-types.js').SourcesSummary} SourcesSummary */
/** @typedef {import('uplot')} UPlot */
/** @typedef {import('uplot').Options} UPlotOptions */
(() => {
  /** uPlot, loaded by its own <script> before this one. */
  const UPlotCtor = /** @type {typeof import('uplot')} */ (/** @type {any} */ (window).uPlot);
  /**
   * The page's own elements, by selector: they are in index.html, so a miss is a bug to see.
   * @param {string} s
   */
  const $ = (s) => {
    const e = document.querySelector(s);
    if (!e) throw new Error(`no element ${s}`);
    return /** @type {HTMLElement} */ (e);
  };
  /** @param {string} s */
  const $form = (s) => /** @type {HTMLFormElement} */ ($(s));
  /** @param {string} s */
  const $button = (s) => /** @type {HTMLButtonElement} */ ($(s));
  /** @param {string} s */
  const $link = (s) => /** @type {HTMLAnchorElement} */ ($(s));
  // Table refresh period; ?poll=MS overrides it (tests, or a busy server watched from afar).
  const POLL_MS = ttalloc.pollMs(200, 2000);
  const MAX_POINTS = 600;
  const CHART_HEIGHT = 200;
  const { fmt, esc, getJson } = ttalloc;
  /**
   * A share of one memory: "<0.1%" rather than a "0.0%" that reads as nothing.
   * @param {number} used
   * @param {number | null} total
   */
  const pctText = (used, total) => {
    if (!total) return '';
    const p = (100 * used) / total;
    return used > 0 && p < 0.1 ? '<0.1%' : `${p.toFixed(1)}%`;
  };
  /** @param {number} used @param {number | null} total */
  const pctHtml = (used, total) => {
    if (!total) return '';
    const p = (100 * used) / total;
    const heat = p >= 90 ? 'hot' : p >= 70 ? 'warm' : '';
    return ` <span class="pct ${heat}">(${pctText(used, total)})</span>`;
  };
  /** @param {string} s @param {number} n */
  const shorten = (s, n) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
  /** @param {number} ms */
  const clock = (ms) => new Date(ms).toLocaleTimeString();

  // ------------------------------------------------------------------ charts
  // One chart per device and memory, each with one y-axis: DRAM (DRAM and TRACE buffers live
  // there), L1 SRAM (L1 and L1_SMALL buffers, circular buffers, kernel binaries) and, once a
  // device has any, host memory (SYSTEM_MEMORY buffers: pinned host memory, not on the device).
  // Each kind draws its level and, in a lighter band above it, the peak of each sampling
  // interval, so buffers that live shorter than an interval still show.
  /**
   * @typedef {{ id: 'DRAM' | 'L1' | 'HOST', title: string, kinds: [keyof DeviceBytes, string][],
   *   capacity: ((d: DeviceStats) => number | null) | null, lazy: boolean }} Memory
   */
  /** @type {Memory[]} */
  const MEMORIES = [
    {
      id: 'DRAM',
      title: 'DRAM',
      kinds: [
        ['DRAM', '#1f77b4'],
        ['TRACE', '#9467bd'],
      ],
      capacity: (d) => d.total_dram_bytes,
      lazy: false,
    },
    {
      id: 'L1',
      title: 'L1 SRAM',
      kinds: [
        ['L1', '#d62728'],
        ['L1_SMALL', '#ff7f0e'],
        ['CB', '#2ca02c'],
        ['KERNEL', '#8c564b'],
      ],
      capacity: (d) => d.total_l1_bytes,
      lazy: false,
    },
    {
      id: 'HOST',
      title: 'host (SYSTEM_MEMORY)',
      kinds: [['SYSTEM_MEMORY', '#17becf']],
      capacity: null,
      lazy: true,
    },
  ];
  /** What the table and the legends call each kind. */
  /** @type {Partial<Record<keyof DeviceBytes, string>>} */
  const KIND_LABEL = { KERNEL: 'Kernels', SYSTEM_MEMORY: 'SYSTEM_MEMORY' };
  /** @param {keyof DeviceBytes} k */
  const kindLabel = (k) => KIND_LABEL[k] ?? k;
  /** Index in a sample's per-device array of each kind, from the history's `kinds`. */
  /** @type {Record<string, number>} */
  let kindIndex = {};
  /** The samples kept (a chart made later, like a device's first host memory, starts full). */
  /** @type {Sample[]} */
  const samples = [];
  /** Capacity per device and memory, from the stats reply (the charts' capacity line). */
  /** @type {Map<number, DeviceStats>} */
  const deviceStats = new Map();

  /**
   * @typedef {{ box: HTMLElement, legend: HTMLElement, device: number, memory: Memory,
   *   data: (number | null)[][], plot: UPlot, fitData: boolean }} Chart
   */
  /** @type {Map<string, Chart>} */
  const charts = new Map();
  /** @param {number} dev @param {Memory} m */
  const chartKey = (dev, m) => `${dev}/${m.id}`;
  /** @param {Chart} c */
  const chartWidth = (c) => Math.max(200, c.box.clientWidth - 10);
  new ResizeObserver(() => {
    for (const c of charts.values()) c.plot.setSize({ width: chartWidth(c), height: CHART_HEIGHT });
  }).observe($('#charts'));

  // Binary ticks: every increment a power of two (256 MiB, 512 MiB, 1 GiB, never 954 MiB).
  const BINARY_INCRS = Array.from({ length: 61 }, (_, i) => 2 ** i);
  /** A tick's label: formatBytes without trailing zeros ("1.5 GiB", "256 MiB"). */
  /** @param {number} v */
  const tickLabel = (v) => (v === 0 ? '0' : fmt(v).replace(/\.?0+ /, ' '));
  /**
   * A binary round top for the y-scale, a little above v: a multiple of a quarter of the largest
   * power of two under v.
   * @param {number} v
   */
  const binaryTop = (v) => {
    if (!(v > 0)) return 1024;
    const step = Math.max(1, 2 ** Math.floor(Math.log2(v)) / 4);
    return Math.ceil((v * 1.04) / step) * step;
  };
  // Lines only: a dot on every sample says nothing and hides the peak band.
  const NO_POINTS = { show: false };
  const CAPACITY_COLOR = '#555';
  /** Series index of kind i's level and peak, and of the capacity line. */
  /** @param {number} i */
  const levelIdx = (i) => 1 + 2 * i;
  /** @param {Memory} m */
  const capIdx = (m) => 1 + 2 * m.kinds.length;
  /** @param {Chart} c */
  const capacityOf = (c) => {
    const d = deviceStats.get(c.device);
    return d && c.memory.capacity ? c.memory.capacity(d) : null;
  };

  /** @param {number} dev @param {Memory} m @returns {Chart} */
  function ensureChart(dev, m) {
    const key = chartKey(dev, m);
    const have = charts.get(key);
    if (have) return have;
    const box = document.createElement('div');
    box.className = 'chart';
    box.dataset.device = String(dev);
    box.dataset.memory = m.id;
    const title = document.createElement('h3');
    title.innerHTML =
      `<span>Device ${dev} · ${esc(m.title)}</span>` +
      (m.capacity ? '<label class="fit"><input type="checkbox" /> zoom to data</label>' : '');
    box.append(title);
    // Device order, then DRAM, L1, host.
    const rank = (/** @type {number} */ d, /** @type {Memory} */ mm) =>
      d * MEMORIES.length + MEMORIES.indexOf(mm);
    const after = [...charts.values()]
      .filter((o) => rank(o.device, o.memory) > rank(dev, m))
      .sort((a, b) => rank(a.device, a.memory) - rank(b.device, b.memory))[0];
    $('#charts').insertBefore(box, after ? after.box : null);
    const legend = document.createElement('div');
    legend.className = 'legend';
    const data = /** @type {(number | null)[][]} */ (
      Array.from({ length: 2 + 2 * m.kinds.length }, () => [])
    );
    /** @type {Chart} */
    const c = {
      box,
      legend,
      device: dev,
      memory: m,
      data,
      plot: /** @type {any} */ (null),
      fitData: false,
    };
    /** @type {UPlotOptions['series']} */
    const series = [{}];
    /** @type {UPlotOptions['bands']} */
    const bands = [];
    m.kinds.forEach(([k, color], i) => {
      series.push({
        label: kindLabel(k),
        scale: 'y',
        stroke: color,
        width: 1.5,
        points: NO_POINTS,
      });
      series.push({
        label: `${kindLabel(k)} peak`,
        scale: 'y',
        stroke: `${color}66`,
        width: 1,
        points: NO_POINTS,
      });
      bands.push({ series: [levelIdx(i) + 1, levelIdx(i)], fill: `${color}22` });
    });
    series.push({
      label: 'capacity',
      scale: 'y',
      stroke: CAPACITY_COLOR,
      width: 1,
      dash: [6, 4],
      points: NO_POINTS,
    });
    c.plot = new UPlotCtor(
      {
        width: Math.max(200, box.clientWidth - 10),
        height: CHART_HEIGHT,
        legend: { show: false },
        series,
        bands,
        scales: {
          x: { time: true },
          y: { range: () => [0, binaryTop(scaleMax(c))] },
        },
        axes: [
          {},
          {
            scale: 'y',
            size: 62,
            incrs: BINARY_INCRS,
            values: (u, splits) => {
              box.dataset.yticks = JSON.stringify(splits);
              return splits.map(tickLabel);
            },
          },
        ],
        hooks: { setCursor: [(u) => drawLegend(c, u.cursor.idx ?? null)] },
      },
      /** @type {any} */ (data),
      box,
    );
    box.append(legend);
    // For a test or a curious user's console: the plot behind the canvas.
    Object.defineProperty(box, 'uplot', { value: c.plot });
    // The zoom is remembered per chart, in this browser.
    const fit = box.querySelector('input');
    const zoomKey = `ttalloc.zoom.${key}`;
    if (fit) {
      fit.checked = c.fitData = localStorage.getItem(zoomKey) === '1';
      fit.addEventListener('change', () => {
        c.fitData = fit.checked;
        if (fit.checked) localStorage.setItem(zoomKey, '1');
        else localStorage.removeItem(zoomKey);
        c.plot.setData(/** @type {any} */ (c.data));
      });
    }
    charts.set(key, c);
    for (const s of samples) pushSample(c, s);
    drawChart(c);
    return c;
  }
  /** The highest value the y-scale must show: data and peaks, and the capacity unless zoomed. */
  /** @param {Chart} c */
  function scaleMax(c) {
    let max = c.fitData ? 0 : (capacityOf(c) ?? 0);
    for (let i = 1; i < capIdx(c.memory); i++)
      for (const v of c.data[i]) if (v !== null && v > max) max = v;
    return max;
  }
  /** @param {Chart} c @param {Sample} s */
  function pushSample(c, s) {
    const d = s.d[c.device];
    const p = s.p?.[c.device];
    if (!d) return;
    c.data[0].push(s.t / 1000);
    c.memory.kinds.forEach(([k], i) => {
      const level = d[kindIndex[k]] ?? 0;
      c.data[levelIdx(i)].push(level);
      c.data[levelIdx(i) + 1].push(Math.max(level, p?.[kindIndex[k]] ?? level));
    });
    c.data[capIdx(c.memory)].push(null);
    if (c.data[0].length > MAX_POINTS) for (const a of c.data) a.splice(0, a.length - MAX_POINTS);
  }
  /** @param {Chart} c */
  function drawChart(c) {
    const cap = capacityOf(c);
    c.data[capIdx(c.memory)] = c.data[0].map(() => cap);
    c.plot.setData(/** @type {any} */ (c.data));
    const n = c.data[0].length;
    c.box.dataset.samples = String(n);
    /** @param {number} i */
    const last = (i) => c.data[i][n - 1] ?? 0;
    c.box.dataset.last = JSON.stringify(
      Object.fromEntries(c.memory.kinds.map(([k], i) => [k, last(levelIdx(i))])),
    );
    c.box.dataset.peak = JSON.stringify(
      Object.fromEntries(c.memory.kinds.map(([k], i) => [k, last(levelIdx(i) + 1)])),
    );
    drawLegend(c, null);
  }
  /**
   * The legend: each kind's value and interval peak at the hovered sample, else at the latest
   * one (never a blank waiting for the mouse), with what they add up to and the capacity.
   * @param {Chart} c
   * @param {number | null} idx
   */
  function drawLegend(c, idx) {
    const n = c.data[0].length;
    const at = idx ?? n - 1;
    if (at < 0) {
      c.legend.textContent = 'no samples yet';
      return;
    }
    const t = c.data[0][at];
    let used = 0;
    const items = c.memory.kinds.map(([k, color], i) => {
      const v = c.data[levelIdx(i)][at] ?? 0;
      const pk = c.data[levelIdx(i) + 1][at] ?? v;
      used += v;
      return (
        `<span class="item" data-kind="${k}"><i style="background:${color}"></i>` +
        `${esc(kindLabel(k))} <b class="v">${fmt(v)}</b>` +
        ` <span class="pk" title="highest in the sampling interval">peak ${fmt(pk)}</span></span>`
      );
    });
    const cap = capacityOf(c);
    const share = cap ? ` (${pctText(used, cap)})` : '';
    const sum =
      c.memory.kinds.length > 1 || cap
        ? `<span class="item used" data-kind="used">used <b>${fmt(used)}</b>${share}</span>`
        : '';
    const capacity = c.memory.capacity
      ? `<span class="item" data-kind="capacity"><i class="dash"></i>capacity ` +
        `<b class="cap">${fmt(cap)}</b></span>`
      : '';
    const when = idx === null ? 'now' : t === null ? '' : clock(t * 1000);
    c.legend.innerHTML = `<span class="when">${when}</span>${items.join('')}${sum}${capacity}`;
  }
  /** @param {Sample} s @param {boolean} draw */
  function addSample(s, draw) {
    samples.push(s);
    if (samples.length > MAX_POINTS) samples.splice(0, samples.length - MAX_POINTS);
    for (const dev of Object.keys(s.d).map(Number)) {
      for (const m of MEMORIES) {
        const existing = charts.get(chartKey(dev, m));
        if (existing) {
          pushSample(existing, s);
          if (draw) drawChart(existing);
        } else if (!m.lazy || hasAny(s, dev, m)) ensureChart(dev, m);
      }
    }
  }
  /** Whether a sample shows any of a memory's kinds on a device. */
  /** @param {Sample} s @param {number} dev @param {Memory} m */
  const hasAny = (s, dev, m) =>
    m.kinds.some(([k]) => (s.d[dev]?.[kindIndex[k]] ?? 0) + (s.p?.[dev]?.[kindIndex[k]] ?? 0) > 0);
  /** @param {boolean} on @param {string} text */
  const status = (on, text) => {
    const e = $('#status');
    e.className = `status ${on ? 'on' : 'off'}`;
    e.textContent = text;
  };
  const events = new EventSource('/v1/events');
  events.addEventListener('history', (e) => {
    /** @type {HistoryResponse} */
    const h = JSON.parse(/** @type {MessageEvent} */ (e).data);
    kindIndex = Object.fromEntries(h.kinds.map((k, i) => [k, i]));
    samples.length = 0;
    for (const c of charts.values()) for (const a of c.data) a.length = 0;
    for (const s of h.samples) addSample(s, false);
    for (const c of charts.values()) drawChart(c);
  });
  events.onmessage = (e) => addSample(JSON.parse(e.data), true);
  events.onopen = () => status(true, 'live');
  events.onerror = () => status(false, 'disconnected, retrying…');

  // ------------------------------------------------------------------ tables
  /** @param {string} tbody @param {string[]} html */
  function rows(tbody, html) {
    $(tbody).innerHTML = html.join('');
  }
  /**
   * A kind's figure with, beneath it, its peak since start (or the last reset-peaks).
   * @param {DeviceStats} d
   * @param {keyof DeviceBytes} k
   */
  const withPeak = (d, k) =>
    `<td data-kind="${k}"${k === 'SYSTEM_MEMORY' ? ' class="host"' : ''}>${fmt(d.bytes[k])}` +
    '<small class="peak" title="highest since start or the last reset-peaks">' +
    `peak ${fmt(d.peak_bytes[k])}</small></td>`;
  async function loadStats() {
    /** @type {StatsResponse} */
    const s = await getJson('/v1/stats');
    $('#summary').textContent =
      `server pid ${s.pid} · up ${s.uptime_seconds}s · ${s.live.buffers} buffers · ` +
      `${s.live.processes} processes · ` +
      `${s.frames.total} frames (${s.frames.rejected} rejected) · ${s.reaped_processes} reaped`;
    // Whether a restart would keep this state: worth a red flag when it would not.
    const p = s.persistence,
      el = $('#persist');
    el.textContent = !p.enabled
      ? '· persistence OFF'
      : p.failed
        ? '· persistence STOPPED'
        : '· state saved to disk';
    el.className = !p.enabled || p.failed ? 'hot' : '';
    el.title = !p.enabled
      ? `${p.reason}: a restart loses this state`
      : p.failed
        ? `${p.failed}: tracking in memory until ${p.dir} has room`
        : `${p.dir}, flushed every ${p.flush_interval_ms} ms`;
    for (const d of s.devices) {
      const before = deviceStats.get(d.device);
      deviceStats.set(d.device, d);
      const changed =
        before?.total_dram_bytes !== d.total_dram_bytes ||
        before?.total_l1_bytes !== d.total_l1_bytes;
      if (changed)
        for (const m of MEMORIES) {
          const c = charts.get(chartKey(d.device, m));
          if (c) drawChart(c);
        }
    }
    rows(
      '#devices tbody',
      s.devices.map((d) => {
        const b = d.bytes;
        const n = Object.values(d.buffers).reduce((a, x) => a + x, 0);
        // Each "used" is the sum of the cells beside it, over the capacity of that same memory.
        const dramUsed = b.DRAM + b.TRACE;
        const l1Used = b.L1 + b.L1_SMALL + b.CB + b.KERNEL;
        return [
          `<tr data-device="${d.device}"><td class="l">${d.device}`,
          `<small class="arch">${esc(d.arch ?? 'not declared')}</small></td>`,
          withPeak(d, 'DRAM'),
          withPeak(d, 'TRACE'),
          `<td class="used" data-memory="DRAM">${fmt(dramUsed)}`,
          `${pctHtml(dramUsed, d.total_dram_bytes)}</td>`,
          `<td>${fmt(d.total_dram_bytes)}</td>`,
          withPeak(d, 'L1'),
          withPeak(d, 'L1_SMALL'),
          withPeak(d, 'CB'),
          withPeak(d, 'KERNEL'),
          `<td class="used" data-memory="L1">${fmt(l1Used)}`,
          `${pctHtml(l1Used, d.total_l1_bytes)}</td>`,
          `<td>${fmt(d.total_l1_bytes)}</td>`,
          withPeak(d, 'SYSTEM_MEMORY'),
          `<td>${n}</td></tr>`,
        ].join('');
      }),
    );
  }
  // Process table sort: by a column summed over the process's devices (click again to reverse).
  let procSort = { key: 'DRAM', desc: true };
  /** @type {ProcessRow[]} */
  let lastProcs = [];
  $('#processes thead').addEventListener('click', (e) => {
    const th = /** @type {HTMLElement | null} */ (
      /** @type {Element} */ (e.target).closest('th[data-sort]')
    );
    const key = th?.dataset.sort;
    if (!key) return;
    procSort = {
      key,
      desc: procSort.key === key ? !procSort.desc : !(key === 'pid' || key === 'command'),
    };
    renderProcesses();
  });
  async function loadProcesses() {
    /** @type {ProcessesResponse} */
    const r = await getJson('/v1/processes');
    lastProcs = r.processes;
    renderProcesses();
    if (r.sources) renderChips(r.sources);
  }
  // The SHM regions (one per chip as tt-metal numbers them) and the driver, in a table.
  /** @param {SourcesSummary} s */
  function renderChips(s) {
    const regions = s.shm.regions;
    $('#chips-box').hidden = regions.length === 0 && !s.driver.present;
    const silent = Object.values(s.silent).reduce((a, n) => a + n, 0);
    $('#sources-summary').textContent =
      `SHM ${s.shm.root}: ${regions.length} region(s) · ` +
      (s.driver.present
        ? `driver ${s.driver.version ?? '?'}: ${s.driver.cards.length} card(s), ` +
          `${s.holders} holder(s)`
        : 'no driver') +
      (silent ? ` · ${silent} holder(s) report nothing` : '');
    /**
     * @param {{ dram: number, l1: number, l1_small: number, trace: number, cb: number }
     *   | null | undefined} t
     */
    const sum = (t) => (t ? t.dram + t.l1 + t.l1_small + t.trace + t.cb : 0);
    rows(
      '#chips tbody',
      regions.map((g) => {
        const t = g.totals;
        const figures =
          g.status === 'ok' && t
            ? [t.dram, t.l1, t.l1_small, t.trace, t.cb].map((v) => `<td>${fmt(v)}</td>`).join('')
            : `<td colspan="5" class="l hot">${esc(g.error ?? g.status)}</td>`;
        const ghost = sum(g.ghost);
        return (
          `<tr data-asic="${esc(g.asic_id)}"><td class="l">${esc(g.asic_id)}</td>` +
          `<td>${g.device ?? '?'}</td><td class="l">${esc(g.layout)}</td>` +
          `<td class="l">${esc(g.owner_user ?? g.owner_uid)}</td>` +
          `<td class="l${g.status === 'ok' ? '' : ' hot'}">${esc(g.status)}</td>${figures}` +
          `<td class="${g.slots_full ? 'hot' : ''}">${g.slots_live} / ${g.slots_used}</td>` +
          `<td class="${ghost ? 'warm' : ''}">${g.ghost ? fmt(ghost) : '–'}</td></tr>`
        );
      }),
    );
    // The cards under the driver: identity and sensors, as tt-smi shows them.
    /** @param {number | undefined} v @param {string} u @param {number} digits */
    const unit = (v, u, digits) => (v === undefined ? '–' : `${v.toFixed(digits)} ${u}`);
    rows(
      '#cards tbody',
      (s.driver.present ? s.driver.cards : []).map((c) => {
        const cells = [
          `<td>${c.index}</td>`,
          `<td class="l">${esc(c.card_type ?? '?')}</td>`,
          `<td class="l">${esc(c.board_serial ?? '–')}</td>`,
          `<td class="l">${esc(c.asic_id ?? '–')}</td>`,
          `<td title="${esc(c.chips_note)}">${c.chips ?? '?'}</td>`,
          `<td>${c.holders.length + c.holders_outside_ns}</td>`,
          `<td>${unit(c.sensors.temperature_c, '°C', 1)}</td>`,
          `<td>${unit(c.sensors.power_w, 'W', 1)}</td>`,
          `<td class="l">${esc(c.firmware.bundle ?? '–')}</td>`,
        ];
        return `<tr data-card="${c.index}">${cells.join('')}</tr>`;
      }),
    );
  }
  /**
   * @typedef {{ device: number, DRAM: number, L1: number, L1_SMALL: number, TRACE: number,
   *   CB: number, KERNEL: number, SYSTEM_MEMORY: number | null, buffers: number | null,
   *   from: 'socket' | 'shm' }} DisplayDevice
   */
  /**
   * Figures per device: the socket's, else the SHM slots' for chips the socket does not report
   * (report/process-view.ts displayDevices, for the browser: keep the two in step). Host memory
   * (SYSTEM_MEMORY) is apart from L1_SMALL.
   * @param {ProcessRow} r
   * @returns {DisplayDevice[]}
   */
  function displayDevices(r) {
    /** @type {DisplayDevice[]} */
    const out = r.devices.map((d) => ({
      ...d,
      SYSTEM_MEMORY: d.SYSTEM_MEMORY ?? 0,
      from: /** @type {const} */ ('socket'),
    }));
    const covered = new Set(r.devices.map((d) => d.device));
    for (const u of r.shm ?? []) {
      if (u.device !== null && covered.has(u.device)) continue;
      const b = u.bytes;
      out.push({
        device: u.device ?? -1,
        DRAM: b.dram,
        L1: b.l1,
        L1_SMALL: b.l1_small,
        TRACE: b.trace,
        CB: b.cb,
        KERNEL: b.kernel ?? 0,
        SYSTEM_MEMORY: null, // tt-metal's SHM slots do not count host memory
        buffers: null,
        from: 'shm',
      });
    }
    return out.sort((a, b) => a.device - b.device);
  }
  /** @param {ProcessRow} r */
  function infoText(r) {
    const parts = [];
    const id = r.identity;
    if (id?.user) parts.push(`user ${id.user}`);
    if (id?.container) parts.push(`container ${id.container}`);
    if (r.ns_pid != null) parts.push(`PID ${r.ns_pid} in its namespace`);
    for (const c of r.checks ?? []) {
      if (c.agree) parts.push(`socket = shm on chip ${c.asic_id}`);
      else {
        const s = c.differs.reduce((a, k) => a + (c.socket[k] ?? 0), 0);
        const m = c.differs.reduce((a, k) => a + (c.shm[k] ?? 0), 0);
        parts.push(`socket ${fmt(s)} ≠ shm ${fmt(m)} (${c.differs.join(', ')}, chip ${c.asic_id})`);
      }
    }
    // The user alone is not worth a line (it is in the command's tooltip).
    return parts.length > (id?.user ? 1 : 0) ? parts.join(' · ') : '';
  }
  /** @type {(keyof DisplayDevice)[]} */
  const PROC_KINDS = ['DRAM', 'TRACE', 'L1', 'L1_SMALL', 'CB', 'KERNEL', 'SYSTEM_MEMORY'];
  function renderProcesses() {
    const { key, desc } = procSort;
    /** @param {ProcessRow} r @returns {number | string} */
    const val = (r) =>
      key === 'pid'
        ? r.pid
        : key === 'command'
          ? (r.command ?? '')
          : displayDevices(r).reduce(
              (a, d) => a + Number(d[/** @type {keyof DisplayDevice} */ (key)] ?? 0),
              0,
            );
    const procs = [...lastProcs].sort((a, b) => {
      const x = val(a);
      const y = val(b);
      const c =
        typeof x === 'string' ? x.localeCompare(String(y)) : /** @type {number} */ (x) - Number(y);
      return (desc ? -c : c) || a.pid - b.pid;
    });
    for (const th of /** @type {NodeListOf<HTMLElement>} */ (
      document.querySelectorAll('#processes th[data-sort]')
    ))
      th.dataset.dir = th.dataset.sort === key ? (desc ? '▼' : '▲') : '';
    const html = [];
    const cols = 4 + PROC_KINDS.length + 1;
    for (const r of procs) {
      const devs = displayDevices(r);
      if (devs.length === 0 && !r.silent) continue;
      const claims = r.claimed_pid ? ` (claims ${r.claimed_pid})` : '';
      // The whole command line in the tooltip, shortened in the cell.
      const cmd = r.identity?.cmdline || r.command || '(gone)';
      const short = shorten(cmd, 48);
      const src = (r.sources ?? ['socket']).join('+');
      const user = r.identity?.user ? ` (user ${r.identity.user})` : '';
      const head =
        `<td>${r.pid}</td>` +
        `<td class="l cmd" title="${esc(cmd + user)}">` +
        `${esc(short)}${claims}</td>` +
        `<td class="l source">${esc(src)}</td>`;
      devs.forEach((d, i) => {
        const cells = PROC_KINDS.map(
          (k) =>
            `<td data-kind="${k}"${k === 'SYSTEM_MEMORY' ? ' class="host"' : ''}>` +
            `${d[k] === null ? '–' : fmt(Number(d[k]))}</td>`,
        );
        html.push(
          `<tr data-pid="${r.pid}" data-device="${d.device}" data-from="${d.from}">` +
            `${i === 0 ? head : '<td></td><td></td><td></td>'}` +
            `<td>${d.device < 0 ? '?' : d.device}</td>` +
            `${cells.join('')}<td>${d.buffers ?? '(shm)'}</td></tr>`,
        );
      });
      if (r.silent)
        html.push(
          `<tr data-pid="${r.pid}" data-silent="${esc(r.silent.code)}">${head}` +
            `<td class="l hot reason" colspan="${cols - 3}">reports nothing: ` +
            `${esc(r.silent.text)} — fix: ${esc(r.silent.fix)}</td></tr>`,
        );
      const info = infoText(r);
      if (info)
        html.push(
          `<tr data-pid="${r.pid}" class="info"><td></td>` +
            `<td class="l info" colspan="${cols - 1}">${esc(info)}</td></tr>`,
        );
    }
    rows('#processes tbody', html);
  }

  // ------------------------------------------------------------------ buffers (server-side paging)
  let offset = 0;
  let total = 0;
  let bufferSeq = 0;
  /** @type {Record<string, number>} */
  const SIZE_UNITS = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };
  /** The type column's words: SYSTEM_MEMORY says it is host memory. */
  /** @param {string} t */
  const typeLabel = (t) => (t === 'SYSTEM_MEMORY' ? 'SYSTEM_MEMORY <small>(host)</small>' : esc(t));
  function filterQuery() {
    const f = new FormData($form('#filters'));
    const q = new URLSearchParams();
    for (const k of ['device', 'pid', 'type']) {
      const v = String(f.get(k) ?? '').trim();
      if (v) q.set(k, v);
    }
    const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$/i.exec(String(f.get('minSize') ?? ''));
    if (m) q.set('minSize', String(Math.round(Number(m[1]) * SIZE_UNITS[m[2].toUpperCase()])));
    const mark = String(f.get('mark') ?? '');
    if (mark) q.set('since', mark);
    return q;
  }
  async function loadBuffers() {
    const f = new FormData($form('#filters'));
    const q = filterQuery();
    const limit = Number(f.get('limit'));
    q.set('order', String(f.get('order')));
    q.set('limit', String(limit));
    q.set('offset', String(offset));
    // Only the newest request may draw: a slower, older one (before a filter change) is dropped.
    const seq = ++bufferSeq;
    /** @type {BufferPage} */
    let page;
    try {
      page = await getJson(`/v1/buffers/page?${q}`);
    } catch (e) {
      if (seq === bufferSeq) $('#range').textContent = /** @type {Error} */ (e).message;
      return;
    }
    if (seq !== bufferSeq) return;
    total = page.total;
    if (offset > 0 && offset >= total) {
      offset = Math.max(0, total - (total % limit || limit));
      return loadBuffers();
    }
    const sel = /** @type {HTMLSelectElement} */ ($('#filters [name=mark]'));
    const since = sel.value ? `, born after mark ${sel.selectedOptions[0]?.textContent ?? ''}` : '';
    $('#range').textContent =
      total === 0
        ? `no matching buffers${since}`
        : `${offset + 1}–${offset + page.buffers.length} of ${total} (${fmt(page.total_bytes)})` +
          since;
    $button('#prev').disabled = offset === 0;
    $button('#next').disabled = offset + limit >= total;
    rows(
      '#buffers tbody',
      page.buffers.map(
        (b) =>
          `<tr data-type="${esc(b.type)}" data-pid="${b.pid}" data-born="${b.allocated_at_ms}">` +
          `<td>${b.device}</td><td data-col="size">${fmt(b.size)}</td>` +
          `<td class="l type">${typeLabel(b.type)}</td><td>${b.pid}</td>` +
          `<td class="l">${esc(b.address)}</td><td>${b.ref_count}</td>` +
          `<td>${clock(b.allocated_at_ms)}</td>` +
          // 648-byte clients' buffer name; its stack trace shows on hover
          `<td class="l" title="${esc(b.stack_trace ?? '')}">${esc(b.name ?? '')}</td></tr>`,
      ),
    );
  }
  $('#filters').addEventListener('input', () => {
    offset = 0;
    void loadBuffers();
  });
  $('#filters').addEventListener('submit', (e) => e.preventDefault());
  const pageLimit = () => Number(new FormData($form('#filters')).get('limit'));
  $button('#prev').onclick = () => {
    offset = Math.max(0, offset - pageLimit());
    void loadBuffers();
  };
  $button('#next').onclick = () => {
    offset += pageLimit();
    void loadBuffers();
  };

  // ------------------------------------------------------------------ marks and the leak report
  /** @type {MarkJson[]} */
  let lastMarks = [];
  async function loadMarks() {
    /** @type {MarksResponse} */
    const { marks } = await getJson('/v1/marks');
    const same =
      marks.length === lastMarks.length &&
      marks.every((m, i) => m.name === lastMarks[i].name && m.time_ms === lastMarks[i].time_ms);
    lastMarks = marks;
    if (same) return; // redrawing would drop a click on its way
    $('#mark-filter').hidden = marks.length === 0;
    $('#marks-box').hidden = marks.length === 0;
    const sel = /** @type {HTMLSelectElement} */ ($('#filters [name=mark]'));
    const keep = sel.value;
    sel.innerHTML =
      '<option value="">—</option>' +
      marks.map((m) => `<option value="${esc(m.name)}">${esc(m.name)}</option>`).join('');
    sel.value = keep;
    rows(
      '#marks tbody',
      marks.map(
        (m) =>
          `<tr data-mark="${esc(m.name)}"><td class="l">${esc(m.name)}</td>` +
          `<td>${clock(m.time_ms)}</td><td>${m.pid ?? 'all'}</td>` +
          `<td class="l"><a href="#buffers-box" data-since="${esc(m.name)}">` +
          'show buffers born after it</a> · ' +
          `<a href="#diff-box" data-diff="${esc(m.name)}">diff since</a></td></tr>`,
      ),
    );
  }
  $('#marks').addEventListener('click', (e) => {
    const target = /** @type {Element} */ (e.target);
    const dl = /** @type {HTMLElement | null} */ (target.closest('a[data-diff]'));
    if (dl) {
      e.preventDefault();
      void loadDiff(dl.dataset.diff ?? '');
      $('#diff-box').scrollIntoView();
      return;
    }
    const a = /** @type {HTMLElement | null} */ (target.closest('a[data-since]'));
    if (!a) return;
    e.preventDefault();
    // (a mark taken for one process covers only its buffers: the server applies its PID)
    /** @type {HTMLSelectElement} */ ($('#filters [name=mark]')).value = a.dataset.since ?? '';
    offset = 0;
    void loadBuffers();
    $('#buffers-box').scrollIntoView();
  });
  /**
   * A table's rows, or one row saying there are none.
   * @param {string} tbody
   * @param {string[]} html
   * @param {string} none
   */
  function rowsOrNone(tbody, html, none) {
    const cols = $(tbody).closest('table')?.querySelectorAll('thead tr:last-child th').length ?? 1;
    rows(
      tbody,
      html.length ? html : [`<tr class="none"><td class="l" colspan="${cols}">${none}</td></tr>`],
    );
  }
  // GET /v1/diff: what was born between marks and is still alive, and what grows by the same
  // buffers every run.
  /** @param {string} name */
  async function loadDiff(name) {
    $('#diff-box').hidden = false;
    $('#diff-title').textContent = `Since mark ${name}`;
    /** @type {DiffResponse} */
    let d;
    try {
      d = await getJson(`/v1/diff?a=${encodeURIComponent(name)}`);
    } catch (e) {
      $('#diff-error').textContent = /** @type {Error} */ (e).message;
      return;
    }
    $('#diff-error').textContent = '';
    $('#diff-summary').textContent =
      `${d.from} → ${d.to}: ${d.buffers} buffers (${fmt(d.bytes)}) born since and not freed`;
    rowsOrNone(
      '#intervals tbody',
      d.intervals.map((iv) => {
        const top = [...iv.groups]
          .sort((a, b) => b.bytes - a.bytes)
          .slice(0, 3)
          .map((g) => `${g.count} × ${fmt(g.size)} ${typeLabel(g.type)} on device ${g.device}`);
        const more = iv.groups.length > 3 ? ` (+${iv.groups.length - 3} more)` : '';
        return (
          `<tr><td class="l">${esc(iv.from)}</td><td class="l">${esc(iv.to)}</td>` +
          `<td>${iv.buffers}</td><td>${fmt(iv.bytes)}</td>` +
          `<td class="l">${top.join(', ')}${more}</td></tr>`
        );
      }),
      'no marks after this one',
    );
    rowsOrNone(
      '#accumulating tbody',
      d.accumulating.map(
        (a) =>
          `<tr><td class="l">${esc(a.type)}</td><td>${fmt(a.size)}</td>` +
          `<td>${a.count_per_run}</td><td>${fmt(a.bytes_per_run)}</td><td>${a.runs}</td>` +
          `<td class="l">${a.devices.join(', ')}</td></tr>`,
      ),
      'nothing grows by the same buffers every run',
    );
  }
  /** @param {ClassGroup} g */
  function classDetails(g) {
    const list = g.buffers.map(
      (b) =>
        `<tr><td>${b.device}</td><td class="l type">${typeLabel(b.type)}</td>` +
        `<td class="l">${esc(b.address)}</td><td>${fmt(b.size)}</td><td>${b.pid}</td>` +
        `<td class="l reason">${esc(b.reason)}</td></tr>`,
    );
    const more = g.more ? `<p>and ${g.more} more</p>` : '';
    return (
      `<details data-class="${g.class}"${g.class === 'suspicious' ? ' open' : ''}>` +
      `<summary>${esc(g.label)}: ${g.count} buffers, ` +
      `${fmt(g.bytes)}</summary><div class="scroll"><table><thead><tr><th>Device</th>` +
      '<th>Type</th><th>Address</th><th>Size</th><th>PID</th><th>Why</th></tr></thead>' +
      `<tbody>${list.join('')}</tbody></table></div>${more}</details>`
    );
  }
  /** Suspicious buffers are the ones to look at first. */
  /** @param {ClassGroup} g */
  const hot = (g) => g.class === 'suspicious' && g.count > 0;
  async function loadReport() {
    const q = filterQuery();
    q.delete('minSize');
    q.delete('since'); // the report endpoint filters by device, PID and type
    const said = [
      ['device', 'device'],
      ['type', 'type'],
      ['pid', 'PID'],
    ].map(([k, what]) => `${what} ${q.get(k) ?? 'any'}`);
    $('#report-filter').textContent = said.join(' · ');
    q.set('format', 'json');
    $('#report-status').textContent = 'loading…';
    /** @type {ReportResponse} */
    const r = await getJson(`/v1/report?${q}`);
    $('#report-status').textContent = `as of ${clock(Date.parse(r.generated_at))}`;
    const groups = r.devices.flatMap((d) =>
      d.types.map(
        (t) =>
          `<tr data-device="${d.device}" data-type="${esc(t.type)}"><td>${d.device}</td>` +
          `<td class="l type">${typeLabel(t.type)}</td><td>${t.count}</td>` +
          `<td>${fmt(t.bytes)}</td></tr>`,
      ),
    );
    rowsOrNone('#report tbody', groups, 'no live buffers match');
    $('#report tfoot').innerHTML =
      `<tr><th class="l" colspan="2">total</th><th>${r.total_buffers}</th>` +
      `<th>${fmt(r.total_bytes)}</th></tr>`;
    const ex = r.exited;
    rowsOrNone(
      '#exited tbody',
      (ex?.processes ?? []).map((p) => {
        const cmd = p.cmdline ?? '(unknown)';
        const where = Object.entries(p.by_device)
          .flatMap(([dev, types]) =>
            Object.entries(types).map(
              ([t, v]) => `${v.count} ${typeLabel(t)} (${fmt(v.bytes)}) on ${esc(dev)}`,
            ),
          )
          .join(', ');
        return (
          `<tr data-pid="${p.pid}"><td>${p.pid}</td>` +
          `<td class="l cmd" title="${esc(cmd)}">${esc(shorten(cmd, 40))}</td>` +
          `<td>${clock(p.exited_at_ms)}</td><td>${p.buffers}</td><td>${fmt(p.bytes)}</td>` +
          `<td class="l">${where}</td></tr>`
        );
      }),
      'no exited process left anything',
    );
    q.set('all', '1');
    $link('#download-filtered').href = `/v1/report?${q}`;
    /** @type {ClassifyResponse} */
    const c = await getJson('/v1/classify?limit=10');
    rows(
      '#classes tbody',
      c.classes.map(
        (g) =>
          `<tr data-class="${g.class}"${hot(g) ? ' class="hot"' : ''}>` +
          `<td class="l name">${esc(g.label)}</td>` +
          `<td>${g.count}</td><td>${fmt(g.bytes)}</td><td class="l hint">${esc(g.hint)}</td></tr>`,
      ),
    );
    $('#class-details').innerHTML = c.classes
      .filter((g) => g.buffers.length > 0 && g.class !== 'left_behind')
      .map(classDetails)
      .join('');
  }
  $button('#refresh-report').onclick = () =>
    void loadReport().catch((e) => {
      $('#report-status').textContent = e.message;
    });

  // ------------------------------------------------------------------ polling
  let busy = false;
  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      await Promise.all([loadStats(), loadProcesses(), loadBuffers(), loadMarks()]);
    } catch (e) {
      status(false, `error: ${/** @type {Error} */ (e).message}`);
    } finally {
      busy = false;
    }
  }
  void refresh();
  $button('#refresh-report').click();
  setInterval(refresh, POLL_MS);
})();
