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


class GuardrailSetupError(Exception):
    """A guardrail could not be built; ``path`` is its config path (``$.guardrails[2]...``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class Configured:
    """One configured guardrail: its entry and the built check."""

    __slots__ = ("entry", "guardrail")

    def __init__(self, entry: GuardrailEntry, guardrail: Guardrail) -> None:
        self.entry = entry
        self.guardrail = guardrail

    @property
    def name(self) -> str:
        return self.entry.name

    def runs(self, mode: Mode) -> bool:
        if mode is Mode.POST_CALL and self.entry.params.get("output_parse_pii") is True:
            # Restoring the tokens it put in the input is an output step (as LiteLLM does).
            return True
        return mode in self.entry.modes


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
            guardrail = _build(entry, transport, environ, config_dir)
        except GuardrailConfigError as exc:
            field = exc.field
            if field and not field.startswith(("guardrail_name", "guardrail_info", "litellm_")):
                field = f"litellm_params.{field}"
            path = f"{where}.{field}" if field else where
            raise GuardrailSetupError(path, exc.message) from None
        built[entry.name] = Configured(entry, guardrail)
    return built


def _build(
    entry: GuardrailEntry, transport: Transport, environ: Mapping[str, str], config_dir: Path
) -> Guardrail:
    kind = entry.kind
    if kind in BUILTINS:
        return BUILTINS[kind](entry.name, entry.params, config_dir)
    if kind in EXTERNAL:
        return EXTERNAL[kind](entry.name, entry.params, transport, environ)
    if "." in kind:
        return _custom(entry, config_dir)
    known = ", ".join(sorted([*BUILTINS, *EXTERNAL]))
    raise GuardrailConfigError(
        "litellm_params.guardrail",
        f"{kind!r} is not a guardrail kind (one of {known}, or a class as module.Class)",
    )


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
