// livecell dashboard page: plain JavaScript, no framework, nothing fetched from anywhere but
// this daemon. Reads only (GET); the daemon serves nothing that could change anything.
"use strict";

const FEED_MAX = 300;
const $ = (id) => document.getElementById(id);
const app = {
  boot: null, lastSeq: 0, state: null, position: null, selected: null,
  legend: null, refreshTimer: null, timelineTimer: null, feedCount: 0, imageT: null,
};

// ------------------------------------------------------------------ connection

function connect() {
  if (typeof SharedWorker === "function") {
    try {
      const worker = new SharedWorker("/static/events-worker.js", { name: "livecell-events" });
      worker.port.onmessage = (e) => receive(e.data);
      worker.port.start();
      addEventListener("pagehide", () => worker.port.postMessage("bye"));
      return;
    } catch (err) {
      console.warn("no SharedWorker, one connection for this tab", err);
    }
  }
  const source = new EventSource("/events");
  source.onopen = () => receive({ type: "status", status: "live" });
  source.onerror = () => {
    receive({ type: "status", status: "reconnecting" });
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
  };
  source.addEventListener("hello", (e) => receive({ type: "hello", data: JSON.parse(e.data) }));
  source.addEventListener("view", (e) => receive({ type: "view", data: JSON.parse(e.data) }));
  source.onmessage = (e) => receive({ type: "message", data: JSON.parse(e.data) });
}

function receive(msg) {
  if (msg.type === "status") {
    document.body.dataset.connection = msg.status;
    $("connection").textContent = msg.status === "reconnecting" ? "reconnecting ..." : msg.status;
  } else if (msg.type === "hello") {
    if (msg.data.boot !== app.boot) {  // a new daemon run: start over from its history
      app.boot = msg.data.boot;
      app.lastSeq = 0;
      app.feedCount = 0;
      $("feed").replaceChildren();
      $("alerts").replaceChildren();
    }
    scheduleRefresh(0);
  } else if (msg.type === "view") {
    if (msg.data.position === app.position) showImage(msg.data.t);
  } else if (msg.type === "message") {
    const record = msg.data;
    if (typeof record.seq === "number") {
      if (record.seq <= app.lastSeq) return;
      app.lastSeq = record.seq;
    }
    onRecord(record);
  }
}

function onRecord(record) {
  const kind = record.kind;
  if (kind === "frame") {
    scheduleRefresh(600);
    return;
  }
  if (kind === "patch_states") { scheduleRefresh(600); return; }
  addFeedItem(record);
  if ((kind === "death" || kind === "early_necroptosis") && record.well) {
    const el = wellElement(record.position, record.well);
    if (el && !(kind === "early_necroptosis" && el.dataset.state === "death")) el.dataset.state = kind;
  }
  scheduleRefresh(300);
  const sel = app.selected;
  if (sel && sel.position === record.position && (sel.well === record.well || samePatch(sel.patch, record.patch))) {
    scheduleTimeline();
  }
}

function samePatch(a, b) { return Array.isArray(a) && Array.isArray(b) && a[0] === b[0] && a[1] === b[1]; }

// ------------------------------------------------------------------ feed

function describe(r) {
  const p = typeof r.confidence === "number" ? ` (p ${r.confidence.toFixed(2)})` : "";
  switch (r.kind) {
    case "death": return `DEATH: ${r.pathway || "death"} from t=${r.onset_t ?? "?"}${p}`;
    case "early_necroptosis": return `EARLY NECROPTOSIS from t=${r.onset_t ?? "?"}${p}`;
    case "cell_type": return `cell type: ${r.cell_type}${p}`;
    case "contact_start": return `contact starts: tracks ${(r.tracks || []).join(" + ")}`;
    case "contact_end": return `contact ends: tracks ${(r.tracks || []).join(" + ")}`;
    case "rejected": return `file rejected: ${r.reason}`;
    default: return r.kind;
  }
}

function addFeedItem(r) {
  const li = document.createElement("li");
  li.dataset.kind = r.kind;
  if (r.position) li.dataset.position = r.position;
  if (r.well) li.dataset.well = r.well;
  if (r.patch) li.dataset.patch = r.patch.join(",");
  const what = document.createElement("div");
  what.textContent = describe(r);
  const meta = document.createElement("div");
  meta.className = "meta";
  const where = r.well ? `${r.well}${r.track !== undefined ? " track " + r.track : ""}` :
    r.patch ? `patch ${r.patch.join(",")}` : "";
  const clock = r.emitted_at ? new Date(r.emitted_at * 1000).toLocaleTimeString() : "";
  meta.textContent = `${clock}  ${r.position || ""}  t=${r.t ?? "?"}  ${where}`;
  li.append(what, meta);
  li.addEventListener("click", () => {
    if (r.position) selectPosition(r.position);
    if (r.well) select({ position: r.position, well: r.well });
    else if (r.patch) select({ position: r.position, patch: r.patch });
  });
  prepend($("feed"), li);
  app.feedCount += 1;
  $("feed-count").textContent = `(${app.feedCount})`;
  if (r.kind === "death" || r.kind === "early_necroptosis") {
    const alerts = $("alerts");
    prepend(alerts, li.cloneNode(true)).addEventListener("click", () => li.click());
    $("alert-count").textContent = `(${alerts.children.length})`;
  }
}

function prepend(list, li) {
  list.prepend(li);
  while (list.children.length > FEED_MAX) list.lastElementChild.remove();
  return li;
}

// ------------------------------------------------------------------ state

function scheduleRefresh(delayMs) {
  if (app.refreshTimer !== null) return;
  app.refreshTimer = setTimeout(() => { app.refreshTimer = null; refreshState(); }, delayMs);
}

async function refreshState() {
  let state;
  try {
    const response = await fetch("/api/state", { cache: "no-store" });
    if (!response.ok) return;
    state = await response.json();
  } catch (err) {
    return;  // the daemon is restarting: the connection status says so
  }
  app.state = state;
  app.legend = state.legend;
  renderHeader(state.header);
  renderPositions(state.positions);
  renderMarks();
  renderLegend();
}

function seconds(v) { return typeof v === "number" ? `${v.toFixed(2)} s` : "-"; }

function renderHeader(h) {
  $("mode").textContent = `${h.mode} · ${h.backend}`;
  $("frames").textContent = String(h.frames_done);
  $("lag").textContent = seconds(h.lag_s);
  $("p50").textContent = seconds(h.latency_p50_s);
  $("p99").textContent = seconds(h.latency_p99_s);
  $("interval").textContent = typeof h.interval_s === "number" ? `vs interval ${seconds(h.interval_s)}` : "";
  $("latency-box").classList.toggle("behind",
    typeof h.interval_s === "number" && typeof h.latency_p99_s === "number" && h.latency_p99_s > h.interval_s);
  const dropped = h.dropped_events + h.dropped_frames;
  $("dropped").hidden = dropped === 0;
  $("dropped").textContent = `dashboard skipped ${h.dropped_frames} frames, ${h.dropped_events} events`;
}

function renderPositions(positions) {
  if (app.position === null && positions.length) app.position = positions[0].position;
  const nav = $("positions");
  const names = positions.map((p) => p.position);
  if (nav.dataset.names !== names.join("\n")) {
    nav.dataset.names = names.join("\n");
    nav.replaceChildren(...names.map((name) => {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = name;
      b.dataset.position = name;
      b.addEventListener("click", () => selectPosition(name));
      return b;
    }));
  }
  for (const b of nav.children) b.setAttribute("aria-pressed", String(b.dataset.position === app.position));
  const current = currentPosition();
  if (current && current.image_t !== null && current.image_t !== app.imageT) showImage(current.image_t, current.version);
}

function currentPosition() {
  return app.state ? app.state.positions.find((p) => p.position === app.position) : undefined;
}

function selectPosition(name) {
  if (name === app.position) return;
  app.position = name;
  app.imageT = null;
  renderPositions(app.state ? app.state.positions : []);
  renderMarks();
}

function showImage(t, version) {
  app.imageT = t;
  const url = `/img/frame.png?position=${encodeURIComponent(app.position)}&t=${t}&v=${version ?? Date.now()}`;
  const next = new Image();
  next.onload = () => {
    $("frame").src = url;
    $("placeholder").hidden = true;
  };
  next.src = url;
}

function wellElement(position, well) {
  if (position !== app.position) return null;
  return document.querySelector(`#marks .well[data-well="${CSS.escape(well)}"]`);
}

function renderMarks() {
  const marks = $("marks");
  const p = currentPosition();
  marks.replaceChildren();
  marks.className = "";
  marks.onclick = null;
  if (!p) return;
  for (const w of p.wells || []) {
    if (!w.box) continue;
    const el = document.createElement("div");
    el.className = "well";
    el.dataset.well = w.well;
    el.dataset.state = w.state;
    el.title = `${w.well}: ${w.state.replace("_", " ")}, ${w.tracks.length} cell(s)`;
    el.style.left = `${w.box[0] * 100}%`;
    el.style.top = `${w.box[1] * 100}%`;
    el.style.width = `${(w.box[2] - w.box[0]) * 100}%`;
    el.style.height = `${(w.box[3] - w.box[1]) * 100}%`;
    if (app.selected && app.selected.well === w.well && app.selected.position === p.position) el.classList.add("selected");
    el.addEventListener("click", () => select({ position: p.position, well: w.well }));
    marks.append(el);
  }
  if (p.patches && p.patches.grid[0] > 0) {
    const [rows, cols] = p.patches.grid;
    const [hFrac, wFrac] = p.patches.covered;
    marks.className = "patches";
    marks.onclick = (e) => {
      const box = marks.getBoundingClientRect();
      const fx = (e.clientX - box.left) / box.width / wFrac;
      const fy = (e.clientY - box.top) / box.height / hFrac;
      if (fx < 0 || fy < 0 || fx >= 1 || fy >= 1) return;
      select({ position: p.position, patch: [Math.floor(fy * rows), Math.floor(fx * cols)] });
    };
    const marked = new Map();
    for (const ev of p.patches.events) marked.set(ev.patch.join(","), ev.kind);
    if (app.selected && app.selected.patch) marked.set(app.selected.patch.join(","), "selected");
    for (const [key, kind] of marked) {
      const [r, c] = key.split(",").map(Number);
      const el = document.createElement("div");
      el.className = "patch-mark";
      el.dataset.patch = key;
      el.dataset.kind = kind;
      el.style.left = `${(c / cols) * wFrac * 100}%`;
      el.style.top = `${(r / rows) * hFrac * 100}%`;
      el.style.width = `${wFrac / cols * 100}%`;
      el.style.height = `${hFrac / rows * 100}%`;
      marks.append(el);
    }
  }
}

function swatch(colour, label, data) {
  const span = document.createElement("span");
  const box = document.createElement("span");
  box.className = "swatch";
  box.style.background = colour;
  span.append(box, label);
  Object.assign(span.dataset, data);
  return span;
}

function renderLegend() {
  const p = currentPosition();
  const legend = $("legend");
  const items = [];
  if (p && p.patches) {
    p.patches.classes.forEach((name, i) => items.push(swatch(patchColour(p.patches.classes, i), name.replace("_", " "), { cls: name })));
    items.push(swatch("transparent", "empty (not classified)", { cls: "empty" }));
  } else if (app.legend) {
    const counts = {};
    for (const w of (p && p.wells) || []) counts[w.state] = (counts[w.state] || 0) + 1;
    for (const [state, colour] of Object.entries(app.legend.states)) {
      items.push(swatch(colour, `${state.replace("_", " ")} (${counts[state] || 0})`, { state }));
    }
  }
  legend.replaceChildren(...items);
}

const SPARE = ["#a371f7", "#79c0ff", "#e3b341", "#56d4dd", "#ff7b72", "#7ee787"];
function patchColour(classes, i) {
  return (app.legend && app.legend.patches[classes[i]]) || SPARE[i % SPARE.length];
}

// ------------------------------------------------------------------ timeline

function select(sel) {
  app.selected = sel;
  renderMarks();
  loadTimeline();
}

function scheduleTimeline() {
  if (app.timelineTimer !== null) return;
  app.timelineTimer = setTimeout(() => { app.timelineTimer = null; loadTimeline(); }, 800);
}

async function loadTimeline() {
  const sel = app.selected;
  if (!sel) return;
  const q = new URLSearchParams({ position: sel.position });
  if (sel.patch) q.set("patch", sel.patch.join(",")); else q.set("well", sel.well);
  let data;
  try {
    const response = await fetch(`/api/timeline?${q}`, { cache: "no-store" });
    if (!response.ok) return;
    data = await response.json();
  } catch (err) {
    return;
  }
  $("timeline").hidden = false;
  if (sel.patch) renderPatchTimeline(data); else renderWellTimeline(data);
}

const SVG = "http://www.w3.org/2000/svg";  // a namespace name, never fetched
function svg(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

function chart(points, series, stateColour) {
  // points: [{t, ...}]; series: [{colour, value(point) -> number|null}]
  const W = 600, H = 70, strip = 8;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", class: "chart" });
  if (!points.length) return root;
  const t0 = points[0].t, t1 = Math.max(points[points.length - 1].t, t0 + 1);
  const x = (t) => ((t - t0) / (t1 - t0)) * (W - 4) + 2;
  const y = (v) => H - strip - 2 - v * (H - strip - 6);
  points.forEach((pt, i) => {
    const next = i + 1 < points.length ? points[i + 1].t : pt.t + 1;
    root.append(svg("rect", { x: x(pt.t), y: H - strip, width: Math.max(1, x(next) - x(pt.t)), height: strip, fill: stateColour(pt) }));
  });
  root.append(svg("line", { x1: 0, x2: W, y1: y(0.5), y2: y(0.5), stroke: "#30363d", "stroke-dasharray": "4 4" }));
  for (const s of series) {
    const coords = points.filter((pt) => s.value(pt) !== null).map((pt) => `${x(pt.t).toFixed(1)},${y(s.value(pt)).toFixed(1)}`);
    if (coords.length) root.append(svg("polyline", { points: coords.join(" "), fill: "none", stroke: s.colour, "stroke-width": 2 }));
  }
  return root;
}

function cropStrip(points, url, stateColour) {
  const strip = document.createElement("div");
  strip.className = "crops";
  for (const pt of points.filter((p) => p.crop).slice(-24)) {
    const fig = document.createElement("figure");
    const img = document.createElement("img");
    img.loading = "lazy";
    img.alt = `t=${pt.t}`;
    img.src = url(pt);
    img.style.borderBottomColor = stateColour(pt);
    const cap = document.createElement("figcaption");
    cap.textContent = String(pt.t);
    fig.append(img, cap);
    strip.append(fig);
  }
  return strip;
}

function renderWellTimeline(d) {
  $("timeline-title").textContent = `${d.position} well ${d.well}: ${d.state.replace("_", " ")}`;
  const colours = app.legend ? app.legend.states : {};
  const stateColour = (pt) => colours[pt.state] || "#8b949e";
  const body = [];
  if (!d.tracks.length) body.push(Object.assign(document.createElement("p"), { className: "dim", textContent: "no cell tracked here yet" }));
  for (const tr of d.tracks) {
    const div = document.createElement("div");
    div.className = "track";
    div.dataset.track = tr.track;
    div.dataset.state = tr.state;
    const title = document.createElement("div");
    title.className = "track-title";
    let text = `track ${tr.track}${tr.cell_type ? " · " + tr.cell_type : ""} · ${tr.state.replace("_", " ")}`;
    if (tr.death) text += ` · death (${tr.death.pathway}) from t=${tr.death.onset_t}`;
    if (tr.early_necroptosis) text += ` · early necroptosis from t=${tr.early_necroptosis.onset_t}`;
    title.textContent = text;
    const legend = document.createElement("div");
    legend.className = "dim";
    legend.textContent = "line: p(death) of the death model (1 - p(live)); strip: state per frame; crops below";
    div.append(title, chart(tr.points, [{ colour: "#f85149", value: (pt) => pt.p_death }], stateColour), legend,
      cropStrip(tr.points, (pt) => `/img/crop.png?position=${encodeURIComponent(d.position)}&track=${tr.track}&t=${pt.t}`, stateColour));
    body.push(div);
  }
  if (d.contacts.length) {
    const p = document.createElement("p");
    p.textContent = "contacts: " + d.contacts.map((c) => `${c.tracks.join("+")} t=${c.start_t}–${c.end_t ?? "now"}`).join(", ");
    body.push(p);
  }
  $("timeline-body").replaceChildren(...body);
}

function renderPatchTimeline(d) {
  const [r, c] = d.patch;
  $("timeline-title").textContent = `${d.position} patch ${r},${c}`;
  const idx = (name) => d.classes.indexOf(name);
  const stateColour = (pt) => (pt.state ? patchColour(d.classes, idx(pt.state)) : "#30363d");
  const series = d.classes.map((name, i) => ({
    colour: patchColour(d.classes, i),
    value: (pt) => (pt.probabilities ? pt.probabilities[i] : null),
  }));
  const div = document.createElement("div");
  div.className = "track";
  const last = d.points.length ? d.points[d.points.length - 1] : null;
  const events = Object.entries(d.events).map(([kind, e]) => `${kind.replace("_", " ")} from t=${e.onset_t}`).join(", ");
  const title = document.createElement("div");
  title.textContent = `state now: ${last && last.state ? last.state : "empty"}${events ? " · " + events : ""}`;
  const legend = document.createElement("div");
  legend.className = "dim";
  legend.textContent = "lines: class probabilities (" + d.classes.join(", ") + "); strip: reported state";
  div.append(title, chart(d.points, series, stateColour), legend,
    cropStrip(d.points, (pt) => `/img/patch.png?position=${encodeURIComponent(d.position)}&patch=${r},${c}&t=${pt.t}`, stateColour));
  $("timeline-body").replaceChildren(div);
}

// ------------------------------------------------------------------ start

connect();
refreshState();
setInterval(() => { if (document.body.dataset.connection === "live") refreshState(); }, 5000);
