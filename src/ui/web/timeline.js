// The dashboard's active-memory timeline, like PyTorch's memory_viz: x is time, y bytes, each
// buffer a band stacked while it is alive (the newest on top, those above a freed one move down),
// coloured by process. /v1/timeline (src/report/timeline.ts) sends at most `limit` lifetimes and
// the peak of the others per pixel column, so a million buffers never reach the page; the page
// says when it is capped. Each pixel column draws the stack at its peak instant, so a buffer that
// lived a millisecond still shows. It uses common.js's helpers.
/** @typedef {import('../../report/timeline.js').TimelineResponse} TimelineResponse */
'use strict';
(() => {
  const box = document.querySelector('#timeline-box');
  if (!box) return;
  const $ = (s) => box.querySelector(s);
  const POLL_MS = ttalloc.pollMs(500, 3000);
  const H = 260,
    LEFT = 70,
    RIGHT = 10,
    TOP = 10,
    BOTTOM = 24;
  const { fmt, esc, getJson, PALETTE } = ttalloc;
  const clock = (ms) => {
    const d = new Date(ms);
    return `${d.toTimeString().slice(0, 8)}.${String(d.getMilliseconds()).padStart(3, '0')}`;
  };
  const duration = (ms) =>
    ms < 1000
      ? `${Math.round(ms)} ms`
      : ms < 120000
        ? `${(ms / 1000).toFixed(1)} s`
        : `${(ms / 60000).toFixed(1)} min`;
  const OTHER = '#b9b9b9';

  const form = $('#timeline-controls');
  const plot = $('#timeline-plot');
  const canvas = plot.querySelector('canvas');
  const tip = plot.querySelector('.view-tip');
  /** @type {TimelineResponse | null} */
  let data = null;
  /** Per column: the stack (lifetime indexes, bottom first) at its peak, and the other band. */
  let stacks = [];
  let tops = new Float64Array(0);
  let yMax = 1;
  /** An absolute time range chosen by dragging; null: follow the last `range` ms. */
  let zoom = null;
  let drag = null;

  const plotW = () => Math.max(100, Math.floor(plot.clientWidth) - LEFT - RIGHT);

  const loadDevices = () => ttalloc.fillDevices(form.device, false);

  const refresh = ttalloc.singleFlight(async () => {
    try {
      const span = form.range.value;
      const when = zoom
        ? `&from=${Math.floor(zoom.from)}&to=${Math.ceil(zoom.to)}`
        : span === 'all'
          ? ''
          : `&from=-${span}`;
      data = await getJson(
        `/v1/timeline?device=${form.device.value || 0}&type=${form.type.value}` +
          `&limit=${form.limit.value}&columns=${plotW()}${when}`,
      );
      layout();
      render();
    } catch (e) {
      $('#timeline-status').textContent = `timeline unavailable: ${e.message}`;
    }
  });

  /**
   * The stack of each column at the instant its listed lifetimes peak: a sweep over births and
   * ends in time order (an end before a birth at the same time), then a replay that copies the
   * stack once per column.
   */
  function layout() {
    const d = data;
    const cols = d.columns;
    const colMs = (d.end_at_ms - d.start_at_ms) / cols;
    const col = (t) => Math.min(cols - 1, Math.max(0, Math.floor((t - d.start_at_ms) / colMs)));
    const ev = [];
    d.lifetimes.forEach((l, i) => {
      const born = Math.max(d.start_at_ms, l.allocated_at_ms);
      ev.push([born, 1, i]);
      if (l.ended_at_ms !== null && l.ended_at_ms < d.end_at_ms)
        ev.push([Math.max(born, l.ended_at_ms), l.ended_at_ms <= born ? 2 : 0, i]);
    });
    ev.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    // pass 1: per column, the number of events applied at its peak
    const peakAt = new Int32Array(cols);
    let level = 0,
      e = 0;
    for (let c = 0; c < cols; c++) {
      let best = level;
      peakAt[c] = e;
      for (; e < ev.length && col(ev[e][0]) === c; e++) {
        level += ev[e][1] === 1 ? d.lifetimes[ev[e][2]].size : -d.lifetimes[ev[e][2]].size;
        if (level > best) {
          best = level;
          peakAt[c] = e + 1;
        }
      }
    }
    // pass 2: replay, keeping the stack in birth order
    const stack = [];
    stacks = new Array(cols);
    tops = new Float64Array(cols);
    e = 0;
    let snap = [],
      changed = true;
    const apply = (x) => {
      const [, kind, i] = ev[x];
      if (kind === 1) stack.push(i);
      else stack.splice(stack.lastIndexOf(i), 1);
      changed = true;
    };
    yMax = 1;
    for (let c = 0; c < cols; c++) {
      for (; e < peakAt[c]; e++) apply(e);
      if (changed) {
        snap = stack.slice();
        changed = false;
      }
      stacks[c] = snap;
      let h = d.other ? d.other.peak_bytes[c] : 0;
      for (const i of snap) h += d.lifetimes[i].size;
      tops[c] = h;
      if (h > yMax) yMax = h;
      for (; e < ev.length && col(ev[e][0]) === c; e++) apply(e);
    }
  }

  const colourOf = (pid, i) => {
    const k = data.owners.findIndex((o) => o.pid === pid);
    const base = k >= 0 && k < PALETTE.length ? PALETTE[k] : '#6b6b6b';
    // neighbouring bands of one process told apart by a shade
    return i % 2 ? base : shade(base, 0.25);
  };
  const shade = (hexColour, f) => {
    const n = parseInt(hexColour.slice(1), 16);
    const ch = (v) => Math.round(v + (255 - v) * f);
    return `rgb(${ch(n >> 16)},${ch((n >> 8) & 255)},${ch(n & 255)})`;
  };

  /** A binary step: the power of two giving at most ~5 ticks (in units of 1, 2 or 4 of it). */
  const byteStep = (max) => {
    let s = 1;
    while (max / s > 5) s *= 2;
    return s;
  };
  const TIME_STEPS = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 15e3, 3e4, 6e4,
  ].concat([12e4, 3e5, 6e5, 9e5, 18e5, 36e5, 72e5, 144e5, 288e5, 864e5]);

  function render() {
    const d = data;
    if (!d) return;
    const W = plotW();
    const CW = LEFT + W + RIGHT;
    const g = ttalloc.canvas2d(canvas, CW, H);
    const ph = H - TOP - BOTTOM;
    const cw = W / d.columns;
    const y = (b) => TOP + ph - (b / yMax) * ph;
    g.fillStyle = '#fff';
    g.fillRect(LEFT, TOP, W, ph);
    // frees the ring dropped: the lifetimes there are missing
    if (d.complete_from_at_ms > d.start_at_ms) {
      g.fillStyle = 'rgba(220, 60, 60, 0.08)';
      g.fillRect(
        LEFT,
        TOP,
        ((d.complete_from_at_ms - d.start_at_ms) / (d.end_at_ms - d.start_at_ms)) * W,
        ph,
      );
    }
    // runs of columns where a band keeps its place are drawn as one rectangle
    const runs = new Map();
    const flush = (i, r) => {
      const l = d.lifetimes[i];
      g.fillStyle = colourOf(l.pid, i);
      const x0 = LEFT + r.c0 * cw;
      g.fillRect(x0, y(r.base + l.size), (r.c1 - r.c0 + 1) * cw, y(r.base) - y(r.base + l.size));
    };
    let other = null;
    for (let c = 0; c < d.columns; c++) {
      const ob = d.other ? d.other.peak_bytes[c] : 0;
      if (other && (other.v !== ob || other.c1 !== c - 1)) {
        drawOther(g, other, { cw, y });
        other = null;
      }
      if (ob > 0) other = other ? { ...other, c1: c } : { v: ob, c0: c, c1: c };
      let base = ob;
      for (const i of stacks[c]) {
        const r = runs.get(i);
        if (r && r.c1 === c - 1 && r.base === base) r.c1 = c;
        else {
          if (r) flush(i, r);
          runs.set(i, { c0: c, c1: c, base });
        }
        base += d.lifetimes[i].size;
      }
    }
    if (other) drawOther(g, other, { cw, y });
    for (const [i, r] of runs) flush(i, r);
    if (drag && drag.x1 !== undefined) {
      g.fillStyle = 'rgba(30, 100, 200, 0.2)';
      g.fillRect(Math.min(drag.x0, drag.x1), TOP, Math.abs(drag.x1 - drag.x0), ph);
    }
    axes(g, { W, ph, y });
    status();
    plot.dataset.shown = String(d.lifetimes.length);
    plot.dataset.total = String(d.lifetimes_in_range);
    plot.dataset.capped = String(d.capped);
    plot.dataset.ymax = String(yMax);
  }

  function drawOther(g, r, o) {
    g.fillStyle = OTHER;
    g.fillRect(LEFT + r.c0 * o.cw, o.y(r.v), (r.c1 - r.c0 + 1) * o.cw, o.y(0) - o.y(r.v));
  }

  function axes(g, o) {
    const d = data;
    g.strokeStyle = '#999';
    g.fillStyle = '#555';
    g.lineWidth = 1;
    g.font = '11px system-ui, sans-serif';
    g.strokeRect(LEFT + 0.5, TOP + 0.5, o.W, o.ph);
    const step = byteStep(yMax);
    g.textAlign = 'right';
    for (let b = 0; b <= yMax; b += step) {
      const py = Math.round(o.y(b)) + 0.5;
      g.beginPath();
      g.moveTo(LEFT - 4, py);
      g.lineTo(LEFT, py);
      g.stroke();
      g.fillText(b === 0 ? '0' : fmt(b), LEFT - 6, py + 4);
    }
    const span = d.end_at_ms - d.start_at_ms;
    const ts = TIME_STEPS.find((s) => span / s <= o.W / 90) ?? TIME_STEPS[TIME_STEPS.length - 1];
    g.textAlign = 'center';
    for (let t = Math.ceil(d.start_at_ms / ts) * ts; t <= d.end_at_ms; t += ts) {
      const px = LEFT + ((t - d.start_at_ms) / span) * o.W;
      g.beginPath();
      g.moveTo(px + 0.5, TOP + o.ph);
      g.lineTo(px + 0.5, TOP + o.ph + 4);
      g.stroke();
      const label = ts < 1000 ? clock(t).slice(3) : clock(t).slice(0, 8);
      g.fillText(label, px, TOP + o.ph + 16);
    }
    g.textAlign = 'left';
  }

  function status() {
    const d = data;
    const peak = d.peak_bytes.reduce((m, v) => Math.max(m, v), 0);
    let s =
      `${d.type} of device ${d.device}, ${clock(d.start_at_ms)}–${clock(d.end_at_ms)} ` +
      `(${duration(d.end_at_ms - d.start_at_ms)}): ${d.lifetimes_in_range} buffer ` +
      `lifetime${d.lifetimes_in_range === 1 ? '' : 's'}, peak ${fmt(peak)}`;
    if (d.capped)
      s +=
        ` · capped: the ${d.lifetimes.length} largest drawn one by one, the other ` +
        `${d.other.lifetimes} as one grey band (their peak per pixel column)`;
    if (d.complete_from_at_ms > d.start_at_ms)
      s +=
        ` · frees before ${clock(d.complete_from_at_ms)} were dropped ` +
        '(--timeline-events): shaded';
    $('#timeline-status').textContent = s;
    $('#timeline-status').classList.toggle('capped', d.capped);
    $('#timeline-legend').innerHTML = d.owners
      .slice(0, PALETTE.length)
      .map(
        (o, i) =>
          `<li><i style="background:${PALETTE[i]}"></i>PID ${o.pid}` +
          `${o.command ? ` ${esc(o.command)}` : ''}</li>`,
      )
      .concat(d.capped ? [`<li><i style="background:${OTHER}"></i>other (not listed)</li>`] : [])
      .join('');
  }
  /** What is drawn at canvas point (px, py). */
  function describe(px, py) {
    const d = data;
    if (!d || px < LEFT || px >= LEFT + plotW() || py < TOP || py > H - BOTTOM) return null;
    const c = Math.min(d.columns - 1, Math.floor(((px - LEFT) / plotW()) * d.columns));
    const b = ((H - BOTTOM - py) / (H - TOP - BOTTOM)) * yMax;
    const t = d.start_at_ms + ((px - LEFT) / plotW()) * (d.end_at_ms - d.start_at_ms);
    let base = d.other ? d.other.peak_bytes[c] : 0;
    if (b < base)
      return `other: ${d.other.lifetimes} smaller lifetimes, ${fmt(base)} at their peak here`;
    for (const i of stacks[c]) {
      const l = d.lifetimes[i];
      if (b < base + l.size) {
        const owner = d.owners.find((o) => o.pid === l.pid);
        const end =
          l.state === 'live'
            ? 'live'
            : `${l.state === 'freed' ? 'freed' : 'left behind, its owner gone at'} ` +
              `${clock(l.ended_at_ms)} (lived ${duration(l.ended_at_ms - l.allocated_at_ms)})`;
        return (
          `${l.address} ${d.type} ${fmt(l.size)} · PID ${l.pid}` +
          `${owner && owner.command ? ` (${owner.command})` : ''}\n` +
          `allocated ${clock(l.allocated_at_ms)} · ${end}`
        );
      }
      base += l.size;
    }
    return `${clock(t)}: ${fmt(tops[c])} at this column's peak`;
  }

  const timeAt = (px) =>
    data.start_at_ms + ((px - LEFT) / plotW()) * (data.end_at_ms - data.start_at_ms);

  canvas.addEventListener('mousedown', (ev) => {
    if (data && ev.offsetX >= LEFT) drag = { x0: ev.offsetX };
  });
  canvas.addEventListener('mousemove', (ev) => {
    if (drag) {
      drag.x1 = Math.max(LEFT, Math.min(LEFT + plotW(), ev.offsetX));
      render();
    }
    const text = describe(ev.offsetX, ev.offsetY);
    tip.hidden = text === null;
    if (text === null) return;
    tip.textContent = text;
    tip.style.left = `${Math.min(ev.offsetX + 14, Math.max(0, plot.clientWidth - 340))}px`;
    tip.style.top = `${Math.max(0, ev.offsetY - 40)}px`;
  });
  canvas.addEventListener('mouseleave', () => {
    tip.hidden = true;
  });
  window.addEventListener('mouseup', () => {
    if (!drag) return;
    const d = drag;
    drag = null;
    const x1 = d.x1 ?? d.x0;
    if (Math.abs(x1 - d.x0) < 4) return render();
    zoom = { from: timeAt(Math.min(d.x0, x1)), to: timeAt(Math.max(d.x0, x1)) };
    void refresh();
  });
  $('#timeline-reset').addEventListener('click', () => {
    zoom = null;
    void refresh();
  });
  form.addEventListener('change', (ev) => {
    if (ev.target.name !== 'limit') zoom = null;
    void refresh();
  });
  ttalloc.onResizeSettled(() => void refresh());

  // For the page tests: where a time and a byte level are drawn, in canvas CSS pixels.
  window.ttallocTimeline = {
    xOf: (ms) => LEFT + ((ms - data.start_at_ms) / (data.end_at_ms - data.start_at_ms)) * plotW(),
    yOf: (bytes) => H - BOTTOM - (bytes / yMax) * (H - TOP - BOTTOM),
  };

  const tick = async () => {
    // a zoomed range stays put; the followed one moves with the clock
    if (!document.hidden && !drag && (!zoom || !data)) await refresh();
    setTimeout(tick, POLL_MS);
  };
  void loadDevices().then(tick);
  setInterval(loadDevices, 10 * POLL_MS);
})();
