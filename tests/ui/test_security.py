"""The UI's guard: every UI and admin route refuses a caller without a live session and its
CSRF token (or a key with the rights), the login sets a hardened cookie, and the pages carry
a strict CSP. In process, with a fake clock (expiry is tested by moving it)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.routing import Route

from tests.admin import Admin, AdminGateway, running_gateway
from tests.conftest import MASTER_KEY, UPSTREAM_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.inprocess import InProcessGateway

ORIGIN = "http://tollway.test"
# Routes anyone may call: health for load balancers, the UI's static shell and login form,
# and the API docs. Everything else must refuse an unauthenticated caller.
PUBLIC = {
    "/health/liveliness",
    "/health/liveness",
    "/health/readiness",
    "/metrics",
    "/metrics/",
    "/ui",
    "/ui/",
    "/ui/login",
    "/ui/static/{path:path}",
    "/docs",
    "/openapi.json",
    # Lists the route paths (no data); public by its owner's choice (proxy/admin/model_groups).
    "/routes",
}
# A key may always read itself (DESIGN.md): these answer a plain key about its own records.
SELF_SERVICE = {
    "/key/info",
    "/team/info",
    "/spend/logs",
    "/model_group/info",
    # The models the key may use, secrets masked (LiteLLM lets any key read them).
    "/model/info",
    "/v1/model/info",
    "/guardrails/list",
    "/v2/guardrails/list",
    "/guardrails/apply_guardrail",
}
# The admin API and the UI: the modules whose routes the guard must cover (the inference
# routes authenticate any key, by design, and are tested with the pipeline).
ADMIN_MODULES = ("proxy.admin.", "proxy.ui.", "proxy.cache.routes", "proxy.guardrails.routes")


@pytest.fixture(scope="module")
def gateway(
    fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AdminGateway]:
    with running_gateway(fake_openai, tmp_path_factory.mktemp("ui-security")) as proc:
        yield proc


@pytest.fixture
def http(gateway: AdminGateway) -> Iterator[httpx.Client]:
    gateway.client.cookies.clear()
    yield gateway.client
    gateway.client.cookies.clear()


def guarded_routes(client: httpx.Client) -> list[tuple[str, str]]:
    app = client.app  # type: ignore[attr-defined]
    found: list[tuple[str, str]] = []
    for route in app.web.router.routes:
        if not isinstance(route, Route) or route.path in PUBLIC:
            continue
        module = getattr(route.endpoint, "__module__", "") or ""
        if not module.startswith(ADMIN_MODULES) and route.path != "/ledger/status":
            continue
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            found.append((method, route.path.replace("{key}", "sk-x")))
    return found


def login(http: httpx.Client, **body: str) -> tuple[str, str]:
    """Log in; the session cookie and the CSRF token."""
    response = http.post("/ui/login", json=body, headers={"origin": ORIGIN})
    assert response.status_code == 200, response.text
    cookie = response.cookies["tollway_ui"]
    http.cookies.clear()
    return cookie, response.json()["csrf_token"]


def call(http: httpx.Client, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    if method == "GET":
        return http.get(path, headers=headers)
    return http.request(method, path, json={}, headers=headers)


def refused(response: httpx.Response) -> bool:
    return response.status_code in (401, 403)


def test_every_ui_and_admin_route_refuses_callers_without_rights(
    gateway: AdminGateway, http: httpx.Client
) -> None:
    routes = guarded_routes(http)
    paths = {path for _, path in routes}
    assert {"/key/generate", "/key/list", "/team/new", "/spend/logs", "/ui/config"} <= paths
    assert {"/ui/session", "/ui/logout", "/model/info", "/global/spend/report"} <= paths
    admin = Admin(gateway)
    plain_key = admin.generate(key_alias="plain")["key"]
    cookie, csrf = login(http, password=MASTER_KEY)
    live = {"cookie": f"tollway_ui={cookie}"}
    # The control: the same session with its token, from the same origin, gets in.
    assert call(http, "GET", "/key/list", {**live, "x-csrf-token": csrf}).status_code == 200
    cases = {
        "no credentials": {},
        "cookie without csrf header": live,
        "wrong csrf token": {**live, "x-csrf-token": csrf[:-2] + "xx"},
        "csrf token without cookie": {"x-csrf-token": csrf},
        "another origin": {**live, "x-csrf-token": csrf, "origin": "http://evil.example"},
        "cross-site fetch": {**live, "x-csrf-token": csrf, "sec-fetch-site": "cross-site"},
        "forged cookie": {"cookie": f"tollway_ui={cookie[:-4]}AAAA", "x-csrf-token": csrf},
        "non-admin key": {"authorization": f"Bearer {plain_key}"},
    }
    failures = []
    for method, path in routes:
        for name, headers in cases.items():
            if name == "non-admin key" and path in SELF_SERVICE:
                continue
            # /ui/session hands the page its CSRF token, so it cannot ask for it: it needs
            # the cookie from the same origin (checked by the other cases), changes nothing,
            # and its answer is unreadable from another origin (no CORS).
            if path == "/ui/session" and name in ("cookie without csrf header", "wrong csrf token"):
                continue
            response = call(http, method, path, headers)
            if not refused(response):
                failures.append(f"{method} {path} [{name}] -> {response.status_code}")
    # What a plain key may read is its own: another key's record is refused.
    other = admin.generate(key_alias="other")["token"]
    response = http.get("/key/info", params={"key": other}, headers=cases["non-admin key"])
    if not refused(response):
        failures.append(f"GET /key/info of another key [non-admin key] -> {response.status_code}")
    gateway.clock.advance(86400 + 1)
    try:
        for method, path in routes:
            response = call(http, method, path, {**live, "x-csrf-token": csrf})
            if not refused(response):
                failures.append(f"{method} {path} [expired session] -> {response.status_code}")
    finally:
        gateway.clock.advance(-(86400 + 1))
    assert not failures, "\n".join(failures)


def test_login_sets_a_hardened_expiring_cookie(http: httpx.Client) -> None:
    response = http.post("/ui/login", json={"password": MASTER_KEY}, headers={"origin": ORIGIN})
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Max-Age=86400" in cookie and "Secure" not in cookie
    assert MASTER_KEY not in response.text and MASTER_KEY not in cookie
    tls = http.post(
        "https://tollway.test/ui/login",
        json={"username": "admin", "password": MASTER_KEY},
        headers={"origin": "https://tollway.test"},
    )
    assert tls.status_code == 200, tls.text
    assert "Secure" in tls.headers["set-cookie"]


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        pytest.param({"password": "sk-wrong"}, {"origin": ORIGIN}, 401, id="unknown-key"),
        pytest.param(
            {"username": "admin", "password": "nope"}, {"origin": ORIGIN}, 401, id="bad-password"
        ),
        pytest.param(
            {"username": "root", "password": MASTER_KEY}, {"origin": ORIGIN}, 401, id="bad-username"
        ),
        pytest.param(
            {"password": MASTER_KEY}, {"origin": "http://evil.example"}, 403, id="cross-origin"
        ),
        pytest.param({"password": MASTER_KEY, "x": 1}, {"origin": ORIGIN}, 400, id="unknown-field"),
    ],
)
def test_bad_logins_are_refused(
    http: httpx.Client, body: dict[str, object], headers: dict[str, str], status: int
) -> None:
    response = http.post("/ui/login", json=body, headers=headers)
    assert response.status_code == status, response.text
    assert "set-cookie" not in response.headers


def test_a_key_that_may_not_administer_cannot_log_in(
    gateway: AdminGateway, http: httpx.Client
) -> None:
    key = Admin(gateway).generate(key_alias="caller")["key"]
    response = http.post("/ui/login", json={"password": key}, headers={"origin": ORIGIN})
    assert response.status_code == 403
    assert "set-cookie" not in response.headers


def test_a_management_key_session_is_confined_to_its_team(
    gateway: AdminGateway, http: httpx.Client
) -> None:
    admin = Admin(gateway)
    team = admin.new_team(team_alias="ui-scope")
    other = admin.new_team(team_alias="ui-other")
    manager = admin.generate(team_id=team, key_type="management")["key"]
    admin.generate(team_id=other, key_alias="not-mine")
    mine = admin.generate(team_id=team, key_alias="mine")
    cookie, csrf = login(http, password=manager)
    headers = {"cookie": f"tollway_ui={cookie}", "x-csrf-token": csrf}
    session = http.get("/ui/session", headers={"cookie": f"tollway_ui={cookie}"}).json()
    assert session["role"] == "management" and session["team_id"] == team
    listed = http.get(
        "/key/list", params={"return_full_object": "true", "size": 100}, headers=headers
    )
    assert listed.status_code == 200
    assert {k["team_id"] for k in listed.json()["keys"]} == {team}
    assert mine["token"] in {k["token"] for k in listed.json()["keys"]}
    assert http.get("/ui/config", headers=headers).status_code == 403
    assert http.post("/team/new", json={}, headers=headers).status_code == 403
    assert http.get("/key/list", params={"team_id": other}, headers=headers).status_code == 403


def test_logout_ends_the_session(http: httpx.Client) -> None:
    cookie, csrf = login(http, password=MASTER_KEY)
    headers = {"cookie": f"tollway_ui={cookie}", "x-csrf-token": csrf}
    assert http.post("/ui/logout", headers={"cookie": f"tollway_ui={cookie}"}).status_code == 403
    out = http.post("/ui/logout", headers=headers)
    assert out.status_code == 200
    assert (
        "Max-Age=0" in out.headers["set-cookie"] or "expires=" in out.headers["set-cookie"].lower()
    )
    assert http.get("/key/list", headers=headers).status_code == 401
    assert http.get("/ui/session", headers=headers).status_code == 401


def test_pages_set_a_strict_csp_and_hold_no_inline_code(http: httpx.Client) -> None:
    for path in ("/ui", "/docs"):
        response = http.get(path)
        assert response.status_code == 200
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp
        assert "unsafe-inline" not in csp and "http" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        html = response.text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script"
        assert "<style" not in html and " style=" not in html
        assert not re.search(r"\son\w+\s*=", html), "inline event handler"
        for url in re.findall(r'(?:src|href)="([^"#]+)"', html):
            if url == "data:,":  # the empty favicon
                continue
            assert url.startswith("/"), f"{path} loads {url} from another origin"
            assert http.get(url).status_code == 200, url


def test_the_config_view_masks_every_secret(http: httpx.Client) -> None:
    cookie, csrf = login(http, password=MASTER_KEY)
    response = http.get(
        "/ui/config", headers={"cookie": f"tollway_ui={cookie}", "x-csrf-token": csrf}
    )
    assert response.status_code == 200
    text = response.text
    assert UPSTREAM_KEY not in text and MASTER_KEY not in text
    assert "model_list" in text and "********" in text


def test_without_a_master_key_the_ui_is_off_and_says_why(tmp_path: Path) -> None:
    gateway = InProcessGateway(tmp_path, "model_list: []\n")
    with gateway.sync_client() as client:
        response = client.get("/ui")
        assert response.status_code == 403
        assert "no master key configured" in response.json()["error"]["message"]
        assert client.post("/ui/login", json={"password": "x"}).status_code == 403
        assert client.get("/docs").status_code == 200


def test_the_start_up_line_says_why_the_ui_is_off() -> None:
    from proxy.ui import startup_line

    off = startup_line(None, "http://127.0.0.1:4000", {})
    assert "admin UI off: no master key configured" in off
    assert "turned off" in startup_line("sk-m", "http://h:1", {"TOLLWAY_UI": "off"})
    with pytest.raises(ValueError, match="TOLLWAY_UI_SESSION_S"):
        startup_line("sk-m", "http://h:1", {"TOLLWAY_UI_SESSION_S": "soon"})


def test_the_session_lifetime_is_configurable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLWAY_UI_SESSION_S", "60")
    gateway = InProcessGateway(
        tmp_path, "model_list: []\ngeneral_settings:\n  master_key: os.environ/TEST_MASTER_KEY\n"
    )
    with gateway.sync_client() as client:
        response = client.post(
            "/ui/login", json={"password": MASTER_KEY}, headers={"origin": ORIGIN}
        )
        assert "Max-Age=60" in response.headers["set-cookie"]
        headers = {
            "cookie": f"tollway_ui={response.cookies['tollway_ui']}",
            "x-csrf-token": response.json()["csrf_token"],
        }
        client.cookies.clear()
        assert client.get("/key/list", headers=headers).status_code == 200
        gateway.clock.advance(61)
        assert client.get("/key/list", headers=headers).status_code == 401


def test_password_guessing_is_throttled(tmp_path: Path) -> None:
    gateway = InProcessGateway(
        tmp_path, "model_list: []\ngeneral_settings:\n  master_key: os.environ/TEST_MASTER_KEY\n"
    )
    origin = {"origin": ORIGIN}
    with gateway.sync_client() as client:
        for _ in range(10):
            wrong = client.post("/ui/login", json={"password": "sk-guess"}, headers=origin)
            assert wrong.status_code == 401
        refused = client.post("/ui/login", json={"password": MASTER_KEY}, headers=origin)
        assert refused.status_code == 429 and "retry-after" in refused.headers
        gateway.clock.advance(61)
        assert (
            client.post("/ui/login", json={"password": MASTER_KEY}, headers=origin).status_code
            == 200
        )
