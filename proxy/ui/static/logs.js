// Spend logs: filters, server paging, and one call's details.
import { get } from "./api.js";
import { clear, failure, h, loading, money, pager, table, when } from "./dom.js";

const PAGE_SIZE = 50;
const FILTERS = [["api_key", "Key (hash or secret)"], ["team_id", "Team id"], ["user_id", "User id"], ["model", "Model"], ["start_date", "From (YYYY-MM-DD)"], ["end_date", "To (YYYY-MM-DD)"]];

function details(row) {
  return h("section", { class: "card", "aria-labelledby": "log-detail-title" },
    h("h2", { id: "log-detail-title" }, `Call ${row.call_id || row.request_id}`),
    h("dl", { class: "details" }, Object.entries(row).flatMap(([k, v]) => [
      h("dt", {}, k), h("dd", {}, typeof v === "object" && v !== null ? JSON.stringify(v) : String(v ?? "—"))])));
}

export async function logsPage(view, session, params) {
  const page = Number(params.get("page") || 1);
  const detail = h("div");
  const body = h("div", {}, loading());
  const filters = h("form", { id: "log-filters", class: "card inline" },
    FILTERS.map(([name, label]) => h("div", { class: "field" }, h("label", { for: `log-${name}` }, label),
      h("input", { id: `log-${name}`, name, value: params.get(name) || "" }))),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Filter")));
  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const [name] of FILTERS) { const v = filters.elements[name].value.trim(); if (v) q.set(name, v); }
    location.hash = `#/logs?${q}`;
  });
  clear(view, h("h1", {}, "Logs"), filters, detail, body);
  const query = { page, page_size: PAGE_SIZE };
  for (const [name] of FILTERS) query[name] = params.get(name);
  try {
    const rows = await get("/spend/logs", query);
    const go = (p) => { const q = new URLSearchParams(params); q.set("page", p); location.hash = `#/logs?${q}`; };
    clear(body, table({
      caption: "Spend logs, newest first", empty: "No calls match.", rows,
      onRow: (row) => { clear(detail, details(row)); detail.scrollIntoView(); },
      columns: [
        { title: "Time", render: (r) => when(r.startTime) },
        { title: "Model", render: (r) => r.model || "—" },
        { title: "Key", render: (r) => h("code", {}, (r.api_key || "—").slice(0, 12)) },
        { title: "Team", render: (r) => r.team_id || "—" },
        { title: "Tokens", render: (r) => String(r.total_tokens ?? 0) },
        { title: "Spend", render: (r) => money(r.spend) },
        { title: "Latency", render: (r) => (r.latency_ms === null ? "—" : `${Math.round(r.latency_ms)} ms`) },
        { title: "Status", render: (r) => h("span", { class: r.status === "success" ? "tag ok" : "tag bad" }, `${r.status} ${r.status_code ?? ""}`) },
      ],
    }), pager({ page, hasNext: rows.length === PAGE_SIZE, onPage: go }));
  } catch (err) {
    clear(body, failure(err));
  }
}
