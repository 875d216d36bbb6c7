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
h3 { font-size: 14px; margin: 10px 0 6px 0; }
.controls { display: flex; flex-wrap: wrap; gap: 14px; align-items: center; margin-bottom: 6px; font-size: 14px; }
.hint { color: #555; font-size: 13px; }
#scatter { width: 100%; max-width: 1100px; height: 640px; border: 1px solid #dde; }
#scatter .selectionlayer path { pointer-events: none !important; }  /* clicks inside a lasso reach the centres */
#clusters { font-size: 12px; max-width: 1100px; margin: 4px 0; }
#clusters button { font-size: 12px; padding: 1px 6px; margin: 2px 3px 2px 0; }
#clusters button i, #legend i { display: inline-block; width: 10px; height: 10px; margin-right: 3px;
  vertical-align: middle; }
#selection-panel { background: #f4f6fa; border: 1px solid #dde; padding: 8px 12px; max-width: 1076px; font-size: 14px; }
#selection-panel pre { background: #fff; border: 1px solid #dde; padding: 6px; white-space: pre-wrap;
  word-break: break-all; font-size: 12px; margin: 6px 0; }
#cluster-info img { max-width: 100%; border: 1px solid #ccd; display: block; margin: 4px 0; }
.views { font-size: 11px; color: #555; }
button { font-size: 14px; padding: 3px 10px; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; max-width: 560px; }
figure.wide { max-width: 100%; flex-basis: 100%; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 13px; color: #333; }
figcaption .file { color: #888; font-size: 11px; }
table.facts { border-collapse: collapse; font-size: 13px; }
table.facts td { padding: 2px 10px 2px 0; vertical-align: top; }
#legend { font-size: 12px; max-width: 1076px; }
#legend span { display: inline-block; margin-right: 10px; }
.gallery-row { display: flex; gap: 18px; align-items: flex-start; flex-wrap: wrap; }
#gallery { display: grid; grid-template-columns: repeat(8, 66px); gap: 3px; }
#gallery canvas { width: 64px; height: 64px; image-rendering: pixelated; border: 1px solid #ccd; }
#average { width: 160px; height: 160px; image-rendering: pixelated; border: 1px solid #ccd; }
#gallery-caption { font-size: 13px; max-width: 1076px; }
"""

SCRIPT = r"""
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("cryoscape-data").textContent);
  const $ = id => document.getElementById(id);
  function bytes(b64) {
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function decode(spec) {
    if (spec.encoding === "float32") return new Float32Array(bytes(spec.data));
    if (spec.encoding === "int32") return new Int32Array(bytes(spec.data));
    if (spec.encoding === "uint8") return new Uint8Array(bytes(spec.data));
    if (spec.encoding === "uint16q") {  // quantised: lo + q (hi - lo) / 65534; 65535 = missing
      const q = new Uint16Array(bytes(spec.data));
      const out = new Float32Array(q.length);
      const step = (spec.hi - spec.lo) / 65534;
      for (let i = 0; i < q.length; i++) out[i] = q[i] === 65535 ? NaN : spec.lo + q[i] * step;
      return out;
    }
    if (spec.encoding === "codes") return new Float32Array(new Uint16Array(bytes(spec.data)));
    if (spec.encoding === "range") {  // 0..n-1 offset by spec.start
      const out = new Int32Array(spec.n);
      for (let i = 0; i < spec.n; i++) out[i] = spec.start + i;
      return out;
    }
    throw new Error("unknown encoding " + spec.encoding);
  }
  const n = D.n;
  const indices = decode(D.indices);
  const pcs = D.projections.pcs.map(decode);
  const umap = D.projections.umap ? D.projections.umap.map(decode) : null;
  const colors = D.colors.map(c => Object.assign({}, c, {values: decode(c.values)}));
  const C = D.clusters;
  const div = $("scatter"), projSelect = $("projection"), colorSelect = $("color");
  const pcx = $("pcx"), pcy = $("pcy");
  function option(select, value, text) {
    const o = document.createElement("option"); o.value = value; o.textContent = text; select.appendChild(o);
  }
  const projections = [{name: D.zdim > 1 ? "PCA" : "z against particle", kind: D.zdim > 1 ? "pca" : "z1d"}];
  if (umap) projections.push({name: "UMAP", kind: "umap"});
  projections.forEach((p, i) => option(projSelect, i, p.name));
  function pcLabel(i) {
    const r = D.pca_ratio && D.pca_ratio[i];
    return "PC" + (i + 1) + (r !== undefined && r !== null ? " (" + (100 * r).toFixed(1) + " %)" : "");
  }
  pcs.forEach((_, i) => { option(pcx, i, pcLabel(i)); option(pcy, i, pcLabel(i)); });
  pcy.value = pcs.length > 1 ? "1" : "0";
  colors.forEach((c, i) => option(colorSelect, i, c.label));
  const rowIndex = new Float32Array(n);
  for (let i = 0; i < n; i++) rowIndex[i] = i;

  function currentXY() {
    const kind = projections[+projSelect.value].kind;
    if (kind === "umap") return {x: umap[0], y: umap[1], xlabel: "UMAP1", ylabel: "UMAP2"};
    if (kind === "z1d") return {x: rowIndex, y: pcs[0], xlabel: "row (increasing particle index)", ylabel: "z"};
    return {x: pcs[+pcx.value], y: pcs[+pcy.value], xlabel: pcLabel(+pcx.value), ylabel: pcLabel(+pcy.value)};
  }
  function centresXY(p) {
    if (!C) return {x: [], y: []};
    return {x: C.centre_rows.map(r => p.x[r]), y: C.centre_rows.map(r => p.y[r])};
  }

  function markerFor(c) {
    const m = {size: n > 200000 ? 2 : (n > 20000 ? 3 : 5), opacity: n > 200000 ? 0.5 : 0.8, color: c.values};
    if (c.categories) {
      const k = c.categories.length, scale = [];
      for (let j = 0; j < k; j++) { scale.push([j / k, c.palette[j]]); scale.push([(j + 1) / k, c.palette[j]]); }
      Object.assign(m, {colorscale: scale, cmin: -0.5, cmax: k - 0.5, showscale: false});
    } else {
      Object.assign(m, {colorscale: "Viridis", cmin: c.lo, cmax: c.hi, showscale: true,
        colorbar: {title: {text: c.label_escaped}, thickness: 14}});
    }
    return m;
  }
  function swatch(color) { const i = document.createElement("i"); i.style.background = color; return i; }
  function legendFor(c) {
    const legend = $("legend");
    legend.textContent = "";
    if (!c.categories || c.kmeans) return;  // the cluster buttons are the legend of the k-means colouring
    c.categories.forEach((name, j) => {
      const span = document.createElement("span");
      span.appendChild(swatch(c.palette[j]));
      span.appendChild(document.createTextNode(name + " (" + c.counts[j] + ")"));
      legend.appendChild(span);
    });
  }

  // --- the plot: particles (trace 0) and the numbered on-data k-means centres (trace 1) -----------------------
  const p0 = currentXY(), c0 = colors[0], k0 = centresXY(p0);
  const traces = [{type: "scattergl", mode: "markers", x: p0.x, y: p0.y, customdata: indices,
    hovertemplate: "particle %{customdata}<extra></extra>", marker: markerFor(c0),
    selected: {marker: {opacity: 1}}, unselected: {marker: {opacity: 0.12}}}];
  if (C) {
    traces.push({type: "scatter", mode: "markers+text", x: k0.x, y: k0.y, cliponaxis: false,
      text: C.centre_rows.map((_, j) => String(j + 1)), textposition: "middle center",
      textfont: {color: "#fff", size: 11}, customdata: C.sizes,
      hovertemplate: "cluster %{text}: %{customdata} particles (click to select)<extra></extra>",
      marker: {size: 20, color: C.palette, line: {color: "#000", width: 1.5}},
      selected: {marker: {opacity: 1}, textfont: {color: "#fff"}},
      unselected: {marker: {opacity: 1}, textfont: {color: "#fff"}}});
  }
  const layout = {dragmode: "lasso", hovermode: "closest", clickmode: "event", showlegend: false,
    margin: {l: 60, r: 20, t: 20, b: 50}, xaxis: {title: {text: p0.xlabel}}, yaxis: {title: {text: p0.ylabel}}};
  const config = {responsive: true, displaylogo: false, scrollZoom: true, editSelection: false,
    modeBarButtonsToRemove: ["toImage"]};
  const ready = Plotly.newPlot(div, traces, layout, config);
  legendFor(c0);

  // --- the selection: a set of particles (rows), kept across projections and shown in each ----------------
  const sel = new Uint8Array(n);
  let selCount = 0, source = null, cluster = null;
  function selectedRows() {
    const rows = [];
    for (let i = 0; i < n; i++) if (sel[i]) rows.push(i);
    return rows;
  }
  let busy = 0;  // programmatic plot updates in flight: their selection events are not the user's
  function redraw(clearOutline) {
    const p = currentXY(), k = centresXY(p);
    const rows = selCount ? selectedRows() : null;
    const update = {x: [p.x], y: [p.y], selectedpoints: [rows]};
    const relayout = {"xaxis.title.text": p.xlabel, "yaxis.title.text": p.ylabel};
    if (clearOutline) Object.assign(relayout, {selections: [], "xaxis.autorange": true, "yaxis.autorange": true});
    if (C) { update.x.push(k.x); update.y.push(k.y); update.selectedpoints.push(null); }
    busy++;
    return Plotly.update(div, update, relayout).finally(() => { busy--; });
  }
  function fileName() { return "selection_" + selCount + ".txt"; }
  function meanZ(rows) {
    const m = D.projections.pcs_to_z, q = pcs.length, zbar = new Float64Array(m[0].length);
    for (let j = 0; j < zbar.length; j++) zbar[j] = m[q][j];
    for (let i = 0; i < q; i++) {
      let s = 0;
      for (const r of rows) s += pcs[i][r];
      s /= rows.length;
      for (let j = 0; j < zbar.length; j++) zbar[j] += s * m[i][j];
    }
    return Array.from(zbar, v => +v.toPrecision(5));
  }
  function commandsFor(rows) {
    const name = fileName(), stem = name.replace(/\.txt$/, "");
    const lines = ["# the selection as a run-side index file (and its complement):",
      "cryoscape select " + D.run_arg + " --from-file " + name + " -o " + stem + "_sel"];
    if (cluster !== null) lines.push("# or, the same particles by cluster number:",
      "cryoscape select " + D.run_arg + " --kmeans " + C.k + " --clusters " + (cluster + 1) + " -o " + stem);
    if (D.particles_arg) {
      const cs = D.particles_kind === "cs";
      lines.push("cryoscape " + (cs ? "write-cs " : "write-star ") + D.particles_arg + " --ind " + name + " -o " +
        stem + (cs ? ".cs" : ".star"));
    }
    lines.push("# its map: the model at the selection's mean latent point",
      "cryoscape eval-vol " + D.run_arg + " -z " + meanZ(rows).join(" ") + " -o " + stem + "_mean_z");
    if (D.backproject_arg) lines.push("# its map from the selected particles' own images (poses and CTF of the file)",
      "cryoscape backproject " + D.backproject_arg + " --ind " + name + (D.invert ? " --invert-contrast" : "") +
      " -o " + stem + "_backprojection");
    return lines.join("\n");
  }
  function showClusterInfo() {
    const box = $("cluster-info");
    box.hidden = cluster === null;
    if (cluster === null) return;
    const j = cluster;
    $("cluster-title").textContent = "cluster " + (j + 1) + " of " + C.k + " (" + C.sizes[j] + " particles)";
    const img = $("cluster-map");
    img.hidden = !C.thumbnails[j];
    if (C.thumbnails[j]) img.src = "data:image/png;base64," + C.thumbnails[j]; else img.removeAttribute("src");
    $("cluster-map-file").textContent = C.maps[j] ? "map at the cluster's on-data centre: " + C.maps[j] +
      " (in the k-means folder of the analysis)" : "no map written for this cluster (analyze --skip-vol)";
    $("cluster-chimerax").textContent = C.chimerax[j] ? "# ChimeraX: this map, then the whole series\n" +
      C.chimerax[j] + (C.series_chimerax ? "\n" + C.series_chimerax : "") : "";
  }
  function showSelection() {
    const rows = selectedRows();
    const out = Int32Array.from(rows, r => indices[r]).sort();
    $("selection-count").textContent = selCount ? selCount + " of " + n + " particles selected" +
      (source ? " (" + source + ")" : "") : "no selection";
    $("download").disabled = selCount === 0;
    $("commands").textContent = selCount ? commandsFor(rows) : "";
    showClusterInfo();
    drawGallery();
    window.cryoscapeSelection = selCount ? {count: selCount, indices: Array.from(out), rows: rows, file: fileName(),
      source: source, cluster: cluster === null ? null : cluster + 1, projection: +projSelect.value,
      range: lastEvent.range || null, lasso: lastEvent.lassoPoints || null} : null;
  }
  function setRows(rows, what, clusterIndex) {
    sel.fill(0);
    for (const r of rows) sel[r] = 1;
    selCount = rows.length; source = what; cluster = clusterIndex === undefined ? null : clusterIndex;
    showSelection();
  }
  function selectCluster(j) {
    const col = colors[C.color_index], code = col.categories.indexOf("cluster " + (j + 1));
    const rows = [];
    for (let i = 0; i < n; i++) if (col.values[i] === code) rows.push(i);
    lastEvent = {};
    setRows(rows, "k-means cluster " + (j + 1) + " of " + C.k, j);
    return redraw(true);
  }
  let lastEvent = {};
  function onSelected(ev) {
    if (busy) return;
    lastEvent = ev || {};
    const rows = (ev && ev.points ? ev.points : []).filter(p => p.curveNumber === 0)
      .map(p => (p.pointIndex !== undefined ? p.pointIndex : p.pointNumber));
    const how = ev && ev.lassoPoints ? "lasso" : "box";
    setRows(rows, rows.length ? how + " on " + projections[+projSelect.value].name : null);
  }
  function clearSelection() { lastEvent = {}; setRows([], null); return redraw(true); }
  function download() {
    const parts = (window.cryoscapeSelection || {indices: []}).indices;
    const blob = new Blob([parts.join("\n") + (parts.length ? "\n" : "")], {type: "text/plain"});
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = fileName();
    document.body.appendChild(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }
  $("download").addEventListener("click", download);
  $("clear").addEventListener("click", clearSelection);

  // --- cluster buttons -------------------------------------------------------------------------------------
  if (C) {
    const box = $("clusters");
    box.appendChild(document.createTextNode("k-means clusters (K = " + C.k + "), click to select: "));
    C.sizes.forEach((size, j) => {
      const b = document.createElement("button");
      b.className = "cluster"; b.dataset.cluster = String(j + 1);
      b.appendChild(swatch(C.palette[j]));
      b.appendChild(document.createTextNode((j + 1) + " (" + size + ")"));
      b.addEventListener("click", () => selectCluster(j));
      box.appendChild(b);
    });
  }

  // --- particle gallery: the embedded random sample's particles that are in the selection -------------------
  const G = D.gallery, MAX_SHOWN = 48;
  const gRows = G.size ? decode(G.rows) : null, gPixels = G.size ? decode(G.pixels) : null;
  function paint(canvas, values, size) {
    canvas.width = size; canvas.height = size;
    const ctx = canvas.getContext("2d"), image = ctx.createImageData(size, size);
    for (let p = 0; p < size * size; p++) {
      const v = values[p];
      image.data[4 * p] = v; image.data[4 * p + 1] = v; image.data[4 * p + 2] = v; image.data[4 * p + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
  }
  function drawGallery() {
    const box = $("gallery"), caption = $("gallery-caption");
    box.textContent = "";
    if (!G.size) { caption.textContent = G.reason || "no gallery"; $("gallery-average").hidden = true; return; }
    const T = G.size, T2 = T * T, inSample = [];
    for (let s = 0; s < G.count; s++) if (!selCount || sel[gRows[s]]) inSample.push(s);
    const shown = inSample.slice(0, MAX_SHOWN), sum = new Float64Array(T2);
    for (const s of shown) {
      const values = gPixels.subarray(s * T2, (s + 1) * T2);
      for (let p = 0; p < T2; p++) sum[p] += values[p];
      const canvas = document.createElement("canvas");
      canvas.title = "particle " + indices[gRows[s]];
      paint(canvas, values, T);
      box.appendChild(canvas);
    }
    let lo = Infinity, hi = -Infinity;  // the average is stretched over 0..255 (its own contrast)
    for (const v of sum) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    const average = Uint8ClampedArray.from(sum, v => hi > lo ? 255 * (v - lo) / (hi - lo) : 0);
    $("gallery-average").hidden = shown.length === 0;
    paint($("average"), average, T);
    const what = selCount ? inSample.length + " of the " + selCount + " selected particles are in the page's random " +
      "sample of " + G.count : "No selection: the page's random sample of " + G.count + " particles";
    caption.textContent = what + "; " + shown.length + " shown" + (G.phase_flipped ? ", phase-flipped (CTF sign " +
      "corrected)" : ", as recorded (no CTF)") + ", " + T + " px" + (G.pixel_size_angstrom ? " of " +
      G.pixel_size_angstrom.toFixed(2) + " Å" : "") + ". Right: their average.";
    window.cryoscapeGallery = {shown: shown.map(s => indices[gRows[s]]), inSample: inSample.length,
      average: Array.from(average), size: T};
  }

  // --- controls --------------------------------------------------------------------------------------------
  function showPcPair() { $("pc-pair").hidden = projections[+projSelect.value].kind !== "pca" || pcs.length < 2; }
  projSelect.addEventListener("change", () => { showPcPair(); redraw(true); });
  pcx.addEventListener("change", () => redraw(true));
  pcy.addEventListener("change", () => redraw(true));
  colorSelect.addEventListener("change", () => {
    const c = colors[+colorSelect.value];
    Plotly.restyle(div, {marker: [markerFor(c)]}, [0]);
    legendFor(c);
  });
  showPcPair();
  ready.then(() => {
    div.on("plotly_selected", onSelected);
    div.on("plotly_deselect", () => { if (!busy) clearSelection(); });
    div.on("plotly_click", ev => {  // a centre, or the centre particle under it (the centres are on data)
      if (!C || !ev || !ev.points) return;
      for (const q of ev.points) {
        const j = q.curveNumber === 1 ? q.pointNumber : C.centre_rows.indexOf(q.pointIndex);
        if (j >= 0) { selectCluster(j); return; }
      }
    });
    showSelection();
    window.cryoscapeReport = {n: n, div: div, selectCluster: selectCluster, clear: clearSelection,
      highlighted: () => Array.from(div.data[0].selectedpoints || []),
      outlines: () => (div.layout.selections || []).length + div.querySelectorAll(".selectionlayer path").length};
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
<span id="pc-pair"><label>x <select id="pcx"></select></label> <label>y <select id="pcy"></select></label></span>
<label>colour by <select id="color"></select></label>
<button id="clear">clear selection</button>
<span class="hint">Lasso (default) or box (toolbar) selects particles; a numbered k-means centre (or its button
below) selects its cluster. The selection stays when you change the projection.</span>
</div>
<div id="scatter"></div>
<div id="legend"></div>
<div id="clusters"></div>
<div id="selection-panel">
<span id="selection-count">no selection</span>
<button id="download" disabled>download index file</button>
<div id="cluster-info" hidden>
<h3 id="cluster-title"></h3>
<img id="cluster-map" hidden alt="views of the cluster's map">
<div class="views">central slices along x, y, z, then projections along x, y, z (grey scales shared by all
clusters)</div>
<div id="cluster-map-file"></div>
<pre id="cluster-chimerax"></pre>
</div>
<pre id="commands"></pre>
<div>The index file lists 0-based indices into the original particle file (through any training --ind subset).</div>
</div>
</section>
<section id="gallery-section">
<h2>Particle images of the selection</h2>
<p id="gallery-caption"></p>
<div class="gallery-row"><div id="gallery"></div>
<figure id="gallery-average"><canvas id="average"></canvas><figcaption>average of the images shown</figcaption></figure>
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
