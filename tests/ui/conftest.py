"""One headless Chromium (Debian's ``chromium`` + ``chromium-driver``) for the session, and
a real gateway process on port 0 in front of the fake OpenAI upstream."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.conftest import GatewayProcess, free_port, gateway_config, start_gateway
from tests.fakes.openai_upstream import FakeOpenAI


def _find(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(f"{names[0]} is not installed: run `make chromium`")


@pytest.fixture(scope="session")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = _find("chromium", "chromium-browser")
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(_find("chromedriver")), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def ui_gateway(
    fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    # Priced, so that calls show up as spend.
    config = gateway_config(fake_openai, free_port()).replace(
        "      model: openai/fake-ok\n",
        "      model: openai/fake-ok\n"
        "      input_cost_per_token: 0.000001\n"
        "      output_cost_per_token: 0.000002\n",
    )
    proc = start_gateway(tmp_path_factory.mktemp("ui-browser"), config)
    assert proc.proc.stdout is not None
    # The line after "listening on": where the UI is (what `make run` shows).
    proc.banner = proc.proc.stdout.readline().decode().strip()  # type: ignore[attr-defined]
    yield proc
    proc.stop()
