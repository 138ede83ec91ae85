"""Benchmarks for memberstream, run against a real Kafka broker (see bench/README.md)."""
