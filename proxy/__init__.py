"""Tollway: a high-throughput, LiteLLM-compatible LLM gateway with exact budgets."""

__version__ = "0.1.0"

from .compiled import use_source_if_stale

use_source_if_stale()
