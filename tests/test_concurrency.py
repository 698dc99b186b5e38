"""Runs launched at once wait for the DuckDB writer (a Dagster pool) instead of failing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]

DDP = str(Path(sys.executable).parent / "ddp")


def test_two_materializations_at_once_both_succeed(built_demo, demo_env) -> None:
    command = [DDP, "materialize", "customers", "orders", "--json"]
    first = subprocess.Popen(
        command, env=demo_env.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    second = subprocess.Popen(
        command, env=demo_env.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    results = [process.communicate(timeout=600) for process in (first, second)]
    for process, (stdout, stderr) in zip((first, second), results, strict=True):
        assert process.returncode == 0, stderr[-3000:]
        outcome = json.loads(stdout)
        assert outcome["success"], outcome
        assert "lock" not in stderr.lower(), stderr[-3000:]
    run_ids = {json.loads(stdout)["run_id"] for stdout, _ in results}
    assert len(run_ids) == 2
