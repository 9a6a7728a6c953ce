// brisk's report pages: tables, scatter/line charts and heat maps drawn as inline SVG from JSON
// that the page carries (no network, no library). Used by `brisk optimize --html` (embedded at
// build time) and by bench/report (the results page). Every number a chart or table shows keeps
// its exact value in a data-value attribute and, where it comes from the page's JSON, the path it
// came from in data-json, so tests can check the page against the JSON.
'use strict';
const BriskCharts = (() => {
  const NS = 'http://www.w3.org/2000/svg';
  const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#17becf'];

  function el(tag, attrs = {}, parent = null, text = null) {
    const e = tag.startsWith('svg:') ? document.createElementNS(NS, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, v);
    if (text !== null) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }

  function format(v, digits = 4) {
    if (typeof v !== 'number') return String(v);
    if (Number.isInteger(v) && Math.abs(v) < 1e15) return v.toLocaleString('en-US');
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : v.toPrecision(digits + 1).replace(/\.?0+$/, '');
  }

  // Follows a path like "chosen.measured.ppl" or "groups.3.kl.w4" into an object.
  function at(obj, path) {
    return path.split('.').reduce((o, k) => (o === undefined || o === null ? undefined : o[k]), obj);
  }

  // columns: [{label}], rows: [[cell]], a cell a value or {value, json, text}.
  function table(parent, { title, columns, rows }) {
    const section = el('section', { class: 'table' }, parent);
    if (title) el('h3', {}, section, title);
    const t = el('table', {}, section);
    const head = el('tr', {}, el('thead', {}, t));
    for (const c of columns) el('th', {}, head, c);
    const body = el('tbody', {}, t);
    for (const row of rows) {
      const tr = el('tr', {}, body);
      for (const cell of row) {
        const c = cell !== null && typeof cell === 'object' ? cell : { value: cell };
        const td = el('td', { 'data-value': typeof c.value === 'number' ? String(c.value) : undefined, 'data-json': c.json },
                      tr, c.text ?? (c.value === undefined || c.value === null ? '' : format(c.value)));
        if (typeof c.value === 'number') td.className = 'num';
      }
    }
    return t;
  }

  function extent(values, log) {
    let lo = Math.min(...values), hi = Math.max(...values);
    if (log) { lo = Math.log10(lo); hi = Math.log10(hi); }
    if (lo === hi) { lo -= 0.5; hi += 0.5; }
    const pad = (hi - lo) * 0.06;
    return [lo - pad, hi + pad];
  }

  // series: [{name, points: [{x, y, label?, json?}], line?: bool, marker?: 'circle'|'star'|'square'}]
  function scatter(parent, { title, x, y, series, width = 640, height = 380 }) {
    const section = el('section', { class: 'chart' }, parent);
    if (title) el('h3', {}, section, title);
    const svg = el('svg:svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title }, section);
    const m = { l: 70, r: 150, t: 10, b: 45 };
    const pts = series.flatMap((s) => s.points);
    if (!pts.length) return svg;
    const [x0, x1] = extent(pts.map((p) => p.x), x.log), [y0, y1] = extent(pts.map((p) => p.y), y.log);
    const sx = (v) => m.l + ((x.log ? Math.log10(v) : v) - x0) / (x1 - x0) * (width - m.l - m.r);
    const sy = (v) => height - m.b - ((y.log ? Math.log10(v) : v) - y0) / (y1 - y0) * (height - m.t - m.b);
    el('svg:rect', { x: m.l, y: m.t, width: width - m.l - m.r, height: height - m.t - m.b, fill: 'none', stroke: '#999' }, svg);
    for (let i = 0; i <= 4; ++i) {
      const vx = x0 + (x1 - x0) * i / 4, vy = y0 + (y1 - y0) * i / 4;
      const tx = x.log ? 10 ** vx : vx, ty = y.log ? 10 ** vy : vy;
      el('svg:text', { x: sx(tx), y: height - m.b + 16, 'text-anchor': 'middle', 'font-size': 11 }, svg, format(tx, 3));
      el('svg:text', { x: m.l - 6, y: sy(ty) + 4, 'text-anchor': 'end', 'font-size': 11 }, svg, format(ty, 3));
    }
    el('svg:text', { x: (width - m.r + m.l) / 2, y: height - 8, 'text-anchor': 'middle', 'font-size': 12 }, svg, x.label);
    el('svg:text', { x: 14, y: (height - m.b) / 2, 'text-anchor': 'middle', 'font-size': 12,
                     transform: `rotate(-90 14 ${(height - m.b) / 2})` }, svg, y.label);
    series.forEach((s, i) => {
      const color = s.color ?? PALETTE[i % PALETTE.length];
      if (s.line && s.points.length > 1) {
        const sorted = [...s.points].sort((a, b) => a.x - b.x);
        el('svg:polyline', { points: sorted.map((p) => `${sx(p.x)},${sy(p.y)}`).join(' '), fill: 'none', stroke: color,
                             'stroke-width': 1.5, opacity: 0.7 }, svg);
      }
      if (!s.line || s.markers)
        for (const p of s.points) {
          const g = el('svg:g', { class: 'point', 'data-series': s.name, 'data-x': String(p.x), 'data-y': String(p.y),
                                  'data-json': p.json }, svg);
          const [cx, cy] = [sx(p.x), sy(p.y)];
          if (s.marker === 'star')
            el('svg:text', { x: cx, y: cy + 6, 'text-anchor': 'middle', 'font-size': 20, fill: color }, g, '\u2605');
          else if (s.marker === 'square') el('svg:rect', { x: cx - 5, y: cy - 5, width: 10, height: 10, fill: color }, g);
          else el('svg:circle', { cx, cy, r: 4.5, fill: color, opacity: 0.85 }, g);
          el('svg:title', {}, g, `${s.name}${p.label ? ' ' + p.label : ''}: ${format(p.x)}, ${format(p.y)}`);
          if (p.label && s.labels) el('svg:text', { x: cx + 7, y: cy - 6, 'font-size': 10, fill: color }, svg, p.label);
        }
      el('svg:text', { x: width - m.r + 10, y: m.t + 16 + i * 18, 'font-size': 12, fill: color }, svg, s.name);
    });
    return svg;
  }

  // values[r][c] numbers (or null); colors by log10 when log.
  function heatmap(parent, { title, rows, cols, values, log = true, text, json }) {
    const section = el('section', { class: 'heatmap' }, parent);
    if (title) el('h3', {}, section, title);
    const cw = 74, ch = 18, left = 90, top = 24;
    const svg = el('svg:svg', { width: left + cw * cols.length + 10, height: top + ch * rows.length + 10 }, section);
    const flat = values.flat().filter((v) => typeof v === 'number' && (!log || v > 0));
    const [lo, hi] = flat.length ? extent(flat, log) : [0, 1];
    cols.forEach((c, j) => el('svg:text', { x: left + cw * j + cw / 2, y: 16, 'text-anchor': 'middle', 'font-size': 11 }, svg, c));
    rows.forEach((r, i) => {
      el('svg:text', { x: left - 6, y: top + ch * i + 13, 'text-anchor': 'end', 'font-size': 11 }, svg, r);
      cols.forEach((c, j) => {
        const v = values[i][j];
        let fill = '#eee';
        if (typeof v === 'number' && (!log || v > 0)) {
          const t = Math.min(1, Math.max(0, ((log ? Math.log10(v) : v) - lo) / (hi - lo)));
          fill = `hsl(${(1 - t) * 120}, 70%, ${82 - t * 30}%)`;
        }
        const g = el('svg:g', { class: 'cell', 'data-value': typeof v === 'number' ? String(v) : undefined,
                                'data-json': json ? json(i, j) : undefined }, svg);
        el('svg:rect', { x: left + cw * j, y: top + ch * i, width: cw - 2, height: ch - 2, fill }, g);
        el('svg:text', { x: left + cw * j + cw / 2, y: top + ch * i + 13, 'text-anchor': 'middle', 'font-size': 10 }, g,
           text ? text(i, j) : (v === null || v === undefined ? '-' : format(v, 2)));
      });
    });
    return svg;
  }

  return { el, format, at, table, scatter, heatmap };
})();
