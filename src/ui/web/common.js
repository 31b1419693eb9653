// @ts-check
// What the dashboard's scripts (app.js, map.js, timeline.js) share, loaded before them: byte
// formatting as src/report/format.ts formatBytes gives it (the page test compares the two), HTML
// escaping, JSON requests, the refresh period and the process colours. A classic script's
// top-level const is visible to the scripts after it, so `ttalloc` is the page's one global.
'use strict';
/** @typedef {import('../../report/types.js').ErrorResponse} ErrorResponse */
// eslint-disable-next-line @typescript-eslint/no-unused-vars -- read by the scripts loaded after it
const ttalloc = (() => {
  const UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  /** @param {number | null | undefined} b */
  const fmt = (b) => {
    if (b == null) return 'unknown';
    if (Math.abs(b) < 1024) return `${b} B`;
    let v = b / 1024;
    let u = 0;
    while (Math.abs(v) >= 1024 && u < UNITS.length - 1) {
      v /= 1024;
      u++;
    }
    return `${v.toFixed(Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2)} ${UNITS[u]}`;
  };
  /** @type {Record<string, string>} */
  const ENTITIES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' };
  /** @param {unknown} s */
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ENTITIES[c]);
  /**
   * A reply of the control API; a 4xx/5xx throws its `error` text.
   * @template T
   * @param {string} path
   * @returns {Promise<T>}
   */
  const getJson = async (path) => {
    const r = await fetch(path);
    if (!r.ok) {
      /** @type {Partial<ErrorResponse>} */
      const body = await r.json().catch(() => ({}));
      throw new Error(body.error ?? `${path}: HTTP ${r.status}`);
    }
    return r.json();
  };
  /**
   * The refresh period: ?poll=MS (tests, or a busy server watched from afar), else `dflt`.
   * @param {number} min @param {number} dflt
   */
  const pollMs = (min, dflt) =>
    Math.max(min, Number(new URLSearchParams(location.search).get('poll')) || dflt);
  /** Owners' colours, most bytes first; the rest share a grey. */
  const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b'];
  /**
   * `run` one at a time: a call while one runs asks for one more run after it, so a burst of
   * refreshes (polls, resizes, form changes) costs two requests, never a queue.
   * @param {() => Promise<void>} run
   */
  const singleFlight = (run) => {
    let busy = false,
      again = false;
    const go = async () => {
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      try {
        await run();
      } finally {
        busy = false;
        if (again) {
          again = false;
          void go();
        }
      }
    };
    return go;
  };
  /**
   * Fills a device <select> from /v1/devices, keeping the choice; a failure leaves it as it was
   * (the next call tries again).
   * @param {HTMLSelectElement} sel @param {boolean} withArch
   */
  const fillDevices = async (sel, withArch) => {
    try {
      /** @type {import('../../report/types.js').DevicesResponse} */
      const r = await getJson('/v1/devices');
      const ids = r.devices.length ? r.devices.map((d) => d.device) : [0];
      const cur = sel.value;
      sel.innerHTML = ids
        .map((id) => {
          const arch = withArch ? r.devices.find((x) => x.device === id)?.arch : null;
          return `<option value="${id}">${id}${arch ? ` (${esc(arch)})` : ''}</option>`;
        })
        .join('');
      if (ids.map(String).includes(cur)) sel.value = cur;
    } catch {
      // the next call tries again
    }
  };
  /**
   * `run` once the resizing stops: a storm of resizes, or one just before the page goes away,
   * asks nothing.
   * @param {() => void} run
   */
  const onResizeSettled = (run) => {
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let t;
    window.addEventListener('resize', () => {
      clearTimeout(t);
      t = setTimeout(run, 250);
    });
  };
  /**
   * A canvas sized to w×h CSS pixels at the screen's pixel density, cleared, drawn in CSS pixels.
   * @param {HTMLCanvasElement} canvas @param {number} w @param {number} h
   */
  const canvas2d = (canvas, w, h) => {
    const dpr = window.devicePixelRatio || 1;
    canvas.width = w * dpr;
    canvas.height = h * dpr;
    canvas.style.width = `${w}px`;
    canvas.style.height = `${h}px`;
    const g = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    return g;
  };
  return {
    fmt,
    esc,
    getJson,
    pollMs,
    PALETTE,
    singleFlight,
    fillDevices,
    onResizeSettled,
    canvas2d,
  };
})();
