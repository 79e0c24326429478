"""Benchmarks: `make bench` runs bench/run.py. They print figures; they assert nothing."""
