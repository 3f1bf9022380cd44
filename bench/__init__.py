"""Benchmarks for Tollway: a fake upstream, locust scenarios, the runner and micro-benchmarks."""
