"""On a PostgreSQL warehouse ddp applies the ports' views and grants itself (no script by hand).

A throwaway server's database is the project's warehouse (``DDP_DBT_TARGET=postgres`` and the
``DDP_PG_*`` settings, as a deployment selects it): an approval makes the consumer's role read
the port's view at once, a revocation refuses it, a token's roles make its consumer a member of
them, a failed apply is a clear error that leaves the decision recorded and is retried by the
expiry sensor, two applies never interleave (the advisory lock), and after a publish of a new
version the port's view serves the new rows (the ``ddp_ports_refresh`` sensor re-applies it
when the publish dropped it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import dagster as dg
import duckdb
import psycopg
import pytest

from ddp_assets.ports import access, tokens
from ddp_assets.ports.policy import Consumer, policy_select, resolve
from ddp_assets.ports.postgres import APPLY_LOCK, apply_ports, pending_products
from ddp_assets.ports.refresh import ports_refresh_sensor
from ddp_assets.ports.serving import mask_salt
from ddp_assets.ports.store import Store
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.registry import Product, Registry
from ddp_assets.warehouse import warehouse_for
from ddp_assets.warehouse.postgres import PostgresWarehouse
from tests.test_ports_postgres import COLUMNS, ROWS, VIEW, as_role

pytestmark = [pytest.mark.slow, pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[1]
OWNER = "sales-data@example.com"
DATABASE = "access_apply"
GRANTEE = Consumer("pg-apply-grantee")
ANALYST = Consumer("pg-apply-analyst", ("analyst",))


@dataclass
class Project:
    ctx: access.AccessContext
    product: Product
    conn: Any

    def expected(self, consumer: Consumer, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """What the DuckDB policy engine gives ``consumer`` over ``rows`` (the project's salt)."""
        with duckdb.connect() as con:
            con.execute(f"create table people ({COLUMNS})")
            con.executemany("insert into people values (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            query, params = policy_select(
                resolve(self.product, "customers", consumer), "people", mask_salt(self.ctx.paths)
            )
            return sorted(con.execute(query, params).fetchall())


@pytest.fixture(scope="module")
def database(postgres_server: Any) -> Iterator[tuple[str, Any]]:
    """The published port as versioned publish leaves it: a view over the version's table."""
    dsn = postgres_server.create_database(DATABASE)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.prepare_threshold = None  # a column's type changes under a query: never prepared
        conn.execute("create schema customers")
        conn.execute(f"create table customers.customers__v1 ({COLUMNS})")
        with conn.cursor() as cursor:
            cursor.executemany(
                "insert into customers.customers__v1 values (%s, %s, %s, %s, %s, %s, %s, %s)",
                ROWS,
            )
        conn.execute("create view customers.customers as select * from customers.customers__v1")
        yield dsn, conn


def _target(monkeypatch: pytest.MonkeyPatch, dsn: str) -> None:
    url = urlparse(dsn)
    monkeypatch.setenv("DDP_DBT_TARGET", "postgres")
    monkeypatch.setenv("DDP_PG_HOST", url.hostname or "127.0.0.1")
    monkeypatch.setenv("DDP_PG_PORT", str(url.port or 5432))
    monkeypatch.setenv("DDP_PG_USER", url.username or "postgres")
    monkeypatch.setenv("DDP_PG_PASSWORD", url.password or "")
    monkeypatch.setenv("DDP_PG_DBNAME", DATABASE)
    monkeypatch.setenv("DDP_PG_SSLMODE", "disable")


@pytest.fixture
def project(
    database: tuple[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Project]:
    dsn, conn = database
    monkeypatch.setenv("DDP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DDP_ALERT_WEBHOOK", raising=False)
    _target(monkeypatch, dsn)
    conn.execute("drop schema if exists customers__ports cascade")  # each test from scratch
    paths = ProjectPaths(ROOT)
    assert isinstance(warehouse_for(paths), PostgresWarehouse)
    store = Store.open(paths)
    for consumer in (GRANTEE, ANALYST):
        tokens.issue(store, consumer.id, list(consumer.roles))
    registry = Registry.load(paths.defs_dir, paths.root)
    ctx = access.AccessContext(paths, registry, store)
    yield Project(ctx, registry.products["customers"], conn)
    store.close()


def _port_view(conn: Any) -> object:
    row = conn.execute("select to_regclass('customers__ports.customers')").fetchone()
    return row[0] if row else None


def test_approve_applies_at_once_and_revoke_refuses(project: Project) -> None:
    filed = access.request_access(
        project.ctx, "customers", ["customers"], consumer=GRANTEE.id, purpose="APAC and DE"
    )
    assert _port_view(project.conn) is None  # nothing applied yet

    access.approve(project.ctx, filed.id, approver=OWNER, rows=["country:in:DE,JP"])
    rows = as_role(project.conn, GRANTEE.id, VIEW)  # no script run by hand
    assert rows == project.expected(GRANTEE, ROWS)
    assert sorted(r[4] for r in rows) == ["DE", "JP"]
    assert all(len(r[3]) == 64 and "@" not in r[3] for r in rows)  # e-mail masked
    # the token's role: its consumer is a member of role:analyst, whose spec grant holds
    assert as_role(project.conn, ANALYST.id, VIEW) == project.expected(ANALYST, ROWS)
    assert len(as_role(project.conn, ANALYST.id, VIEW)) == len(ROWS)

    access.revoke(project.ctx, filed.id, by=OWNER, reason="project over")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_role(project.conn, GRANTEE.id, VIEW)
    assert as_role(project.conn, ANALYST.id, VIEW) == project.expected(ANALYST, ROWS)


def test_the_expiry_sweep_takes_the_grant_out_of_the_warehouse(project: Project) -> None:
    until = (datetime.now(UTC) + timedelta(seconds=3)).isoformat(timespec="seconds")
    filed = access.request_access(
        project.ctx,
        "customers",
        ["customers"],
        consumer=GRANTEE.id,
        purpose="a short look",
        until=until,
    )
    access.approve(project.ctx, filed.id, approver=OWNER)
    assert as_role(project.conn, GRANTEE.id, VIEW) == project.expected(GRANTEE, ROWS)
    time.sleep(max(0.0, (datetime.fromisoformat(until) - datetime.now(UTC)).total_seconds()) + 0.5)
    assert as_role(project.conn, GRANTEE.id, VIEW) == []  # on time, in the view itself

    sensor = access.expiry_sensor(project.ctx.registry, project.ctx.paths)
    with dg.instance_for_test() as instance:
        result = sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(result, dg.SkipReason)
    assert filed.id in (result.skip_message or "")
    assert access.get_request(project.ctx.store, filed.id).status == "expired"
    # re-applied: the grant is out of the view's definition and its GRANT gone
    definition = project.conn.execute(
        "select pg_get_viewdef('customers__ports.customers'::regclass)"
    ).fetchone()
    assert definition and GRANTEE.id not in definition[0]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_role(project.conn, GRANTEE.id, VIEW)


def test_a_failed_apply_is_a_clear_error_the_decision_stays_and_the_sensor_retries(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    filed = access.request_access(
        project.ctx, "customers", ["customers"], consumer=GRANTEE.id, purpose="bounce check"
    )
    port = os.environ["DDP_PG_PORT"]
    monkeypatch.setenv("DDP_PG_PORT", "1")  # nothing listens there
    with pytest.raises(access.AccessError) as raised:
        access.approve(project.ctx, filed.id, approver=OWNER)
    error = raised.value
    assert error.status == 503
    assert "recorded, but not yet in the warehouse" in error.message
    assert "applying the PostgreSQL ports of customers to postgres://" in error.message
    assert "cannot connect" in error.message and ":1/" in error.message
    assert "next apply retries" in (error.hint or "")
    assert access.get_request(project.ctx.store, filed.id).status == "approved"
    assert pending_products(project.ctx.store) == ["customers"]
    assert _port_view(project.conn) is None

    monkeypatch.setenv("DDP_PG_PORT", port)
    sensor = access.expiry_sensor(project.ctx.registry, project.ctx.paths)
    with dg.instance_for_test() as instance:
        result = sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(result, dg.SkipReason)
    assert "PostgreSQL ports re-applied: customers" in (result.skip_message or "")
    assert pending_products(project.ctx.store) == []
    assert as_role(project.conn, GRANTEE.id, VIEW) == project.expected(GRANTEE, ROWS)


def test_two_applies_do_not_interleave(project: Project, database: tuple[str, Any]) -> None:
    dsn, _ = database
    done: list[Any] = []
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(%s)", [APPLY_LOCK])
        worker = threading.Thread(
            target=lambda: done.append(
                apply_ports(project.ctx.paths, project.ctx.registry, project.ctx.store)
            )
        )
        worker.start()
        deadline = time.monotonic() + 30
        waiting = 0
        while time.monotonic() < deadline and not waiting:
            row = holder.execute(
                "select count(*) from pg_locks where locktype = 'advisory' and not granted"
            ).fetchone()
            waiting = row[0] if row else 0
            time.sleep(0.05)
        assert waiting == 1, "the second apply did not wait for the lock"
        assert not done
        assert _port_view(holder) is None  # nothing of the waiting apply is visible
        holder.execute("select pg_advisory_unlock(%s)", [APPLY_LOCK])
    worker.join(60)
    assert done and done[0] is not None and done[0].ports == [("customers", "customers")]
    assert as_role(project.conn, ANALYST.id, VIEW) == project.expected(ANALYST, ROWS)


def _publish(conn: Any, version: int, columns: str, rows: list[tuple[Any, ...]]) -> None:
    """A new version's table and ``customers.customers`` re-pointed at it (the warehouse's
    own publish step, :meth:`PostgresWarehouse.point_view`), as ``ddp materialize`` does."""
    table = f"customers__v{version}"
    conn.execute(f"create table customers.{table} ({columns})")
    with conn.cursor() as cursor:
        cursor.executemany(
            f"insert into customers.{table} values (%s, %s, %s, %s, %s, %s, %s, %s)", rows
        )
    warehouse = warehouse_for(ProjectPaths(ROOT))
    assert isinstance(warehouse, PostgresWarehouse)
    with warehouse.writer() as session:
        warehouse.point_view(session, "customers", "customers", "customers", table)


def test_a_publish_of_a_new_version_is_served_by_the_port_view(project: Project) -> None:
    # `ddp ports build` applies the views and grants to the warehouse
    built = subprocess.run(
        [str(Path(sys.executable).parent / "ddp"), "ports", "build"],
        env={**os.environ, "DDP_PROJECT_ROOT": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert "PostgreSQL port views and grants applied: 1 port(s)" in built.stdout
    assert as_role(project.conn, ANALYST.id, VIEW) == project.expected(ANALYST, ROWS)

    # same columns: the published view is replaced in place, the port's view stays bound
    newer = [(10 + r[0], *r[1:]) for r in ROWS]
    _publish(project.conn, 2, COLUMNS, newer)
    assert as_role(project.conn, ANALYST.id, VIEW) == project.expected(ANALYST, newer)

    # a changed column type drops the published view with the port's; the refresh sensor,
    # seeing the publish, applies the views again
    changed = COLUMNS.replace("customer_id bigint", "customer_id integer")
    latest = [(20 + r[0], *r[1:]) for r in ROWS]
    _publish(project.conn, 3, changed, latest)
    assert _port_view(project.conn) is None
    sensor = ports_refresh_sensor(project.ctx.registry, project.ctx.paths, 30)
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=dg.AssetKey(["customers", "customers"]))
        )
        result = sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(result, dg.SkipReason)
    assert "PostgreSQL port views applied: 1" in (result.skip_message or "")
    assert as_role(project.conn, ANALYST.id, VIEW) == project.expected(ANALYST, latest)
    project.conn.execute("drop view customers.customers cascade")
    project.conn.execute("create view customers.customers as select * from customers.customers__v1")
    for version in (2, 3):
        project.conn.execute(f"drop table customers.customers__v{version}")
