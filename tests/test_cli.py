"""The ``tollway`` command: bad input fails fast with a readable message, help lists every
variable, and a config with unknown keys still serves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from proxy.server.cli import build_parser, main
from proxy.server.settings import OPTIONS
from tests.conftest import MASTER_KEY, UPSTREAM_KEY, start_gateway
from tests.fakes.openai_upstream import FakeOpenAI


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLWAY_")}
    env.pop("OPENAI_API_KEY", None)
    env.update(extra)
    return env


def run_tollway(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy", *args, "--port", "0"],
        capture_output=True,
        text=True,
        env=env or clean_env(),
        timeout=30,
        check=False,
    )


def test_bad_config_exits_2_naming_the_field_and_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/m\n"
        '      rpm: "many"\n'
    )
    result = run_tollway("--config", str(config))
    assert result.returncode == 2
    assert "model_list[0].litellm_params.rpm" in result.stderr
    assert "line 5" in result.stderr
    assert "listening" not in result.stdout
    assert "Traceback" not in result.stderr


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = run_tollway("--config", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2
    assert "absent.yaml" in result.stderr


def test_binding_all_interfaces_without_master_key_exits_2() -> None:
    result = run_tollway("--host", "0.0.0.0")
    assert result.returncode == 2
    assert "master key" in result.stderr
    assert "listening" not in result.stdout


def test_bad_environment_value_exits_2_naming_the_variable() -> None:
    result = run_tollway(env=clean_env(TOLLWAY_MAX_BODY_BYTES="lots"))
    assert result.returncode == 2
    assert "TOLLWAY_MAX_BODY_BYTES" in result.stderr


def test_help_lists_every_environment_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in OPTIONS:
        assert option.env in out, option.env
        assert "--" + option.field.replace("_", "-") in out


def test_command_line_flags_parse_to_typed_values() -> None:
    args = vars(build_parser().parse_args(["--port", "0", "--workers", "3", "--access-log"]))
    assert args["port"] == 0
    assert args["workers"] == 3
    assert args["access_log"] is True
    assert args["host"] is None


def test_bad_flag_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--log-level", "loud"])
    assert info.value.code == 2
    assert "--log-level" in capsys.readouterr().err


def test_unknown_config_key_only_warns_and_the_server_starts(tmp_path: Path) -> None:
    config = (
        "model_list:\n"
        "  - model_name: mock-gpt\n"
        "    litellm_params:\n"
        "      model: mock/mock-gpt\n"
        "      surprise_param: 1\n"
        "general_settings:\n"
        "  master_key: os.environ/TEST_MASTER_KEY\n"
    )
    gateway = start_gateway(tmp_path, config)
    try:
        resp = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {MASTER_KEY}"},
            timeout=10,
        )
        assert resp.status_code == 200
        assert resp.json()["choices"][0]["message"]["content"].startswith("Hello from Tollway")
        logs = gateway.logs()
        warning = next(
            line
            for line in logs.splitlines()
            if "model_list[0].litellm_params.surprise_param" in line
        )
        assert "WARNING" in warning
        assert "line 5" in warning
    finally:
        gateway.stop()


# -- the quick start: `tollway --model ...`, no config file ---------------------------------


def _chat(url: str, model: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )


def test_quick_start_serves_one_model_through_its_api_base(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    # `tollway --model ollama/llama3 --api_base http://...`: Ollama's key variable is read
    # when set (the fake upstream checks one).
    gateway = start_gateway(
        tmp_path,
        None,
        extra_env={"OLLAMA_API_KEY": UPSTREAM_KEY},
        args=["--model", "ollama/llama3", "--api_base", fake_openai.base_url],
    )
    try:
        for name in ("ollama/llama3", "llama3"):
            resp = _chat(gateway.url, name)
            assert resp.status_code == 200, resp.text
        assert fake_openai.last_request()["json"]["model"] == "llama3"
        models = httpx.get(f"{gateway.url}/v1/models", timeout=5).json()["data"]
        assert {m["id"] for m in models} == {"ollama/llama3", "llama3"}
    finally:
        gateway.stop()


def test_quick_start_with_a_bare_name_reads_the_providers_key_variable(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    gateway = start_gateway(
        tmp_path,
        None,
        extra_env={"OPENAI_API_KEY": UPSTREAM_KEY, "TOLLWAY_API_BASE": fake_openai.base_url},
        args=["--model", "gpt-4o"],
    )
    try:
        resp = _chat(gateway.url, "gpt-4o")
        assert resp.status_code == 200, resp.text
        sent = fake_openai.last_request()
        assert sent["headers"]["Authorization"] == f"Bearer {UPSTREAM_KEY}"
        assert sent["json"]["model"] == "gpt-4o"
    finally:
        gateway.stop()


def test_quick_start_without_the_providers_key_exits_2_naming_it() -> None:
    result = run_tollway("--model", "claude-sonnet-4-5")
    assert result.returncode == 2
    assert "ANTHROPIC_API_KEY" in result.stderr
    assert "listening" not in result.stdout
