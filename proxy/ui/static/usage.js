// Usage: spend, requests and tokens per day, and a breakdown by key, team, user or model,
// all from /global/spend/report, one call per day (each an indexed range of one day).
import { get } from "./api.js";
import { clear, failure, h, loading, money, table } from "./dom.js";

const DAY = 86400000;
const MAX_DAYS = 31;
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

export async function usagePage(view, session, params) {
  const today = new Date();
  const end = params.get("end") || iso(today);
  const start = params.get("start") || iso(new Date(today.getTime() - 6 * DAY));
  const groupBy = params.get("group_by") || "model";
  const body = h("div", {}, loading());
  const controls = h("form", { id: "usage-range", class: "card inline" },
    h("div", { class: "field" }, h("label", { for: "usage-start" }, "From"), h("input", { id: "usage-start", type: "date", value: start })),
    h("div", { class: "field" }, h("label", { for: "usage-end" }, "To"), h("input", { id: "usage-end", type: "date", value: end })),
    h("div", { class: "field" }, h("label", { for: "usage-group" }, "Break down by"),
      h("select", { id: "usage-group" }, ["model", "key", "team", "user"].map((g) => h("option", { value: g, selected: g === groupBy }, g)))),
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
    // One indexed call per day, grouped as asked: the day totals are the sums of its groups,
    // and the range's breakdown is the groups summed over the days.
    const series = await Promise.all(days.map((d) => get("/global/spend/report", { group_by: groupBy, start_date: d, end_date: d })));
    const sum = (rows, field) => rows.reduce((acc, r) => acc + (r[field] || 0), 0);
    const spend = series.map((rows) => sum(rows, "spend"));
    const requests = series.map((rows) => sum(rows, "requests"));
    const tokens = series.map((rows) => sum(rows, "total_tokens"));
    const field = { key: "api_key", team: "team_id", user: "user_id", model: "model" }[groupBy];
    const merged = new Map();
    for (const row of series.flat()) {
      const id = row[field] ?? null;
      const into = merged.get(id) || { [field]: id, spend: 0, requests: 0, total_tokens: 0, cache_hits: 0, cache_savings: 0 };
      for (const k of ["spend", "requests", "total_tokens", "cache_hits", "cache_savings"]) into[k] += row[k] || 0;
      merged.set(id, into);
    }
    const groups = [...merged.values()].sort((a, b) => b.spend - a.spend);
    const name = (r) => (r[field] === null || r[field] === undefined ? "(none)" : groupBy === "key" ? String(r[field]).slice(0, 12) : String(r[field]));
    const top = groups.slice(0, 10);
    clear(body,
      h("div", { class: "totals" },
        h("div", { class: "card stat" }, h("span", {}, "Spend"), h("strong", { id: "total-spend" }, money(sum(groups, "spend")))),
        h("div", { class: "card stat" }, h("span", {}, "Requests"), h("strong", {}, String(sum(groups, "requests")))),
        h("div", { class: "card stat" }, h("span", {}, "Tokens"), h("strong", {}, String(sum(groups, "total_tokens")))),
        h("div", { class: "card stat" }, h("span", {}, "Cache hits / saved"), h("strong", {}, `${sum(groups, "cache_hits")} / ${money(sum(groups, "cache_savings"))}`))),
      h("h2", {}, "Spend per day"), canvas("chart-spend", "Spend per day"),
      h("h2", {}, "Requests and tokens per day"), canvas("chart-traffic", "Requests and tokens per day"),
      h("h2", {}, `Top spenders by ${groupBy}`), canvas("chart-groups", `Spend by ${groupBy}`),
      table({ caption: `Spend by ${groupBy}`, empty: "No spend in this range.", rows: top, columns: [
        { title: groupBy, render: name },
        { title: "Spend", render: (r) => money(r.spend) },
        { title: "Requests", render: (r) => String(r.requests) },
        { title: "Tokens", render: (r) => String(r.total_tokens) },
        { title: "Cache saved", render: (r) => money(r.cache_savings) },
      ] }));
    const options = { responsive: true, maintainAspectRatio: false, animation: false };
    const dollars = { ticks: { callback: (v) => `$${Number(v).toPrecision(2)}` } };
    chart("chart-spend", { type: "line", data: { labels: days, datasets: [{ label: "Spend ($)", data: spend, borderColor: "#1f5fbf", backgroundColor: "#1f5fbf" }] }, options: { ...options, scales: { y: dollars } } });
    chart("chart-traffic", { type: "bar", data: { labels: days, datasets: [
      { label: "Requests", data: requests, backgroundColor: "#2e7d32", yAxisID: "y" },
      { label: "Tokens", data: tokens, backgroundColor: "#b26a00", yAxisID: "y1", type: "line", borderColor: "#b26a00" },
    ] }, options: { ...options, scales: { y: { position: "left" }, y1: { position: "right", grid: { drawOnChartArea: false } } } } });
    chart("chart-groups", { type: "bar", data: { labels: top.map(name), datasets: [{ label: "Spend ($)", data: top.map((r) => r.spend), backgroundColor: "#1f5fbf" }] }, options: { ...options, indexAxis: "y", scales: { x: dollars } } });
  } catch (err) {
    clear(body, failure(err));
  }
}
