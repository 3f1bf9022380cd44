"""The hot path compiled with mypyc, and the guard that never runs a stale build.

``make install`` (so every target that runs the gateway) calls ``build()``: the
modules in ``MODULES`` are compiled by mypyc (part of mypy) into C extensions next to their
sources, and ``proxy/_native.json`` records each source's SHA-256. Interpreted, a JSON
request costs 1.33x the CPU and a stream 1.28x (``python -m bench.ab``, see the README's
Benchmark section); the code is the same typed Python, checked by ``mypy --strict``.

At import (``proxy/__init__.py``), ``use_source_if_stale`` compares the recorded hashes
with the sources. If any differs (a source edited since the build), or ``TOLLWAY_PURE=1``,
every compiled module is loaded from its ``.py`` instead: the extensions call each other
directly, so a mix of fresh source and stale extensions would run old code. A stale build is
warned about by name; ``TOLLWAY_PURE=1`` is for profilers that read Python frames (py-spy).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent
MANIFEST = ROOT / "_native.json"
GROUP = "proxy._native"
# The request path's own modules, where the CPU of a request goes (bench.profile). Left
# interpreted: a module that defines a ``msgspec.Struct`` (compiled, its class body reaches
# msgspec differently and a decoded reply lost its ``usage``: ``usage.py``, ``auth.py``),
# what mypyc cannot take (uvicorn's untyped classes as bases: ``server/uvicorn_protocol.py``;
# async generators, which is why the stream views are iterator classes), and ``estimate.py``
# (only near a budget's end; interpreted, a test can still count its calls).
MODULES: tuple[str, ...] = (
    "proxy.dialects.openai.request",
    "proxy.directory",
    "proxy.ledger.durations",
    "proxy.ledger.memory",
    "proxy.ledger.windows",
    "proxy.pipeline.accounting",
    "proxy.pipeline.call",
    "proxy.pipeline.formats",
    "proxy.pipeline.policy",
    "proxy.pipeline.read",
    "proxy.pipeline.respond",
    "proxy.pipeline.route",
    "proxy.routing.dispatch",
    "proxy.routing.state",
    "proxy.routing.strategies",
    "proxy.upstream.engine",
    "proxy.upstream.lean",
    "proxy.upstream.sse",
    "proxy.upstream.stream",
)


def _source(module: str) -> Path:
    return ROOT.parent / (module.replace(".", "/") + ".py")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _extensions() -> set[Path]:
    return {
        path
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
        for path in ROOT.rglob(f"*{suffix}")
    }


class _FromSource:
    """Finds the compiled modules' ``.py`` files ahead of their extensions (a meta path
    finder; not derived from ``importlib.abc``, whose import pulls in ``tempfile``,
    ``shutil`` and the compression modules: ~1 MB resident in every gateway)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MODULES:
            return None
        return importlib.util.spec_from_file_location(fullname, _source(fullname))


def stale_modules() -> list[str]:
    """The compiled modules whose source changed since the build ([] when fresh or when
    nothing is built)."""
    try:
        recorded = json.loads(MANIFEST.read_text())
    except FileNotFoundError:
        return []
    except ValueError:
        return list(MODULES)
    if not isinstance(recorded, dict) or set(recorded) != set(MODULES):
        return list(MODULES)  # built from another list
    return [module for module in MODULES if recorded[module] != _digest(_source(module))]


def use_source_if_stale() -> None:
    if os.environ.get("TOLLWAY_PURE") == "1":
        if MANIFEST.exists():
            sys.meta_path.insert(0, _FromSource())
        return
    if not MANIFEST.exists():
        warnings.warn(
            "tollway: the hot path is not compiled (no build next to the source): it runs "
            "interpreted, ~33% more CPU per request. `make install` builds it; "
            "TOLLWAY_PURE=1 says interpreted is meant.",
            RuntimeWarning,
            stacklevel=2,
        )
        return
    stale = stale_modules()
    if stale:
        warnings.warn(
            "tollway: the compiled hot path is older than its source "
            f"({', '.join(stale)}); running the source instead (slower). "
            "Rebuild with `make install`.",
            RuntimeWarning,
            stacklevel=2,
        )
        sys.meta_path.insert(0, _FromSource())


def _missing_toolchain() -> str | None:
    """What a mypyc build needs and this machine lacks: a C compiler, Python's headers."""
    import shutil  # build-time only (see _FromSource)
    import sysconfig

    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        return "no Python headers (Python.h; Debian: python3-dev)"
    return None


def build() -> int:
    """Compile ``MODULES`` in place unless the build is fresh; 0 on success."""
    if MANIFEST.exists() and not stale_modules() and _extensions():
        print("proxy.compiled: the compiled hot path is up to date")
        return 0
    missing = _missing_toolchain()
    if missing:
        print(
            f"proxy.compiled: WARNING: {missing}: the hot path runs interpreted "
            "(~33% more CPU per request). `make test` installs it.",
            file=sys.stderr,
        )
        return 0
    import tempfile

    from mypyc.build import mypycify
    from setuptools import setup  # type: ignore[import-untyped]

    MANIFEST.unlink(missing_ok=True)
    for old in _extensions():
        old.unlink()
    os.chdir(ROOT.parent)  # --inplace: each extension lands beside its source
    paths = [str(_source(module).relative_to(ROOT.parent)) for module in MODULES]
    with tempfile.TemporaryDirectory(prefix="tollway-mypyc-") as work:  # C sources, objects
        setup(
            name="tollway-native",
            ext_modules=mypycify(paths, group_name=GROUP, target_dir=work),
            script_args=[
                "-q",
                "build_ext",
                "--inplace",
                "--build-temp",
                f"{work}/temp",
                "--build-lib",
                f"{work}/lib",
            ],
        )
    built = {path.name.split(".")[0] for path in _extensions()}
    unbuilt = [module for module in MODULES if module.rsplit(".", 1)[1] not in built]
    if unbuilt:
        print(f"proxy.compiled: no extension was built for {unbuilt}", file=sys.stderr)
        return 1
    MANIFEST.write_text(
        json.dumps({module: _digest(_source(module)) for module in MODULES}, indent=1) + "\n"
    )
    print(f"proxy.compiled: compiled {len(MODULES)} modules")
    return 0
