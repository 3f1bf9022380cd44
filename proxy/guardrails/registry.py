"""Guardrails built from configuration: the kind of each entry chosen from a registry.

    litellm_content_filter, prompt_injection, max_input_tokens, json_output   built-ins
    presidio, lakera_v2, openai_moderation, bedrock, generic_guardrail_api    external engines
    my_module.MyGuardrail                                                     custom (import path)

A custom guardrail is a class importable from the config file's folder or ``PYTHONPATH``,
constructed as ``MyGuardrail(name, params)`` and implementing ``proxy.guardrails.base
.Guardrail`` (``check_input``, ``check_output``, ``stream_checker``). It is imported at
start-up; nothing is ever executed from config text or from the API.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..upstream.transport import Transport
from .base import Guardrail, Mode
from .builtin import BUILTINS
from .config import GuardrailEntry, read_entry
from .errors import GuardrailConfigError
from .external import EXTERNAL

log = logging.getLogger("tollway.guardrails")


class GuardrailSetupError(Exception):
    """A guardrail could not be built; ``path`` is its config path (``$.guardrails[2]...``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class Configured:
    """One configured guardrail: its entry and the built check."""

    __slots__ = ("_modes", "entry", "guardrail")

    def __init__(self, entry: GuardrailEntry, guardrail: Guardrail) -> None:
        self.entry = entry
        self.guardrail = guardrail
        modes = entry.modes
        if entry.params.get("output_parse_pii") is True:
            # Restoring the tokens it put in the input is an output step (as LiteLLM does).
            modes = modes | {Mode.POST_CALL}
        self._modes = modes

    @property
    def name(self) -> str:
        return self.entry.name

    def runs(self, mode: Mode) -> bool:
        return mode in self._modes


def build_guardrails(
    raw: Sequence[Any],
    *,
    transport: Transport,
    environ: Mapping[str, str],
    config_dir: Path,
) -> dict[str, Configured]:
    """Every configured guardrail by name; raises ``GuardrailSetupError`` on the first bad one."""
    built: dict[str, Configured] = {}
    for index, item in enumerate(raw):
        where = f"$.guardrails[{index}]"
        try:
            entry = read_entry(item)
            if entry.name in built:
                raise GuardrailConfigError("guardrail_name", f"{entry.name!r} is defined twice")
        except GuardrailConfigError as exc:
            raise GuardrailSetupError(_at(where, exc.field), exc.message) from None
        try:
            guardrail = _build(entry, transport, environ, config_dir)
        except GuardrailConfigError as exc:
            # A kind names its fields inside ``litellm_params``.
            field = exc.field
            if field and not field.startswith("litellm_params"):
                field = f"litellm_params.{field}"
            raise GuardrailSetupError(_at(where, field), exc.message) from None
        built[entry.name] = Configured(entry, guardrail)
    return built


def _at(where: str, field: str) -> str:
    return f"{where}.{field}" if field else where


def _build(
    entry: GuardrailEntry, transport: Transport, environ: Mapping[str, str], config_dir: Path
) -> Guardrail:
    kind = entry.kind
    if kind in BUILTINS or kind in EXTERNAL:
        params = _Reads(entry.params)
        if kind in BUILTINS:
            guardrail = BUILTINS[kind](entry.name, params, config_dir)
        else:
            guardrail = EXTERNAL[kind](entry.name, params, transport, environ)
        for unused in sorted(set(entry.params) - params.read):
            # Nothing configured is silently ignored: a parameter this kind does not read
            # (a typo, or a LiteLLM option Tollway lacks) is named at start-up.
            log.warning(
                "guardrail %s: parameter %r is not supported by %s and is ignored",
                entry.name,
                unused,
                kind,
            )
        return guardrail
    if "." in kind:
        return _custom(entry, config_dir)
    known = ", ".join(sorted([*BUILTINS, *EXTERNAL]))
    raise GuardrailConfigError(
        "litellm_params.guardrail",
        f"{kind!r} is not a guardrail kind (one of {known}, or a class as module.Class)",
    )


class _Reads(dict[str, Any]):
    """A params mapping that remembers which keys its guardrail looked at."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return super().__contains__(key)


def _custom(entry: GuardrailEntry, config_dir: Path) -> Guardrail:
    module_name, _, class_name = entry.kind.rpartition(".")
    folder = str(config_dir)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise GuardrailConfigError(
            "litellm_params.guardrail",
            f"cannot import {module_name!r} (from {folder} or PYTHONPATH): "
            f"{type(exc).__name__}: {exc}",
        ) from None
    finally:
        if added:
            sys.path.remove(folder)
    cls: Any = getattr(module, class_name, None)
    if not inspect.isclass(cls):
        raise GuardrailConfigError(
            "litellm_params.guardrail", f"{module_name!r} has no class {class_name!r}"
        )
    for method in ("check_input", "check_output"):
        if not inspect.iscoroutinefunction(getattr(cls, method, None)):
            raise GuardrailConfigError(
                "litellm_params.guardrail", f"{entry.kind} must define `async def {method}`"
            )
    if not callable(getattr(cls, "stream_checker", None)):
        raise GuardrailConfigError(
            "litellm_params.guardrail", f"{entry.kind} must define `stream_checker`"
        )
    try:
        built: Any = getattr(module, class_name)(entry.name, dict(entry.params))
        instance: Guardrail = built
    except Exception as exc:
        raise GuardrailConfigError(
            "litellm_params", f"{entry.kind}({entry.name!r}, params) failed: {exc}"
        ) from None
    return instance
