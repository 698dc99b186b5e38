"""ddp's DuckDB files open in an older DuckDB: the warehouse, the serving snapshot, the SQL ports.

ddp runs DuckDB 2.0, whose own storage format DuckDB 1.x cannot open; every file ddp creates
is written in ``DDP_DUCKDB_STORAGE_VERSION`` (default v1.4.0). The older DuckDB is the one in
datacontract-cli's own virtual environment (its pins: duckdb<1.6, see
``tests/test_datacontract_cli.py``), run in a subprocess on each file, read-only: it must open
it and read a published port with the same rows as ddp's DuckDB reads.

Also: dbt-duckdb writing to a file ddp created keeps its format, a warehouse left in DuckDB
2.0's format by an earlier ddp is rewritten by ddp's next writer, and a wrong setting is a
message with a hint.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ddp_assets.dbt.load_cache import load_registry
from ddp_assets.naming import published_relation
from ddp_assets.ports.serving import serving_path
from ddp_assets.ports.sql_port import sql_port_path
from ddp_assets.warehouse import DuckDBWarehouse, WarehouseUnavailable, relation, writer
from ddp_assets.warehouse.duckdb import (
    DEFAULT_STORAGE_VERSION,
    STORAGE_VERSION_ENV,
    file_storage_version,
)
from tests.test_datacontract_cli import VenvUnavailable, _clean_env, ensure_venv, venv_dir

pytestmark = [pytest.mark.slow, pytest.mark.integration]

DDP = str(Path(sys.executable).parent / "ddp")
CONSUMER = "compat-reader"

OPEN_READ_ONLY = textwrap.dedent(
    """
    import json, sys
    import duckdb
    out = {"duckdb": duckdb.__version__}
    for name, job in json.loads(sys.argv[1]).items():
        try:
            with duckdb.connect(job["path"], read_only=True) as connection:
                out[name] = [connection.execute(q).fetchall() for q in job["queries"]]
        except Exception as error:
            out[name] = f"{type(error).__name__}: {error}"
    print(json.dumps(out, default=str))
    """
)


@pytest.fixture(scope="session")
def old_python() -> Path:
    """The python of datacontract-cli's venv, whose DuckDB is 1.x."""
    try:
        exe, _ = ensure_venv()
    except VenvUnavailable as error:
        message = f"cannot make the datacontract-cli venv at {venv_dir()}: {error}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return exe.parent / "python"


def open_with_old_duckdb(python: Path, jobs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``{name: {path, queries}}`` → ``{name: [rows of each query] | "error"}``, and the
    DuckDB version under ``duckdb``."""
    done = subprocess.run(
        [str(python), "-c", OPEN_READ_ONLY, json.dumps(jobs)],
        capture_output=True,
        text=True,
        timeout=300,
        env=_clean_env(),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["duckdb"].startswith("1."), result["duckdb"]
    return result


def tag(path: Path) -> str:
    with duckdb.connect(str(path), read_only=True) as connection:
        return file_storage_version(connection)


def ddp(env: dict[str, str], *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([DDP, *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return done


def test_every_file_of_the_built_demo_opens_in_an_older_duckdb(
    built_demo: Any, demo_env: Any, old_python: Path
) -> None:
    paths = demo_env.paths
    env = demo_env.env()
    ddp(env, "token", "issue", CONSUMER, "--role", "analyst")
    ddp(env, "ports", "build", "--consumer", CONSUMER)
    registry = load_registry(paths)
    product = registry.products["customers"]
    port = product.spec.output_ports[0]
    published = relation(*published_relation(product.id, port.model))
    in_snapshot = relation(product.id, port.name)
    files = {
        "warehouse": (paths.warehouse_path, published),
        "serving": (serving_path(paths), in_snapshot),
        "sql_port": (sql_port_path(paths, CONSUMER), in_snapshot),
    }
    expected = {}
    for name, (path, table) in files.items():
        assert tag(path) == f"{DEFAULT_STORAGE_VERSION}+", name
        with duckdb.connect(str(path), read_only=True) as connection:
            expected[name] = connection.execute(f"select count(*) from {table}").fetchall()
        assert expected[name][0][0] > 0, name
    jobs = {
        name: {"path": str(path), "queries": [f"select count(*) from {table}"]}
        for name, (path, table) in files.items()
    }
    opened = open_with_old_duckdb(old_python, jobs)
    for name in files:
        assert opened[name] == [[list(row) for row in expected[name]]], (name, opened[name])


def test_dbt_duckdb_keeps_the_format_of_a_file_ddp_created(
    tmp_path: Path, old_python: Path
) -> None:
    """dbt-duckdb's own connection (its stock profile, no storage option) writes to a file ddp
    created: the file stays in ddp's format, and the model dbt built reads in DuckDB 1.x."""
    project = tmp_path / "dbt"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: compat\nversion: '1.0'\nprofile: compat\nconfig-version: 2\n"
    )
    (project / "models" / "numbers.sql").write_text(
        "{{ config(materialized='table') }} select range as n from range(10)"
    )
    path = tmp_path / "warehouse.duckdb"
    (project / "profiles.yml").write_text(
        f"compat:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        f"      path: {json.dumps(str(path))}\n      schema: main\n      threads: 1\n"
    )
    DuckDBWarehouse(path).create()
    assert tag(path) == f"{DEFAULT_STORAGE_VERSION}+"
    dbt = [str(Path(sys.executable).parent / "dbt"), "run", "--project-dir", str(project)]
    done = subprocess.run(
        [*dbt, "--profiles-dir", str(project), "--target-path", str(tmp_path / "target")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert tag(path) == f"{DEFAULT_STORAGE_VERSION}+"
    opened = open_with_old_duckdb(
        old_python, {"dbt": {"path": str(path), "queries": ["select sum(n) from main.numbers"]}}
    )
    assert opened["dbt"] == [[[45]]], opened


def test_ddp_creates_the_warehouse_before_dbt_opens_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, project_paths: Any
) -> None:
    """A product without landing files is first written by dbt: ddp's dbt resource creates the
    missing warehouse in ddp's format before dbt-duckdb would create it in DuckDB's newest."""
    from ddp_assets.dbt.project import dbt_resource

    monkeypatch.setenv("DDP_DATA_DIR", str(tmp_path))
    invocation = dbt_resource(project_paths).cli(
        ["--version"], raise_on_error=False, target_path=tmp_path / "target"
    )
    invocation.wait()
    assert tag(tmp_path / "warehouse.duckdb") == f"{DEFAULT_STORAGE_VERSION}+"


def test_a_warehouse_in_duckdb_2_format_is_rewritten_by_the_next_writer(
    tmp_path: Path, old_python: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as connection:  # what ddp wrote before the setting
        connection.execute(
            "create schema p__staging; create schema p; "
            "create table p__staging.t__v1 as select range as n from range(5); "
            "create view p.t as select * from p__staging.t__v1"
        )
    assert tag(path).startswith("v2.")
    opened = open_with_old_duckdb(old_python, {"before": {"path": str(path), "queries": []}})
    assert "version number" in opened["before"], opened
    (tmp_path / ".warehouse.duckdb.1.migrating.duckdb").write_bytes(b"killed")  # an earlier try
    with caplog.at_level(logging.WARNING), writer(path) as connection:
        assert file_storage_version(connection) == f"{DEFAULT_STORAGE_VERSION}+"
        connection.execute("insert into p__staging.t__v1 values (5)")
    assert STORAGE_VERSION_ENV in caplog.text and "rewritten" in caplog.text
    assert not list(tmp_path.glob(".*migrating*"))
    opened = open_with_old_duckdb(
        old_python, {"after": {"path": str(path), "queries": ["select sum(n) from p.t"]}}
    )
    assert opened["after"] == [[[15]]], opened


def test_storage_version_is_configurable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_env: Any
) -> None:
    monkeypatch.setenv(STORAGE_VERSION_ENV, "v1.5.0")
    DuckDBWarehouse(tmp_path / "a.duckdb").create()
    assert tag(tmp_path / "a.duckdb") == "v1.5.0+"
    monkeypatch.setenv(STORAGE_VERSION_ENV, "latest")
    with writer(tmp_path / "b.duckdb"):  # and an older file is never rewritten for 'latest'
        pass
    assert tag(tmp_path / "b.duckdb") == f"v{duckdb.__version__.split('-')[0]}+"
    monkeypatch.setenv(STORAGE_VERSION_ENV, "1.4")
    with pytest.raises(WarehouseUnavailable) as raised:
        DuckDBWarehouse(tmp_path / "c.duckdb").create()
    assert "'1.4' is not a DuckDB storage version" in str(raised.value)
    assert "hint:" in str(raised.value) and not (tmp_path / "c.duckdb").exists()
    # the command line says it without a traceback
    done = ddp({**demo_env.env(), STORAGE_VERSION_ENV: "1.4"}, "ports", "build", code=1)
    assert "is not a DuckDB storage version" in done.stdout + done.stderr
