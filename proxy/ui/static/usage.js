// Usage: spend, requests and tokens per day, and a breakdown by key, team, user, model, end
// user or tag, all from /global/spend/report: one call per day (each an indexed range of one
// day), at most POOL in flight, so a year's range costs the gateway one day's query at a time.
// Cache savings and guardrail blocks are shown only when the range has some.
import { get } from "./api.js";
import { clear, failure, h, loading, money, table } from "./dom.js";

const DAY = 86400000;
const MAX_DAYS = 366;
const POOL = 4;
const GROUPS = ["model", "key", "team", "user", "end_user", "tag"];
const FIELDS = { key: "api_key", team: "team_id", user: "user_id", model: "model", end_user: "end_user", tag: "tag" };
const SUMS = ["spend", "requests", "total_tokens", "cache_hits", "cache_savings", "guardrail_blocks"];
const iso = (d) => d.toISOString().slice(0, 10);
const charts = new Map();

function chart(id, config) {
  charts.get(id)?.destroy();
  const canvas = document.getElementById(id);
  if (!canvas || !window.Chart) return;
  charts.set(id, new window.Chart(canvas, config));
}

function canvas(id, label) {
  return h("div", { class: "chart" }, h("canvas", { id, role: "img", "aria-label": label }));
}

// Runs work(item) for every item with at most `limit` running at once; results in order.
async function pooled(items, limit, work) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

const sum = (rows, field) => rows.reduce((acc, r) => acc + (r[field] || 0), 0);

// The groups of every day summed over the range, highest spend first.
function merge(series, field) {
  const merged = new Map();
  for (const row of series.flat()) {
    const id = row[field] ?? null;
    const into = merged.get(id) || Object.fromEntries([[field, id], ...SUMS.map((k) => [k, 0])]);
    for (const k of SUMS) into[k] += row[k] || 0;
    merged.set(id, into);
  }
  return [...merged.values()].sort((a, b) => b.spend - a.spend);
}

function stat(label, value, id) {
  return h("div", { class: "card stat" }, h("span", {}, label), h("strong", { id }, value));
}

export async function usagePage(view, session, params) {
  const today = new Date();
  const end = params.get("end") || iso(today);
  const start = params.get("start") || iso(new Date(today.getTime() - 6 * DAY));
  const groupBy = GROUPS.includes(params.get("group_by")) ? params.get("group_by") : "model";
  const label = groupBy.replace("_", " ");
  const body = h("div", {}, loading());
  const controls = h("form", { id: "usage-range", class: "card inline" },
    h("div", { class: "field" }, h("label", { for: "usage-start" }, "From"), h("input", { id: "usage-start", type: "date", value: start })),
    h("div", { class: "field" }, h("label", { for: "usage-end" }, "To"), h("input", { id: "usage-end", type: "date", value: end })),
    h("div", { class: "field" }, h("label", { for: "usage-group" }, "Break down by"),
      h("select", { id: "usage-group" }, GROUPS.map((g) => h("option", { value: g, selected: g === groupBy }, g.replace("_", " "))))),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Show")));
  controls.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams({ start: controls.elements[0].value, end: controls.elements[1].value, group_by: controls.elements[2].value });
    location.hash = `#/usage?${q}`;
  });
  clear(view, h("h1", {}, "Usage"), controls, body);
  try {
    const days = [];
    for (let t = Date.parse(start); t <= Date.parse(end) && days.length < MAX_DAYS; t += DAY) days.push(iso(new Date(t)));
    const cut = days.length === MAX_DAYS && Date.parse(days[days.length - 1]) < Date.parse(end);
    const report = (group) => pooled(days, POOL, (d) => get("/global/spend/report", { group_by: group, start_date: d, end_date: d }));
    // A call with several tags counts once in each of its tags, so the day totals come from
    // a grouping that counts every call once (by model) when the breakdown is by tag.
    const series = await report(groupBy === "tag" ? "model" : groupBy);
    const breakdown = groupBy === "tag" ? await report("tag") : series;
    const perDay = (field) => series.map((rows) => sum(rows, field));
    const spend = perDay("spend");
    const all = series.flat();
    const hits = sum(all, "cache_hits");
    const blocks = sum(all, "guardrail_blocks");
    const field = FIELDS[groupBy];
    const groups = merge(breakdown, field);
    const none = groupBy === "tag" ? "(untagged)" : "(none)";
    const name = (r) => (r[field] === null || r[field] === undefined ? none : groupBy === "key" ? String(r[field]).slice(0, 12) : String(r[field]));
    const top = groups.slice(0, 10);
    const columns = [
      { title: label, render: name },
      { title: "Spend", render: (r) => money(r.spend) },
      { title: "Requests", render: (r) => String(r.requests) },
      { title: "Tokens", render: (r) => String(r.total_tokens) },
    ];
    if (hits) columns.push({ title: "Cache hits", render: (r) => String(r.cache_hits) }, { title: "Cache saved", render: (r) => money(r.cache_savings) });
    if (blocks) columns.push({ title: "Guardrail blocks", render: (r) => String(r.guardrail_blocks) });
    clear(body,
      cut ? h("p", { class: "notice card", role: "status" }, `Showing the first ${MAX_DAYS} days of the range.`) : null,
      h("div", { class: "totals" },
        stat("Spend", money(sum(all, "spend")), "total-spend"),
        stat("Requests", String(sum(all, "requests"))),
        stat("Tokens", String(sum(all, "total_tokens"))),
        hits ? stat("Cache hits / saved", `${hits} / ${money(sum(all, "cache_savings"))}`, "total-cache") : null,
        blocks ? stat("Guardrail blocks", String(blocks), "total-blocks") : null),
      h("h2", {}, "Spend per day"), canvas("chart-spend", "Spend per day"),
      h("h2", {}, "Requests and tokens per day"), canvas("chart-traffic", "Requests and tokens per day"),
      hits ? [h("h2", {}, "Cache savings per day"), canvas("chart-cache", "Cache hits and savings per day")] : null,
      blocks ? [h("h2", {}, "Guardrail blocks per day"), canvas("chart-blocks", "Guardrail blocks per day")] : null,
      h("h2", {}, `Top spenders by ${label}`), canvas("chart-groups", `Spend by ${label}`),
      groupBy === "tag" ? h("p", { class: "muted" }, "A call with several tags counts in each of them.") : null,
      table({ caption: `Spend by ${label}`, empty: "No spend in this range.", rows: top, columns }));
    const options = { responsive: true, maintainAspectRatio: false, animation: false };
    const dollars = { ticks: { callback: (v) => `$${Number(v).toPrecision(2)}` } };
    chart("chart-spend", { type: "line", data: { labels: days, datasets: [{ label: "Spend ($)", data: spend, borderColor: "#1f5fbf", backgroundColor: "#1f5fbf" }] }, options: { ...options, scales: { y: dollars } } });
    chart("chart-traffic", { type: "bar", data: { labels: days, datasets: [
      { label: "Requests", data: perDay("requests"), backgroundColor: "#2e7d32", yAxisID: "y" },
      { label: "Tokens", data: perDay("total_tokens"), backgroundColor: "#b26a00", yAxisID: "y1", type: "line", borderColor: "#b26a00" },
    ] }, options: { ...options, scales: { y: { position: "left" }, y1: { position: "right", grid: { drawOnChartArea: false } } } } });
    if (hits) chart("chart-cache", { type: "bar", data: { labels: days, datasets: [
      { label: "Saved ($)", data: perDay("cache_savings"), backgroundColor: "#1a7f37", yAxisID: "y" },
      { label: "Cache hits", data: perDay("cache_hits"), borderColor: "#6e40c9", backgroundColor: "#6e40c9", yAxisID: "y1", type: "line" },
    ] }, options: { ...options, scales: { y: { position: "left", ...dollars }, y1: { position: "right", grid: { drawOnChartArea: false } } } } });
    if (blocks) chart("chart-blocks", { type: "bar", data: { labels: days, datasets: [{ label: "Blocked calls", data: perDay("guardrail_blocks"), backgroundColor: "#b42318" }] }, options });
    chart("chart-groups", { type: "bar", data: { labels: top.map(name), datasets: [{ label: "Spend ($)", data: top.map((r) => r.spend), backgroundColor: "#1f5fbf" }] }, options: { ...options, indexAxis: "y", scales: { x: dollars } } });
  } catch (err) {
    clear(body, failure(err));
  }
}
