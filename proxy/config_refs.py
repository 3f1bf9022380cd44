"""Environment references in a config file, and where a config path is in the YAML.

``os.environ/NAME`` (LiteLLM's form) and ``${NAME}`` (common in YAML) are replaced by the
variable's value. An unset (or empty) variable fails closed: start-up stops naming it and
the field it is in, except for a provider key when ``TOLLWAY_ALLOW_MISSING_PROVIDER_KEYS=1``
(that deployment then runs without it, with a warning).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import yaml

log = logging.getLogger("tollway.config")

ENV_PREFIX = "os.environ/"


class ConfigError(Exception):
    """A config file that cannot be used; the message names the field (and line)."""


# ``${NAME}`` inside a value, a common way to write an environment variable in YAML.
_BRACED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
ALLOW_MISSING_PROVIDER_KEYS = "TOLLWAY_ALLOW_MISSING_PROVIDER_KEYS"
# Fields of litellm_params that hold a provider credential.
PROVIDER_SECRETS = frozenset(
    {"api_key", "aws_access_key_id", "aws_secret_access_key", "aws_session_token"}
)
_PROVIDER_KEY_PATH = re.compile(r"\$\.model_list\[\d+\]\.litellm_params\.\w+")


def resolve_env(
    value: Any, path: str, environ: Mapping[str, str], missing: list[tuple[str, str]]
) -> Any:
    """Replace ``os.environ/NAME`` and ``${NAME}`` references; an unset (or empty) variable
    is recorded in ``missing`` as ``(path, NAME)`` and its value becomes ``None``."""
    if isinstance(value, str):
        if value.startswith(ENV_PREFIX):
            name = value[len(ENV_PREFIX) :]
            if not environ.get(name):
                missing.append((path, name))
                return None
            return environ[name]
        if "${" in value:
            names = _BRACED.findall(value)
            unset = [name for name in names if not environ.get(name)]
            if unset:
                missing.extend((path, name) for name in unset)
                return None
            return _BRACED.sub(lambda m: environ[m.group(1)], value)
        return value
    if isinstance(value, dict):
        return {k: resolve_env(v, f"{path}.{k}", environ, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_env(v, f"{path}[{i}]", environ, missing) for i, v in enumerate(value)]
    return value


def check_missing(
    missing: list[tuple[str, str]], root: yaml.Node | None, source: str, env: Mapping[str, str]
) -> None:
    """Fail closed on a referenced variable that is not set: a master key, salt key, database
    or Redis URL left out would start the gateway unprotected or on the wrong store. A provider
    key may be left out (with a warning) only when ``TOLLWAY_ALLOW_MISSING_PROVIDER_KEYS=1``."""
    allow_keys = env.get(ALLOW_MISSING_PROVIDER_KEYS, "").strip().lower() in ("1", "true", "yes")
    fatal: list[tuple[str, str]] = []
    for path, name in missing:
        field = path.rpartition(".")[2]
        provider_key = _PROVIDER_KEY_PATH.fullmatch(path) is not None and field in PROVIDER_SECRETS
        if provider_key and allow_keys:
            log.warning(
                "%s: %s%s refers to environment variable %s, which is not set; the deployment "
                "runs without it (%s=1)",
                source,
                dotted(path),
                yaml_line(root, path),
                name,
                ALLOW_MISSING_PROVIDER_KEYS,
            )
        else:
            fatal.append((path, name))
    if not fatal:
        return
    path, name = fatal[0]
    field = path.rpartition(".")[2]
    hint = ""
    if _PROVIDER_KEY_PATH.fullmatch(path) is not None and field in PROVIDER_SECRETS:
        hint = f" (or set {ALLOW_MISSING_PROVIDER_KEYS}=1 to run that deployment without it)"
    more = f" (and {len(fatal) - 1} more unset)" if len(fatal) > 1 else ""
    raise ConfigError(
        f"{source}: {dotted(path)}{yaml_line(root, path)} refers to environment variable {name}, "
        f"which is not set; set it{hint}{more}"
    )


def dotted(path: str) -> str:
    return path.removeprefix("$").removeprefix(".") or "config"


def yaml_line(root: yaml.Node | None, path: str) -> str:
    """`` (line N)`` for ``path``: the line of its key for a mapping entry (a block value starts
    on the line after its key), the line of the item for a sequence entry."""
    node = marked = root
    for part in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path):
        key, index = part
        if isinstance(node, yaml.MappingNode) and key:
            pair = next(((k, v) for k, v in node.value if k.value == key), None)
            if pair is None:
                return ""
            marked, node = pair
        elif isinstance(node, yaml.SequenceNode) and index and int(index) < len(node.value):
            marked = node = node.value[int(index)]
        else:
            return ""
    return (
        f" (line {marked.start_mark.line + 1})" if marked is not None and marked is not root else ""
    )
