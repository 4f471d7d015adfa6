// The Kling videos page: reads the plugin's JSON routes (same origin, the UI's login cookie)
// and builds the page with DOM calls only, so no recorded text is ever parsed as HTML.
"use strict";

const PAGE_SIZE = 24;
const CONTEXT = ["dag_id", "run_id", "task_id", "map_index", "request_id"];
const params = new URLSearchParams(window.location.search);
// The page is served at <ui base>/kling/; the UI's own pages are under <ui base>/.
const uiBase = window.location.pathname.replace(/kling\/?$/, "");
let offset = 0;

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
  if (form.elements.since.value) q.set("since", form.elements.since.value + "T00:00:00Z");
  if (form.elements.until.value) {
    const until = new Date(form.elements.until.value + "T00:00:00Z");
    until.setUTCDate(until.getUTCDate() + 1);
    q.set("until", until.toISOString());
  }
  for (const [name, value] of Object.entries(extra || {})) q.set(name, value);
  return q;
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
    el("p", { class: "prompt" }, v.prompt || "(no prompt)"),
    v.error ? el("p", { class: "error" }, v.error) : null,
    facts,
    el("p", { class: "links" },
      el("a", { href: runHref(v), target: "_top" }, where),
      " · ",
      el("a", { href: logHref(v), target: "_top" }, "task log"),
      " · ",
      el("span", { class: "when" }, new Date(v.recorded_at).toLocaleString()),
    ),
  );
}

function barChart(days) {
  const ns = "http://www.w3.org/2000/svg";
  const width = 520, height = 140, pad = 24;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "Estimated spend per day");
  const top = Math.max(...days.map((d) => d.spend_usd), 0.01);
  const step = Math.min((width - pad) / Math.max(days.length, 1), 48);
  days.forEach((d, i) => {
    const h = ((height - 2 * pad) * d.spend_usd) / top;
    const bar = document.createElementNS(ns, "rect");
    bar.setAttribute("x", pad + i * step + 2);
    bar.setAttribute("y", height - pad - h);
    bar.setAttribute("width", Math.max(step - 4, 2));
    bar.setAttribute("height", h);
    bar.setAttribute("class", "bar");
    const title = document.createElementNS(ns, "title");
    title.textContent = `${d.day}: ${usd(d.spend_usd)} (${d.count} requests)`;
    bar.append(title);
    svg.append(bar);
    if (days.length <= 14 || i % Math.ceil(days.length / 14) === 0) {
      const label = document.createElementNS(ns, "text");
      label.setAttribute("x", pad + i * step + step / 2);
      label.setAttribute("y", height - 6);
      label.setAttribute("text-anchor", "middle");
      label.textContent = d.day.slice(5);
      svg.append(label);
    }
  });
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
    showTotals(totals);
    document.getElementById("gallery").replaceChildren(...page.videos.map(card));
    const last = Math.min(page.offset + page.videos.length, page.total);
    document.getElementById("range").textContent = page.total ? `${page.offset + 1}–${last} of ${page.total}` : "";
    document.getElementById("prev").disabled = page.offset === 0;
    document.getElementById("next").disabled = last >= page.total;
    message.textContent = page.total ? "" : "No Kling videos match.";
  } catch (err) {
    message.textContent = err.message;
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
