// The shell: session check, login / logout, and the hash router (#/keys, #/usage?...).
import { currentSession, login, logout } from "./api.js";
import { clear, failure, h } from "./dom.js";
import { configPage, modelsPage } from "./info.js";
import { logsPage } from "./logs.js";
import { keysPage, teamsPage, usersPage } from "./records.js";
import { usagePage } from "./usage.js";

const PAGES = { keys: keysPage, teams: teamsPage, users: usersPage, usage: usagePage, logs: logsPage, models: modelsPage, config: configPage };
const $ = (id) => document.getElementById(id);
let session = null;

function showLogin() {
  session = null;
  $("nav").hidden = true;
  $("logout").hidden = true;
  clear($("who"));
  clear($("view"));
  $("login").hidden = false;
  document.title = "Log in · Tollway admin";
}

async function route() {
  if (!session) return showLogin();
  $("login").hidden = true;
  $("nav").hidden = false;
  $("logout").hidden = false;
  clear($("who"), session.team_id ? `${session.user} (team ${session.team_id})` : session.user);
  const [path, query] = (location.hash.replace(/^#\/?/, "") || "keys").split("?");
  const name = PAGES[path] ? path : "keys";
  for (const link of $("nav").querySelectorAll("a")) {
    if (link.getAttribute("href") === `#/${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${name[0].toUpperCase()}${name.slice(1)} · Tollway admin`;
  // data-state lets people (and the browser tests) see when a page has finished loading.
  document.body.dataset.state = "loading";
  try {
    await PAGES[name]($("view"), session, new URLSearchParams(query || ""));
  } catch (err) {
    if (err.status === 401) return showLogin();
    clear($("view"), failure(err));
  } finally {
    document.body.dataset.state = "ready";
  }
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    session = await login($("login-username").value.trim(), $("login-password").value);
    $("login-password").value = "";
    await route();
  } catch (err) {
    $("login-error").textContent = err.message;
  }
});

$("logout").addEventListener("click", async () => {
  await logout();
  location.hash = "";
  showLogin();
});

window.addEventListener("hashchange", route);
window.addEventListener("unhandledrejection", (event) => {
  const err = event.reason;
  if (err && err.status === 401) showLogin();
  else if (err) clear($("view"), failure(err), h("p", {}, h("a", { href: "#/keys" }, "Back")));
});

currentSession().then((s) => { session = s; return route(); }, () => showLogin());
