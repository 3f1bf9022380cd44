"""Observability: one typed event per call, delivered to sinks off the request path."""
