"""Benchmarks of the platform's overhead: ``python -m bench`` (``make bench``).

See docs/performance.md for the method and the figures.
"""
