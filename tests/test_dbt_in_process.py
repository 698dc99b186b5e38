"""dbt run in the Dagster process (ddp_assets/dbt/in_process.py), through public APIs only:
dbt's ``dbtRunner``, the environment scoped to one invocation, dbt-duckdb's own class methods
to release the warehouse file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ddp_assets.dbt import in_process

TINY_PROJECT = {
    "dbt_project.yml": "name: tiny\nversion: '1.0.0'\nprofile: tiny\nconfig-version: 2\n",
    "profiles.yml": (
        "tiny:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        "      path: \"{{ env_var('DDP_TEST_TINY_DB') }}\"\n"
    ),
    "models/one.sql": "select 1 as x\n",
}


def test_the_environment_is_set_for_one_invocation_and_put_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DDP_TEST_KEPT", "before")
    monkeypatch.delenv("DDP_TEST_ADDED", raising=False)
    before = dict(os.environ)
    scope = in_process._environment(
        {"DDP_TEST_KEPT": "during", "DDP_TEST_ADDED": "yes", "PYTHONUNBUFFERED": "1"}
    )
    with scope:
        assert os.environ["DDP_TEST_KEPT"] == "during"
        assert os.environ["DDP_TEST_ADDED"] == "yes"
        assert os.environ["DBT_LOG_LEVEL"] == "none"  # dagster-dbt prints the events itself
    assert dict(os.environ) == before


def test_dbt_is_not_patched() -> None:
    """dbt's behavior flags name their source dbt's own way (ddp replaced that to save 0.07 s
    per invocation: below what a private hook must save, docs/public-apis.md)."""
    from dbt_common.behavior_flags import BehaviorFlagRendered

    source = BehaviorFlagRendered._default_source
    assert getattr(source, "__module__", "") == "dbt_common.behavior_flags"


def test_an_invocation_runs_dbt_and_releases_the_warehouse_file(tmp_path: Path) -> None:
    project = tmp_path / "tiny"
    for name, text in TINY_PROJECT.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text, encoding="utf-8")
    database = tmp_path / "tiny.duckdb"
    env = {
        **os.environ,
        "DDP_TEST_TINY_DB": str(database),
        "DBT_TARGET_PATH": str(tmp_path / "target"),
        "DBT_LOG_PATH": str(tmp_path / "target"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    args = ["dbt", "run", "--project-dir", str(project), "--profiles-dir", str(project)]
    process = in_process.InProcessDbt(args, env, ("tiny", str(tmp_path)))
    lines = list(process.stdout)
    assert process.wait(timeout=120) == 0, b"\n".join(lines)[-2000:]
    assert "DDP_TEST_TINY_DB" not in os.environ
    # another process can open the warehouse: dbt-duckdb's environment was closed
    read = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import duckdb; connection = duckdb.connect({str(database)!r}); "
            "print(connection.execute('select x from one').fetchall()[0][0])",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert read.returncode == 0, read.stderr
    assert read.stdout.strip() == "1"
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with pytest.raises(Exception, match="before creation"):
        DuckDBConnectionManager.env()
