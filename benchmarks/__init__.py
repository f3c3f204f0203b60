"""Benchmarks: speed is measured here, never asserted in tests.

Every benchmark prints its figures next to a baseline measured in the same run, on the same
machine, and writes them as JSON under ``build/``; ``BENCHMARKS.md`` records the figures and
the command that reproduces them (``make bench``).
"""
