"""The admin UI end to end in headless Chromium against a real gateway process: log in,
create a team and a key, call the gateway with that key through the OpenAI SDK, see the
spend in the keys table and in the usage chart, block the key and see its next call refused,
log out. Along the way: screenshots of every page at 1280 and 390 px (docs/screenshots),
axe-core on every page (no serious or critical violation), no CSP violation, and a key
alias made of markup that is shown as text and never runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import MASTER_KEY, UPSTREAM_KEY, GatewayProcess

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()
XSS_ALIAS = "<img src=x onerror=alert(1)>"
WIDTHS = (1280, 390)


class Page:
    def __init__(self, driver: webdriver.Chrome, base: str) -> None:
        self.driver = driver
        self.base = base

    def wait(self, condition: Callable[[webdriver.Chrome], Any], timeout: float = 10) -> Any:
        # A page re-renders its table after every change: an element found a moment ago
        # may be gone, so a stale one just means "look again".
        return WebDriverWait(
            self.driver, timeout, ignored_exceptions=[StaleElementReferenceException]
        ).until(condition)

    def find(self, css: str) -> WebElement:
        return self.wait(lambda d: d.find_element(By.CSS_SELECTOR, css))

    def text_of(self, css: str) -> str:
        return str(self.find(css).text)

    def go(self, fragment: str) -> None:
        self.driver.execute_script(
            "document.body.dataset.state = 'navigating';"
            "if (location.hash === arguments[0]) window.dispatchEvent(new Event('hashchange'));"
            "else location.hash = arguments[0];",
            fragment,
        )
        self.wait(lambda d: d.execute_script("return document.body.dataset.state") == "ready")

    def fill(self, fields: dict[str, str]) -> None:
        for css, value in fields.items():
            element = self.find(css)
            element.clear()
            element.send_keys(value)

    def viewport(self, width: int) -> None:
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600},
        )

    def screenshots(self, name: str) -> None:
        """Both widths; at each, the page must not scroll sideways."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for width in WIDTHS:
            self.viewport(width)
            self.driver.execute_script("window.dispatchEvent(new Event('resize'))")
            overflow = self.driver.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 1, f"{name} scrolls sideways by {overflow}px at {width}px"
            self.driver.save_screenshot(str(SCREENSHOTS / f"{name}-{width}.png"))
        self.viewport(1280)

    def axe(self, name: str) -> None:
        self.driver.execute_script(AXE)
        result = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, {resultTypes: ['violations']})"
            ".then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact,"
            " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 3)}))))"
            ".catch(e => done([{id: 'axe-error', impact: 'critical', nodes: [String(e)]}]));"
        )
        serious = [v for v in result if v["impact"] in ("serious", "critical")]
        assert not serious, f"{name}: {serious}"

    def no_alert(self) -> None:
        try:
            alert = self.driver.switch_to.alert
        except NoAlertPresentException:
            return
        text = alert.text
        alert.dismiss()
        pytest.fail(f"a script ran: alert({text!r})")

    def csp_violations(self) -> list[str]:
        return [
            entry["message"]
            for entry in self.driver.get_log("browser")
            if "Content Security Policy" in entry["message"] or "Refused to" in entry["message"]
        ]


def row_with(page: Page, text: str) -> WebElement:
    def found(driver: webdriver.Chrome) -> WebElement | bool:
        for row in driver.find_elements(By.CSS_SELECTOR, "#view tbody tr"):
            if text in row.text:
                return row
        return False

    return page.wait(found)


def test_admin_ui_end_to_end(browser: webdriver.Chrome, ui_gateway: GatewayProcess) -> None:
    browser.set_script_timeout(30)
    page = Page(browser, ui_gateway.url)
    browser.get(ui_gateway.url + "/ui")
    page.find("#login-form")
    page.screenshots("login")
    page.axe("login")

    # Log in with the master key (no username).
    page.fill({"#login-password": MASTER_KEY})
    page.find("#login-form button[type=submit]").click()
    page.wait(lambda d: d.find_element(By.ID, "nav").is_displayed())
    assert MASTER_KEY not in browser.page_source
    assert browser.execute_script("return window.localStorage.length") == 0
    assert "tollway_ui" not in browser.execute_script("return document.cookie")

    # A team.
    page.go("#/teams")
    page.find("#team-create").find_element(By.XPATH, "..").find_element(
        By.TAG_NAME, "summary"
    ).click()
    page.fill(
        {
            "#team-create-team_alias": "Search team",
            "#team-create-team_id": "team-search",
            "#team-create-max_budget": "50",
        }
    )
    page.find("#team-create button[type=submit]").click()
    row_with(page, "team-search")

    # A key in that team, with an alias made of markup.
    page.go("#/keys")
    page.find("#key-create").find_element(By.XPATH, "..").find_element(
        By.TAG_NAME, "summary"
    ).click()
    page.fill(
        {
            "#key-create-key_alias": XSS_ALIAS,
            "#key-create-team_id": "team-search",
            "#key-create-max_budget": "5",
            "#key-create-rpm_limit": "100",
            "#key-create-tags": "checkout",
        }
    )
    page.find("#key-create button[type=submit]").click()
    secret = page.text_of("#new-secret")
    assert secret.startswith("sk-")
    page.screenshots("key-created")

    # Calls with that key through the OpenAI SDK.
    client = openai.OpenAI(base_url=ui_gateway.url + "/v1", api_key=secret, max_retries=0)
    for _ in range(3):
        reply = client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "Say hello"}]
        )
        assert reply.choices[0].message.content

    # Its spend in the keys table (the alias shown as text, nothing run).
    page.go("#/keys")
    spend = page.wait(
        lambda d: (
            row_with(page, XSS_ALIAS)
            .find_element(By.CSS_SELECTOR, "td[data-label='Spend / budget']")
            .text
        )
    )
    assert "$0.0000 of" not in spend and "of $5.0000" in spend, spend
    page.no_alert()
    assert browser.execute_script("return document.querySelectorAll('#view img').length") == 0
    page.screenshots("keys")
    page.axe("keys")

    # ... and as points in the usage chart.
    page.go("#/usage")
    points = page.wait(
        lambda d: d.execute_script(
            "const c = window.Chart && Chart.getChart('chart-spend');"
            "return c ? c.data.datasets[0].data : null;"
        )
    )
    assert sum(points) > 0, points
    requests = browser.execute_script(
        "return Chart.getChart('chart-traffic').data.datasets[0].data"
    )
    assert sum(requests) >= 3
    page.screenshots("usage")
    page.axe("usage")

    # ... and under the key's tag, in the breakdown by tag.
    page.go("#/usage?group_by=tag")
    by_tag = page.wait(
        lambda d: d.execute_script(
            "const c = window.Chart && Chart.getChart('chart-groups');"
            "return c ? [c.data.labels, c.data.datasets[0].data] : null;"
        )
    )
    assert dict(zip(*by_tag, strict=True)).get("checkout", 0) > 0, by_tag
    assert "Spend by tag" in page.text_of("#view caption")
    page.screenshots("usage-tags")
    page.axe("usage-tags")

    # Every other page, at both widths, through axe.
    page.go("#/logs")
    row_with(page, "gpt-test").click()
    page.find("#log-detail-title")
    page.screenshots("logs")
    page.axe("logs")
    for name, marker in (("teams", "team-search"), ("models", "gpt-test")):
        page.go(f"#/{name}")
        row_with(page, marker)
        page.screenshots(name)
        page.axe(name)
    page.go("#/users")
    page.screenshots("users")
    page.axe("users")
    page.go("#/config")
    config = page.text_of("#config-json")
    assert "model_list" in config and "********" in config
    assert MASTER_KEY not in config and UPSTREAM_KEY not in config
    page.screenshots("config")
    page.axe("config")

    # Block the key: its next call is refused.
    page.go("#/keys")
    page.wait(
        lambda d: row_with(page, XSS_ALIAS).find_element(By.XPATH, ".//button[text()='Block']")
    ).click()
    page.wait(lambda d: "blocked" in row_with(page, XSS_ALIAS).text)
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "Say hello"}]
        )
    page.no_alert()

    # Log out: back to the login form, and the admin API no longer answers this browser.
    page.find("#logout").click()
    page.wait(lambda d: d.find_element(By.ID, "login").is_displayed())
    status = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/key/list', {headers: {'x-csrf-token': 'x'}}).then(r => done(r.status));"
    )
    assert status == 401
    assert page.csp_violations() == []


def test_api_docs_render_from_the_package(
    browser: webdriver.Chrome, ui_gateway: GatewayProcess
) -> None:
    page = Page(browser, ui_gateway.url)
    browser.get(ui_gateway.url + "/docs")
    page.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock-tag")) > 10, timeout=20)
    page.find("#operations-tag-key").click()
    page.wait(lambda d: "/key/generate" in d.find_element(By.ID, "swagger").text)
    page.viewport(1280)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "docs-1280.png"))
    assert page.csp_violations() == []


def test_start_up_prints_the_ui_url(ui_gateway: GatewayProcess) -> None:
    banner = ui_gateway.banner  # type: ignore[attr-defined]
    assert banner == f"tollway admin UI on {ui_gateway.url}/ui (API docs on {ui_gateway.url}/docs)"
