"""The garbage collector's tuning in ddp's processes (ddp_assets/runtime/collector.py)."""

import gc
import subprocess
import sys

import pytest

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


@pytest.mark.parametrize("module", ["ddp_assets.cli.app", "ddp_assets.definitions"])
def test_the_ddp_command_and_the_code_location_raise_the_young_threshold(module: str) -> None:
    assert _threshold_after(f"import {module}") == str(collector.YOUNG_THRESHOLD)


def test_a_higher_or_disabled_setting_is_left_as_it_is() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(200_000, 10, 10)
        collector.tune()
        assert gc.get_threshold()[0] == 200_000
        gc.set_threshold(0, 10, 10)  # 0: automatic collection off
        collector.tune()
        assert gc.get_threshold()[0] == 0
        gc.set_threshold(700, 10, 10)
        collector.tune()
        assert gc.get_threshold() == (collector.YOUNG_THRESHOLD, 10, 10)
    finally:
        gc.set_threshold(*before)
