"""Benchmarks: figures printed as JSON, with same-run baselines."""
