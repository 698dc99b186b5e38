"""`ddp contract test`: the contract checks on the published demo data, from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ddp_assets.runtime.materialize import RunOutcome

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def test_contract_test_runs_every_check_on_published_data(built_demo: RunOutcome, demo_env) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ddp"), "contract", "test", "customer_360", "--json"],
        cwd=ROOT,
        env=demo_env.env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["passed"]
    ports = {p["port"]: p for p in report["ports"]}
    assert set(ports) == {"customer_profile", "churn_scores"}
    for port in ports.values():
        assert port["published"]["run_id"] in (built_demo.runs or [built_demo.run_id])
        assert port["checks"] and all(c["passed"] for c in port["checks"])
        assert all(c["observed"] is not None for c in port["checks"])
    # the Python port is also checked with its pandera schema
    assert "pandera_schema" in {c["name"] for c in ports["churn_scores"]["checks"]}


def test_contract_test_names_an_unknown_product(demo_env) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ddp"), "contract", "test", "customer_36"],
        cwd=ROOT,
        env=demo_env.env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 1
    assert "no product 'customer_36'" in result.stderr and "customer_360" in result.stderr
    assert "Traceback" not in result.stderr
