"""Benchmarks: `make bench` (python -m bench). Each prints a table of ratios measured in one run."""
