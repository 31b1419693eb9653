// ttalloc dashboard: charts fed by the server's sample stream (SSE), tables polled from the
// read-only JSON API. Plain browser JavaScript, no framework, no CDN: uPlot is served by ttalloc.
// The replies it reads are the shapes declared in src/report/types.ts (typedefs below); it reads
// no field those do not declare.
/* global uPlot */
'use strict';
/** @typedef {import('../../report/types.js').StatsResponse} StatsResponse */
/** @typedef {import('../../report/types.js').ProcessesResponse} ProcessesResponse */
/** @typedef {import('../../report/types.js').ProcessRow} ProcessRow */
/** @typedef {import('../../report/types.js').BufferPage} BufferPage */
/** @typedef {import('../../report/types.js').MarksResponse} MarksResponse */
/** @typedef {import('../../report/types.js').HistoryResponse} HistoryResponse */
/** @typedef {import('../../report/types.js').Sample} Sample */
/** @typedef {import('../../sources/merge-types.js').SourcesSummary} SourcesSummary */
(() => {
  const $ = (s) => document.querySelector(s);
  // Table refresh period; ?poll=MS overrides it (tests, or a busy server watched from afar).
  const POLL_MS = Math.max(200, Number(new URLSearchParams(location.search).get('poll')) || 2000);
  const MAX_POINTS = 600;
  const UNITS = ['KiB', 'MiB', 'GiB', 'TiB'];
  // formatBytes of src/report/format.ts, for the browser: keep the two in step.
  const fmt = (b) => {
    if (b == null) return '–';
    if (Math.abs(b) < 1024) return `${b} B`;
    let v = b / 1024;
    let u = 0;
    while (Math.abs(v) >= 1024 && u < UNITS.length - 1) {
      v /= 1024;
      u++;
    }
    return `${v.toFixed(Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2)} ${UNITS[u]}`;
  };
  const esc = (s) =>
    String(s).replace(
      /[&<>"]/g,
      (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c],
    );
  const getJson = async (path) => {
    const r = await fetch(path);
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
    return r.json();
  };

  // ------------------------------------------------------------------ charts
  // Series per chart: DRAM-resident memory on the left axis, L1-resident on the right, because
  // their scales differ by a factor of ~100. Which sample kinds each series sums comes with the
  // history (HistoryResponse.counters: the usage counters' buffer types, L1_SMALL counting
  // SYSTEM_MEMORY; CB and KERNEL by name in HistoryResponse.kinds).
  const SERIES = [
    ['DRAM', 'dram', '#1f77b4'],
    ['TRACE', 'dram', '#9467bd'],
    ['L1', 'l1', '#d62728'],
    ['L1_SMALL', 'l1', '#ff7f0e'],
    ['CB', 'l1', '#2ca02c'],
    ['KERNEL', 'l1', '#8c564b'],
  ];
  /** Sample indexes per series, from the first history message. */
  let seriesKinds = SERIES.map(() => []);
  /** @param {HistoryResponse} h */
  const learnKinds = (h) => {
    seriesKinds = SERIES.map(([name]) => h.counters[name] ?? [h.kinds.indexOf(name)]);
  };
  const charts = new Map();
  const chartWidth = (box) => Math.max(300, box.clientWidth - 12);
  window.addEventListener('resize', () => {
    for (const c of charts.values()) c.plot.setSize({ width: chartWidth(c.box), height: 220 });
  });
  function ensureChart(dev) {
    let c = charts.get(dev);
    if (c) return c;
    const box = document.createElement('div');
    box.className = 'chart';
    box.dataset.device = dev;
    box.innerHTML = `<h3>Device ${esc(dev)}</h3>`;
    const ordered = [...charts.keys(), dev].sort((a, b) => a - b);
    const next = charts.get(ordered[ordered.indexOf(dev) + 1]);
    $('#charts').insertBefore(box, next ? next.box : null);
    const data = [[], ...SERIES.map(() => [])];
    const axisValues = (u, vals) => vals.map(fmt);
    const plot = new uPlot(
      {
        width: chartWidth(box),
        height: 220,
        series: [
          {},
          ...SERIES.map(([label, scale, stroke]) => ({
            label,
            scale,
            stroke,
            width: 1.5,
            value: (u, v) => fmt(v),
          })),
        ],
        scales: { x: { time: true } },
        axes: [
          {},
          { scale: 'dram', values: axisValues, size: 70 },
          { scale: 'l1', side: 1, values: axisValues, size: 70, grid: { show: false } },
        ],
      },
      data,
      box,
    );
    c = { box, data, plot };
    charts.set(dev, c);
    return c;
  }
  function addSample(s, draw) {
    for (const [dev, v] of Object.entries(s.d)) {
      const c = ensureChart(Number(dev));
      c.data[0].push(s.t / 1000);
      seriesKinds.forEach((kinds, i) => c.data[i + 1].push(kinds.reduce((a, k) => a + v[k], 0)));
      if (c.data[0].length > MAX_POINTS) for (const a of c.data) a.splice(0, a.length - MAX_POINTS);
      if (draw) drawChart(c);
    }
  }
  function drawChart(c) {
    c.plot.setData(c.data);
    c.box.dataset.samples = String(c.data[0].length);
    c.box.dataset.last = JSON.stringify(
      Object.fromEntries(SERIES.map(([l], i) => [l, c.data[i + 1][c.data[i + 1].length - 1]])),
    );
  }
  const status = (on, text) => {
    const e = $('#status');
    e.className = `status ${on ? 'on' : 'off'}`;
    e.textContent = text;
  };
  const events = new EventSource('/v1/events');
  events.addEventListener('history', (e) => {
    const h = JSON.parse(e.data);
    learnKinds(h);
    for (const c of charts.values()) for (const a of c.data) a.length = 0;
    for (const s of h.samples) addSample(s, false);
    for (const c of charts.values()) drawChart(c);
  });
  events.onmessage = (e) => addSample(JSON.parse(e.data), true);
  events.onopen = () => status(true, 'live');
  events.onerror = () => status(false, 'disconnected, retrying…');

  // ------------------------------------------------------------------ tables
  function rows(tbody, html) {
    $(tbody).innerHTML = html.join('');
  }
  async function loadStats() {
    /** @type {StatsResponse} */
    const s = await getJson('/v1/stats');
    $('#summary').textContent =
      `server pid ${s.pid} · up ${s.uptimeSeconds}s · ${s.live.buffers} buffers · ` +
      `${s.live.processes} processes · ` +
      `${s.frames.total} frames (${s.frames.rejected} rejected) · ${s.reapedProcesses} reaped`;
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
        : `${p.dir}, flushed every ${p.flushIntervalMs} ms`;
    const pct = (u, t) => {
      if (!t) return '';
      const p = (100 * u) / t;
      const heat = p >= 90 ? 'hot' : p >= 70 ? 'warm' : '';
      return ` <span class="${heat}">(${p.toFixed(1)}%)</span>`;
    };
    rows(
      '#devices tbody',
      s.devices.map((d) => {
        const b = d.bytes;
        const n = Object.values(d.buffers).reduce((a, x) => a + x, 0);
        const l1Small = d.usage.L1_SMALL; // the wire's counter: SYSTEM_MEMORY counts in it
        const l1Used = d.usage.L1 + l1Small + b.CB + b.KERNEL;
        return [
          `<tr data-device="${d.device}"><td>${d.device}</td>`,
          `<td class="l">${esc(d.arch ?? '?')}</td>`,
          `<td>${fmt(b.DRAM)}${pct(b.DRAM + b.TRACE, d.totalDramBytes)}</td>`,
          `<td>${fmt(d.totalDramBytes)}</td>`,
          `<td>${fmt(b.L1)}${pct(l1Used, d.totalL1Bytes)}</td><td>${fmt(d.totalL1Bytes)}</td>`,
          `<td>${fmt(l1Small)}</td><td>${fmt(b.TRACE)}</td><td>${fmt(b.CB)}</td>`,
          `<td>${fmt(b.KERNEL)}</td><td>${n}</td></tr>`,
        ].join('');
      }),
    );
  }
  // Process table sort: by a column summed over the process's devices (click again to reverse).
  let procSort = { key: 'DRAM', desc: true };
  /** @type {ProcessRow[]} */
  let lastProcs = [];
  $('#processes thead').addEventListener('click', (e) => {
    const key = e.target.closest('th[data-sort]')?.dataset.sort;
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
    const sum = (t) => (t ? t.dram + t.l1 + t.l1_small + t.trace + t.cb : 0);
    rows(
      '#chips tbody',
      regions.map((g) => {
        const t = g.totals;
        const figures =
          g.status === 'ok'
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
   * Figures per device: the socket's, else the SHM slots' for chips the socket does not report
   * (report/process-view.ts displayDevices, for the browser: keep the two in step).
   * @param {ProcessRow} r
   */
  function displayDevices(r) {
    const out = r.devices.map((d) => ({ ...d, from: 'socket' }));
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
        const s = c.differs.reduce((a, k) => a + c.socket[k], 0);
        const m = c.differs.reduce((a, k) => a + c.shm[k], 0);
        parts.push(`socket ${fmt(s)} ≠ shm ${fmt(m)} (${c.differs.join(', ')}, chip ${c.asic_id})`);
      }
    }
    // The user alone is not worth a line (it is in the command's tooltip).
    return parts.length > (id?.user ? 1 : 0) ? parts.join(' · ') : '';
  }
  function renderProcesses() {
    const { key, desc } = procSort;
    const val = (r) =>
      key === 'pid'
        ? r.pid
        : key === 'command'
          ? (r.command ?? '')
          : displayDevices(r).reduce((a, d) => a + (d[key] ?? 0), 0);
    const procs = [...lastProcs].sort((a, b) => {
      const x = val(a);
      const y = val(b);
      const c = typeof x === 'string' ? x.localeCompare(y) : x - y;
      return (desc ? -c : c) || a.pid - b.pid;
    });
    for (const th of document.querySelectorAll('#processes th[data-sort]'))
      th.dataset.dir = th.dataset.sort === key ? (desc ? '▼' : '▲') : '';
    const html = [];
    for (const r of procs) {
      const devs = displayDevices(r);
      if (devs.length === 0 && !r.silent) continue;
      const claims = r.claimedPid ? ` (claims ${r.claimedPid})` : '';
      // The whole command line in the tooltip, shortened in the cell.
      const cmd = r.identity?.cmdline || r.command || '(gone)';
      const short = cmd.length > 48 ? `${cmd.slice(0, 47)}…` : cmd;
      const src = (r.sources ?? ['socket']).join('+');
      const user = r.identity?.user ? ` (user ${r.identity.user})` : '';
      const head =
        `<td>${r.pid}</td>` +
        `<td class="l" title="${esc(cmd + user)}">` +
        `${esc(short)}${claims}</td>` +
        `<td class="l source">${esc(src)}</td>`;
      devs.forEach((d, i) => {
        const cells = [d.DRAM, d.L1, d.L1_SMALL, d.TRACE, d.CB, d.KERNEL].map(
          (v) => `<td>${fmt(v)}</td>`,
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
            `<td class="l hot reason" colspan="8">reports nothing: ${esc(r.silent.text)}` +
            ` — fix: ${esc(r.silent.fix)}</td></tr>`,
        );
      const info = infoText(r);
      if (info)
        html.push(
          `<tr data-pid="${r.pid}" class="info"><td></td>` +
            `<td class="l info" colspan="10">${esc(info)}</td></tr>`,
        );
    }
    rows('#processes tbody', html);
  }

  // ------------------------------------------------------------------ buffers (server-side paging)
  let offset = 0;
  let total = 0;
  let bufferSeq = 0;
  const SIZE_UNITS = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };
  function filterQuery() {
    const f = new FormData($('#filters'));
    const q = new URLSearchParams();
    for (const k of ['device', 'pid', 'type']) {
      const v = String(f.get(k) ?? '').trim();
      if (v) q.set(k, v);
    }
    const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$/i.exec(String(f.get('minSize') ?? ''));
    if (m) q.set('minSize', String(Math.round(Number(m[1]) * SIZE_UNITS[m[2].toUpperCase()])));
    const mark = String(f.get('mark') ?? '');
    if (mark) q.set('bornFromMs', mark);
    return q;
  }
  async function loadBuffers() {
    const f = new FormData($('#filters'));
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
      if (seq === bufferSeq) $('#range').textContent = e.message;
      return;
    }
    if (seq !== bufferSeq) return;
    total = page.total;
    if (offset > 0 && offset >= total) {
      offset = Math.max(0, total - (total % limit || limit));
      return loadBuffers();
    }
    $('#range').textContent =
      total === 0
        ? 'no matching buffers'
        : `${offset + 1}–${offset + page.buffers.length} of ${total} (${fmt(page.totalBytes)})`;
    $('#prev').disabled = offset === 0;
    $('#next').disabled = offset + limit >= total;
    rows(
      '#buffers tbody',
      page.buffers.map(
        (b) =>
          `<tr data-type="${esc(b.type)}" data-pid="${b.pid}"><td>${b.device}</td>` +
          `<td class="l">${esc(b.address)}</td><td class="l">${esc(b.type)}</td>` +
          `<td>${fmt(b.size)}</td><td>${b.pid}</td><td>${b.refCount}</td>` +
          `<td>${new Date(b.allocatedAtMs).toLocaleTimeString()}</td>` +
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
  $('#prev').onclick = () => {
    offset = Math.max(0, offset - Number(new FormData($('#filters')).get('limit')));
    void loadBuffers();
  };
  $('#next').onclick = () => {
    offset += Number(new FormData($('#filters')).get('limit'));
    void loadBuffers();
  };

  // ------------------------------------------------------------------ marks and the report
  async function loadMarks() {
    /** @type {MarksResponse} */
    const { marks } = await getJson('/v1/marks');
    $('#mark-filter').hidden = marks.length === 0;
    $('#marks-box').hidden = marks.length === 0;
    const sel = $('#filters [name=mark]');
    const keep = sel.value;
    sel.innerHTML =
      '<option value="">—</option>' +
      marks.map((m) => `<option value="${m.cutMs}">${esc(m.name)}</option>`).join('');
    sel.value = keep;
    $('#marks').innerHTML = marks
      .map(
        (m) =>
          `<li><a href="#" data-cut="${m.cutMs}">${esc(m.name)}</a>` +
          ` at ${new Date(m.atMs).toLocaleTimeString()}: ` +
          '<span class="l">show buffers born after it</span> · ' +
          `<a href="#" data-diff="${esc(m.name)}">diff since</a></li>`,
      )
      .join('');
  }
  // The server renders the diff (report/leak-text.ts renderDiff, the same text as `ttalloc diff`).
  async function loadDiff(name) {
    const r = await fetch(`/v1/diff?a=${encodeURIComponent(name)}&format=text`);
    $('#diff-box').hidden = false;
    $('#diff-title').textContent = `Diff since ${name}`;
    if (!r.ok) {
      /** @type {{ error?: string }} */
      const d = await r.json().catch(() => ({}));
      $('#diff').textContent = d.error ?? `HTTP ${r.status}`;
      return;
    }
    $('#diff').textContent = await r.text();
  }
  $('#marks').addEventListener('click', (e) => {
    const dl = e.target.closest('a[data-diff]');
    if (dl) {
      e.preventDefault();
      void loadDiff(dl.dataset.diff);
      return;
    }
    const a = e.target.closest('a[data-cut]');
    if (!a) return;
    e.preventDefault();
    $('#filters [name=mark]').value = a.dataset.cut;
    offset = 0;
    void loadBuffers();
    $('#buffers').scrollIntoView();
  });
  async function loadReport() {
    const q = filterQuery();
    q.delete('minSize');
    q.delete('bornFromMs'); // the report endpoint filters by device, PID and type
    q.set('limit', '10');
    $('#report').textContent = 'loading…';
    const r = await fetch(`/v1/report?${q}`);
    $('#report').textContent = await r.text();
    q.set('format', 'json');
    q.set('all', '1');
    q.delete('limit');
    $('#download-filtered').href = `/v1/report?${q}`;
    const c = await fetch('/v1/classify?format=text&limit=5');
    $('#classes').textContent = await c.text();
  }
  $('#refresh-report').onclick = () => void loadReport();

  // ------------------------------------------------------------------ polling
  let busy = false;
  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      await Promise.all([loadStats(), loadProcesses(), loadBuffers(), loadMarks()]);
    } catch (e) {
      status(false, `error: ${e.message}`);
    } finally {
      busy = false;
    }
  }
  void refresh();
  void loadReport();
  setInterval(refresh, POLL_MS);
})();
