"""The compiled hot path (proxy/compiled.py): built by `make install`, never run stale."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from proxy import compiled

ROOT = Path(__file__).resolve().parent.parent
_WHERE = "import importlib; print(*(importlib.import_module(m).__file__ for m in {mods!r}))"


def _loaded_from(env_extra: dict[str, str]) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _WHERE.format(mods=list(compiled.MODULES))],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **env_extra},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout.split()


def test_make_install_built_the_hot_path_and_it_is_what_runs() -> None:
    assert compiled.MANIFEST.exists(), "no compiled build: run `make install`"
    assert compiled.stale_modules() == []
    files = _loaded_from({})
    assert len(files) == len(compiled.MODULES)
    assert all(f.endswith(".so") for f in files), files


def test_tollway_pure_runs_the_source() -> None:
    files = _loaded_from({"TOLLWAY_PURE": "1"})
    assert all(f.endswith(".py") for f in files), files


def test_a_source_edited_after_the_build_makes_the_whole_build_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = {m: compiled._digest(compiled._source(m)) for m in compiled.MODULES}
    edited = compiled.MODULES[-1]
    recorded[edited] = "0" * 64
    manifest = tmp_path / "_native.json"
    manifest.write_text(json.dumps(recorded))
    monkeypatch.setattr(compiled, "MANIFEST", manifest)
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))

    assert compiled.stale_modules() == [edited]
    with pytest.warns(RuntimeWarning, match=edited.replace(".", r"\.")):
        compiled.use_source_if_stale()
    finder = sys.meta_path[0]
    # Every compiled module, not only the edited one: the extensions call each other.
    for module in compiled.MODULES:
        spec = finder.find_spec(module, None)
        assert spec is not None and spec.origin == str(compiled._source(module))
    assert finder.find_spec("proxy.config", None) is None


def test_a_build_from_another_module_list_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = tmp_path / "_native.json"
    first = compiled.MODULES[0]
    manifest.write_text(json.dumps({first: compiled._digest(compiled._source(first))}))
    monkeypatch.setattr(compiled, "MANIFEST", manifest)
    assert compiled.stale_modules() == list(compiled.MODULES)


def test_no_build_at_all_is_warned_about_unless_interpreted_is_meant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compiled, "MANIFEST", tmp_path / "none.json")
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    finders = len(sys.meta_path)
    with pytest.warns(RuntimeWarning, match="not compiled"):
        compiled.use_source_if_stale()
    monkeypatch.setenv("TOLLWAY_PURE", "1")
    compiled.use_source_if_stale()  # no warning (warnings are errors here)
    assert len(sys.meta_path) == finders  # nothing to steer away from
