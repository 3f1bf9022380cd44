"""Run LiteLLM's own proxy end-to-end test files against Tollway and print a pass table.

LiteLLM's e2e tests (``tests/test_keys.py``, ``test_team.py``, ... of its public repository)
call a proxy on port 4000 with master key ``sk-1234``. They are LiteLLM's code, so they are
not in this repository: put them in a folder outside it (default ``/tmp/litellm_e2e/tests``)
with a Python that has their dependencies (``litellm``, ``aiohttp``, ``openai``, ``pytest``,
``pytest-asyncio``, ``pytest-timeout``, ``python-dotenv``, ``requests``; default
``/tmp/litellm_e2e/venv/bin/python``). This script then

1. starts the fake OpenAI upstream (``tests/fakes/openai_upstream.py``) on a free port,
   reporting the prompt tokens OpenAI would count (the spend tests count them too),
2. writes a config shaped like LiteLLM's CI config (``proxy_server_config.yaml``): the same
   model names, every deployment on the fake upstream, Azure's gpt-35-turbo prices,
3. starts Tollway on 127.0.0.1:4000 with master key ``sk-1234`` and a fresh database, and
   creates the two keys LiteLLM's CI database already holds (``SEEDED_KEYS``),
4. runs each test file with pytest (a per-test timeout) and prints passed / failed /
   skipped per file, and the failures with their first error line.

    .venv/bin/python -m tests.litellm_e2e.run [--tests DIR] [--python PY] [--file NAME ...]

Not collected by pytest (it is no test module); it needs port 4000 free.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.fakes.openai_upstream import FakeOpenAI

FILES = (
    "test_keys.py",
    "test_team.py",
    "test_users.py",
    "test_team_members.py",
    "test_organizations.py",
    "test_end_users.py",
    "test_budget_management.py",
    "test_models.py",
    "test_health.py",
    "test_spend_logs.py",
    "test_openai_endpoints.py",
    "test_fallbacks.py",
)
MASTER_KEY = "sk-1234"
PORT = 4000
# The one test that sleeps for 610 s (waiting for LiteLLM's 10-minute budget-reset job).
SLOW = ("test_keys.py::test_key_with_budgets",)
# Keys that exist in the database LiteLLM's CI runs against (test_openai_endpoints'
# "old key" test and test_fallbacks' timeout test call with them): made the same way here,
# through /key/generate with a given key value, unless --no-seed.
SEEDED_KEYS = ("sk-ecMXHujzUtKCvHcwacdaTw", "sk-PIp1h0RekR")

# (model_name, upstream model on the fake (openai/ unless a provider is named), extra
# litellm_params / model_info lines)
_AZURE_PRICE = {"input_cost_per_token": 5e-07, "output_cost_per_token": 1.5e-06}
DEPLOYMENTS: tuple[tuple[str, str, dict[str, object]], ...] = (
    ("gpt-3.5-turbo-end-user-test", "gpt-35-turbo", {**_AZURE_PRICE, "region_name": "eu"}),
    ("gpt-3.5-turbo-end-user-test", "gpt-35-turbo", _AZURE_PRICE),
    ("gpt-3.5-turbo", "gpt-35-turbo", {**_AZURE_PRICE, "max_input_tokens": 4097}),
    ("gpt-3.5-turbo-large", "gpt-35-turbo", {**_AZURE_PRICE, "max_input_tokens": 128000}),
    ("gpt-4", "gpt-35-turbo", _AZURE_PRICE),
    ("sagemaker-completion-model", "llama-2", _AZURE_PRICE),
    ("text-embedding-ada-002", "fake-embed", {"input_cost_per_token": 1e-07}),
    ("fake-openai-endpoint", "fake", _AZURE_PRICE),
    ("fake-openai-endpoint-2", "my-fake-model", {**_AZURE_PRICE, "rpm": 1}),
    ("fake-openai-endpoint-3", "my-fake-model", _AZURE_PRICE),
    ("fake-openai-endpoint-3", "my-fake-model-2", _AZURE_PRICE),
    ("fake-openai-endpoint-4", "fake", {**_AZURE_PRICE, "max_retries": 50}),
    ("fake-openai-endpoint-5", "fake", {**_AZURE_PRICE, "timeout": 1}),
    ("badly-configured-openai-endpoint", "fake-500", _AZURE_PRICE),
    ("bad-model", "fake-500", _AZURE_PRICE),
    ("good-model", "fake", _AZURE_PRICE),
    ("gpt-instruct", "gpt-35-turbo-instruct", _AZURE_PRICE),
    ("o3-mini", "o3-mini", _AZURE_PRICE),
    ("mistral-embed", "fake-embed", {"input_cost_per_token": 1e-07}),
    # Image models, priced per image from the price table (openai/dall-e-2, openai/dall-e-3).
    ("dall-e-2", "dall-e-2", {}),
    ("dall-e-3", "dall-e-3", {}),
    # LiteLLM's provider wildcard; only /model_group/info reads it here.
    ("anthropic/*", "anthropic/*", {}),
)
_INFO_FIELDS = frozenset({"input_cost_per_token", "output_cost_per_token", "max_input_tokens"})


def config_text(base_url: str) -> str:
    lines = ["model_list:"]
    for name, model, extra in DEPLOYMENTS:
        lines += [
            f'  - model_name: "{name}"',
            "    litellm_params:",
            f'      model: "{model if "/" in model else "openai/" + model}"',
            f"      api_base: {base_url}",
            "      api_key: fake-key",
        ]
        lines += [f"      {k}: {v}" for k, v in extra.items() if k not in _INFO_FIELDS]
        info = [f"      {k}: {v}" for k, v in extra.items() if k in _INFO_FIELDS]
        if info:
            lines += ["    model_info:", *info]
    lines += [
        "router_settings:",
        '  model_group_alias: {"my-special-fake-model-alias-name": "fake-openai-endpoint-3"}',
        "  context_window_fallbacks: [{gpt-3.5-turbo: [gpt-3.5-turbo-large]}]",
        "general_settings:",
        f"  master_key: {MASTER_KEY}",
    ]
    return "\n".join(lines) + "\n"


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def wait_ready(proc: subprocess.Popen[bytes], deadline_s: float = 30.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"tollway exited with {proc.returncode}")
        if not port_free(PORT):
            return
        time.sleep(0.1)
    raise SystemExit("tollway did not start listening on 4000")


def seed_keys() -> None:
    for key in SEEDED_KEYS:
        request = urllib.request.Request(
            f"http://127.0.0.1:{PORT}/key/generate",
            data=json.dumps({"key": key}).encode(),
            headers={"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                raise SystemExit(f"could not seed key {key[:6]}...: {response.status}")


def run_file(
    python: str, tests: Path, name: str, report: Path, env: dict[str, str]
) -> dict[str, list[tuple[str, str]]]:
    """Run one file; its tests by outcome: passed, failed, skipped (name, first error line)."""
    args = [
        python,
        "-m",
        "pytest",
        f"tests/{name}",
        "-q",
        "-p",
        "no:cacheprovider",
        "--timeout=150",
        f"--junitxml={report}",
        "-o",
        "asyncio_mode=auto",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
    ]
    for slow in SLOW:
        if slow.startswith(name + "::"):
            args += ["--deselect", f"tests/{slow}"]
    subprocess.run(args, cwd=tests.parent, env=env, stdout=subprocess.DEVNULL, check=False)
    outcome: dict[str, list[tuple[str, str]]] = {"passed": [], "failed": [], "skipped": []}
    if not report.exists():
        return outcome
    for case in ET.parse(report).iter("testcase"):
        test = case.get("name", "?")
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        if failure is not None:
            message = (failure.get("message") or "").strip().splitlines()
            outcome["failed"].append((test, message[0][:160] if message else ""))
        elif case.find("skipped") is not None:
            outcome["skipped"].append((test, ""))
        else:
            outcome["passed"].append((test, ""))
    for error in ET.parse(report).iter("error"):
        if not outcome["failed"] and not outcome["passed"]:
            outcome["failed"].append(("<collection>", (error.get("message") or "")[:160]))
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", default="/tmp/litellm_e2e/tests", type=Path)
    parser.add_argument("--python", default="/tmp/litellm_e2e/venv/bin/python")
    parser.add_argument("--file", action="append", help="only these files (repeatable)")
    parser.add_argument(
        "--no-seed", action="store_true", help="do not create LiteLLM CI's pre-existing keys"
    )
    args = parser.parse_args()
    tests: Path = args.tests
    if not (tests / "test_keys.py").exists():
        raise SystemExit(f"put LiteLLM's e2e test files in {tests} first")
    if not port_free(PORT):
        raise SystemExit("port 4000 is busy")
    (tests / "__init__.py").touch()
    large_text = tests.parent / "large_text.py"
    if not large_text.exists():
        # test_fallbacks imports a long prompt from LiteLLM's large_text module.
        # A stand-in (LiteLLM's is not stored): about 5,600 tokens, more than gpt-3.5-turbo's
        # 4,097 in the config above, so the context-window fallback is exercised.
        large_text.write_text(f"text = {('Alexander the Great was a king. ' * 700)!r}\n")
    fake = FakeOpenAI(api_key="fake-key", real_usage=True)
    fake.start()
    work = Path(tempfile.mkdtemp(prefix="tollway-litellm-e2e-"))
    config = work / "config.yaml"
    config.write_text(config_text(fake.base_url))
    env = {
        **os.environ,
        "TOLLWAY_DB": str(work / "tollway.db"),
        "TOLLWAY_FLUSH_INTERVAL_MS": "50",
    }
    log = open(work / "tollway.log", "wb")  # noqa: SIM115 - closed below
    gateway = subprocess.Popen(
        [sys.executable, "-m", "proxy", "--config", str(config), "--port", str(PORT)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    failures: list[str] = []
    try:
        wait_ready(gateway)
        if not args.no_seed:
            seed_keys()
        test_env = {**os.environ, "LITELLM_MASTER_KEY": MASTER_KEY, "PYTHONPATH": str(tests.parent)}
        print(f"{'file':<28}{'passed':>8}{'failed':>8}{'skipped':>9}")
        for name in args.file or FILES:
            outcome = run_file(args.python, tests, name, work / f"{name}.xml", test_env)
            counts = {k: len(v) for k, v in outcome.items()}
            for k in totals:
                totals[k] += counts[k]
            print(f"{name:<28}{counts['passed']:>8}{counts['failed']:>8}{counts['skipped']:>9}")
            failures += [f"{name}::{test}: {why}" for test, why in outcome["failed"]]
        print(f"{'total':<28}{totals['passed']:>8}{totals['failed']:>8}{totals['skipped']:>9}")
        print(f"not run (610 s sleep): {', '.join(SLOW)}")
        if not args.no_seed:
            print(f"seeded keys (as in LiteLLM CI's database): {len(SEEDED_KEYS)}")
        for line in failures:
            print("FAILED", line)
        print(f"gateway log: {work / 'tollway.log'}")
    finally:
        gateway.terminate()
        gateway.wait(10)
        log.close()
        fake.stop()
    return 0 if not totals["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
