"""Tollway: a high-throughput, LiteLLM-compatible LLM gateway with exact budgets."""

__version__ = "0.1.0"
