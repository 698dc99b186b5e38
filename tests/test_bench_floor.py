"""The end-to-end bench's floors (bench/floor.py) run against the platform as it publishes now.

Versioned publish (issue 20) made ``<product>.<model>`` a view over ``<port>__v<N>``; the floors
kept publishing by ``create or replace table <product>.<model>`` and broke on a warehouse ddp had
published ("Existing object is of type View") without any test noticing. These run the floors
on the demo at the session's small scale: F and F0 on an empty warehouse, with the depot's
SQLite load, and B''s publish on a copy of the warehouse ``ddp materialize`` left.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from bench import floor
from ddp_assets.demo.helpdesk import HELPDESK_DB
from ddp_assets.naming import staging_schema, version_table
from ddp_assets.spec.model import DepotInputPort
from ddp_assets.spec.registry import Registry
from ddp_assets.warehouse import relation
from tests.conftest import ROOT, DemoEnv


@pytest.fixture(scope="module")
def compiled(built_demo: Any, demo_env: DemoEnv, tmp_path_factory: pytest.TempPathFactory):
    """`dbt compile`'s manifest of the demo (the SQL of F), in a private target folder."""
    target = tmp_path_factory.mktemp("bench_compile")
    dbt = Path(sys.executable).with_name("dbt")
    done = subprocess.run(
        [
            str(dbt),
            "compile",
            "--profiles-dir",
            "dbt_project",
            "--project-dir",
            "dbt_project",
            "--target-path",
            str(target),
        ],
        cwd=ROOT,
        env={**demo_env.env(), "DBT_LOG_PATH": str(target)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    return floor.compiled_manifest(target / "manifest.json")


@pytest.fixture(scope="module")
def registry() -> Registry:
    loaded = Registry.load(ROOT / "ddp_assets" / "defs", ROOT)
    loaded.raise_for_errors()
    return loaded


def _ports(registry: Registry) -> list[tuple[str, str, str]]:
    """(product, port, model) of every output port."""
    return [
        (p.id, port.name, port.model)
        for p in registry.products.values()
        for port in p.spec.output_ports
    ]


def _kind(connection: duckdb.DuckDBPyConnection, schema: str, name: str) -> str | None:
    row = connection.execute(
        "select table_type from information_schema.tables where table_schema = ? "
        "and table_name = ?",
        [schema, name],
    ).fetchone()
    return str(row[0]) if row else None


def _view_sql(connection: duckdb.DuckDBPyConnection, schema: str, name: str) -> str:
    row = connection.execute(
        "select sql from duckdb_views() where schema_name = ? and view_name = ?", [schema, name]
    ).fetchone()
    return str(row[0]) if row else ""


def _count(connection: duckdb.DuckDBPyConnection, schema: str, name: str) -> int:
    row = connection.execute(f"select count(*) from {relation(schema, name)}").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.slow
def test_f_and_f0_load_the_depot_and_publish_as_ddp_does(
    compiled: dict[str, Any], registry: Registry, demo_env: DemoEnv, tmp_path: Path
) -> None:
    landing = demo_env.data_dir / "landing"
    # dbt-duckdb's compiled SQL names the database by the file's stem, as ddp's does
    f_warehouse = tmp_path / "f" / "warehouse.duckdb"
    f0_warehouse = tmp_path / "f0" / "warehouse.duckdb"
    f = floor.execute(
        floor.order(
            [
                *floor.load_steps(registry, landing),
                *floor.dbt_steps(compiled),
                *floor.python_steps(registry),
            ]
        ),
        f_warehouse,
    )
    f0 = floor.execute(
        floor.order(
            [
                *floor.load_steps(registry, landing),
                *floor.dbt_steps(compiled, tests=False, versioned=False),
                *floor.python_steps(registry, versioned=False),
            ]
        ),
        f0_warehouse,
    )
    ports = _ports(registry)
    depot_ports = [
        (p.id, port)
        for p in registry.products.values()
        for port in p.spec.input_ports
        if isinstance(port, DepotInputPort)
    ]
    assert depot_ports, "the demo reads a depot (support_tickets); the floors must load it"
    assert f.counts["publish"] == f0.counts["publish"] == len(ports)
    assert f.counts.get("test", 0) > 0 and "test" not in f0.counts
    assert f.counts["load"] == f0.counts["load"]
    with sqlite3.connect(landing / HELPDESK_DB) as helpdesk:
        tickets = helpdesk.execute("select count(*) from tickets").fetchone()
    with (
        duckdb.connect(str(f_warehouse), read_only=True) as fc,
        duckdb.connect(str(f0_warehouse), read_only=True) as f0c,
    ):
        for product, port in depot_ports:
            assert tickets is not None and _count(fc, product, port.name) == tickets[0] > 0
        for product, port, model in ports:
            staging, version = staging_schema(product), version_table(port, 1)
            # F: the build renamed to version 1, the published and staging names views of it
            assert _kind(fc, staging, version) == "BASE TABLE", (product, port)
            assert _kind(fc, product, model) == _kind(fc, staging, model) == "VIEW"
            assert version in _view_sql(fc, product, model)
            # F0: no version, the published name a view of the staging build
            assert _kind(f0c, staging, version) is None
            assert _kind(f0c, staging, model) == "BASE TABLE"
            assert _count(fc, product, model) == _count(f0c, product, model)


@pytest.mark.slow
def test_b_prime_publishes_on_a_warehouse_ddp_published(
    compiled: dict[str, Any], registry: Registry, demo_env: DemoEnv, tmp_path: Path
) -> None:
    """B''s publish steps on a copy of the warehouse after ``ddp materialize``, where every
    published port is a view: each port becomes the next version ddp would give it."""
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copyfile(demo_env.data_dir / "warehouse.duckdb", warehouse)
    versions = floor.next_versions(warehouse)
    ports = _ports(registry)
    assert {(p, port) for p, port, _ in ports} <= set(versions)
    assert all(n >= 2 for n in versions.values())
    with duckdb.connect(str(warehouse)) as connection:
        rows = {}
        for product, _, model in ports:  # what B''s `dbt build` leaves: each port built again
            staging = staging_schema(product)
            assert _kind(connection, product, model) == "VIEW"
            rows[product, model] = _count(connection, product, model)
            connection.execute(f"drop view if exists {relation(staging, model)}")
            connection.execute(
                f"create table {relation(staging, model)} as "
                f"select * from {relation(product, model)}"
            )
    result = floor.execute(
        floor.order(
            [
                *floor.python_steps(registry, versions=versions),
                *floor.dbt_steps(compiled, build=False, publish=True, versions=versions),
            ]
        ),
        warehouse,
    )
    assert result.counts["publish"] == len(ports)
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        for product, port, model in ports:
            staging, number = staging_schema(product), versions[product, port]
            assert _kind(connection, staging, version_table(port, number)) == "BASE TABLE"
            # the version ddp published: a view of the port's store when partitioned
            previous = "VIEW" if registry.get(product).spec.partitions else "BASE TABLE"
            assert _kind(connection, staging, version_table(port, number - 1)) == previous
            assert version_table(port, number) in _view_sql(connection, product, model)
            assert version_table(port, number) in _view_sql(connection, staging, model)
            assert _count(connection, product, model) == rows[product, model]
