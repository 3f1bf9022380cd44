"""The LiteLLM-compatible config file: frozen msgspec structs, loading and validation.

A file written for the LiteLLM proxy loads unchanged. Loading goes: YAML → plain objects →
``os.environ/NAME`` references resolved → keys Tollway does not act on warned about →
``msgspec.convert`` into the frozen structs below. A validation error names the field and the
line it is on.

Nothing a user writes is silently ignored: a key no struct declares is an error when it is a
near miss of a declared one (a typo: "did you mean"), unless LiteLLM itself reads it
(``LITELLM_KEYS``), and otherwise warned about as unknown; a declared key that nothing reads
(it is declared so a LiteLLM file loads and round-trips) is listed in ``NOT_SUPPORTED`` and
warned about with the reason, all with the line the key is on. An environment reference whose
variable is unset stops loading (``config_refs``). ``tollway --model`` builds a one-model
config without a file (``quick_start_config``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin, get_type_hints

import msgspec
import yaml

from .config_refs import (
    ENV_PREFIX,
    ConfigError,
    check_missing,
    dotted,
    resolve_env,
    yaml_line,
)
from .pricing import infer_provider

__all__ = ["ENV_PREFIX", "ConfigError"]

log = logging.getLogger("tollway.config")


# Keys LiteLLM reads that Tollway does not declare: warned about as unknown, never taken for
# a typo of a declared key that happens to be close (``input_cost_per_second``).
LITELLM_KEYS = frozenset(
    (
        "input_cost_per_second",
        "output_cost_per_second",
        "output_cost_per_reasoning_token",
        "input_cost_per_image",
        "cache_creation_input_token_cost",
        "num_retries",
        "aws_session_name",
        "aws_profile_name",
        "aws_role_name",
        "aws_web_identity_token",
        "aws_bedrock_runtime_endpoint",
        "litellm_credential_name",
        "vertex_credentials",
        "max_budget",
        "budget_duration",
        "max_parallel_requests",
        "additional_drop_params",
        "reasoning_effort",
        "fallbacks",
        "optional_pre_call_checks",
        "litellm_provider",
        "supports_reasoning",
        "supports_response_schema",
        "supports_prompt_caching",
        "supports_system_messages",
        "supports_tool_choice",
        "access_groups",
        "tier",
        "health_check_model",
    )
)


# ``[{"model-group": ["fallback-group", ...]}, ...]``, as LiteLLM writes fallbacks.
Fallbacks = tuple[dict[str, tuple[str, ...]], ...]


class LiteLLMParams(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    api_base: str | None = None
    api_key: str | None = None
    api_version: str | None = None
    organization: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    weight: float | None = None
    timeout: float | None = None
    stream_timeout: float | None = None
    max_retries: int | None = None
    tags: tuple[str, ...] = ()
    extra_headers: dict[str, str] | None = None
    mock_response: str | None = None
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    # Accepted for compatibility; used by provider adapters that need them.
    region_name: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None
    aws_region_name: str | None = None
    vertex_project: str | None = None
    vertex_location: str | None = None
    drop_params: bool | None = None
    custom_llm_provider: str | None = None
    use_in_pass_through: bool | None = None
    merge_reasoning_content_in_choices: bool | None = None
    # Routing: a per-deployment connect deadline, and the complexity auto-router's settings
    # (``model: auto_router/complexity_router``).
    connect_timeout: float | None = None
    complexity_router_config: dict[str, Any] | None = None
    complexity_router_default_model: str | None = None


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str | None = None
    mode: str | None = None
    base_model: str | None = None
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    cache_read_input_token_cost: float | None = None
    # Unit prices of the non-token endpoints (LiteLLM's names; see ``endpoints/prices.py``).
    input_cost_per_second: float | None = None
    input_cost_per_character: float | None = None
    output_cost_per_image: float | None = None
    input_cost_per_query: float | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    max_tokens: int | None = None
    supports_function_calling: bool | None = None
    supports_vision: bool | None = None
    description: str | None = None
    # LiteLLM's model access groups: a key or team listing a group may use its models.
    access_groups: tuple[str, ...] = ()


class ModelEntry(msgspec.Struct, frozen=True, kw_only=True):
    model_name: str
    litellm_params: LiteLLMParams
    model_info: ModelInfo = ModelInfo()


class RouterSettings(msgspec.Struct, frozen=True, kw_only=True):
    routing_strategy: str = "simple-shuffle"
    num_retries: int | None = None
    timeout: float | None = None
    stream_timeout: float | None = None
    fallbacks: Fallbacks = ()
    context_window_fallbacks: Fallbacks = ()
    content_policy_fallbacks: Fallbacks = ()
    default_fallbacks: tuple[str, ...] = ()
    allowed_fails: int | None = None
    cooldown_time: float | None = None
    retry_after: float | None = None
    max_fallbacks: int | None = None
    model_group_alias: dict[str, str] | None = None
    enable_pre_call_checks: bool | None = None
    enable_tag_filtering: bool | None = None
    routing_strategy_args: dict[str, Any] | None = None
    redis_host: str | None = None
    redis_port: int | None = None
    redis_password: str | None = None
    redis_url: str | None = None


class GeneralSettings(msgspec.Struct, frozen=True, kw_only=True):
    master_key: str | None = None
    database_url: str | None = None
    max_request_size_mb: float | None = None
    store_model_in_db: bool | None = None
    disable_spend_logs: bool | None = None
    proxy_batch_write_at: float | None = None
    alerting: tuple[str, ...] = ()
    # Read by ``proxy.observe.alerts``.
    alerting_threshold: float | None = None
    alert_types: tuple[str, ...] | None = None
    alert_to_webhook_url: dict[str, str | tuple[str, ...]] | None = None
    alerting_args: dict[str, Any] | None = None
    # /metrics: behind the master key when true; request `user` values kept as a label.
    require_auth_for_metrics_endpoint: bool = False
    prometheus_end_user_allowlist: tuple[str, ...] = ()


class LiteLLMSettings(msgspec.Struct, frozen=True, kw_only=True):
    drop_params: bool | None = None
    num_retries: int | None = None
    request_timeout: float | None = None
    set_verbose: bool | None = None
    json_logs: bool | None = None
    cache: bool | None = None
    cache_params: dict[str, Any] | None = None
    # The s3 callback's bucket, region, keys, endpoint and path (LiteLLM's names).
    s3_callback_params: dict[str, Any] | None = None
    success_callback: tuple[str, ...] = ()
    failure_callback: tuple[str, ...] = ()
    callbacks: tuple[str, ...] = ()
    # LiteLLM's default: messages and replies go to the callbacks unless this is true.
    turn_off_message_logging: bool | None = None
    default_fallbacks: tuple[str, ...] = ()
    # LiteLLM also reads the fallbacks here (router_settings' win when both are set).
    fallbacks: Fallbacks = ()
    context_window_fallbacks: Fallbacks = ()
    content_policy_fallbacks: Fallbacks = ()
    # Providers implemented in Python: ``[{provider: name, custom_handler: module.Class}]``.
    custom_provider_map: tuple[CustomProviderEntry, ...] = ()
    # The budget of each end user (a request's ``user``) that has no /customer record.
    max_end_user_budget: Annotated[float, msgspec.Meta(ge=0)] | None = None


class CustomProviderEntry(msgspec.Struct, frozen=True, kw_only=True):
    provider: str
    custom_handler: str


class Config(msgspec.Struct, frozen=True, kw_only=True):
    model_list: tuple[ModelEntry, ...] = ()
    router_settings: RouterSettings = RouterSettings()
    general_settings: GeneralSettings = GeneralSettings()
    litellm_settings: LiteLLMSettings = LiteLLMSettings()
    guardrails: tuple[dict[str, Any], ...] = ()
    environment_variables: dict[str, str] | None = None


# Declared keys nothing reads, with why; warned about at start-up when present in the file.
NOT_SUPPORTED: dict[type[msgspec.Struct], dict[str, str]] = {
    Config: {
        "environment_variables": "set variables in the process environment instead",
    },
    LiteLLMParams: {
        "vertex_project": "there is no Vertex AI provider",
        "vertex_location": "there is no Vertex AI provider",
        "drop_params": "a parameter a provider cannot take is rejected with a 400, not dropped",
        "use_in_pass_through": "there are no pass-through endpoints",
        "merge_reasoning_content_in_choices": "reasoning is returned as the provider sends it",
    },
    RouterSettings: {
        "enable_pre_call_checks": "deployments are skipped for context size only when the "
        "group has a context_window_fallbacks entry",
    },
    GeneralSettings: {
        "disable_spend_logs": "spend logs are always written to the SQLite store",
    },
    LiteLLMSettings: {
        "drop_params": "a parameter a provider cannot take is rejected with a 400, not dropped",
    },
}

# Free-form mappings of which only some keys are read: (struct, field) -> keys read.
PARTLY_READ: dict[tuple[type[msgspec.Struct], str], frozenset[str]] = {
    (RouterSettings, "routing_strategy_args"): frozenset({"lowest_latency_buffer"}),
}

# OpenAI-compatible providers: prefix -> (default api_base, env var holding the key).
OPENAI_COMPATIBLE: dict[str, tuple[str, str]] = {
    "openai": ("https://api.openai.com/v1", "OPENAI_API_KEY"),
    "groq": ("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "mistral": ("https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    "deepseek": ("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "together_ai": ("https://api.together.xyz/v1", "TOGETHERAI_API_KEY"),
    "openrouter": ("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "fireworks_ai": ("https://api.fireworks.ai/inference/v1", "FIREWORKS_AI_API_KEY"),
    "xai": ("https://api.x.ai/v1", "XAI_API_KEY"),
    "perplexity": ("https://api.perplexity.ai", "PERPLEXITYAI_API_KEY"),
    "ollama": ("http://127.0.0.1:11434/v1", "OLLAMA_API_KEY"),
    "vllm": ("http://127.0.0.1:8000/v1", "VLLM_API_KEY"),
    "hosted_vllm": ("http://127.0.0.1:8000/v1", "HOSTED_VLLM_API_KEY"),
    # Hugging Face's OpenAI-compatible router; with an api_base, text-embeddings-inference
    # (its /rerank serves the rerank endpoints, see endpoints/inference.py).
    "huggingface": ("https://router.huggingface.co/v1", "HUGGINGFACE_API_KEY"),
}

# With OPENAI_API_KEY set, OpenAI's own model names route to OpenAI without a prefix too.
OPENAI_BARE_NAMES = ("gpt-*", "chatgpt-*", "o[0-9]*", "text-embedding-*")

DEFAULT_CONFIG_YAML = """\
# Tollway's embedded default: a deterministic mock model that needs no API key.
model_list:
  - model_name: mock-gpt
    litellm_params:
      model: mock/mock-gpt
    model_info:
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
      max_input_tokens: 128000
      max_output_tokens: 4096
  - model_name: mock-embedding
    litellm_params:
      model: mock/mock-embedding
    model_info:
      mode: embedding
      input_cost_per_token: 0.0000001
      output_cost_per_token: 0.0
"""


def load_config(path: str | None, environ: Mapping[str, str] | None = None) -> Config:
    """Load ``path`` (or the embedded default when ``None``) into a validated ``Config``."""
    env = os.environ if environ is None else environ
    if path is None:
        text, source = DEFAULT_CONFIG_YAML, "<default config>"
    else:
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        source = path
    if path is None and env.get(QUICK_MODEL_ENV):
        return quick_start_config(env[QUICK_MODEL_ENV], env.get(QUICK_API_BASE_ENV) or None, env)
    config = parse_config(text, source, env)
    if path is None:
        config = with_env_providers(config, env)
    return config


# ``tollway --model gpt-4o [--api_base URL]``: one model, no config file.
QUICK_MODEL_ENV = "TOLLWAY_MODEL"
QUICK_API_BASE_ENV = "TOLLWAY_API_BASE"
# Servers that usually run without a key.
_KEYLESS = frozenset({"ollama", "vllm", "hosted_vllm", "mock"})


def quick_start_config(model: str, api_base: str | None, environ: Mapping[str, str]) -> Config:
    """The config of ``tollway --model MODEL``: that one model, served under the name given
    (and its bare name), its key read from the provider's usual environment variable."""
    provider, sep, name = model.partition("/")
    if not sep:
        provider = infer_provider(model) or ("openai" if api_base else "")
        if not provider:
            raise ConfigError(
                f"--model {model}: cannot tell its provider; write it as provider/model "
                "(e.g. openai/..., anthropic/..., ollama/...)"
            )
    params: dict[str, Any] = {"model": model if sep else f"{provider}/{model}"}
    if api_base:
        params["api_base"] = api_base
    variables = _key_variables(provider)
    found = next((var for var in variables if environ.get(var)), None)
    if found is not None:
        params["api_key"] = environ[found]
    elif variables and not api_base and provider not in _KEYLESS:
        raise ConfigError(f"--model {model}: set {variables[0]} (the {provider} API key)")
    if provider == "azure" and not api_base and environ.get("AZURE_API_BASE"):
        params["api_base"] = environ["AZURE_API_BASE"]
    names = dict.fromkeys([model, name] if sep else [model])
    entries = [{"model_name": n, "litellm_params": params} for n in names]
    try:
        return msgspec.convert({"model_list": entries}, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"--model {model}: {exc}") from None


def _key_variables(provider: str) -> tuple[str, ...]:
    if provider in OPENAI_COMPATIBLE:
        return (OPENAI_COMPATIBLE[provider][1],)
    if provider in ENV_PROVIDERS:
        return ENV_PROVIDERS[provider][0]
    return ("AZURE_API_KEY",) if provider == "azure" else ()


def config_folder(path: str | None) -> Path:
    """The folder relative paths in a config file are read from (custom guardrail modules,
    word lists): the file's own folder, or the working directory for the embedded default."""
    return Path(path).resolve().parent if path else Path.cwd()


def line_of(path: str | None, where: str) -> str:
    """`` (line N)`` for a ``$.a.b[0]`` path in the config file, or "" when unknown."""
    if not path:
        return ""
    try:
        with open(path, encoding="utf-8") as fh:
            root = yaml.compose(fh.read(), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        return ""
    return yaml_line(root, where)


def parse_config(text: str, source: str, environ: Mapping[str, str]) -> Config:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    missing: list[tuple[str, str]] = []
    resolved = resolve_env(raw, "$", environ, missing)
    check_missing(missing, root, source, environ)
    for path, unknown, note in _ignored_keys(resolved, Config, "$"):
        where = f"{dotted(path)}{yaml_line(root, path)}"
        key = path.rpartition(".")[2]
        if unknown and note and key not in LITELLM_KEYS:
            # A near miss of a declared key is a typo: ignoring ``master_kye`` would start
            # the gateway without the setting the user meant (authentication off).
            raise ConfigError(
                f"{source}: `{dotted(path)}`{yaml_line(root, path)} is not a config key; "
                f"did you mean `{note}`?"
            )
        if unknown:
            hint = f"; did you mean {note}?" if note else ""
            log.warning(
                "%s: unknown config key %s is not supported and is ignored%s", source, where, hint
            )
        else:
            log.warning("%s: %s is not supported and is ignored: %s", source, where, note)
    try:
        return msgspec.convert(resolved, Config, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = re.search(r"at `(\$[^`]*)`", message)
        where = yaml_line(root, match.group(1)) if match else ""
        field = dotted(match.group(1)) if match else "config"
        detail = message.split(" - at ")[0]
        raise ConfigError(f"{source}: invalid {field}: {detail}{where}") from exc


# Translating providers picked up from the environment: prefix -> (key variables, bare names).
ENV_PROVIDERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "anthropic": (("ANTHROPIC_API_KEY",), ("claude-*",)),
    "gemini": (("GEMINI_API_KEY", "GOOGLE_API_KEY"), ("gemini-*",)),
    "cohere": (("COHERE_API_KEY", "CO_API_KEY"), ("command-*",)),
}


def with_env_providers(config: Config, environ: Mapping[str, str]) -> Config:
    """Add wildcard model groups for every provider whose credentials are in the environment."""
    added: list[ModelEntry] = []

    def add(prefix: str, params: LiteLLMParams, bare: tuple[str, ...], source: str) -> None:
        groups = [f"{prefix}/*", *bare]
        added.extend(ModelEntry(model_name=group, litellm_params=params) for group in groups)
        log.info("added provider %s from %s", prefix, source)

    for prefix, (_base, env_var) in OPENAI_COMPATIBLE.items():
        if prefix in ("ollama", "vllm", "hosted_vllm") or not environ.get(env_var):
            continue
        bare: tuple[str, ...] = OPENAI_BARE_NAMES if prefix == "openai" else ()
        add(prefix, LiteLLMParams(model=f"{prefix}/*", api_key=environ[env_var]), bare, env_var)
    for prefix, (variables, bare) in ENV_PROVIDERS.items():
        found = next((name for name in variables if environ.get(name)), None)
        if found is not None:
            add(prefix, LiteLLMParams(model=f"{prefix}/*", api_key=environ[found]), bare, found)
    if environ.get("AZURE_API_KEY") and environ.get("AZURE_API_BASE"):
        params = LiteLLMParams(
            model="azure/*",
            api_key=environ["AZURE_API_KEY"],
            api_base=environ["AZURE_API_BASE"],
            api_version=environ.get("AZURE_API_VERSION") or None,
        )
        add("azure", params, (), "AZURE_API_KEY and AZURE_API_BASE")
    if environ.get("AWS_ACCESS_KEY_ID") and environ.get("AWS_SECRET_ACCESS_KEY"):
        params = LiteLLMParams(
            model="bedrock/*",
            aws_region_name=environ.get("AWS_REGION_NAME") or environ.get("AWS_REGION"),
        )
        add("bedrock", params, (), "AWS_ACCESS_KEY_ID")
    if not added:
        return config
    return msgspec.structs.replace(config, model_list=config.model_list + tuple(added))


def _ignored_keys(value: Any, typ: Any, path: str) -> Iterator[tuple[str, bool, str]]:
    """``(path, unknown, note)`` for every key in ``value`` that ``typ`` (a Struct, possibly
    nested in containers) does not act on: ``unknown`` keys get a "did you mean" note when one
    is close, declared-but-unread ones (``NOT_SUPPORTED``, ``PARTLY_READ``) their reason."""
    origin = get_origin(typ)
    if isinstance(typ, type) and issubclass(typ, msgspec.Struct):
        if not isinstance(value, dict):
            return
        hints = get_type_hints(typ)
        fields = typ.__struct_fields__
        unread = NOT_SUPPORTED.get(typ, {})
        for key, item in value.items():
            where = f"{path}.{key}"
            if key not in fields:
                yield where, True, _did_you_mean(str(key), fields)
            elif key in unread:
                if item is not None:
                    yield where, False, unread[key]
            elif (typ, key) in PARTLY_READ and isinstance(item, dict):
                read = PARTLY_READ[typ, key]
                for sub in item:
                    if sub not in read:
                        yield f"{where}.{sub}", False, f"only {', '.join(sorted(read))} is read"
            else:
                yield from _ignored_keys(item, hints[key], where)
    elif origin in (tuple, list) and isinstance(value, list):
        args = [a for a in get_args(typ) if a is not Ellipsis]
        if args:
            for i, item in enumerate(value):
                yield from _ignored_keys(item, args[0], f"{path}[{i}]")
    elif get_args(typ) and origin is not dict:
        for arg in get_args(typ):
            yield from _ignored_keys(value, arg, path)


def _did_you_mean(key: str, fields: tuple[str, ...]) -> str:
    import difflib  # only for a config with an unknown key

    close = difflib.get_close_matches(key, fields, n=1, cutoff=0.8)
    return close[0] if close else ""
