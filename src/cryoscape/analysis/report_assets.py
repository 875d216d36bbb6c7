"""Static parts of ``report.html``: the page template, its style and its script (kept as Python strings so they
ship inside the package without package-data configuration).

Placeholders in :data:`PAGE` are ``@@NAME@@``; :func:`cryoscape.analysis.report.render_page` fills them with
escaped text (HTML), the inlined plotly bundle and the JSON data block (``<`` ``>`` ``&`` written as \\u escapes,
so no input string can close the script element).
"""

from __future__ import annotations

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #222; }
header { background: #243b53; color: #fff; padding: 12px 20px; }
header h1 { margin: 0; font-size: 20px; }
header p { margin: 4px 0 0 0; font-size: 13px; opacity: 0.85; }
main { padding: 12px 20px; }
section { margin-bottom: 28px; }
h2 { font-size: 17px; border-bottom: 1px solid #ccd; padding-bottom: 4px; }
h3 { font-size: 14px; margin: 14px 0 6px 0; }
.controls { display: flex; flex-wrap: wrap; gap: 14px; align-items: center; margin-bottom: 6px; font-size: 14px; }
#scatter { width: 100%; max-width: 1100px; height: 640px; border: 1px solid #dde; }
#selection-panel { background: #f4f6fa; border: 1px solid #dde; padding: 8px 12px; max-width: 1076px; font-size: 14px; }
#selection-panel pre { background: #fff; border: 1px solid #dde; padding: 6px; white-space: pre-wrap;
  word-break: break-all; font-size: 12px; margin: 6px 0; }
button { font-size: 14px; padding: 3px 10px; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; max-width: 560px; }
figure.wide { max-width: 100%; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 12px; color: #555; }
table.facts { border-collapse: collapse; font-size: 13px; }
table.facts td { padding: 2px 10px 2px 0; vertical-align: top; }
#legend { font-size: 12px; max-width: 1076px; }
#legend span { display: inline-block; margin-right: 10px; }
#legend i { display: inline-block; width: 10px; height: 10px; margin-right: 3px; vertical-align: middle; }
"""

SCRIPT = r"""
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("cryoscape-data").textContent);
  function bytes(b64) {
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function decode(spec) {
    if (spec.encoding === "float32") return new Float32Array(bytes(spec.data));
    if (spec.encoding === "int32") return new Int32Array(bytes(spec.data));
    if (spec.encoding === "uint16q") {  // quantised: lo + q (hi - lo) / 65534; 65535 = missing
      const q = new Uint16Array(bytes(spec.data));
      const out = new Float32Array(q.length);
      const step = (spec.hi - spec.lo) / 65534;
      for (let i = 0; i < q.length; i++) out[i] = q[i] === 65535 ? NaN : spec.lo + q[i] * step;
      return out;
    }
    if (spec.encoding === "codes") {  // categories: uint16 codes into spec.categories
      return new Float32Array(new Uint16Array(bytes(spec.data)));
    }
    if (spec.encoding === "range") {  // 0..n-1 offset by spec.start
      const out = new Int32Array(spec.n);
      for (let i = 0; i < spec.n; i++) out[i] = spec.start + i;
      return out;
    }
    throw new Error("unknown encoding " + spec.encoding);
  }
  const n = D.n;
  const indices = decode(D.indices);
  const projections = D.projections.map(p => ({name: p.name, xlabel: p.xlabel, ylabel: p.ylabel,
    x: decode(p.x), y: decode(p.y)}));
  const colors = D.colors.map(c => Object.assign({}, c, {values: decode(c.values)}));
  const div = document.getElementById("scatter");
  const projSelect = document.getElementById("projection");
  const colorSelect = document.getElementById("color");
  projections.forEach((p, i) => { const o = document.createElement("option"); o.value = i; o.textContent = p.name;
    projSelect.appendChild(o); });
  colors.forEach((c, i) => { const o = document.createElement("option"); o.value = i; o.textContent = c.label;
    colorSelect.appendChild(o); });
  const palette = D.palette;

  function markerFor(c) {
    const m = {size: n > 200000 ? 2 : (n > 20000 ? 3 : 5), opacity: n > 200000 ? 0.5 : 0.8, color: c.values};
    if (c.categories) {
      const k = c.categories.length;
      const scale = [];
      for (let j = 0; j < k; j++) {
        const col = palette[j % palette.length];
        scale.push([j / k, col]); scale.push([(j + 1) / k, col]);
      }
      Object.assign(m, {colorscale: scale, cmin: -0.5, cmax: k - 0.5, showscale: false});
    } else {
      Object.assign(m, {colorscale: "Viridis", cmin: c.lo, cmax: c.hi, showscale: true,
        colorbar: {title: {text: c.label_escaped}, thickness: 14}});
    }
    return m;
  }
  function legendFor(c) {
    const legend = document.getElementById("legend");
    legend.textContent = "";
    if (!c.categories) return;
    c.categories.forEach((name, j) => {
      const span = document.createElement("span");
      const box = document.createElement("i");
      box.style.background = palette[j % palette.length];
      span.appendChild(box);
      span.appendChild(document.createTextNode(name + " (" + c.counts[j] + ")"));
      legend.appendChild(span);
    });
  }
  const p0 = projections[0], c0 = colors[0];
  const trace = {type: "scattergl", mode: "markers", x: p0.x, y: p0.y, customdata: indices,
    hovertemplate: "particle %{customdata}<extra></extra>", marker: markerFor(c0),
    selected: {marker: {opacity: 1}}, unselected: {marker: {opacity: 0.15}}};
  const layout = {dragmode: "lasso", hovermode: "closest", margin: {l: 60, r: 20, t: 20, b: 50},
    xaxis: {title: {text: p0.xlabel}}, yaxis: {title: {text: p0.ylabel}}, uirevision: "keep"};
  const config = {responsive: true, displaylogo: false, scrollZoom: true,
    modeBarButtonsToRemove: ["toImage"]};
  const ready = Plotly.newPlot(div, [trace], layout, config);
  legendFor(c0);

  projSelect.addEventListener("change", () => {
    const p = projections[+projSelect.value];
    Plotly.update(div, {x: [p.x], y: [p.y]}, {"xaxis.title.text": p.xlabel, "yaxis.title.text": p.ylabel,
      "xaxis.autorange": true, "yaxis.autorange": true});
  });
  colorSelect.addEventListener("change", () => {
    const c = colors[+colorSelect.value];
    Plotly.restyle(div, {marker: [markerFor(c)]});
    legendFor(c);
  });

  // --- selection → index file + the next command ---------------------------------------------------------
  const countEl = document.getElementById("selection-count");
  const button = document.getElementById("download");
  const commandsEl = document.getElementById("commands");
  let selected = new Int32Array(0);
  function fileName() { return "selection_" + selected.length + ".txt"; }
  function showSelection(points, range, lasso) {
    const rows = new Int32Array(points.length);
    for (let i = 0; i < points.length; i++) {
      const p = points[i];
      rows[i] = (p.pointIndex !== undefined) ? p.pointIndex : p.pointNumber;
    }
    const out = new Int32Array(rows.length);
    for (let i = 0; i < rows.length; i++) out[i] = indices[rows[i]];
    out.sort();
    selected = out;
    countEl.textContent = selected.length + " of " + n + " particles selected";
    button.disabled = selected.length === 0;
    const name = fileName();
    const stem = name.replace(/\.txt$/, "");
    const lines = ["cryoscape select " + D.run_arg + " --from-file " + name + " -o " + stem];
    if (D.particles_arg) {
      const verb = D.particles_kind === "cs" ? "write-cs" : "write-star";
      lines.push("cryoscape " + verb + " " + D.particles_arg + " --ind " + name + " -o " + stem + "." +
        (D.particles_kind === "cs" ? "cs" : "star"));
    }
    commandsEl.textContent = selected.length ? lines.join("\n") : "";
    window.cryoscapeSelection = {count: selected.length, indices: Array.from(selected), file: name,
      range: range || null, lasso: lasso || null, projection: +projSelect.value};
  }
  function download() {
    const parts = [];
    for (let i = 0; i < selected.length; i++) parts.push(selected[i]);
    const blob = new Blob([parts.join("\n") + (parts.length ? "\n" : "")], {type: "text/plain"});
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = fileName();
    document.body.appendChild(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }
  button.addEventListener("click", download);
  ready.then(() => {
    div.on("plotly_selected", ev => showSelection(ev && ev.points ? ev.points : [], ev && ev.range,
                                                  ev && ev.lassoPoints));
    div.on("plotly_deselect", () => showSelection([]));
    window.cryoscapeReport = {n: n, div: div, trace_points: () => div.data[0].x.length};
    document.body.setAttribute("data-report-ready", "1");
  });
})();
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; \
style-src 'unsafe-inline'; img-src data: blob:; worker-src blob:; connect-src 'none'">
<title>@@TITLE@@</title>
<style>@@STYLE@@</style>
</head>
<body>
<header><h1>@@TITLE@@</h1><p>@@SUBTITLE@@</p></header>
<main>
<section id="facts"><h2>Summary</h2>@@FACTS@@</section>
<section id="latent">
<h2>Latent space</h2>
<div class="controls">
<label>projection <select id="projection"></select></label>
<label>colour by <select id="color"></select></label>
<span>Draw a lasso (default) or a box (toolbar) to select particles; double-click clears.</span>
</div>
<div id="scatter"></div>
<div id="legend"></div>
<div id="selection-panel">
<span id="selection-count">no selection</span>
<button id="download" disabled>download index file</button>
<pre id="commands"></pre>
<div>The file lists 0-based indices into the original particle file (through any training --ind subset).</div>
</div>
</section>
@@FIGURES@@
</main>
<script>@@PLOTLY@@</script>
<script type="application/json" id="cryoscape-data">@@DATA@@</script>
<script>@@SCRIPT@@</script>
</body>
</html>
"""
