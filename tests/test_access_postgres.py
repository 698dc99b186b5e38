"""Approved access requests in the PostgreSQL compile of the policy (``ddp ports postgres``), on
a throwaway server: a grant from the grants store reaches the port's view with its row filter
and masking (the DuckDB answer, row for row), a revocation leaves it when the script runs
again, and an expiry stops it on time in the view itself, without running the script again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ddp_assets.ports import access, tokens
from ddp_assets.ports.policy import Consumer, PortError, resolve
from ddp_assets.ports.postgres import compile_port, consumer_statements, setup_statements
from ddp_assets.ports.store import Store
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.registry import Product, Registry
from tests.test_ports_postgres import COLUMNS, ROWS, SALT, VIEW, as_role, duckdb_answer

pytestmark = [pytest.mark.slow, pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[1]
OWNER = "sales-data@example.com"
CONSUMERS = (Consumer("pg-grantee"), Consumer("pg-brief"))


@dataclass
class Project:
    ctx: access.AccessContext
    product: Product
    conn: Any

    def apply(self) -> None:
        """Run the port's compiled script, as `ddp ports postgres | psql` does."""
        port, statements = compile_port(self.product, "customers")
        for statement in [
            *setup_statements(port.grantees, SALT),
            *consumer_statements(CONSUMERS),
            *statements,
        ]:
            self.conn.execute(statement)


@pytest.fixture(scope="module")
def database(postgres_server: Any) -> Iterator[Any]:
    dsn = postgres_server.create_database("access_grants")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create schema customers")
        conn.execute(f"create table customers.customers ({COLUMNS})")
        with conn.cursor() as cursor:
            cursor.executemany(
                "insert into customers.customers values (%s, %s, %s, %s, %s, %s, %s, %s)", ROWS
            )
        yield conn


@pytest.fixture
def project(database: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A grants store of its own (a fresh data dir), its consumers holding tokens."""
    monkeypatch.setenv("DDP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DDP_ALERT_WEBHOOK", raising=False)
    paths = ProjectPaths(ROOT)
    store = Store.open(paths)
    for consumer in CONSUMERS:
        tokens.issue(store, consumer.id, [])
    registry = Registry.load(paths.defs_dir, paths.root)
    ctx = access.AccessContext(paths, registry, store)
    return Project(ctx, registry.products["customers"], database)


def test_an_approved_grant_reaches_the_view_and_a_revocation_leaves_it(project: Project) -> None:
    project.apply()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_role(project.conn, "pg-grantee", VIEW)

    filed = access.request_access(
        project.ctx, "customers", ["customers"], consumer="pg-grantee", purpose="APAC and DE"
    )
    access.approve(project.ctx, filed.id, approver=OWNER, rows=["country:in:DE,JP"])
    project.apply()
    rows = as_role(project.conn, "pg-grantee", VIEW)
    assert rows == duckdb_answer(project.product, CONSUMERS[0])
    assert sorted(r[4] for r in rows) == ["DE", "JP"]
    assert all(len(r[3]) == 64 and "@" not in r[3] for r in rows)  # email masked

    # `ddp ports postgres` prints the same script: the stored grant in it
    script = subprocess.run(
        [str(Path(sys.executable).parent / "ddp"), "ports", "postgres"],
        env={**os.environ, "DDP_PROJECT_ROOT": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert script.returncode == 0, script.stderr
    assert "(pg_has_role(current_user, 'pg-grantee', 'MEMBER') and " in script.stdout
    assert 'grant select on "customers__ports"."customers" to "pg-grantee"' in script.stdout

    access.revoke(project.ctx, filed.id, by=OWNER, reason="project over")
    project.apply()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_role(project.conn, "pg-grantee", VIEW)


def test_an_expiry_stops_the_grant_in_the_view_on_time(project: Project) -> None:
    until = (datetime.now(UTC) + timedelta(seconds=5)).isoformat(timespec="seconds")
    filed = access.request_access(
        project.ctx,
        "customers",
        ["customers"],
        consumer="pg-brief",
        purpose="e-mail bounce check",
        columns=["email"],
        clearance=["restricted"],
        until=until,
    )
    access.approve(project.ctx, filed.id, approver=OWNER, reason="signed off")
    project.apply()
    rows = as_role(project.conn, "pg-brief", VIEW)
    assert rows == duckdb_answer(project.product, CONSUMERS[1])
    assert [r[3] for r in rows] == [r[3] for r in sorted(ROWS)]  # in clear while it holds

    time.sleep(max(0.0, (datetime.fromisoformat(until) - datetime.now(UTC)).total_seconds()) + 0.5)
    assert as_role(project.conn, "pg-brief", VIEW) == []  # the same view, not compiled again
    with pytest.raises(PortError):
        resolve(project.product, "customers", CONSUMERS[1])
