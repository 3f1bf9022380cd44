// Keys, teams and users: server-paged tables with create / edit / block / delete.
import { get, post } from "./api.js";
import { budgetBar, clear, copyButton, count, failure, form, h, loading, pager, table, when } from "./dom.js";

const PAGE_SIZE = 25;
const list = (v) => (v && v.length ? v.join(", ") : "all");
const limits = (r) => [r.rpm_limit && `${r.rpm_limit} rpm`, r.tpm_limit && `${r.tpm_limit} tpm`,
  r.max_parallel_requests && `${r.max_parallel_requests} parallel`].filter(Boolean).join(", ") || "—";
const status = (blocked) => h("span", { class: blocked ? "tag bad" : "tag ok" }, blocked ? "blocked" : "active");

function confirmed(text) {
  return window.confirm(text);
}

const KEY_FIELDS = [
  { name: "key_alias", label: "Alias" },
  { name: "team_id", label: "Team id" },
  { name: "user_id", label: "User id" },
  { name: "models", label: "Models (comma separated; empty: all)", type: "list" },
  { name: "max_budget", label: "Max budget ($)", type: "number" },
  { name: "soft_budget", label: "Soft budget ($)", type: "number" },
  { name: "budget_duration", label: "Budget resets every (e.g. 30d)" },
  { name: "duration", label: "Expires after (e.g. 90d)" },
  { name: "rpm_limit", label: "Requests per minute", type: "number" },
  { name: "tpm_limit", label: "Tokens per minute", type: "number" },
  { name: "max_parallel_requests", label: "Parallel requests", type: "number" },
  { name: "tags", label: "Tags (comma separated)", type: "list" },
  { name: "guardrails", label: "Guardrails (comma separated)", type: "list" },
  { name: "metadata", label: "Metadata (JSON)", type: "json" },
  { name: "key_type", label: "Key type", options: [["", "default (calls models)"], ["llm_api", "llm_api"],
    ["management", "management (team admin)"], ["read_only", "read_only"]] },
];

function shownOnce(panel, title, secret) {
  clear(panel, h("div", { class: "card notice", role: "status" },
    h("h2", {}, title),
    h("p", {}, "Copy it now: it is shown only once."),
    h("p", {}, h("code", { id: "new-secret", class: "secret" }, secret), " ", copyButton(secret))));
}

export async function keysPage(view, session, params) {
  const page = Number(params.get("page") || 1);
  const panel = h("div", { id: "key-panel" });
  const body = h("div", {}, loading());
  const reload = () => keysPage(view, session, params);
  const create = form({ id: "key-create", submit: "Create key", fields: KEY_FIELDS, onSubmit: async (values) => {
    const made = await post("/key/generate", values);
    await reload();
    shownOnce(document.getElementById("key-panel"), `Key ${made.key_alias || ""} created`, made.key);
  } });
  // A read-only key's session may look, not change: no forms, no action buttons.
  const canWrite = session.role !== "read_only";
  clear(view, h("h1", {}, "Keys"), canWrite ? h("details", {}, h("summary", {}, "New key"), create) : null, panel, body);
  try {
    const data = await get("/key/list", { page, size: PAGE_SIZE, return_full_object: "true" });
    const act = (path, key, text) => async () => {
      if (text && !confirmed(text)) return;
      const out = await post(path, { key });
      if (out && out.key && path === "/key/regenerate") {
        await reload();
        shownOnce(document.getElementById("key-panel"), "Key regenerated", out.key);
      } else await reload();
    };
    const edit = (row) => clear(panel, form({ id: "key-edit", submit: "Save key",
      fields: KEY_FIELDS.filter((f) => f.name !== "key_type").map((f) => ({ ...f, value: f.type === "list" ? (row[f.name] || []).join(", ") : row[f.name] })),
      onSubmit: async (values) => { await post("/key/update", { key: row.token, ...values }); await reload(); } }));
    clear(body, table({
      caption: count(data.total_count, "key"), empty: "No keys yet: create one above.",
      rows: data.keys,
      columns: [
        { title: "Alias", render: (r) => r.key_alias || "—" },
        { title: "Key", render: (r) => h("code", {}, r.key_name || r.token.slice(0, 8)) },
        { title: "Team", render: (r) => r.team_id || "—" },
        { title: "User", render: (r) => r.user_id || "—" },
        { title: "Models", render: (r) => list(r.models) },
        { title: "Spend / budget", render: (r) => budgetBar(r.spend, r.max_budget) },
        { title: "Limits", render: limits },
        { title: "Expires", render: (r) => when(r.expires) },
        { title: "Status", render: (r) => status(r.blocked) },
        { title: "Actions", render: (r) => !canWrite ? "—" : h("span", { class: "row-actions" },
          h("button", { type: "button", onClick: () => edit(r) }, "Edit"),
          r.blocked
            ? h("button", { type: "button", onClick: act("/key/unblock", r.token) }, "Unblock")
            : h("button", { type: "button", onClick: act("/key/block", r.token) }, "Block"),
          h("button", { type: "button", onClick: act("/key/regenerate", r.token, "Regenerate this key? The old secret stops working.") }, "Regenerate"),
          h("button", { type: "button", class: "danger", onClick: async () => {
            if (!confirmed(`Delete key ${r.key_alias || r.key_name}?`)) return;
            await post("/key/delete", { keys: [r.token] });
            await reload();
          } }, "Delete")) },
      ],
    }), pager({ page, totalPages: data.total_pages, onPage: (p) => { location.hash = `#/keys?page=${p}`; } }));
  } catch (err) {
    clear(body, failure(err));
  }
}

const TEAM_FIELDS = [
  { name: "team_alias", label: "Alias" },
  { name: "team_id", label: "Team id (optional)" },
  { name: "models", label: "Models (comma separated; empty: all)", type: "list" },
  { name: "max_budget", label: "Max budget ($)", type: "number" },
  { name: "budget_duration", label: "Budget resets every (e.g. 30d)" },
  { name: "rpm_limit", label: "Requests per minute", type: "number" },
  { name: "tpm_limit", label: "Tokens per minute", type: "number" },
  { name: "metadata", label: "Metadata (JSON)", type: "json" },
];

export async function teamsPage(view, session, params) {
  const page = Number(params.get("page") || 1);
  const panel = h("div");
  const body = h("div", {}, loading());
  const reload = () => teamsPage(view, session, params);
  const show = (p) => { if (p === page) return reload(); location.hash = `#/teams?page=${p}`; };
  // Teams are listed oldest first: a new team is on the last page.
  const created = async () => {
    const after = await get("/team/list", { page: 1, page_size: PAGE_SIZE });
    await show(Math.max(1, after.total_pages));
  };
  const create = session.role === "master" ? h("details", {}, h("summary", {}, "New team"),
    form({ id: "team-create", submit: "Create team", fields: TEAM_FIELDS, onSubmit: async (v) => { await post("/team/new", v); await created(); } })) : null;
  clear(view, h("h1", {}, "Teams"), create, panel, body);
  try {
    const data = await get("/team/list", { page, page_size: PAGE_SIZE });
    const teams = data.teams || [];
    const update = (row, change) => async () => { await post("/team/update", { team_id: row.team_id, ...change }); await reload(); };
    clear(body, table({
      caption: count(data.total ?? teams.length, "team"), empty: "No teams yet.", rows: teams,
      columns: [
        { title: "Alias", render: (r) => r.team_alias || "—" },
        { title: "Id", render: (r) => h("code", {}, r.team_id) },
        { title: "Models", render: (r) => list(r.models) },
        { title: "Spend / budget", render: (r) => budgetBar(r.spend, r.max_budget) },
        { title: "Limits", render: limits },
        { title: "Members", render: (r) => String((r.members || []).length) },
        { title: "Status", render: (r) => status(r.blocked) },
        { title: "Actions", render: (r) => session.role !== "master" ? "—" : h("span", { class: "row-actions" },
          h("button", { type: "button", onClick: () => clear(panel, form({ id: "team-edit", submit: "Save team",
            fields: TEAM_FIELDS.filter((f) => f.name !== "team_id").map((f) => ({ ...f, value: f.type === "list" ? (r[f.name] || []).join(", ") : r[f.name] })),
            onSubmit: async (v) => { await post("/team/update", { team_id: r.team_id, ...v }); await reload(); } })) }, "Edit"),
          h("button", { type: "button", onClick: () => clear(panel, form({ id: "team-member", submit: `Add member to ${r.team_alias || r.team_id}`,
            fields: [{ name: "user_id", label: "User id" }, { name: "role", label: "Role in team", options: [["user", "user"], ["admin", "admin"]] }],
            onSubmit: async (v) => { await post("/team/member_add", { team_id: r.team_id, member: v }); await reload(); } })) }, "Add member"),
          h("button", { type: "button", onClick: update(r, { blocked: !r.blocked }) }, r.blocked ? "Unblock" : "Block"),
          h("button", { type: "button", class: "danger", onClick: async () => {
            if (!confirmed(`Delete team ${r.team_alias || r.team_id}?`)) return;
            await post("/team/delete", { team_ids: [r.team_id] }); await reload();
          } }, "Delete")) },
      ],
    }), pager({ page, totalPages: data.total_pages, onPage: show }));
  } catch (err) {
    clear(body, failure(err));
  }
}

const USER_FIELDS = [
  { name: "user_id", label: "User id" },
  { name: "user_email", label: "Email" },
  { name: "user_role", label: "Role", options: [["internal_user", "internal_user"], ["internal_user_viewer", "internal_user_viewer"], ["proxy_admin", "proxy_admin"], ["proxy_admin_viewer", "proxy_admin_viewer"]] },
  { name: "max_budget", label: "Max budget ($)", type: "number" },
  { name: "budget_duration", label: "Budget resets every (e.g. 30d)" },
  { name: "models", label: "Models (comma separated)", type: "list" },
];

export async function usersPage(view, session, params) {
  const page = Number(params.get("page") || 1);
  const panel = h("div");
  const body = h("div", {}, loading());
  const reload = () => usersPage(view, session, params);
  const create = session.role === "master" ? h("details", {}, h("summary", {}, "New user"),
    form({ id: "user-create", submit: "Create user", fields: USER_FIELDS, onSubmit: async (v) => { await post("/user/new", { ...v, auto_create_key: false }); await reload(); } })) : null;
  clear(view, h("h1", {}, "Users"), create, panel, body);
  try {
    const data = await get("/user/list", { page, page_size: PAGE_SIZE });
    const users = data.users || [];
    clear(body, table({
      caption: count(data.total ?? users.length, "user"), empty: "No users yet.", rows: users,
      columns: [
        { title: "Id", render: (r) => r.user_id },
        { title: "Email", render: (r) => r.user_email || "—" },
        { title: "Role", render: (r) => r.user_role || "—" },
        { title: "Spend / budget", render: (r) => budgetBar(r.spend, r.max_budget) },
        { title: "Models", render: (r) => list(r.models) },
        { title: "Actions", render: (r) => session.role !== "master" ? "—" : h("span", { class: "row-actions" },
          h("button", { type: "button", onClick: () => clear(panel, form({ id: "user-edit", submit: "Save user",
            fields: USER_FIELDS.filter((f) => f.name !== "user_id").map((f) => ({ ...f, value: f.type === "list" ? (r[f.name] || []).join(", ") : r[f.name] })),
            onSubmit: async (v) => { await post("/user/update", { user_id: r.user_id, ...v }); await reload(); } })) }, "Edit"),
          h("button", { type: "button", class: "danger", onClick: async () => {
            if (!confirmed(`Delete user ${r.user_id}?`)) return;
            await post("/user/delete", { user_ids: [r.user_id] }); await reload();
          } }, "Delete")) },
      ],
    }), pager({ page, totalPages: data.total_pages, onPage: (p) => { location.hash = `#/users?page=${p}`; } }));
  } catch (err) {
    clear(body, failure(err));
  }
}
