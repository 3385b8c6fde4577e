"""Benchmarks: each runs with `.venv/bin/python -m bench.<name>` and cleans up after itself."""
