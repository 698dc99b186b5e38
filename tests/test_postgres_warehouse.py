"""The whole demo on the PostgreSQL warehouse target: configuration only, no code change.

A throwaway PostgreSQL server (``postgres_server``) gets a fresh database; the demo landing zone
is generated at small scale and ``ddp materialize --all`` runs in a subprocess whose only
difference from the embedded default is the environment: ``DDP_DBT_TARGET=postgres`` and the
``DDP_PG_*`` connection settings. Then the tests read PostgreSQL itself (psycopg), the run's
JSON outcome and the OpenLineage events.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psycopg
import pytest
from psycopg import sql

from ddp_assets.contracts.wap import staging_schema
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.registry import load_registry
from ddp_assets.warehouse.postgres import PostgresSettings, PostgresWarehouse
from tests.test_lineage_schemas import schema_errors

ROOT = Path(__file__).resolve().parents[1]
SCALE = 2_000
DATABASE = "ddp_pg_demo"
DAGSTER_DATABASE = "ddp_pg_demo_dagster"


@dataclass
class PostgresDemo:
    env: dict[str, str]
    data_dir: Path
    home: Path
    settings: PostgresSettings
    outcome: dict[str, Any]

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(autocommit=True, **self.settings.connect_kwargs())

    def materialize(self, *products: str) -> dict[str, Any]:
        """``ddp materialize`` in a subprocess with the Postgres target; its JSON outcome."""
        selection = list(products) or ["--all"]
        done = subprocess.run(
            [str(Path(sys.executable).parent / "ddp"), "materialize", *selection, "--json"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.stdout.strip(), done.stderr[-4000:]
        return json.loads(done.stdout[done.stdout.index("{") :])


def _assets(outcome: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["asset"]: a for p in outcome["products"] for a in p["assets"]}


@pytest.fixture(scope="module")
def pg_demo(postgres_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresDemo]:
    from ddp_assets.demo.generator import generate_landing_zone

    dsn = urlparse(postgres_server.create_database(DATABASE))
    data_dir = tmp_path_factory.mktemp("pg_data")
    home = tmp_path_factory.mktemp("pg_dagster_home")
    # the production instance as well: runs, events and checks in PostgreSQL (deploy/)
    shutil.copyfile(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    postgres_server.create_database(DAGSTER_DATABASE)
    generate_landing_zone(data_dir / "landing", scale=SCALE)
    env = {
        **os.environ,
        "DDP_DATA_DIR": str(data_dir),
        "DAGSTER_HOME": str(home),
        "DDP_PROJECT_ROOT": str(ROOT),
        # the whole difference from the embedded default: which dbt target, and where it is
        "DDP_DBT_TARGET": "postgres",
        "DDP_PG_HOST": dsn.hostname or "127.0.0.1",
        "DDP_PG_PORT": str(dsn.port or 5432),
        "DDP_PG_USER": dsn.username or "postgres",
        "DDP_PG_PASSWORD": dsn.password or "",
        "DDP_PG_DBNAME": DATABASE,
        "DAGSTER_PG_HOST": dsn.hostname or "127.0.0.1",
        "DAGSTER_PG_PORT": str(dsn.port or 5432),
        "DAGSTER_PG_USERNAME": dsn.username or "postgres",
        "DAGSTER_PG_PASSWORD": dsn.password or "",
        "DAGSTER_PG_DB": DAGSTER_DATABASE,
    }
    env.pop("OPENLINEAGE_URL", None)
    settings = PostgresSettings(
        host=env["DDP_PG_HOST"],
        port=int(env["DDP_PG_PORT"]),
        user=env["DDP_PG_USER"],
        password=env["DDP_PG_PASSWORD"],
        dbname=DATABASE,
    )
    demo = PostgresDemo(env, data_dir, home, settings, {})
    demo.outcome = demo.materialize()
    yield demo
    # The subprocess left dbt_project/models/_ddp written for the postgres target; the next
    # `prepare()` of the embedded default rewrites it (its fingerprint covers those files).


@pytest.mark.integration
@pytest.mark.slow
def test_every_product_builds_and_passes_its_contracts(pg_demo: PostgresDemo) -> None:
    outcome = pg_demo.outcome
    assert outcome["success"], outcome["errors"]
    assets = _assets(outcome)
    registry = load_registry(ProjectPaths(ROOT).defs_dir, ROOT)
    assert {p["product"] for p in outcome["products"]} == set(registry.products)
    assert all(a["status"] == "materialized" for a in assets.values()), [
        (k, a["status"]) for k, a in assets.items() if a["status"] != "materialized"
    ]
    checks = [(key, c) for key, a in assets.items() for c in a["checks"]]
    failed = [(key, c["name"]) for key, c in checks if not c["passed"]]
    assert not failed
    # the Dagster instance of that run is PostgreSQL too (deploy/dagster.yaml): the run and its
    # events are rows there, and no SQLite storage was created
    dagster_db: dict[str, Any] = {**pg_demo.settings.connect_kwargs(), "dbname": DAGSTER_DATABASE}
    with psycopg.connect(autocommit=True, **dagster_db) as connection:
        run = connection.execute(
            "select status from runs where run_id = %s", (outcome["run_id"],)
        ).fetchone()
        events = connection.execute(
            "select count(*) from event_logs where run_id = %s", (outcome["run_id"],)
        ).fetchone()
    assert run is not None and events is not None and events[0] > 0
    assert not list(pg_demo.home.rglob("*.db"))
    names = {c["name"] for _, c in checks}
    # the three layers ran: dbt tests (contract uniqueness), Soda rules and pandera
    assert "pandera_schema" in names
    assert any(name.startswith("unique_") for name in names), names
    assert any(name.endswith("_invalid_values") for name in names), names
    # every output port was audited and published (its publish asset materialized)
    for product in registry.products.values():
        for port in product.spec.output_ports:
            key = f"{product.id}/{port.model}"
            assert assets[key]["status"] == "materialized", key


@pytest.mark.integration
@pytest.mark.slow
def test_every_port_is_published_with_its_audit(pg_demo: PostgresDemo) -> None:
    registry = load_registry(ProjectPaths(ROOT).defs_dir, ROOT)
    warehouse = PostgresWarehouse(pg_demo.settings)
    with warehouse.reader() as connection:
        for product in registry.products.values():
            for port in product.spec.output_ports:
                staged = warehouse.checksum(connection, staging_schema(product.id), port.model)
                published = warehouse.checksum(connection, product.id, port.model)
                assert published == staged, f"{product.id}.{port.model}"
                assert published[0] > 0, f"{product.id}.{port.model} is empty"
                row = connection.execute(
                    "select rows, checksum from _ddp.published_versions "
                    "where product = ? and port = ? order by seq desc limit 1",
                    [product.id, port.name],
                ).fetchone()
                assert row is not None and (row[0], row[1]) == published
                audit = connection.execute(
                    "select passed, failed_checks from _ddp.audits "
                    "where product = ? and port = ? order by seq desc limit 1",
                    [product.id, port.name],
                ).fetchone()
                assert audit is not None and audit[0] is True and json.loads(audit[1]) == []
                kind = connection.execute(
                    "select table_type from information_schema.tables "
                    "where table_schema = ? and table_name = ?",
                    [product.id, port.model],
                ).fetchone()
                # a view of the published version, an immutable table (contracts/wap.py)
                assert kind == ("VIEW",), f"{product.id}.{port.model}: {kind}"
                stored = connection.execute(
                    "select table_type from information_schema.tables where "
                    "table_schema || '.' || table_name = (select stored_as from "
                    "_ddp.published_versions where product = ? and port = ? "
                    "order by seq desc limit 1)",
                    [product.id, port.name],
                ).fetchone()
                # a partitioned port's version is a view of its store (contracts/partitioned.py)
                expected = "VIEW" if product.spec.partitions else "BASE TABLE"
                assert stored == (expected,), f"{product.id}.{port.model}: {stored}"


@pytest.mark.integration
@pytest.mark.slow
def test_other_products_read_the_published_relations(pg_demo: PostgresDemo) -> None:
    """The SQL dbt ran on PostgreSQL: a model reads another product's port where it is
    published (``<product>.<model>``), never from that product's staging schema."""
    registry = load_registry(ProjectPaths(ROOT).defs_dir, ROOT)
    runs = ROOT / "dbt_project" / "target" / "postgres" / "runs"
    compiled = [
        path
        for run_id in pg_demo.outcome["runs"]  # the demo builds in three runs
        for folder in runs.glob(f"{run_id[:8]}-*")
        for path in (folder / "compiled").rglob("*.sql")
        if path.stem in registry.model_owner
    ]
    assert compiled, f"no compiled SQL of run {pg_demo.outcome['run_id']} under {runs}"
    reads: dict[str, set[str]] = {}
    for path in compiled:
        sql = path.read_text(encoding="utf-8")
        found = re.findall(rf'"{DATABASE}"\."(\w+)"\."(\w+)"', sql)
        reads.setdefault(path.stem, set()).update(f"{schema}.{table}" for schema, table in found)
    assert "customers.customers" in reads["daily_usage"], reads["daily_usage"]
    assert "orders.orders" in reads["customer_profile"], reads["customer_profile"]
    for model, relations in reads.items():
        owner = registry.model_owner[model]
        schemas = {r.split(".")[0] for r in relations}
        foreign = {x for x in schemas if x.endswith("__staging") and x != staging_schema(owner)}
        assert not foreign, f"{model} ({owner}) reads another product's staging: {foreign}"


@pytest.mark.integration
@pytest.mark.slow
def test_python_model_scores_every_customer(pg_demo: PostgresDemo) -> None:
    assets = _assets(pg_demo.outcome)
    pandera = {c["name"]: c for c in assets["customer_360/churn_scores"]["checks"]}
    assert pandera["pandera_schema"]["passed"]
    with pg_demo.connect() as connection:
        row = connection.execute(
            "select count(*), count(distinct customer_id), min(churn_score), max(churn_score), "
            "count(distinct model_version) from customer_360.churn_scores"
        ).fetchone()
        (customers,) = connection.execute(
            "select count(*) from customer_360.customer_profile"
        ).fetchone() or (0,)
    assert row is not None
    count, distinct, low, high, versions = row
    assert count == distinct == customers > 0
    assert 0 <= low <= high <= 1 and low < high
    assert versions == 1


@pytest.mark.integration
@pytest.mark.slow
def test_lineage_names_postgres_datasets(pg_demo: PostgresDemo, shared_spec: Path) -> None:
    lines = (pg_demo.home / "lineage" / "events.jsonl").read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines if line.strip()]
    assert events
    namespace = f"postgres://{pg_demo.settings.host}:{pg_demo.settings.port}"
    datasets = {
        (d["namespace"], d["name"])
        for e in events
        for d in (e.get("inputs") or []) + (e.get("outputs") or [])
    }
    warehouse = {name for ns, name in datasets if ns == namespace}
    assert f"{DATABASE}.customers.customers" in warehouse
    assert f"{DATABASE}.customers__staging.customers" in warehouse
    assert f"{DATABASE}.customer_360.churn_scores" in warehouse
    # the warehouse, the landing files and the demo depot's SQLite database (its file path)
    helpdesk = f"sqlite://{pg_demo.data_dir / 'landing' / 'helpdesk' / 'helpdesk.sqlite'}"
    assert {ns for ns, _ in datasets} == {namespace, "file", helpdesk}, {ns for ns, _ in datasets}
    sql = {
        e["job"]["facets"]["sql"]["dialect"] for e in events if "sql" in e["job"].get("facets", {})
    }
    assert sql == {"postgres"}
    # the dbt model of another product reads the published port
    build = next(
        e
        for e in events
        if e["job"]["name"] == "usage_metrics.staging.daily_usage" and e["eventType"] == "COMPLETE"
    )
    inputs = {d["name"] for d in build["inputs"]}
    assert f"{DATABASE}.customers.customers" in inputs, inputs
    errors = [
        error for event in events for error in schema_errors(event, shared_spec / "openlineage")
    ]
    assert not errors, errors[:10]


@pytest.mark.integration
@pytest.mark.slow
def test_failing_rows_are_sampled_in_postgres(pg_demo: PostgresDemo) -> None:
    """Soda's verdicts and ddp's failing-row samples (regex, duplicates) in PostgreSQL SQL."""
    from ddp_assets.contracts.compiler import compile_contract
    from ddp_assets.contracts.soda import run_quality

    product = load_registry(ProjectPaths(ROOT).defs_dir, ROOT).products["inventory"]
    plan = compile_contract(
        product.folder / "contracts" / "stock_levels.odcs.yaml", "stock_levels", ROOT
    )
    warehouse = PostgresWarehouse(pg_demo.settings)
    with warehouse.writer() as connection:
        connection.execute("drop schema if exists scratch cascade")
        connection.execute("create schema scratch")
        connection.execute(
            "create table scratch.stock_levels as select * from inventory.stock_levels "
            "union all (select * from inventory.stock_levels order by sku limit 3)"
        )
        connection.execute("update scratch.stock_levels set sku = 'bad sku' where on_hand = 0")
        results = {
            r.check_name: r for r in run_quality(connection, plan, "scratch", "stock_levels")
        }
    duplicates = next(r for r in results.values() if r.metric == "duplicateValues")
    assert not duplicates.passed and duplicates.blocking_failure
    assert duplicates.sample and all(row["duplicate_count"] > 1 for row in duplicates.sample)
    pattern = next(r for r in results.values() if r.column == "sku" and r.metric == "invalidValues")
    assert not pattern.passed
    assert pattern.sample and {row["sku"] for row in pattern.sample} == {"bad sku"}
    assert all(r.error is None for r in results.values()), [r.error for r in results.values()]


@pytest.mark.integration
@pytest.mark.slow
def test_rows_survive_the_copy_both_ways(pg_demo: PostgresDemo, tmp_path: Path) -> None:
    """Landing file → PostgreSQL (COPY FROM) → a Python model's DuckDB (COPY TO): the same
    values, including NULL vs empty string, quotes, commas, newlines, decimals, timestamps
    with time zone, booleans and nested values (as JSON)."""
    import duckdb

    landing = tmp_path / "odd.jsonl"
    rows = [
        {
            "id": 1,
            "text": "",
            "amount": "12.50",
            "seen_at": "2024-01-02T03:04:05+02:00",
            "ok": True,
            "nested": {"a": 1, "b": [1, 2]},
        },
        {"id": 2, "text": None, "amount": None, "seen_at": None, "ok": None, "nested": None},
        {
            "id": 3,
            "text": 'say "hi", then\nleave',
            "amount": "-0.01",
            "seen_at": "2024-12-31T23:59:59+00:00",
            "ok": False,
            "nested": {"a": 2, "b": []},
        },
    ]
    landing.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    query = (
        "select id, text, cast(amount as decimal(10,2)) as amount, "
        "cast(seen_at as timestamptz) as seen_at, ok, nested from read_json(?)"
    )
    with duckdb.connect() as duck:
        duck.execute("set timezone = 'UTC'")
        duck.execute(f"create table expected as {query.replace('?', repr(str(landing)))}")
        expected = duck.execute("select * exclude (nested) from expected order by id").fetchall()

        warehouse = PostgresWarehouse(pg_demo.settings)
        with warehouse.writer() as connection:
            warehouse._copy_from_duckdb(duck, "expected", connection, "scratch_copy", "odd")
            assert warehouse._columns(connection, "scratch_copy", "odd") == [
                ("id", "bigint"),
                ("text", "text"),
                ("amount", "numeric(10,2)"),
                ("seen_at", "timestamp with time zone"),
                ("ok", "boolean"),
                ("nested", "jsonb"),
            ]
            nested = connection.execute(
                "select nested from scratch_copy.odd order by id"
            ).fetchall()
            assert [n for (n,) in nested] == [r["nested"] for r in rows]
            with warehouse.python_session(connection) as session:
                session.execute("set timezone = 'UTC'")
                back = warehouse.python_input(session, connection, "scratch_copy", "odd")
                assert back.columns == ["id", "text", "amount", "seen_at", "ok", "nested"]
                got = back.project("id, text, amount, seen_at, ok").order("id").fetchall()
    assert got == expected
    assert got[0][1] == "" and got[1][1] is None  # an empty string stays one, NULL stays NULL


@pytest.mark.integration
@pytest.mark.slow
def test_failing_contract_keeps_the_published_table(pg_demo: PostgresDemo) -> None:
    """Write-audit-publish on PostgreSQL. Runs last: it changes the demo's landing data."""
    warehouse = PostgresWarehouse(pg_demo.settings)
    with warehouse.reader() as connection:
        before = warehouse.checksum(connection, "customers", "customers")
    path = pg_demo.data_dir / "landing" / "customers" / "customers.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        if int(row["customer_id"]) % 3 == 0:
            row["segment"] = "vip"  # not a valid segment: a rule of severity error
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    outcome = pg_demo.materialize("customers")
    assert not outcome["success"]
    assets = _assets(outcome)
    assert assets["customers/staging/customers"]["status"] == "materialized"
    assert assets["customers/customers"]["status"] == "failed"
    failed = {c["name"]: c for c in assets["customers/customers"]["checks"] if not c["passed"]}
    assert "vip" in failed["segment_invalid_values"]["metadata"]["failing_rows_sample"]
    assert any("held back" in error for error in outcome["errors"]), outcome["errors"]

    # the published table still passes its contract (`ddp contract test`: read-only, in-process
    # with the same environment as the subprocess)
    from ddp_assets.contracts.testing import run_contract_tests

    paths = ProjectPaths(ROOT)
    with pytest.MonkeyPatch.context() as patch:
        for name in ("DDP_DBT_TARGET", "DDP_PG_HOST", "DDP_PG_PORT", "DDP_PG_USER"):
            patch.setenv(name, pg_demo.env[name])
        patch.setenv("DDP_PG_DBNAME", DATABASE)
        product = load_registry(paths.defs_dir, ROOT).products["customers"]
        (tested,) = run_contract_tests(product, paths)
    assert tested.passed and tested.results, [r.summary() for r in tested.results]
    assert tested.published is not None
    assert tested.published["run_id"] == pg_demo.outcome["run_id"]

    with warehouse.reader() as connection:
        assert warehouse.checksum(connection, "customers", "customers") == before
        (bad,) = connection.execute(
            'select count(*) from "customers__staging"."customers" where segment = ?', ["vip"]
        ).fetchone()
        assert bad > 0
        (published_bad,) = connection.execute(
            'select count(*) from "customers"."customers" where segment = ?', ["vip"]
        ).fetchone()
        assert published_bad == 0
        audit = connection.execute(
            "select passed, failed_checks, run_id from _ddp.audits "
            "where product = 'customers' and port = 'customers' order by seq desc limit 1"
        ).fetchone()
        assert audit is not None and audit[0] is False
        assert json.loads(audit[1]) == ["segment_invalid_values"] and audit[2] == outcome["run_id"]
        version = connection.execute(
            "select run_id from _ddp.published_versions "
            "where product = 'customers' and port = 'customers' order by seq desc limit 1"
        ).fetchone()
        assert version is not None and version[0] == pg_demo.outcome["run_id"]


def test_profile_selects_the_warehouse(monkeypatch: pytest.MonkeyPatch) -> None:
    """The choice is configuration: the dbt profile, rendered from the environment."""
    from ddp_assets.warehouse import DuckDBWarehouse, WarehouseUnavailable, warehouse_for
    from ddp_assets.warehouse.config import WarehouseConfigError, dbt_target

    paths = ProjectPaths(ROOT)
    for name in ("DDP_DBT_TARGET", "DDP_PG_HOST", "DDP_PG_PORT", "DDP_PG_DBNAME"):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(warehouse_for(paths), DuckDBWarehouse)

    monkeypatch.setenv("DDP_DBT_TARGET", "postgres")
    monkeypatch.setenv("DDP_PG_HOST", "db.internal")
    monkeypatch.setenv("DDP_PG_PORT", "6543")
    monkeypatch.setenv("DDP_PG_DBNAME", "analytics")
    target = dbt_target(paths)
    assert target["type"] == "postgres" and target["port"] == 6543  # as_number, as in dbt
    warehouse = warehouse_for(paths)
    assert isinstance(warehouse, PostgresWarehouse)
    assert warehouse.namespace == "postgres://db.internal:6543"
    assert warehouse.database == "analytics"
    assert warehouse.location == "postgres://postgres@db.internal:6543/analytics"

    # a server that is not there: a message naming it and the settings, not a traceback
    monkeypatch.setenv("DDP_PG_HOST", "127.0.0.1")
    monkeypatch.setenv("DDP_PG_PORT", "1")
    unreachable = warehouse_for(paths)
    with pytest.raises(WarehouseUnavailable, match=r"127\.0\.0\.1:1/analytics.*DDP_PG_HOST"):
        unreachable.reader().__enter__()

    monkeypatch.setenv("DDP_DBT_TARGET", "snowflake")
    with pytest.raises(WarehouseConfigError, match="not an output of the profile"):
        warehouse_for(paths)


def test_contract_types_reach_dbt_in_the_target_dialect() -> None:
    from ddp_assets.warehouse.config import data_type_for
    from ddp_assets.warehouse.postgres import duckdb_type, pg_type

    assert data_type_for("double", "postgres") == "double precision"
    assert data_type_for("decimal(14,2)", "postgres") == "decimal(14,2)"
    assert data_type_for("double", "duckdb") == "double"
    # what landing files become in PostgreSQL, and Python model inputs back in DuckDB
    assert pg_type("DECIMAL(10,2)") == "numeric(10,2)"
    assert pg_type("TIMESTAMP WITH TIME ZONE") == "timestamp with time zone"
    assert pg_type("STRUCT(a INTEGER)") == "jsonb"
    assert duckdb_type("numeric(14,2)") == "DECIMAL(14,2)"
    assert duckdb_type("character varying(20)") == "VARCHAR"
    assert duckdb_type(pg_type("DOUBLE")) == "DOUBLE"


def _ddp_json(demo: PostgresDemo, *args: str) -> Any:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ddp"), *args, "--json"],
        cwd=ROOT,
        env=demo.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:] + done.stdout[-2000:]
    return json.loads(done.stdout[done.stdout.index("{") :])


@pytest.mark.integration
@pytest.mark.slow
def test_ports_serve_the_published_tables_of_postgres(pg_demo: PostgresDemo) -> None:
    """The serving snapshot and a consumer's SQL port are built from PostgreSQL, under policy."""
    assert pg_demo.outcome["success"], pg_demo.outcome["errors"]
    issued = _ddp_json(pg_demo, "token", "issue", "pg-analyst", "--role", "analyst")
    built = _ddp_json(pg_demo, "ports", "build")
    registry = load_registry(ProjectPaths(ROOT).defs_dir, ROOT)
    expected = {
        (product.id, port.name)
        for product in registry.products.values()
        for port in product.spec.output_ports
    }
    assert {(p["product"], p["port"]) for p in built["snapshot"]} == expected
    with pg_demo.connect() as connection:
        for served in built["snapshot"]:
            row = connection.execute(
                sql.SQL("select count(*) from {}").format(
                    sql.Identifier(served["product"], served["model"])
                )
            ).fetchone()
            assert row is not None and served["rows"] == row[0], served
        emails = {
            r[0] for r in connection.execute("select email from customers.customers").fetchall()
        }
    assert "pg-analyst" in built["sql_ports"]
    env_token = {**pg_demo.env, "DDP_TOKEN": issued["token"]}
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "ddp"),
            "ports",
            "sql",
            "select email from customers.customers limit 20",
            "--json",
        ],
        cwd=ROOT,
        env=env_token,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    rows = json.loads(done.stdout[done.stdout.index("{") :])["rows"]
    assert rows and not {r[0] for r in rows} & emails, "an analyst saw e-mail addresses in clear"


@pytest.mark.integration
@pytest.mark.slow
def test_postgres_policy_answers_as_the_sql_port(
    pg_demo: PostgresDemo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the Postgres warehouse, views + grants + RLS give a consumer the SQL port's rows."""
    from ddp_assets.ports.postgres import compile_registry, consumer_statements, view_schema
    from ddp_assets.ports.serving import mask_salt
    from ddp_assets.ports.store import Store
    from ddp_assets.ports.tokens import active_consumers

    assert pg_demo.outcome["success"], pg_demo.outcome["errors"]
    monkeypatch.setenv("DDP_DATA_DIR", str(pg_demo.data_dir))
    issued = _ddp_json(pg_demo, "token", "issue", "emea-sales")
    _ddp_json(pg_demo, "ports", "build")
    paths = ProjectPaths(ROOT)
    registry = load_registry(paths.defs_dir, ROOT)
    statements = compile_registry(registry, mask_salt(paths))
    statements += consumer_statements(active_consumers(Store.open(paths)))
    query = "select customer_id, country, email from {} order by customer_id"
    with pg_demo.connect() as connection:
        for statement in statements:
            connection.execute(statement)
        connection.execute(sql.SQL("set role {}").format(sql.Identifier("emea-sales")))
        through_postgres = connection.execute(
            sql.SQL(query).format(sql.Identifier(view_schema("customers"), "customers"))
        ).fetchall()
        connection.execute("reset role")
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "ddp"),
            "ports",
            "sql",
            query.format("customers.customers"),
            "--max-rows",
            "1000000",
            "--json",
        ],
        cwd=ROOT,
        env={**pg_demo.env, "DDP_TOKEN": issued["token"]},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    through_sql_port = json.loads(done.stdout[done.stdout.index("{") :])["rows"]
    assert through_postgres, "the EMEA consumer sees no customer"
    assert [[str(v) for v in row] for row in through_postgres] == [
        [str(v) for v in row] for row in through_sql_port
    ]
