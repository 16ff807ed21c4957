"""Benchmarks behind `make bench`: each module's `run()` returns rows of figures with their targets."""
