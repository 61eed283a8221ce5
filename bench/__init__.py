"""Benchmarks (`make bench`): each `bench_*.py` module has a `main()` that prints its own table.

Every figure is a ratio against a baseline measured in the same run, on this machine; tests never
assert timings.
"""
