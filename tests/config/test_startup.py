"""Every config error stops ``tollway`` before the socket is bound: exit 2, one line naming
the field, its line and (for a typo) the name meant; never "listening" then a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

MODEL = "model_list:\n  - model_name: m\n    litellm_params:\n"


def run_tollway(
    tmp: Path, config: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    path = tmp / "config.yaml"
    path.write_text(config)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TOLLWAY_", "LITELLM_"))}
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        base.pop(name, None)
    base["TOLLWAY_DB"] = str(tmp / "t.db")
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "proxy", "--config", str(path), "--port", "0"],
        capture_output=True,
        text=True,
        env=base,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param(
            MODEL + "      model: vertex_ai/gemini-1.5-pro\n",
            "model_list[0].litellm_params.model (line 4): provider 'vertex_ai' is not supported",
            id="vertex-ai",
        ),
        pytest.param(
            MODEL + "      model: foo/bar\n",
            "model_list[0].litellm_params.model (line 4): provider 'foo' is not supported",
            id="foo-bar",
        ),
        pytest.param(
            MODEL + "      model: antrophic/claude-3-opus\n",
            "provider 'antrophic' is not supported; did you mean 'anthropic'?",
            id="provider-typo",
        ),
        pytest.param(
            "model_lst:\n  - model_name: m\n",
            "`model_lst` (line 1) is not a config key; did you mean `model_list`?",
            id="key-typo",
        ),
        pytest.param(
            MODEL + "      model: mock/m\ngeneral_settings:\n  master_key: os.environ/NOT_SET_X\n",
            "general_settings.master_key (line 6) refers to environment variable NOT_SET_X",
            id="unset-master-key",
        ),
        pytest.param(
            MODEL + "      model: my-local-llama\n",
            "model_list[0].litellm_params.model (line 4): cannot tell the provider of "
            "'my-local-llama'",
            id="bare-unknown-name",
        ),
        pytest.param(
            MODEL
            + "      model: mine/x\nlitellm_settings:\n  custom_provider_map:\n"
            + "    - {provider: mine, custom_handler: no_such_module.Handler}\n",
            "litellm_settings.custom_provider_map[0].custom_handler (line 7): cannot import "
            "'no_such_module'",
            id="custom-handler-missing",
        ),
    ],
)
def test_config_error_exits_2_with_one_line_before_binding(
    tmp_path: Path, config: str, expected: str
) -> None:
    result = run_tollway(tmp_path, config)
    assert result.returncode == 2, result.stderr
    assert "listening" not in result.stdout
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("tollway: ")]
    assert len(errors) == 1, result.stderr
    assert expected in errors[0]


def test_a_bad_price_file_stops_start_up(tmp_path: Path) -> None:
    (tmp_path / "prices.json").write_text("{not json")
    result = run_tollway(
        tmp_path,
        MODEL + "      model: mock/m\n",
        {"TOLLWAY_PRICES_FILE": str(tmp_path / "prices.json")},
    )
    assert result.returncode == 2
    assert "prices.json is not valid JSON" in result.stderr
    assert "listening" not in result.stdout
