"""Promote (issue 21, environments.promote): an environment's versions published into prod.

- a partitioned port: only the partitions the environment built change in prod, the others keep
  prod's rows, and the new version's checksum (from the map) is its view's;
- one transaction: a port failing to publish leaves every port of the promote unpublished;
- prod's retention keeps the version an environment's views read until ``ddp env drop``.

The demo project's specs (the repository's own), a real DuckDB file and a real PostgreSQL
server; the builds are tables written here and published through the real publish functions
(what dbt and the publish asset do, without dbt).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from ddp_assets import environments
from ddp_assets.contracts import wap
from ddp_assets.contracts.partitioned import partition_map, publish_partitions
from ddp_assets.contracts.rollback import version_history
from ddp_assets.environments import working_in
from ddp_assets.naming import staging_schema
from ddp_assets.partitions import windows
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.errors import SpecErrors
from ddp_assets.spec.registry import Registry
from ddp_assets.warehouse import warehouse_for
from ddp_assets.warehouse.base import Warehouse, relation_kind

ROOT = Path(__file__).resolve().parents[1]
DDP = str(Path(sys.executable).parent / "ddp")
EVENTS = "usage_events__staging"  # prod's staging (and versions) schema of usage_events


def _day(n: int) -> str:
    return f"2026-01-{n:02d}"


@dataclass(frozen=True)
class Shop:
    paths: ProjectPaths
    warehouse: Warehouse
    registry: Registry

    def writer(self) -> AbstractContextManager[Any]:
        return self.warehouse.writer()


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.slow)])
def shop(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Shop]:
    for name in ("DDP_ENV", "DDP_PROJECT_ROOT", "DDP_DBT_TARGET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DDP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    if request.param == "postgres":
        server = request.getfixturevalue("postgres_server")
        dsn = urlparse(server.create_database(f"ddp_promote_{uuid.uuid4().hex[:8]}"))
        monkeypatch.setenv("DDP_DBT_TARGET", "postgres")
        monkeypatch.setenv("DDP_PG_HOST", dsn.hostname or "127.0.0.1")
        monkeypatch.setenv("DDP_PG_PORT", str(dsn.port or 5432))
        monkeypatch.setenv("DDP_PG_USER", dsn.username or "postgres")
        monkeypatch.setenv("DDP_PG_PASSWORD", dsn.password or "")
        monkeypatch.setenv("DDP_PG_DBNAME", dsn.path.lstrip("/"))
    paths = ProjectPaths(ROOT)
    warehouse = warehouse_for(paths)
    assert warehouse.kind == request.param
    registry = Registry.load(paths.defs_dir, paths.root)
    assert not registry.errors, registry.errors
    yield Shop(paths, warehouse, registry)


def _stage(connection: Any, schema: str, table: str, columns: str, values: list[str]) -> None:
    """What dbt leaves in staging: a table of these rows (SQL literals)."""
    kind = relation_kind(connection, schema, table)
    if kind is not None:
        connection.execute(f'drop {kind} "{schema}"."{table}"')
    connection.execute(f'create schema if not exists "{schema}"')
    connection.execute(f'create table "{schema}"."{table}" ({columns})')
    connection.execute(f'insert into "{schema}"."{table}" values {", ".join(values)}')


def _events(
    shop: Shop,
    connection: Any,
    days: list[int],
    run: str,
    *,
    count: int = 5,
    salt: int = 0,
    extra: bool = False,
) -> wap.PublishedVersion:
    """A partitioned run of usage_events over ``days``, published (in the current environment):
    ids ``e<day>-<i>``, so a day rebuilt keeps its keys; ``extra`` adds a column."""
    columns = "event_id varchar, occurred_at timestamp, x bigint" + (
        ", extra varchar" if extra else ""
    )
    values = [
        f"('e{d}-{i}', timestamp '{_day(d)} 00:00:{i:02d}', {i * (salt + d)}"
        + (", 'new'" if extra else "")
        + ")"
        for d in days
        for i in range(count)
    ]
    _stage(connection, staging_schema("usage_events"), "usage_events_clean", columns, values)
    spec = shop.registry.get("usage_events").spec
    return publish_partitions(
        connection,
        product="usage_events",
        port="events",
        model="usage_events_clean",
        column="occurred_at",
        windows=windows(spec, [_day(d) for d in days]),
        contract_id="urn:ddp:product:usage_events:events",
        contract_version="1.0.0",
        run_id=run,
        keys=[("event_id",)],
    )


def _plain(
    connection: Any, product: str, port: str, model: str, run: str, salt: int
) -> wap.PublishedVersion:
    """An unpartitioned build of a port, published (in the current environment)."""
    values = [f"({i}, 'row {i} of build {salt}')" for i in range(4)]
    _stage(connection, staging_schema(product), model, "id bigint, label varchar", values)
    return wap.publish(
        connection,
        product=product,
        port=port,
        model=model,
        contract_id=f"urn:ddp:product:{product}:{port}",
        contract_version="1.0.0",
        run_id=run,
    )


def _ddp(*args: str) -> subprocess.CompletedProcess[str]:
    """The command line, in this test's environment (warehouse, data folder)."""
    done = subprocess.run(
        [DDP, *args], cwd=ROOT, env=dict(os.environ), capture_output=True, text=True,
        check=False, timeout=300,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _day_rows(connection: Any, day: int, schema: str = "usage_events") -> list[tuple[Any, ...]]:
    """One day of a published usage_events view, in key order."""
    rows = connection.execute(
        f'select event_id, x from "{schema}"."usage_events_clean" '
        "where occurred_at >= cast(? as timestamp) and occurred_at < cast(? as timestamp) "
        "order by event_id",
        [f"{_day(day)} 00:00:00", f"{_day(day + 1)} 00:00:00"],
    ).fetchall()
    return [tuple(r) for r in rows]


def _ledger(connection: Any) -> list[tuple[Any, ...]]:
    rows = connection.execute(
        "select product, port, version, checksum, dropped_at from _ddp.published_versions "
        "order by product, port, version"
    ).fetchall()
    return [tuple(r) for r in rows]


def _rows(connection: Any, schema: str, table: str) -> list[tuple[Any, ...]]:
    rows = connection.execute(f'select * from "{schema}"."{table}" order by 1').fetchall()
    return [tuple(r) for r in rows]


def test_promote_publishes_the_environment_s_partitions_over_prod_s_others(shop: Shop) -> None:
    with shop.writer() as connection:
        _plain(connection, "customers", "customers", "customers", "prod-1", salt=0)
        first = _events(shop, connection, [1, 2, 3], "prod-1")
        before = {d: _day_rows(connection, d) for d in (1, 2, 3)}
    environments.create(shop.paths, "pr_p")
    with shop.writer() as connection, working_in("pr_p"):
        customers = _plain(connection, "customers", "customers", "customers", "env-1", salt=9)
        built = _events(shop, connection, [2], "env-1", count=8, salt=7)  # day 2 rebuilt
        assert built.version == 1 and built.rows == 8  # the environment's map: day 2 only
        rebuilt = _day_rows(connection, 2, "pr_p__usage_events")
    assert rebuilt != before[2] and len(rebuilt) == 8

    done = _ddp("promote", "pr_p", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    promoted = {(p["product"], p["port"]): p for p in json.loads(done.stdout)}
    events = promoted["usage_events", "events"]
    assert (events["version"], events["partitions"], events["rows"]) == (2, [_day(2)], 18)
    assert promoted["customers", "customers"]["version"] == 2
    assert promoted["customers", "customers"]["partitions"] is None
    with shop.writer() as connection:
        now = wap.published_version(connection, "usage_events", "events")
        assert now is not None and now.version == 2 and now.partitions_written == [_day(2)]
        # only day 2 changed in prod: days 1 and 3 are prod's rows, as they were
        assert _day_rows(connection, 1) == before[1] and _day_rows(connection, 3) == before[3]
        assert _day_rows(connection, 2) == rebuilt
        maps = partition_map(connection, "usage_events", "events", 2)
        assert [(m.partition, m.written_in, m.rows) for m in maps] == [
            (_day(1), 1, 5),
            (_day(2), 2, 8),
            (_day(3), 1, 5),
        ]
        # the ledger's checksum (summed from the map) is the checksum of the version's view
        assert now.stored_as == f"{EVENTS}.events__v2"
        assert wap.checksum(connection, EVENTS, "events__v2") == (now.rows, now.checksum)
        assert wap.checksum(connection, "usage_events", "usage_events_clean") == (
            now.rows,
            now.checksum,
        )
        # the store got the environment's batch once, nothing else; v1 reads as before
        stored = connection.execute(
            f'select _ddp_version, _ddp_partition, count(*) from "{EVENTS}"."events__parts" '
            "group by 1, 2 order by 1, 2"
        ).fetchall()
        assert [tuple(r) for r in stored] == [
            (1, _day(1), 5),
            (1, _day(2), 5),
            (1, _day(3), 5),
            (2, _day(2), 8),
        ]
        assert wap.checksum(connection, EVENTS, "events__v1") == (first.rows, first.checksum)
        # the unpartitioned port: one copy into prod's version table, same checksum
        plain = wap.published_version(connection, "customers", "customers")
        assert plain is not None and plain.stored_as == "customers__staging.customers__v2"
        assert relation_kind(connection, "customers__staging", "customers__v2") == "table"
        assert wap.checksum(connection, "customers__staging", "customers__v2") == (
            customers.rows,
            customers.checksum,
        )
        assert (plain.rows, plain.checksum) == (customers.rows, customers.checksum)
        # the environment keeps its own versions
        with working_in("pr_p"):
            assert wap.published_version(connection, "usage_events", "events") == built
            assert wap.checksum(connection, "pr_p__usage_events__staging", "events__v1") == (
                built.rows,
                built.checksum,
            )
        ledger = _ledger(connection)
    # promoted once: prod moved on since the environment was created, so a second is refused
    with pytest.raises(SpecErrors) as refused:
        environments.promote(shop.paths, "pr_p")
    assert "since `ddp env create`" in refused.value.problems[0].message
    with shop.writer() as connection:
        assert _ledger(connection) == ledger


def test_a_port_failing_to_publish_leaves_the_promote_s_other_ports_unpublished(
    shop: Shop,
) -> None:
    """customers publishes first in the promote's transaction, then usage_events is held back
    (another shape than prod's store): customers stays at prod's version too."""
    with shop.writer() as connection:
        published = _plain(connection, "customers", "customers", "customers", "prod-1", salt=0)
        _events(shop, connection, [1, 2], "prod-1")
        ledger = _ledger(connection)
        rows = _rows(connection, "customers", "customers")
        events = _rows(connection, "usage_events", "usage_events_clean")
    environments.create(shop.paths, "pr_a")
    with shop.writer() as connection, working_in("pr_a"):
        _plain(connection, "customers", "customers", "customers", "env-1", salt=5)
        _events(shop, connection, [2], "env-1", extra=True)
    assert environments.get(shop.paths, "pr_a").built == ["customers", "usage_events"]

    with pytest.raises(SpecErrors) as refused:
        environments.promote(shop.paths, "pr_a")
    message = refused.value.problems[0].message
    assert "nothing was published" in message and "'usage_events.events'" in message
    assert "added: extra" in message, message
    refused_again = _ddp("promote", "pr_a")  # the command line: a located error with a hint
    assert refused_again.returncode == 1 and "hint:" in refused_again.stderr
    assert "nothing was published" in refused_again.stderr
    with shop.writer() as connection:
        assert _ledger(connection) == ledger
        assert wap.published_version(connection, "customers", "customers") == published
        assert _rows(connection, "customers", "customers") == rows
        assert relation_kind(connection, "customers__staging", "customers__v2") is None
        assert _rows(connection, "usage_events", "usage_events_clean") == events
        moves = connection.execute("select count(*) from _ddp.version_moves").fetchone()
        assert moves is not None and moves[0] == 2


def test_two_unpartitioned_ports_are_promoted_together_or_not_at_all(shop: Shop) -> None:
    """orders.orders publishes first; orders.order_lines's version has gone from the
    environment: the promote fails and orders.orders stays at prod's version."""
    with shop.writer() as connection:
        _plain(connection, "customers", "customers", "customers", "prod-1", salt=0)
        orders = _plain(connection, "orders", "orders", "orders", "prod-1", salt=0)
        _plain(connection, "orders", "order_lines", "order_lines", "prod-1", salt=0)
        ledger = _ledger(connection)
    environments.create(shop.paths, "pr_o")
    with shop.writer() as connection, working_in("pr_o"):
        _plain(connection, "orders", "orders", "orders", "env-1", salt=3)
        lines = _plain(connection, "orders", "order_lines", "order_lines", "env-1", salt=3)
        assert lines.stored_as is not None
        # its views first (PostgreSQL keeps a table with dependent views), then the version
        connection.execute("drop view pr_o__orders__staging.order_lines")
        connection.execute("drop view pr_o__orders.order_lines")
        connection.execute(f"drop table {lines.stored_as}")
    with pytest.raises(SpecErrors) as refused:
        environments.promote(shop.paths, "pr_o")
    message = refused.value.problems[0].message
    assert "nothing was published" in message and "order_lines__v1" in message, message
    with shop.writer() as connection:
        assert _ledger(connection) == ledger
        assert wap.published_version(connection, "orders", "orders") == orders
        assert relation_kind(connection, "orders__staging", "orders__v2") is None


def test_retention_keeps_an_environment_s_base_version_until_the_environment_is_dropped(
    shop: Shop,
) -> None:
    with shop.writer() as connection:
        first = _plain(connection, "customers", "customers", "customers", "prod-1", salt=1)
        rows = _rows(connection, "customers", "customers")
    created = environments.create(shop.paths, "pr_r")
    assert [(p.product, p.base_version) for p in created.pointers] == [("customers", 1)]
    with shop.writer() as connection:
        for n in range(2, 6):  # retain 3 (the default): v1 would go at v4
            _plain(connection, "customers", "customers", "customers", f"prod-{n}", salt=n)
        kept = [
            (v.version, v.dropped_at is None)
            for v in wap.versions(connection, "customers", "customers")
        ]
        assert kept == [(1, True), (2, False), (3, True), (4, True), (5, True)]
        assert first.stored_as is not None
        assert relation_kind(connection, *first.stored_as.split(".")) == "table"
        assert _rows(connection, "pr_r__customers", "customers") == rows  # its view still reads
        history = version_history(connection, "customers")["customers"]
        assert [v["pinned_by"] for v in history] == [["environment pr_r"], [], [], [], []]
        # the pointers pin prod's versions: inside pr_r (its own ledger) they pin nothing
        assert wap.environment_pins(connection, "customers", "customers") == {1: ["pr_r"]}
        with working_in("pr_r"):
            assert wap.environment_pins(connection, "customers", "customers") == {}
    listed = _ddp("versions", "customers", "customers", "--json")  # says so too
    assert listed.returncode == 0, listed.stderr
    pinned = [v["pinned_by"] for v in json.loads(listed.stdout)["versions"]]
    assert pinned == [["environment pr_r"], [], [], [], []]
    environments.drop(shop.paths, "pr_r")
    with shop.writer() as connection:
        _plain(connection, "customers", "customers", "customers", "prod-6", salt=6)
        kept = [
            (v.version, v.dropped_at is None)
            for v in wap.versions(connection, "customers", "customers")
        ]
        assert kept == [(1, False), (2, False), (3, False), (4, True), (5, True), (6, True)]
        assert relation_kind(connection, *first.stored_as.split(".")) is None
