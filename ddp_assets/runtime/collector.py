"""Former home of the garbage-collector setting, kept only for the callers not yet moved.

The setting is :func:`ddp_assets.compat.tune_collector` now (the one module where ddp reaches
past a public API or changes a process-wide setting, each with its measured gain and a version
guard). Call that from a process's entry point; this alias goes once no caller uses it.
"""

from __future__ import annotations

from ddp_assets.compat import YOUNG_THRESHOLD, tune_collector

__all__ = ["YOUNG_THRESHOLD", "tune"]


def tune() -> None:
    """:func:`ddp_assets.compat.tune_collector` under its former name."""
    tune_collector()
