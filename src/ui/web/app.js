// llmwatch dashboard: the overview (a row per target and model) and the detail of one, drawn
// from /api/v1/overview and /api/v1/detail. Every string from the server goes into the page as
// text (textContent, attributes), never as markup. State lives in the URL.
"use strict";

const REFRESH_MS = 5000;
const PAGE_ROWS = 50;
const SVG = "http://www.w3.org/2000/svg";

const state = { data: null, columns: [], sort: "target", desc: false, page: 0, selected: 0, timer: null, busy: false, typing: null };

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) node.setAttribute(k, String(v));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  return node;
}

// ---- URL state -----------------------------------------------------------------------------

function params() { return new URLSearchParams(location.search); }

function go(changes, replace) {
  const p = params();
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === "") p.delete(k); else p.set(k, v);
  }
  const url = location.pathname + (p.toString() ? "?" + p.toString() : "");
  if (replace) history.replaceState(null, "", url); else history.pushState(null, "", url);
  render();
}

// ---- Formatting ------------------------------------------------------------------------------

function number(v, unit) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (v === 0) return "0";
  switch (unit) {
    case "ratio": return (v * 100).toFixed(v < 0.1 ? 1 : 0) + " %";
    case "seconds":
      if (v < 1) return (v * 1000).toFixed(v < 0.01 ? 2 : 0) + " ms";
      return v.toFixed(2) + " s";
    default:
      if (Number.isInteger(v) && v < 1000) return String(v);
      if (v >= 1000) return (v / 1000).toFixed(1) + "k";
      return v >= 10 ? v.toFixed(0) : v.toFixed(v >= 1 ? 1 : 2);
  }
}

// A value from the API: a number, or {at_most: B} / {above: B} where the buckets only bound it.
function reading(v, unit) {
  if (v && typeof v === "object") {
    if ("at_most" in v) return { text: "≤" + number(v.at_most, unit), bound: true, sort: v.at_most };
    if ("above" in v) return { text: ">" + number(v.above, unit), bound: true, sort: v.above };
  }
  return { text: number(v, unit), bound: false, sort: v === null || v === undefined ? null : v };
}

function localTime(unix) {
  const d = new Date(unix * 1000);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function utcTime(unix) { return new Date(unix * 1000).toISOString().replace(".000Z", "Z"); }

// ---- Fetching --------------------------------------------------------------------------------

async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (response.status === 401) throw new Error("credentials required: this llmwatch has [auth] set");
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error((body && body.error) || ("HTTP " + response.status));
  return body;
}

function setStatus(text, bad) {
  const node = $("status");
  node.textContent = text;
  node.className = bad ? "health down" : "muted";
}

// ---- Sparklines and charts ------------------------------------------------------------------

function path(values, width, height, lo, hi) {
  const span = hi - lo || 1;
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  let d = "";
  let pen = false;
  values.forEach((v, i) => {
    if (v === null || v === undefined) { pen = false; return; }
    const x = (i * step).toFixed(1);
    const y = (height - ((v - lo) / span) * height).toFixed(1);
    d += (pen ? "L" : "M") + x + " " + y;
    pen = true;
  });
  return d;
}

function sparkline(values) {
  const node = svg("svg", { class: "spark", viewBox: "0 0 64 18", preserveAspectRatio: "none", "aria-hidden": "true" });
  const present = values.filter((v) => v !== null && v !== undefined);
  if (present.length < 2) return node;
  const lo = Math.min(0, ...present);
  const hi = Math.max(...present);
  node.append(svg("path", { d: path(values, 64, 16, lo, hi) }));
  return node;
}

function chart(panel, times) {
  const box = el("div", { class: "chart", "data-panel": panel.id });
  box.append(el("h3", {}, panel.title), el("p", {}, panel.help));
  const lines = panel.lines.filter((l) => l.values.some((v) => v !== null));
  if (!lines.length) {
    box.append(el("div", { class: "nodata" }, "no data for this engine in the window (see Coverage below)"));
    return box;
  }
  const width = 400, height = 120, left = 48, bottom = 16;
  const all = lines.flatMap((l) => l.values.filter((v) => v !== null));
  const lo = Math.min(0, ...all);
  const hi = Math.max(...all) || 1;
  const plot = svg("svg", { viewBox: `0 0 ${width + left} ${height + bottom + 4}`, role: "img", "aria-label": panel.title });
  plot.append(svg("line", { class: "axis", x1: left, y1: height, x2: left + width, y2: height }));
  for (const [value, y] of [[hi, 8], [lo, height]]) {
    const label = svg("text", { x: left - 4, y: y, "text-anchor": "end" });
    label.textContent = number(value, panel.unit);
    plot.append(label);
  }
  for (const [i, anchor] of [[0, "start"], [times.length - 1, "end"]]) {
    const label = svg("text", { x: left + (i ? width : 0), y: height + bottom, "text-anchor": anchor });
    label.textContent = localTime(times[i]);
    const title = svg("title", {});
    title.textContent = utcTime(times[i]);
    label.append(title);
    plot.append(label);
  }
  const inner = svg("g", { transform: `translate(${left} 4)` });
  const legend = el("div", { class: "legend" });
  lines.forEach((line, i) => {
    inner.append(svg("path", { class: "s" + (i % 8), d: path(line.values, width, height - 4, lo, hi), "data-line": line.label }));
    // The legend gives the value over the whole window; a bound says so (≤, >).
    const r = reading(line.now, panel.unit);
    legend.append(el("span", { class: "s" + (i % 8), title: r.bound ? "only a bound: in the engine's first or last histogram bucket" : null }, `${line.label} ${r.text}`));
  });
  plot.append(inner);
  box.append(plot, legend);
  return box;
}

// ---- Overview --------------------------------------------------------------------------------

function healthOf(row) {
  if (row.health === "up" && row.stale) return ["stale", "the last good scrape is older than three intervals"];
  if (row.health === "down") return ["down", row.error ? `${row.error.reason}: ${row.error.message}` : "the last scrape failed"];
  if (row.health === "unknown") return ["unknown", "not scraped yet"];
  return ["up", "the last scrape worked"];
}

function headCell(label, key, help) {
  const th = el("th", { scope: "col", title: help || null, tabindex: "0" }, label);
  if (state.sort === key) th.setAttribute("aria-sort", state.desc ? "descending" : "ascending");
  const pick = () => {
    if (state.sort === key) state.desc = !state.desc; else { state.sort = key; state.desc = key !== "target"; }
    state.page = 0;
    refresh();
  };
  th.addEventListener("click", pick);
  th.addEventListener("keydown", (e) => { if (e.key === "Enter") pick(); });
  return th;
}

function drawHeads() {
  const heads = $("heads");
  heads.replaceChildren(headCell("target · model", "target"), el("th", {}, "health"));
  state.columns.forEach((c) => {
    const label = c.lines.length > 1 && c.id !== "load" ? `${c.title} ${c.lines.join(" ")}` : c.title;
    heads.append(headCell(label, c.id, `${c.help} (${c.lines.join(", ")}; sorts on ${c.lines[0]})`));
  });
  if (state.data && state.data.gpus) {
    heads.append(el("th", { scope: "col", title: "The GPUs this server uses, from its GPU exporter: utilisation and memory used of the total (hover for temperature, power, clock, XID)" }, "GPU util · memory"));
  }
}

function gibibytes(bytes) {
  return bytes === null || bytes === undefined ? "–" : (bytes / 1073741824).toFixed(0);
}

// One line per GPU the row's server uses: utilisation, memory used / total in GiB, an XID.
function gpuCell(gpus) {
  const td = el("td", { "data-column": "gpu" });
  if (!gpus || gpus.length === 0) {
    td.append(el("span", { class: "muted", title: "no GPU exporter names this server's pod, and its target lists no gpus" }, "–"));
    return td;
  }
  gpus.forEach((g) => {
    const name = `${g.exporter} gpu ${g.gpu ?? "?"}${g.gpu_instance ? " / " + g.gpu_instance : ""}`;
    const details = [name, g.gpu_model, `${number(g.temperature_celsius)} °C`, `${number(g.power_watts)} W`,
      g.sm_clock_hertz ? `SM ${(g.sm_clock_hertz / 1e6).toFixed(0)} MHz` : null, `attached by ${g.via}`].filter(Boolean).join(" · ");
    const line = el("div", { class: "cell", title: details },
      el("span", { class: "num" }, number(g.utilization, "ratio")),
      el("span", { class: "muted" }, `${gibibytes(g.memory_used_bytes)}/${gibibytes(g.memory_total_bytes)} GiB`),
      g.last_xid ? el("span", { class: "badge bad", title: "the GPU reported this XID error" }, `XID ${g.last_xid}`) : null);
    td.append(line);
  });
  return td;
}

function rowNode(row, index) {
  const [health, why] = healthOf(row);
  const name = el("td", {},
    el("div", {}, row.target, row.model ? el("span", { class: "muted" }, " · " + row.model) : null),
    el("div", {},
      row.engine ? el("span", { class: "badge" }, row.engine) : null,
      row.version ? el("span", { class: "badge" }, row.version) : null,
      ...Object.entries(row.labels || {}).map(([k, v]) => el("span", { class: "badge" }, `${k}=${v}`))));
  const tr = el("tr", { "data-target": row.target, "data-model": row.model || "", "data-index": index },
    name, el("td", { class: "health " + health, title: why }, health));
  state.columns.forEach((column, i) => {
    const cell = row.cells[i];
    const td = el("td", { "data-column": column.id });
    if (cell) {
      const box = el("div", { class: "cell" });
      cell.forEach((line) => {
        const r = reading(line.now, column.unit);
        box.append(el("span", { class: "num" + (r.bound ? " bound" : ""), "data-line": column.lines[cell.indexOf(line)], title: r.bound ? "only a bound: the value falls in the engine's first or last histogram bucket" : null }, r.text));
      });
      box.append(sparkline(cell[0].series));
      td.append(box);
    }
    tr.append(td);
  });
  if (state.data && state.data.gpus) tr.append(gpuCell(row.gpus));
  tr.addEventListener("click", () => go({ target: row.target, model: row.model }));
  return tr;
}

function drawOverview() {
  const data = state.data;
  if (!data) return;
  drawHeads();
  const pages = Math.max(1, Math.ceil(data.matching / PAGE_ROWS));
  const body = $("body");
  const nodes = [];
  let current;
  data.rows.forEach((row, i) => {
    if (data.group && row.group !== current) {
      current = row.group;
      nodes.push(el("tr", { class: "group" }, el("td", { colspan: state.columns.length + (data.gpus ? 3 : 2) }, `${data.group} = ${current === null ? "(none)" : current}`)));
    }
    nodes.push(rowNode(row, i));
  });
  body.replaceChildren(...nodes);
  state.selected = Math.min(state.selected, Math.max(0, data.rows.length - 1));
  markSelected();
  const health = Object.entries(data.health).map(([k, n]) => `${n} ${k}`).join(" · ");
  $("count").textContent = `${data.matching} of ${data.rows_total} rows (${health})`;
  $("page").textContent = `page ${state.page + 1} of ${pages}`;
  $("prev").disabled = state.page === 0;
  $("next").disabled = state.page + 1 >= pages;
  $("empty").hidden = data.matching > 0;
  $("empty").textContent = data.rows_total === 0
    ? "No target yet: give up --target URL, a [[target]] in the configuration, or start an engine on its usual port."
    : "No row matches the filter.";
}

function markSelected() {
  const rows = [...$("body").querySelectorAll("tr[data-index]")];
  rows.forEach((r, i) => r.classList.toggle("selected", i === state.selected));
}

function groups(labels) {
  const select = $("group");
  const current = select.value;
  const options = [el("option", { value: "" }, "nothing"), ...labels.map((k) => el("option", { value: k }, k))];
  select.replaceChildren(...options);
  select.value = labels.includes(current) ? current : "";
}

async function loadOverview() {
  const query = new URLSearchParams({
    window: params().get("window") || "5m", points: "30", sort: state.sort, order: state.desc ? "desc" : "asc",
    filter: $("filter").value.trim(), group: $("group").value, offset: String(state.page * PAGE_ROWS), limit: String(PAGE_ROWS),
  });
  const data = await getJSON("/api/v1/overview?" + query.toString());
  const pages = Math.max(1, Math.ceil(data.matching / PAGE_ROWS));
  if (state.page >= pages) { state.page = pages - 1; return loadOverview(); }
  state.data = data;
  state.columns = data.columns;
  groups(data.labels);
  drawOverview();
  // For measuring: navigation start to the first overview on screen.
  if (!performance.getEntriesByName("llmwatch:first-overview").length) performance.mark("llmwatch:first-overview");
  setStatus(`updated ${localTime(data.now)}`);
}

// ---- Detail ----------------------------------------------------------------------------------

function drawSummary(d) {
  const [health, why] = healthOf(d);
  const models = el("select", { id: "model", "aria-label": "model" }, ...(d.models || []).map((m) => el("option", { value: m }, m)));
  models.value = d.model || "";
  models.addEventListener("change", () => go({ model: models.value }));
  $("summary").replaceChildren(
    el("h1", {}, d.target),
    models,
    d.engine ? el("span", { class: "badge" }, d.engine) : null,
    d.version ? el("span", { class: "badge" }, d.version) : null,
    ...Object.entries(d.labels || {}).map(([k, v]) => el("span", { class: "badge" }, `${k}=${v}`)),
    el("span", { class: "health " + health, title: why }, health === "down" ? `down: ${why}` : health),
    el("span", { class: "muted" }, d.history_seconds < d.window_seconds * 0.9
      ? `history covers ${Math.round(d.history_seconds)} s of the ${Math.round(d.window_seconds)} s asked`
      : ""));
}

function drawClient(d) {
  const box = $("client");
  const c = d.client;
  if (!c) { box.replaceChildren(); return; }
  const gap = c.gap_seconds === null || c.gap_seconds === undefined
    ? el("span", { class: "muted" }, `no gap: ${c.reason}`)
    : c.gap_seconds >= 0
      ? el("span", {}, `clients wait ${number(c.gap_seconds, "seconds")} longer than the engine reports`)
      : el("span", { title: "the two means cover nearly but not exactly the same requests (some still in flight at the window's edges)" },
        `clients' mean is ${number(-c.gap_seconds, "seconds")} below the engine's`);
  box.replaceChildren(el("h2", {}, "Client side (through the proxy, last 5 minutes)"),
    el("p", {}, `client TTFT mean ${number(c.client_mean_seconds, "seconds")} over ${c.client_requests} requests · engine TTFT mean ${number(c.engine_mean_seconds, "seconds")} over ${c.engine_requests} · `, gap));
}

function drawCoverage(rows) {
  const body = $("coverage").querySelector("tbody");
  body.replaceChildren(...rows.map((r) => el("tr", { "data-signal": r.signal },
    el("td", { title: r.help }, el("code", {}, r.signal)),
    el("td", { class: "src-" + r.source }, r.source),
    el("td", {}, r.formula ? el("code", {}, r.formula) : r.series ? el("code", {}, r.series.join(", ")) : (r.reason || "")),
    el("td", { class: "muted" }, r.note || ""))));
}

async function loadDetail() {
  const p = params();
  const query = new URLSearchParams({ target: p.get("target"), window: p.get("window") || "5m", points: "60" });
  if (p.get("model")) query.set("model", p.get("model"));
  let d;
  try {
    d = await getJSON("/api/v1/detail?" + query.toString());
  } catch (error) {
    // Say what is wrong where the detail would be, not only in the header.
    $("crumbs").textContent = p.get("target");
    $("summary").replaceChildren(el("h1", {}, p.get("target")),
      el("span", { class: "health down" }, String(error.message || error)),
      el("a", { href: "/", id: "back" }, "back to the overview"));
    $("back").addEventListener("click", (e) => { e.preventDefault(); go({ target: null, model: null }); });
    $("client").replaceChildren();
    $("charts").replaceChildren();
    $("coverage-box").hidden = true;
    throw error;
  }
  $("coverage-box").hidden = false;
  $("crumbs").textContent = `${d.target}${d.model ? " · " + d.model : ""}`;
  drawSummary(d);
  drawClient(d);
  $("charts").replaceChildren(...d.panels.map((panel) => chart(panel, d.times)));
  drawCoverage(d.coverage);
  setStatus(`updated ${localTime(d.times[d.times.length - 1])}`);
}

// ---- Page ------------------------------------------------------------------------------------

// The alerts `up` evaluates: a count in the header, and on the overview (or the detail, for
// its target) a line per pending or firing alert.
async function loadAlerts() {
  const data = await getJSON("/api/v1/alerts").catch(() => null);
  const alerts = (data && data.data && data.data.alerts) || [];
  const target = params().get("target");
  const shown = target ? alerts.filter((a) => a.labels.instance === target) : alerts;
  const firing = alerts.filter((a) => a.state === "firing").length;
  $("alert-count").textContent = alerts.length ? `${firing} firing · ${alerts.length - firing} pending` : "";
  $("alert-count").className = firing ? "health down" : "muted";
  $("alerts").hidden = shown.length === 0;
  $("alert-list").replaceChildren(...shown.slice(0, 20).map((a) => el("li", { class: "alert " + a.state },
    el("span", { class: a.state === "firing" ? "health down" : "health stale" }, a.state),
    " ", el("strong", {}, a.labels.alertname), " ",
    el("span", {}, a.annotations.description || a.annotations.summary || ""), " ",
    /^https?:\/\//.test(a.annotations.runbook_url || "") ? el("a", { href: a.annotations.runbook_url, rel: "noreferrer" }, "runbook") : null)));
}

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  try {
    await loadAlerts();
    if (params().get("target")) await loadDetail(); else await loadOverview();
  } catch (error) {
    setStatus(String(error.message || error), true);
  } finally {
    state.busy = false;
  }
}

function render() {
  const detail = Boolean(params().get("target"));
  $("overview").hidden = detail;
  $("detail").hidden = !detail;
  if (!detail) $("crumbs").textContent = "overview";
  const span = params().get("window") || "5m";
  // A window from a shared URL that the picker does not offer gets an option of its own.
  if (![...$("window").options].some((o) => o.value === span)) $("window").append(el("option", { value: span }, span));
  $("window").value = span;
  clearInterval(state.timer);
  refresh();
  state.timer = setInterval(refresh, REFRESH_MS);
}

function turn(by) {
  state.page = Math.max(0, state.page + by);
  state.selected = 0;
  refresh();
}

function keys(e) {
  if (e.target.matches("input, select")) {
    if (e.key === "Escape") e.target.blur();
    return;
  }
  const detail = Boolean(params().get("target"));
  const windows = { 1: "5m", 2: "15m", 3: "1h" };
  if (windows[e.key]) { go({ window: windows[e.key] }, true); return; }
  if (detail) {
    if (e.key === "Escape" || e.key === "Backspace") go({ target: null, model: null });
    return;
  }
  const rows = $("body").querySelectorAll("tr[data-index]");
  if (e.key === "/") { e.preventDefault(); $("filter").focus(); }
  else if (e.key === "j" || e.key === "ArrowDown") { state.selected = Math.min(state.selected + 1, rows.length - 1); markSelected(); }
  else if (e.key === "k" || e.key === "ArrowUp") { state.selected = Math.max(state.selected - 1, 0); markSelected(); }
  else if (e.key === "Enter" && rows[state.selected]) rows[state.selected].click();
  else if (e.key === "PageDown" || e.key === "]") turn(1);
  else if (e.key === "PageUp" || e.key === "[") turn(-1);
}

document.addEventListener("DOMContentLoaded", () => {
  $("window").addEventListener("change", (e) => go({ window: e.target.value }, true));
  $("filter").addEventListener("input", () => {
    // Asks the server once typing pauses.
    clearTimeout(state.typing);
    state.typing = setTimeout(() => { state.page = 0; refresh(); }, 200);
  });
  $("group").addEventListener("change", () => { state.page = 0; refresh(); });
  $("prev").addEventListener("click", () => turn(-1));
  $("next").addEventListener("click", () => turn(1));
  $("home").addEventListener("click", (e) => { e.preventDefault(); go({ target: null, model: null }); });
  document.addEventListener("keydown", keys);
  window.addEventListener("popstate", render);
  render();
});
