"""Write-audit-publish per partition (issue 17, contracts/partitioned.py): a partitioned run
publishes only its partitions as a new version of the port, the other partitions stay exactly
as they were, a batch that does not fit its partitions is held back alone, rollback and
retention work on partitioned versions, and a publish killed with SIGKILL leaves the published
view equal to a version in the ledger.

Real DuckDB (in memory and files), real Soda through the publish asset, real processes killed.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from ddp_assets.contracts.partitioned import (
    HeldBack,
    digest,
    partition_map,
    publish_partitions,
)
from ddp_assets.contracts.rollback import version_history
from ddp_assets.contracts.wap import (
    apply_retention,
    checksum,
    latest_audit,
    move_pointers,
    published_version,
    versions,
)
from ddp_assets.naming import partition_store, staging_schema, version_schema, version_table
from ddp_assets.partitions import Window
from ddp_assets.warehouse.base import relation_kind

ROOT = Path(__file__).resolve().parents[1]
STORE = f'"{version_schema("p")}"."{partition_store("m")}"'


def _day(n: int) -> Window:
    return Window(f"2026-01-{n:02d}", datetime(2026, 1, n), datetime(2026, 1, n + 1))


def _build(connection, days, per: int = 5, salt: int = 0, extra: str = "") -> None:
    """What dbt does in a partitioned run: staging holds only the rows of the run's days (ids
    ``e<day>-<i>``, so a day rebuilt keeps its keys), plus ``extra`` rows (SQL) if any."""
    staging = staging_schema("p")
    connection.execute(f'create schema if not exists "{staging}"')
    kind = relation_kind(connection, staging, "m")
    if kind is not None:
        connection.execute(f'drop {kind} "{staging}"."m"')
    parts = [
        f"select 'e{d}-' || range as id, timestamp '2026-01-{d:02d}' + range * interval 1 second "
        f"as at, range * {salt + d} as x from range({per})"
        for d in days
    ] or ["select 'none' as id, timestamp '2026-01-01' as at, 0 as x where false"]
    connection.execute(
        f'create table "{staging}"."m" as ' + " union all ".join(parts) + (extra or "")
    )


def _publish(connection, windows, run_id: str, *, retain=None, pinned=()):
    return publish_partitions(
        connection,
        product="p",
        port="m",
        model="m",
        column="at",
        windows=windows,
        contract_id="urn:c",
        contract_version="1.0.0",
        run_id=run_id,
        keys=[("id",)],
        retain=retain,
        pinned=pinned,
    )


def _slice(connection, day: int) -> tuple[int, str]:
    """Rows and checksum of one day of the published view."""
    window = _day(day).to_dict()
    row = connection.execute(
        "select count(*), coalesce(sum(hash(t)::hugeint), 0) from (select * from p.m "
        'where "at" >= cast(? as timestamp) and "at" < cast(? as timestamp)) as t',
        [window["start"], window["end"]],
    ).fetchone()
    assert row is not None
    return int(row[0]), digest(int(row[1]))


def _store(connection) -> list[tuple[int, str, int]]:
    return connection.execute(
        f"select _ddp_version, _ddp_partition, count(*) from {STORE} group by all order by all"
    ).fetchall()


def _map(connection, version: int) -> list[tuple[str, int, int]]:
    return [
        (m.partition, m.written_in, m.rows) for m in partition_map(connection, "p", "m", version)
    ]


def test_late_data_replaces_only_its_partition() -> None:
    connection = duckdb.connect()
    _build(connection, [1])
    first = _publish(connection, [_day(1)], "run-1")
    _build(connection, [2])
    second = _publish(connection, [_day(2)], "run-2")
    day2 = _slice(connection, 2)
    assert (second.rows, _map(connection, 2)) == (10, [("2026-01-01", 1, 5), ("2026-01-02", 2, 5)])
    _build(connection, [1], per=8, salt=3)  # late data for day 1: more rows, other values
    third = _publish(connection, [_day(1)], "run-3")
    assert [v.version for v in (first, second, third)] == [1, 2, 3]
    assert [v.product_version for v in (first, second, third)] == [1, 2, 3]
    assert _slice(connection, 2) == day2  # day 2 untouched
    assert _slice(connection, 1)[0] == 8
    assert _map(connection, 3) == [("2026-01-01", 3, 8), ("2026-01-02", 2, 5)]
    # the ledger's checksum, from the map, is the checksum of the whole published view
    assert checksum(connection, "p", "m") == (third.rows, third.checksum) == (13, third.checksum)
    for version in (first, second, third):  # every retained version reads as it was published
        stored = version.stored_as
        assert stored == f"p__staging.{version_table('m', int(version.version or 0))}"
        assert stored is not None
        assert checksum(connection, *stored.split(".")) == (version.rows, version.checksum)
    assert published_version(connection, "p", "m") == third
    assert third.partitions_written == ["2026-01-01"] and third.partitioned
    # the store got each batch once: nothing of history was copied
    assert _store(connection) == [(1, "2026-01-01", 5), (2, "2026-01-02", 5), (3, "2026-01-01", 8)]
    # staging's model is now a view of the published version (the product's tests read it)
    assert relation_kind(connection, staging_schema("p"), "m") == "view"
    assert checksum(connection, staging_schema("p"), "m") == (13, third.checksum)
    listed = version_history(connection, "p")["m"]
    assert [(v["version"], v["state"], v["partitions"]) for v in listed] == [
        (1, "retained", ["2026-01-01"]),
        (2, "retained", ["2026-01-02"]),
        (3, "published", ["2026-01-01"]),
    ]
    # publishing again what staging shows (the view the publish left) makes no new version
    assert _publish(connection, [_day(1)], "run-4") == third
    assert len(versions(connection, "p", "m")) == 3 and len(_store(connection)) == 3


def test_rows_outside_the_run_s_windows_hold_the_port_back_alone() -> None:
    connection = duckdb.connect()
    _build(connection, [1, 2])
    before = _publish(connection, [_day(1), _day(2)], "run-1")
    stored = _store(connection)
    _build(
        connection,
        [2],
        salt=5,
        extra=" union all select 'x1', timestamp '2026-01-09 10:00', 1"
        " union all select 'x2', null, 2",
    )
    with pytest.raises(HeldBack) as refused:
        _publish(connection, [_day(2)], "run-2")
    message = refused.value.message
    assert refused.value.check == "ddp_partition_bounds"
    for part in (
        "'p.m'",
        "2 row(s)",
        "[2026-01-02 00:00:00, 2026-01-03 00:00:00)",
        "at from 2026-01-09 10:00:00 to 2026-01-09 10:00:00",
        "1 with at null",
        "{{ ddp_partition_filter('at') }}",
        "landing file",
    ):
        assert part in message, (part, message)
    # nothing moved: the published version, its rows, the store, the ledger; staging is the build
    assert published_version(connection, "p", "m") == before
    assert checksum(connection, "p", "m") == (before.rows, before.checksum)
    assert _store(connection) == stored and len(versions(connection, "p", "m")) == 1
    assert relation_kind(connection, staging_schema("p"), "m") == "table"
    # the next run of the same partition, filtered, publishes
    _build(connection, [2], salt=5)
    assert _publish(connection, [_day(2)], "run-3").version == 2


def test_a_key_repeated_across_partitions_or_within_the_batch_is_held_back() -> None:
    connection = duckdb.connect()
    _build(connection, [1])
    before = _publish(connection, [_day(1)], "run-1")
    # e1-3 is live in day 1: day 2 may not publish it again
    _build(connection, [2], extra=" union all select 'e1-3', timestamp '2026-01-02 05:00', 7")
    with pytest.raises(HeldBack) as across:
        _publish(connection, [_day(2)], "run-2")
    assert across.value.check == "ddp_partition_keys"
    assert "key (id) = 'e1-3'" in across.value.message
    assert "already published in partition 2026-01-01" in across.value.message
    _build(connection, [2], extra=" union all select 'e2-1', timestamp '2026-01-02 06:00', 7")
    with pytest.raises(HeldBack, match=r"key \(id\) = 'e2-1' occurs 2 times"):
        _publish(connection, [_day(2)], "run-3")
    assert published_version(connection, "p", "m") == before
    assert checksum(connection, "p", "m") == (before.rows, before.checksum)
    # a key moving between partitions rebuilt together is fine: both are replaced
    _build(connection, [1, 2])
    connection.execute(
        "update p__staging.m set \"at\" = timestamp '2026-01-02 05:00' where id = 'e1-3'"
    )
    moved = _publish(connection, [_day(1), _day(2)], "run-4")
    assert _map(connection, 2) == [("2026-01-01", 2, 4), ("2026-01-02", 2, 6)]
    assert checksum(connection, "p", "m") == (moved.rows, moved.checksum) == (10, moved.checksum)


def test_rollback_and_roll_forward_move_the_view_between_partition_maps() -> None:
    connection = duckdb.connect()
    published = []
    for run, (day, salt) in enumerate([(1, 0), (2, 0), (1, 4)]):
        _build(connection, [day], per=5 + run, salt=salt)
        published.append(_publish(connection, [_day(day)], f"run-{run}"))
    moved = move_pointers(
        connection, "p", [("m", "m", 2)], action="rollback", actor="alice", reason="late data bad"
    )
    assert [(b.version, a.version) for b, a in moved if b] == [(3, 2)]
    assert checksum(connection, "p", "m") == (published[1].rows, published[1].checksum)
    assert published_version(connection, "p", "m") == published[1]
    move_pointers(connection, "p", [("m", "m", 3)], action="rollback", actor="bob", reason="ok")
    assert checksum(connection, "p", "m") == (published[2].rows, published[2].checksum)
    # a publish after a rollback builds on the version consumers read
    move_pointers(connection, "p", [("m", "m", 2)], action="rollback", actor="a", reason="")
    _build(connection, [3])
    fourth = _publish(connection, [_day(3)], "run-4")
    assert _map(connection, 4) == [("2026-01-01", 1, 5), ("2026-01-02", 2, 6), ("2026-01-03", 4, 5)]
    assert checksum(connection, "p", "m") == (fourth.rows, fourth.checksum) == (16, fourth.checksum)


def test_retention_drops_old_rows_from_the_store_never_live_or_pinned_ones() -> None:
    connection = duckdb.connect()
    plan = [(1, 0), (2, 0), (1, 1), (1, 2), (3, 0)]  # day 1 rebuilt twice (late data)
    published = []
    for run, (day, salt) in enumerate(plan):
        _build(connection, [day], salt=salt)
        published.append(_publish(connection, [_day(day)], f"run-{run}", retain=2, pinned=(1,)))
    last = published[-1]
    alive = [v.version for v in versions(connection, "p", "m") if v.dropped_at is None]
    assert alive == [1, 4, 5]  # newest 2, and the pinned v1
    # v2's day-1 rows are v1's (pinned); v3's day 1 is read by no kept version: deleted
    assert _store(connection) == [
        (1, "2026-01-01", 5),
        (2, "2026-01-02", 5),
        (4, "2026-01-01", 5),
        (5, "2026-01-03", 5),
    ]
    for number in (2, 3):
        assert relation_kind(connection, "p__staging", version_table("m", number)) is None
        assert _map(connection, number) == []
    for version in versions(connection, "p", "m"):
        if version.dropped_at is None:
            assert version.stored_as is not None
            assert checksum(connection, *version.stored_as.split(".")) == (
                version.rows,
                version.checksum,
            )
    assert checksum(connection, "p", "m") == (last.rows, last.checksum)
    # the pin gone and the view rolled back to v4: v4 and v5 stay, v1 and its rows go
    move_pointers(connection, "p", [("m", "m", 4)], action="rollback", actor="a", reason="")
    assert apply_retention(connection, "p", "m", 1) == [1]
    assert _store(connection) == [(2, "2026-01-02", 5), (4, "2026-01-01", 5), (5, "2026-01-03", 5)]
    current = published_version(connection, "p", "m")
    assert current is not None and current.version == 4
    assert checksum(connection, "p", "m") == (current.rows, current.checksum)


def test_a_backfill_publishes_a_range_of_windows_as_one_version() -> None:
    connection = duckdb.connect()
    _build(connection, [1, 2, 3], per=4)
    backfill = _publish(connection, [_day(1), _day(2), _day(3)], "backfill")
    assert (backfill.version, backfill.rows) == (1, 12)
    assert backfill.partitions_written == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert _map(connection, 1) == [("2026-01-01", 1, 4), ("2026-01-02", 1, 4), ("2026-01-03", 1, 4)]
    assert checksum(connection, "p", "m") == (12, backfill.checksum)
    # rebuilt with day 2 empty now: day 2 disappears, days 1 and 3 are the new rows
    _build(connection, [1, 3], per=6, salt=1)
    again = _publish(connection, [_day(1), _day(2), _day(3)], "backfill-2")
    assert _map(connection, 2) == [("2026-01-01", 2, 6), ("2026-01-03", 2, 6)]
    assert checksum(connection, "p", "m") == (again.rows, again.checksum) == (12, again.checksum)
    assert _slice(connection, 2) == (0, digest(0))


def test_static_keys_partition_by_a_column_s_value() -> None:
    connection = duckdb.connect()
    connection.execute('create schema "p__staging"')

    def build(regions: list[str], per: int = 3) -> None:
        kind = relation_kind(connection, "p__staging", "m")
        if kind is not None:
            connection.execute(f"drop {kind} p__staging.m")
        rows = " union all ".join(
            f"select '{r}-' || range as id, '{r}' as region, range as x from range({per})"
            for r in regions
        )
        connection.execute(f"create table p__staging.m as {rows}")

    def publish(keys: list[str], run: str):
        return publish_partitions(
            connection,
            product="p",
            port="m",
            model="m",
            column="region",
            windows=[Window(k) for k in keys],
            contract_id="urn:c",
            contract_version="1.0.0",
            run_id=run,
            keys=[("id",)],
        )

    build(["emea", "amer"])
    publish(["emea", "amer"], "run-1")
    build(["emea"], per=5)
    second = publish(["emea"], "run-2")
    assert _map(connection, 2) == [("amer", 1, 3), ("emea", 2, 5)]
    assert checksum(connection, "p", "m") == (8, second.checksum)
    build(["apac"])
    with pytest.raises(HeldBack, match=r"3 row\(s\).*partitions amer.*region from apac"):
        publish(["amer"], "run-3")


def test_a_partitioned_version_reads_from_an_attached_warehouse(tmp_path: Path) -> None:
    """Time travel and the serving snapshot read a version by ``stored_as`` from the warehouse
    attached under another name: a partitioned version's view binds there too."""
    from ddp_assets.ports.versions import port_history

    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as connection:
        _build(connection, [1])
        first = _publish(connection, [_day(1)], "run-1")
        _build(connection, [2])
        second = _publish(connection, [_day(2)], "run-2")
        history = port_history(connection, "p", "m", second)
    assert history.copies == [("p__staging", "m__v1", "m__v1")]
    with duckdb.connect() as serving:
        serving.execute(f"attach '{path}' as wh (read_only)")
        row = serving.execute(
            "select count(*), sum(hash(t)::hugeint) from wh.p__staging.m__v1 as t"
        ).fetchone()
        assert row is not None and (int(row[0]), digest(int(row[1]))) == (1 * 5, first.checksum)
        assert serving.execute("select count(*) from wh.p.m").fetchone() == (second.rows,)


@pytest.mark.slow
def test_postgres_publishes_partitions_with_the_same_sql(postgres_server) -> None:
    """The same publish on PostgreSQL: late data, a hold-back, a rollback and retention, the
    ledger's checksum (from the map) equal to the published view's."""
    warehouse = postgres_server.warehouse("ddp_partitions")
    with warehouse.writer() as connection:
        for schema in ("p", "p__staging", "_ddp"):
            connection.execute(f'drop schema if exists "{schema}" cascade')
        connection.execute("create schema p__staging")

        def build(days: list[int], per: int = 5, salt: int = 0, extra: str = "") -> None:
            kind = relation_kind(connection, "p__staging", "m")
            if kind is not None:
                connection.execute(f"drop {kind} p__staging.m cascade")
            rows = " union all ".join(
                f"select 'e{d}-' || g as id, timestamp '2026-01-{d:02d}' + g * interval "
                f"'1 second' as at, g * {salt + d} as x from generate_series(0, {per - 1}) g"
                for d in days
            )
            connection.execute(f"create table p__staging.m as {rows}{extra}")

        build([1, 2])
        first = _publish(connection, [_day(1), _day(2)], "run-1")
        connection.execute("create schema q; create view q.reader as select * from p.m")
        build([1], per=8, salt=3)
        second = _publish(connection, [_day(1)], "run-2", retain=1)
        assert _map(connection, 2) == [("2026-01-01", 2, 8), ("2026-01-02", 1, 5)]
        assert (
            checksum(connection, "p", "m")
            == (second.rows, second.checksum)
            == (13, second.checksum)
        )
        row = connection.execute("select count(*) from q.reader").fetchone()
        assert row is not None and row[0] == 13  # a consumer's view stays bound
        build([2], extra=" union all select 'e1-1', timestamp '2026-01-02 03:00', 1")
        with pytest.raises(HeldBack, match="already published in partition 2026-01-01"):
            _publish(connection, [_day(2)], "run-3")
        assert published_version(connection, "p", "m") == second
        # retain 1: v1 dropped, its day-1 rows deleted, its day-2 rows (read by v2) kept
        assert [v.dropped_at is None for v in versions(connection, "p", "m")] == [False, True]
        rows = connection.execute(
            f"select _ddp_version, _ddp_partition, count(*) from {STORE} "
            "group by 1, 2 order by 1, 2"
        ).fetchall()
        assert rows == [(1, "2026-01-02", 5), (2, "2026-01-01", 8)]
        build([3])
        third = _publish(connection, [_day(3)], "run-4", retain=2)
        move_pointers(connection, "p", [("m", "m", 2)], action="rollback", actor="a", reason="")
        assert checksum(connection, "p", "m") == (second.rows, second.checksum)
        assert third.rows == 18 and first.rows == 10


# --- the publish asset: real Soda on a partitioned demo product ------------------------------


def test_the_publish_asset_publishes_the_run_s_partitions(tmp_path: Path) -> None:
    import dagster as dg

    from ddp_assets.contracts.port_asset import audit_and_publish_many, port_asset
    from ddp_assets.partitions import windows
    from ddp_assets.settings import ProjectPaths
    from ddp_assets.spec.registry import Registry

    defs = tmp_path / "defs"
    shutil.copytree(ROOT / "ddp_assets" / "defs", defs)
    spec = defs / "product" / "usage_events" / "defs.yaml"
    text = spec.read_text(encoding="utf-8")
    if "\n  partitions:" not in text:  # the demo's usage_events is daily-partitioned already
        spec.write_text(
            text.replace(
                "  input_ports:\n",
                "  partitions: {by: day, column: occurred_at, start: '2026-01-01'}\n"
                "  input_ports:\n",
                1,
            ),
            encoding="utf-8",
        )
    registry = Registry.load(defs, tmp_path)
    assert not registry.errors, registry.errors
    product = registry.get("usage_events")
    output = product.spec.output_port("events")
    assert output is not None and product.spec.partitions is not None
    asset = port_asset(product, output, ProjectPaths(tmp_path), registry)
    connection = duckdb.connect()
    connection.execute('create schema "usage_events__staging"')

    def build(day: int, count: int, extra: str = "") -> None:
        kind = relation_kind(connection, "usage_events__staging", "usage_events_clean")
        if kind is not None:
            connection.execute(f"drop {kind} usage_events__staging.usage_events_clean")
        connection.execute(
            "create table usage_events__staging.usage_events_clean as select "
            f"'evt-{day}' || lpad(range::varchar, 4, '0') as event_id, range as customer_id, "
            "'login' as event_type, cast(null as varchar) as feature, "
            f"timestamp '2026-01-{day:02d}' + range * interval 1 second as occurred_at, "
            f"date '2026-01-{day:02d}' as event_date, 10 as duration_ms from range({count})" + extra
        )

    build(1, 20)
    [first] = audit_and_publish_many(
        connection, [asset], "run-1", windows=windows(product.spec, ["2026-01-01"])
    )
    assert first.held_back is None, first.held_back
    materialized = [e for e in first.events if isinstance(e, dg.MaterializeResult)]
    assert materialized[0].metadata is not None
    assert materialized[0].metadata["ddp/partitions"] == dg.MetadataValue.json(["2026-01-01"])
    build(2, 30)
    [second] = audit_and_publish_many(
        connection, [asset], "run-2", windows=windows(product.spec, ["2026-01-02"])
    )
    assert second.held_back is None, second.held_back
    current = published_version(connection, "usage_events", "events")
    assert current is not None and current.rows == 50
    assert checksum(connection, "usage_events", "usage_events_clean") == (50, current.checksum)
    # a row of day 1 in day 2's build: held back, the audit records why, nothing changed
    build(
        2,
        30,
        " union all select 'evt-90000', 1, 'login', null, timestamp '2026-01-01 08:00', "
        "date '2026-01-01', 5",
    )
    [third] = audit_and_publish_many(
        connection, [asset], "run-3", windows=windows(product.spec, ["2026-01-02"])
    )
    assert third.held_back is not None
    assert "1 row(s)" in third.held_back and "No partition changed" in third.held_back
    assert "ddp_partition_filter('occurred_at')" in third.held_back
    audit = latest_audit(connection, "usage_events", "events")
    assert audit is not None and audit.failed_checks == ["ddp_partition_bounds"]
    assert published_version(connection, "usage_events", "events") == current
    # an unpartitioned run of the same port (no windows) still publishes as before
    build(3, 5)
    [plain] = audit_and_publish_many(connection, [asset], "run-4")
    assert plain.held_back is None
    after = published_version(connection, "usage_events", "events")
    assert after is not None and not after.partitioned and after.rows == 5


# --- faults: SIGKILL at random moments of partitioned publishes -------------------------------

_PUBLISHER = textwrap.dedent(
    """
    import random, sys, duckdb
    from tests.test_partitioned_publish import _build, _day, _publish
    path, seed = sys.argv[1], int(sys.argv[2])
    chooser = random.Random(seed)
    connection = duckdb.connect(path)
    for run in range(1000):
        first = chooser.randint(1, 5)
        days = list(range(first, min(first + chooser.randint(1, 3), 6)))
        _build(connection, days, per=60_000, salt=seed * 1000 + run)
        _publish(connection, [_day(d) for d in days], f"run-{seed}-{run}", retain=3)
        print("published", run, flush=True)
    """
)


def _consistent(path: Path) -> int:
    """After a crash: the published view is a retained ledger version, by checksum, and the
    store holds rows of committed versions only."""
    with duckdb.connect(str(path), read_only=True) as connection:
        current = published_version(connection, "p", "m")
        assert current is not None and current.version is not None and current.partitioned
        listed = versions(connection, "p", "m")
        retained = {v.version for v in listed if v.dropped_at is None}
        assert current.version in retained
        assert relation_kind(connection, "p", "m") == "view"
        assert checksum(connection, "p", "m") == (current.rows, current.checksum)
        live = partition_map(connection, "p", "m", current.version)
        assert sum(m.rows for m in live) == current.rows
        writers = {v for v, _, _ in _store(connection)}
        assert writers <= {v.version for v in listed}, "rows of an uncommitted publish"
        return current.version


@pytest.mark.slow
def test_partitioned_publishes_killed_at_random_moments_leave_a_ledger_version(
    tmp_path: Path,
) -> None:
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as connection:
        _build(connection, [1, 2, 3, 4, 5])
        _publish(connection, [_day(d) for d in range(1, 6)], "run-0")
    chooser = random.Random(17)
    seen = set()
    for kill in range(10):
        process = subprocess.Popen(
            [sys.executable, "-c", _PUBLISHER, str(path), str(kill + 1)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(chooser.uniform(2.0, 6.0))  # ~2.5 s to import, ~0.5 s a publish
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL, (
            process.stderr.read() if process.stderr else ""
        )
        seen.add(_consistent(path))
    assert len(seen) > 1, "no kill landed after a publish: the kills test nothing"
    with duckdb.connect(str(path)) as connection:  # a rerun succeeds
        _build(connection, [2], per=10, salt=7)
        rerun = _publish(connection, [_day(2)], "rerun")
    assert _consistent(path) == rerun.version
