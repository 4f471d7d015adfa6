// The Kling videos page: reads the plugin's JSON routes (same origin, the UI's login cookie)
// and builds the page with DOM calls only, so no recorded text is ever parsed as HTML.
"use strict";

const PAGE_SIZE = 24;
const CONTEXT = ["dag_id", "run_id", "task_id", "map_index", "request_id"];
const params = new URLSearchParams(window.location.search);
// The page is served at <ui base>/kling/ (its <base>); the UI's own pages are under <ui base>/.
const uiBase = new URL(document.baseURI).pathname.replace(/kling\/?$/, "");
// Airflow's UI mirrors a Browse page's frame address into its own (/plugin/kling-videos/kling/).
// Inside the UI the frame takes the UI's root as its address instead, so the address bar keeps
// the page's own route; the <base> keeps every relative URL of the page on this app.
if (window.parent !== window) window.history.replaceState(null, "", uiBase + window.location.search);
let offset = 0;
// Every time on the page is UTC, as are the day filters and the per-day totals the server adds up.
const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function query(extra) {
  const q = new URLSearchParams();
  for (const name of CONTEXT) {
    const value = params.get(name);
    // The UI leaves a placeholder such as {MAP_INDEX} where it has no value.
    if (value && !value.startsWith("{") && !(name === "map_index" && !/^-?\d+$/.test(value))) q.set(name, value);
  }
  const form = document.getElementById("filters");
  for (const name of ["dag_id", "status"]) {
    const value = form.elements[name].value;
    if (value) q.set(name, value);
  }
  const since = day(form.elements.since, "From");
  if (since) q.set("since", since.toISOString());
  const until = day(form.elements.until, "To");
  if (until) {
    until.setUTCDate(until.getUTCDate() + 1);
    q.set("until", until.toISOString());
  }
  for (const [name, value] of Object.entries(extra || {})) q.set(name, value);
  return q;
}

// A day typed as yyyy-mm-dd, as the start of that UTC day; empty is no bound. Anything else is
// refused by name, before any request, instead of being read as some other date.
function day(input, label) {
  const text = input.value.trim();
  if (!text) return null;
  const match = DAY.exec(text);
  const date = match ? new Date(Date.UTC(+match[1], +match[2] - 1, +match[3])) : null;
  if (!date || date.getUTCDate() !== +match[3] || date.getUTCMonth() !== +match[2] - 1) {
    input.setAttribute("aria-invalid", "true");
    throw new Error(`Invalid ${label}: ${JSON.stringify(text)} is not a date. Allowed: yyyy-mm-dd, such as 2026-12-04.`);
  }
  input.removeAttribute("aria-invalid");
  return date;
}

const pad2 = (n) => String(n).padStart(2, "0");

// Airflow's own format, 2026-12-04 03:11, in UTC.
function when(iso) {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return "–";
  return `${t.getUTCFullYear()}-${pad2(t.getUTCMonth() + 1)}-${pad2(t.getUTCDate())} ${pad2(t.getUTCHours())}:${pad2(t.getUTCMinutes())}`;
}

async function getJSON(path, q) {
  const response = await fetch(`${path}?${q}`, { credentials: "same-origin" });
  if (response.status === 401 || response.status === 403) throw new Error("Please log in to Airflow to see Kling videos.");
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

const usd = (value) => (typeof value === "number" ? `$${value.toFixed(2)}` : "unknown");
const enc = encodeURIComponent;

function runHref(v) {
  return `${uiBase}dags/${enc(v.dag_id)}/runs/${enc(v.run_id)}`;
}

function logHref(v) {
  const mapped = v.map_index >= 0 ? `/mapped/${v.map_index}` : "";
  return `${runHref(v)}/tasks/${enc(v.task_id)}${mapped}`;
}

function player(v) {
  const video = el("video", { controls: "", preload: "metadata", playsinline: "", poster: v.thumbnail_url });
  // The user's own copy first; the browser falls back to GMI's URL when it cannot load it.
  v.uris.forEach((_, index) => {
    const path = ["media", v.dag_id, v.run_id, v.request_id, index].map(enc).join("/");
    video.append(el("source", { src: path, type: "video/mp4", "data-origin": "storage" }));
  });
  for (const url of v.media_urls) video.append(el("source", { src: url, type: "video/mp4", "data-origin": "gmi" }));
  if (!v.uris.length && !v.media_urls.length) return el("div", { class: "no-video" }, v.status === "failed" ? "No video: the request failed" : "No video yet");
  return video;
}

function review(v) {
  // A reviewed take: its number, the decision, who made it and the notes for the next take.
  const r = v.review;
  if (!r) return null;
  const who = r.reviewer ? ` by ${r.reviewer}` : (r.timed_out ? " (review timed out)" : "");
  return el("p", { class: `review review-${String(r.decision).toLowerCase()}` },
    `Take ${r.take}: ${r.decision}${who}`, r.notes ? ` · notes: ${r.notes}` : "");
}

// A reviewed video: its takes side by side, the approved one marked, and every review's notes.
function takes(group, cards) {
  const who = group.approved_by ? ` by ${group.approved_by}` : "";
  const verdict = group.approved_take ? `Take ${group.approved_take} approved${who}` : "No take approved";
  const notes = group.notes_history.map((h) => {
    const by = h.reviewer ? ` by ${h.reviewer}` : (h.timed_out ? " (review timed out)" : "");
    return el("li", {}, `Take ${h.take}: ${h.decision}${by}`, h.notes ? ` · notes: ${h.notes}` : "", h.new_prompt ? ` · new prompt: ${h.new_prompt}` : "");
  });
  const where = `${group.dag_id} / ${group.run_id}${group.map_index >= 0 ? ` [${group.map_index}]` : ""}`;
  for (const node of cards) {
    if (node.dataset.requestId === group.approved_request_id) node.classList.add("approved");
  }
  return el("section", { class: "takes", "data-video": group.video, "data-map-index": group.map_index },
    el("h2", {}, `${where}: ${group.takes} take${group.takes === 1 ? "" : "s"} · `, el("span", { class: group.approved_take ? "verdict approved" : "verdict" }, verdict)),
    notes.length ? el("ol", { class: "notes" }, ...notes) : null,
    el("div", { class: "take-row" }, ...cards),
  );
}

// One reviewed video: its takes share a DAG run, a map index and a loop.
const videoKey = (v) => [v.dag_id, v.run_id, v.map_index, v.video].join("\u0000");

// The page's cards: a reviewed video's takes (adjacent in the page) under one heading.
function gallery(page) {
  const groups = new Map(page.groups.map((g) => [videoKey(g), g]));
  const nodes = [];
  let current = null;
  for (const v of page.videos) {
    const group = v.video ? groups.get(videoKey(v)) : undefined;
    if (!group) { current = null; nodes.push(card(v)); continue; }
    if (!current || current.group !== group) {
      current = { group, cards: [] };
      nodes.push(current);
    }
    current.cards.push(card(v));
  }
  return nodes.map((n) => (n instanceof Node ? n : takes(n.group, n.cards)));
}

function card(v) {
  const facts = el("dl", {},
    el("dt", {}, "Status"), el("dd", { class: `status status-${v.status}` }, v.status),
    el("dt", {}, "Cost"), el("dd", { class: "cost" }, usd(v.estimated_cost_usd)),
    el("dt", {}, "Duration"), el("dd", {}, v.duration ? `${v.duration} s` : "–"),
    el("dt", {}, "Resolution"), el("dd", {}, v.resolution || "–"),
    el("dt", {}, "Model"), el("dd", {}, v.model || "–"),
    el("dt", {}, "Request"), el("dd", { class: "request-id" }, v.request_id),
  );
  const where = `${v.dag_id} / ${v.task_id}${v.map_index >= 0 ? ` [${v.map_index}]` : ""}`;
  return el("article", { class: "video", "data-request-id": v.request_id, "data-run-id": v.run_id, "data-dag-id": v.dag_id },
    player(v),
    v.take ? el("p", { class: "take" }, `Take ${v.take}`) : null,
    el("p", { class: "prompt" }, v.prompt || "(no prompt)"),
    v.error ? el("p", { class: "error" }, v.error) : null,
    review(v),
    facts,
    el("p", { class: "links" },
      el("a", { href: runHref(v), target: "_top" }, where),
      " · ",
      el("a", { href: logHref(v), target: "_top" }, "task log"),
      " · ",
      el("time", { class: "when", datetime: v.recorded_at, title: "UTC" }, `${when(v.recorded_at)} UTC`),
    ),
  );
}

function svgNode(tag, attrs, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Bars with their values, a dollar axis with grid lines and the days (UTC) under the bars.
function barChart(days) {
  const width = 560, height = 190, left = 48, right = 8, top = 18, bottom = 24;
  const svg = svgNode("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Estimated spend per day (UTC)" });
  const plotH = height - top - bottom;
  const most = Math.max(...days.map((d) => d.spend_usd), 0);
  // A round top for the axis: 1, 2 or 5 times a power of ten, at or above the largest day.
  const magnitude = 10 ** Math.floor(Math.log10(Math.max(most, 0.01)));
  const axisTop = [1, 2, 5, 10].map((m) => m * magnitude).find((v) => v >= most) || magnitude;
  const y = (value) => top + plotH - (plotH * value) / axisTop;
  for (const tick of [0, axisTop / 2, axisTop]) {
    svg.append(svgNode("line", { class: "grid", x1: left, x2: width - right, y1: y(tick), y2: y(tick) }));
    svg.append(svgNode("text", { class: "tick", x: left - 6, y: y(tick) + 3, "text-anchor": "end" }, usd(tick)));
  }
  const step = Math.min((width - left - right) / Math.max(days.length, 1), 64);
  const every = Math.ceil(days.length / 12);
  days.forEach((d, i) => {
    const x = left + i * step;
    const bar = svgNode("rect", { class: "bar", x: x + step * 0.15, y: y(d.spend_usd), width: Math.max(step * 0.7, 2), height: Math.max(y(0) - y(d.spend_usd), 0) });
    bar.append(svgNode("title", {}, `${d.day}: ${usd(d.spend_usd)} (${d.count} requests)`));
    svg.append(bar);
    if (days.length <= 16) {
      svg.append(svgNode("text", { class: "value", x: x + step / 2, y: y(d.spend_usd) - 4, "text-anchor": "middle" }, usd(d.spend_usd)));
    }
    if (i % every === 0) {
      svg.append(svgNode("text", { class: "tick", x: x + step / 2, y: height - 8, "text-anchor": "middle" }, d.day.slice(5)));
    }
  });
  svg.append(svgNode("line", { class: "axis", x1: left, x2: width - right, y1: y(0), y2: y(0) }));
  return svg;
}

function showTotals(t) {
  document.getElementById("spend").textContent = usd(t.spend_usd);
  document.getElementById("count").textContent = t.count;
  document.getElementById("failed").textContent = t.failed;
  document.getElementById("cancelled").textContent = t.cancelled;
  document.getElementById("per-day").replaceChildren(barChart(t.per_day));
  const rows = t.per_dag.map((d) => el("tr", {}, el("td", {}, d.dag_id), el("td", { class: "num" }, usd(d.spend_usd)), el("td", { class: "num" }, `${d.count} req.`)));
  document.querySelector("#per-dag tbody").replaceChildren(...rows);
}

async function load() {
  const message = document.getElementById("message");
  message.textContent = "Loading…";
  try {
    const [page, totals] = await Promise.all([
      getJSON("api/videos", query({ offset, limit: PAGE_SIZE })),
      getJSON("api/totals", query()),
    ]);
    message.classList.remove("error");
    showTotals(totals);
    document.getElementById("gallery").replaceChildren(...gallery(page));
    // A page holds whole videos (a reviewed video is all its takes): the range counts videos.
    const shown = page.offset + new Set(page.videos.map((v) => (v.video ? videoKey(v) : v.request_id))).size;
    document.getElementById("range").textContent = page.total ? `${page.offset + 1}–${shown} of ${page.total} videos` : "";
    document.getElementById("prev").disabled = page.offset === 0;
    document.getElementById("next").disabled = shown >= page.total;
    message.textContent = page.total ? "" : "No Kling videos match.";
  } catch (err) {
    message.textContent = err.message;
    message.classList.add("error");
  }
}

async function init() {
  const scope = CONTEXT.filter((n) => params.get(n) && !params.get(n).startsWith("{")).map((n) => `${n} = ${params.get(n)}`);
  document.getElementById("scope").textContent = scope.length ? `Showing ${scope.join(", ")}` : "";
  const form = document.getElementById("filters");
  if (params.get("dag_id")) form.elements.dag_id.closest("label").hidden = true;
  try {
    const { dag_ids } = await getJSON("api/dags", new URLSearchParams());
    form.elements.dag_id.append(...dag_ids.map((d) => el("option", { value: d }, d)));
  } catch (err) {
    document.getElementById("message").textContent = err.message;
    return;
  }
  form.addEventListener("submit", (event) => { event.preventDefault(); offset = 0; load(); });
  document.getElementById("prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE_SIZE); load(); });
  document.getElementById("next").addEventListener("click", () => { offset += PAGE_SIZE; load(); });
  await load();
}

init();
