// The dashboard's memory map: one device's address space (a bank of L1 or DRAM) as a zoomable
// bar, every live buffer of every process on it coloured by process, the free gaps between them
// and the largest free block marked. It is the picture of an out-of-memory with free space left.
// /v1/map gives the figures of the whole bank, and
// /v1/map/view the visible range, as pixel columns or, once few enough are in view, as the
// objects themselves (src/report/map-view.ts), so a million buffers never reach the page.
/** @typedef {import('../../report/types.js').MemoryMapResponse} MemoryMapResponse */
/** @typedef {import('../../report/map-view.js').MapViewResponse} MapViewResponse */
/** @typedef {import('../../report/map-view.js').MapViewObject} MapViewObject */
'use strict';
(() => {
  const box = document.querySelector('#map-box');
  if (!box) return;
  const $ = (s) => box.querySelector(s);
  const POLL_MS = ttalloc.pollMs(500, 3000);
  /** Objects the page asks for at most; more in view and it draws pixel columns. */
  const OBJECT_LIMIT = 2000;
  const BAR_H = 56,
    AXIS_H = 22,
    TOP = 16;
  const { fmt, esc, getJson, PALETTE } = ttalloc;
  const hex = (n) => `0x${Math.round(n).toString(16)}`;
  // (PALETTE: owners in /v1/map's order, most bytes first; the rest share the "other" colour.)
  const OTHER = '#8a8a8a',
    FREE = '#eef1f4',
    LARGEST = '#0a8f3c';

  const form = $('#map-controls');
  const bar = $('#map-bar');
  const canvas = bar.querySelector('canvas');
  const tip = bar.querySelector('.view-tip');
  /** @type {MemoryMapResponse | null} */
  let full = null;
  /** @type {MapViewResponse | null} */
  let view = null;
  /** The visible address range; null: the whole bank. */
  let zoom = null;
  let drag = null;

  const space = () => (['DRAM', 'TRACE'].includes(form.type.value) ? 'DRAM' : 'L1');
  const colourOf = (pid) => {
    const i = full ? full.owners.findIndex((o) => o.pid === pid) : -1;
    return i >= 0 && i < PALETTE.length ? PALETTE[i] : OTHER;
  };
  const range = () => zoom ?? (full ? { ...full.range } : { start: 0, end: 1 });
  const width = () => Math.max(100, Math.floor(bar.clientWidth));

  const loadDevices = () => ttalloc.fillDevices(form.device, true);

  const refresh = ttalloc.singleFlight(async () => {
    try {
      const q = `device=${form.device.value || 0}&memory=${space()}`;
      full = await getJson(`/v1/map?${q}&bins=1`);
      const r = range();
      view = await getJson(
        `/v1/map/view?${q}&from=${Math.floor(r.start)}&to=${Math.ceil(r.end)}` +
          `&columns=${width()}&limit=${OBJECT_LIMIT}`,
      );
      render();
    } catch (e) {
      $('#map-summary').textContent = `map unavailable: ${e.message}`;
    }
  });

  function summary() {
    const m = full;
    const est = m.model.estimate ? '≈ ' : '';
    const lf = m.largest_free;
    let s =
      `${est}free ${fmt(m.free_per_bank_bytes)} in ${m.gap_count} ` +
      `gap${m.gap_count === 1 ? '' : 's'}, largest ${lf ? fmt(lf.size) : '0 B'}`;
    if (m.model.banks > 1)
      s +=
        ` per bank (${m.model.banks} banks: an interleaved buffer of up to ` +
        `${fmt(lf ? lf.interleaved_bytes : 0)} fits)`;
    s += ` · ${m.objects} object${m.objects === 1 ? '' : 's'}, ${fmt(m.used_per_bank_bytes)} held`;
    if (m.overlap.objects > 0) s += ` · ${m.overlap.objects} overlapping`;
    if (m.beyond_bank > 0) s += ` · ${m.beyond_bank} beyond the bank`;
    $('#map-summary').textContent = s;
    const note = $('#map-note');
    note.textContent = m.model.note;
    note.classList.toggle('estimate', m.model.estimate);
    const picked = form.type.value;
    $('#map-kinds').textContent =
      picked === space()
        ? `${space()} shares its addresses with ${Object.keys(m.by_kind)
            .filter((k) => k !== picked)
            .join(', ')}: all shown`
        : `${picked} shares ${space()}'s address space: ${picked} drawn bright, the rest faded`;
    $('#map-legend').innerHTML = m.owners
      .map(
        (o, i) =>
          `<li><i style="background:${PALETTE[i] ?? OTHER}"></i>PID ${o.pid}` +
          `${o.command ? ` ${esc(o.command)}` : ''} ${fmt(o.per_bank_bytes)}</li>`,
      )
      .concat(
        `<li><i style="background:${OTHER}"></i>other</li>`,
        `<li><i class="free"></i>free</li>`,
        `<li><i class="largest"></i>largest free block</li>`,
      )
      .join('');
  }

  function render() {
    if (!full || !view) return;
    summary();
    const W = width();
    const H = TOP + BAR_H + AXIS_H;
    const g = ttalloc.canvas2d(canvas, W, H);
    const vs = view.view.start,
      ve = view.view.end;
    const x = (a) => ((a - vs) / (ve - vs)) * W;
    g.fillStyle = FREE;
    g.fillRect(0, TOP, W, BAR_H);
    const picked = form.type.value;
    if (view.objects) {
      for (const o of view.objects) {
        const x0 = Math.max(0, x(o.start)),
          x1 = Math.min(W, x(o.end));
        g.globalAlpha = picked === space() || o.kind === picked ? 1 : 0.3;
        g.fillStyle = colourOf(o.pid);
        g.fillRect(x0, TOP, Math.max(1, x1 - x0), BAR_H);
        // a light edge between neighbours wide enough to show it
        if (x1 - x0 > 4) {
          g.fillStyle = 'rgba(255,255,255,0.7)';
          g.fillRect(x0, TOP, 1, BAR_H);
        }
      }
      g.globalAlpha = 1;
    } else {
      const cw = W / view.columns.length;
      view.columns.forEach((c, i) => {
        if (c.pid === null || c.used <= 0) return;
        const h = Math.max(2, c.used * BAR_H);
        g.fillStyle = colourOf(c.pid);
        g.fillRect(i * cw, TOP + BAR_H - h, Math.max(1, cw), h);
      });
    }
    // the largest free block: an outline over its visible part, labelled when there is room
    const lf = full.largest_free;
    if (lf && lf.start < ve && lf.start + lf.size > vs) {
      const x0 = Math.max(0, x(lf.start)),
        x1 = Math.min(W, x(lf.start + lf.size));
      g.strokeStyle = LARGEST;
      g.lineWidth = 2;
      g.strokeRect(x0 + 1, TOP + 1, Math.max(1, x1 - x0 - 2), BAR_H - 2);
      g.fillStyle = LARGEST;
      g.font = '11px system-ui, sans-serif';
      const label = `largest free ${fmt(lf.size)}`;
      const lx = Math.min(Math.max(0, x0), W - g.measureText(label).width);
      g.fillText(label, lx, TOP - 4);
    }
    if (drag && drag.x1 !== undefined) {
      g.fillStyle = 'rgba(30, 100, 200, 0.2)';
      g.fillRect(Math.min(drag.x0, drag.x1), TOP, Math.abs(drag.x1 - drag.x0), BAR_H);
    }
    axis(g, W, vs, ve);
    const n = view.objects_in_view;
    $('#map-range').textContent =
      `${hex(vs)}–${hex(ve)} (${fmt(ve - vs)}) of ${fmt(full.range.end)}` +
      `${zoom ? ' (zoomed: wheel or drag to zoom further, Reset to see it all)' : ''} · ` +
      (view.objects
        ? `${n} object${n === 1 ? '' : 's'} in view, each drawn`
        : `${n} objects in view, drawn as ${view.columns.length} pixel columns ` +
          '(height: the part held); zoom in to see each');
    bar.dataset.viewStart = String(vs);
    bar.dataset.viewEnd = String(ve);
    bar.dataset.mode = view.objects ? 'objects' : 'columns';
    bar.dataset.objects = String(n);
  }

  /** Ticks at binary steps of the offset. */
  function axis(g, W, vs, ve) {
    let step = 1;
    while ((ve - vs) / step > Math.max(2, W / 110)) step *= 2;
    g.fillStyle = '#555';
    g.strokeStyle = '#999';
    g.lineWidth = 1;
    g.font = '11px system-ui, sans-serif';
    for (let a = Math.ceil(vs / step) * step; a <= ve; a += step) {
      const px = ((a - vs) / (ve - vs)) * W;
      g.beginPath();
      g.moveTo(px + 0.5, TOP + BAR_H);
      g.lineTo(px + 0.5, TOP + BAR_H + 4);
      g.stroke();
      const label = a === 0 ? '0' : fmt(a);
      const lw = g.measureText(label).width;
      g.fillText(label, Math.min(W - lw, Math.max(0, px - lw / 2)), TOP + BAR_H + 16);
    }
  }

  const addressAt = (px) => {
    const r = view ? view.view : range();
    return r.start + (px / width()) * (r.end - r.start);
  };

  /** @returns {string} what is at address `a` of the view */
  function describe(a) {
    if (!view) return '';
    if (!view.objects) {
      const i = Math.min(
        view.columns.length - 1,
        Math.floor(
          ((a - view.view.start) / (view.view.end - view.view.start)) * view.columns.length,
        ),
      );
      const c = view.columns[i];
      const w = (view.view.end - view.view.start) / view.columns.length;
      const c0 = view.view.start + i * w;
      return (
        `${hex(c0)}–${hex(c0 + w)}: ${Math.round(c.used * 100)}% held` +
        `${c.pid !== null ? `, mostly PID ${c.pid}` : ''} · zoom in to see each buffer`
      );
    }
    const hits = view.objects.filter((o) => o.start <= a && a < o.end);
    if (hits.length) {
      return hits
        .map((o) => {
          const owner = full.owners.find((w) => w.pid === o.pid);
          const per = o.end - o.start !== o.size ? ` (${fmt(o.end - o.start)} per bank)` : '';
          return (
            `${o.address} ${o.kind} ${fmt(o.size)}${per} · PID ${o.pid}` +
            `${owner && owner.command ? ` (${owner.command})` : ''} · ref_count ${o.ref_count}`
          );
        })
        .join('\n');
    }
    const lf = full.largest_free;
    if (lf && lf.start <= a && a < lf.start + lf.size)
      return `the largest free block: ${hex(lf.start)}–${hex(lf.start + lf.size)}, ${fmt(lf.size)}`;
    // a gap: from the end of the object before to the start of the one after, within the view
    let lo = view.view.start,
      hi = view.view.end;
    for (const o of view.objects) {
      if (o.end <= a && o.end > lo) lo = o.end;
      if (o.start > a && o.start < hi) hi = o.start;
    }
    const beyond =
      (lo === view.view.start && lo > view.range.start) ||
      (hi === view.view.end && hi < view.range.end);
    const more = beyond ? ' in view (it goes on beyond)' : '';
    return `free ${hex(lo)}–${hex(hi)}: ${fmt(hi - lo)}${more}`;
  }

  function zoomTo(start, end) {
    const lim = full ? full.range : { start: 0, end: 1 };
    const span = Math.max(16, end - start);
    let s = Math.max(lim.start, start);
    let e = Math.min(lim.end, s + span);
    s = Math.max(lim.start, e - span);
    zoom = s <= lim.start && e >= lim.end ? null : { start: s, end: e };
    void refresh();
  }

  canvas.addEventListener(
    'wheel',
    (ev) => {
      ev.preventDefault();
      const r = view ? view.view : range();
      const a = addressAt(ev.offsetX);
      const f = ev.deltaY < 0 ? 0.8 : 1.25;
      zoomTo(a - (a - r.start) * f, a + (r.end - a) * f);
    },
    { passive: false },
  );
  canvas.addEventListener('mousedown', (ev) => {
    drag = { x0: ev.offsetX };
  });
  canvas.addEventListener('mousemove', (ev) => {
    if (drag) {
      drag.x1 = ev.offsetX;
      render();
    }
    tip.textContent = describe(addressAt(ev.offsetX));
    tip.hidden = false;
    tip.style.left = `${Math.min(ev.offsetX + 12, Math.max(0, bar.clientWidth - 320))}px`;
    tip.style.top = `${TOP + BAR_H + AXIS_H}px`;
  });
  canvas.addEventListener('mouseleave', () => {
    tip.hidden = true;
  });
  window.addEventListener('mouseup', (ev) => {
    if (!drag) return;
    const d = drag;
    drag = null;
    const x1 = d.x1 ?? d.x0;
    if (Math.abs(x1 - d.x0) < 4 || ev.target !== canvas) return render();
    zoomTo(addressAt(Math.min(d.x0, x1)), addressAt(Math.max(d.x0, x1)));
  });
  $('#map-reset').addEventListener('click', () => {
    zoom = null;
    void refresh();
  });
  form.addEventListener('change', () => {
    zoom = null;
    void refresh();
  });
  ttalloc.onResizeSettled(() => void refresh());

  // For the page tests: where an address is drawn, in the canvas's CSS pixels.
  window.ttallocMap = {
    xOf: (a) => (view ? ((a - view.view.start) / (view.view.end - view.view.start)) * width() : 0),
    barY: TOP + BAR_H / 2,
    barTop: TOP,
  };

  const tick = async () => {
    if (!document.hidden && !drag) await refresh();
    setTimeout(tick, POLL_MS);
  };
  void loadDevices().then(tick);
  setInterval(loadDevices, 10 * POLL_MS);
})();
