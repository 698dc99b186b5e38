"""The garbage-collector setting of ddp's processes (ddp_assets/compat.py::tune_collector): an
explicit call from a process's entry point, never a side effect of an import."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from ddp_assets import compat
from ddp_assets.runtime import collector


def _threshold_after(statement: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", f"{statement}\nimport gc\nprint(gc.get_threshold()[0])"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize(
    "module",
    [
        "ddp_assets.definitions",
        pytest.param(
            "ddp_assets.cli.app",
            marks=pytest.mark.xfail(
                strict=True,
                reason="ddp_assets/cli/__init__.py still calls collector.tune() at import "
                "(issue 13: the ddp command's entry point should call compat.tune_collector())",
            ),
        ),
    ],
)
def test_importing_the_code_location_or_the_command_leaves_the_collector_alone(
    module: str,
) -> None:
    default = _threshold_after("")
    assert _threshold_after(f"import {module}") == default


def test_the_former_name_still_tunes_the_collector() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        collector.tune()
        assert gc.get_threshold() == (compat.YOUNG_THRESHOLD, 10, 10)
        assert collector.YOUNG_THRESHOLD == compat.YOUNG_THRESHOLD
    finally:
        gc.set_threshold(*before)
