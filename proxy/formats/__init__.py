"""Inbound formats other than OpenAI's (Anthropic Messages, OpenAI Responses) and the
translation helpers adapters share (``translate``)."""
