"""Lasso's benchmarks: ``python -m bench`` (or ``make bench``).

See docs/benchmarks.md for what each section measures and how to read it.
"""
