"""The garbage-collector setting of ddp's processes (ddp_assets/compat.py::tune_collector): an
explicit call from a process's entry point, never a side effect of an import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ddp_assets import compat


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
        "ddp_assets.cli.app",
        "ddp_assets.cli.entry",
    ],
)
def test_importing_the_code_location_or_the_command_leaves_the_collector_alone(
    module: str,
) -> None:
    default = _threshold_after("")
    assert _threshold_after(f"import {module}") == default


def test_the_ddp_command_tunes_it_before_its_imports() -> None:
    """The console script's entry point sets the threshold, then imports the command."""
    statement = (
        "import sys, gc\n"
        "from ddp_assets.cli import entry\n"
        "sys.argv = ['ddp', '--help']\n"
        "try:\n"
        "    entry.main()\n"
        "except SystemExit:\n"
        "    pass\n"
    )
    assert _threshold_after(statement).endswith(str(compat.YOUNG_THRESHOLD))
