"""Benchmarks of the Manager: scenarios run by ``python benchmarks/run.py`` (see docs/performance.md)."""
