"""Versioned publish (issue 20): every publish is an immutable version made by a rename and a
view swap, a rollback is a pointer move, retention drops old versions but never the published
one, and a process killed at any moment of a publish or a rollback leaves every published
relation one of its retained versions, equal to the ledger, readable, with a rerun succeeding.

Real DuckDB files, a real PostgreSQL server, real processes killed with SIGKILL.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from ddp_assets.contracts.wap import (
    apply_retention,
    checksum,
    move_pointers,
    moves,
    publish,
    published_version,
    versions,
)
from ddp_assets.naming import staging_schema, version_schema, version_table
from ddp_assets.warehouse import warehouse_of
from ddp_assets.warehouse.base import relation_kind

ROOT = Path(__file__).resolve().parents[1]


def _build(connection, rows: int, factor: int = 1, product: str = "p", model: str = "m") -> None:
    """What dbt does for a port's model: a new table in staging, replacing what is there."""
    staging = staging_schema(product)
    connection.execute(f'create schema if not exists "{staging}"')
    kind = relation_kind(connection, staging, model)
    if kind == "view":
        connection.execute(f'drop view "{staging}"."{model}"')
    elif kind == "table":
        connection.execute(f'drop table "{staging}"."{model}"')
    source = (
        f"select range as id, range * {factor} as x from range({rows})"
        if warehouse_of(connection).kind == "duckdb"
        else f"select g as id, g * {factor} as x from generate_series(1, {rows}) as g"
    )
    connection.execute(f'create table "{staging}"."{model}" as {source}')


def _publish(connection, run_id: str, *, contract_version: str = "1.0.0", retain=None):
    return publish(
        connection,
        product="p",
        port="m",
        model="m",
        contract_id="urn:c",
        contract_version=contract_version,
        run_id=run_id,
        retain=retain,
    )


def test_publish_renames_the_build_into_a_version_and_swaps_a_view() -> None:
    connection = duckdb.connect()
    _build(connection, 1000)
    first = _publish(connection, "run-1")
    assert (first.version, first.product_version) == (1, 1)
    assert relation_kind(connection, "p", "m") == "view"
    # the build was renamed, not copied: staging keeps only a view of the version
    assert relation_kind(connection, version_schema("p"), version_table("m", 1)) == "table"
    assert relation_kind(connection, staging_schema("p"), "m") == "view"
    _build(connection, 10, factor=3)
    second = _publish(connection, "run-2")
    assert (second.version, second.product_version) == (2, 2)
    assert checksum(connection, "p", "m") == (second.rows, second.checksum) == (10, second.checksum)
    assert published_version(connection, "p", "m") == second
    tables = connection.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_type = 'BASE TABLE' and table_schema like 'p%' order by 2"
    ).fetchall()
    assert tables == [("p__staging", "m__v1"), ("p__staging", "m__v2")]
    # publishing again what staging shows (the view the publish left) makes no new version
    again = _publish(connection, "run-3")
    assert again.version == 2 and len(versions(connection, "p")) == 2


def test_rollback_and_roll_forward_are_pointer_moves_recorded_with_who_and_why() -> None:
    connection = duckdb.connect()
    published = []
    for run in range(3):
        _build(connection, 100 + run, factor=run + 1)
        published.append(_publish(connection, f"run-{run}"))
    moved = move_pointers(
        connection, "p", [("m", "m", 1)], action="rollback", actor="alice", reason="bad data"
    )
    assert [(before.version, after.version) for before, after in moved if before] == [(3, 1)]
    assert checksum(connection, "p", "m") == (published[0].rows, published[0].checksum)
    assert published_version(connection, "p", "m") == published[0]
    move_pointers(connection, "p", [("m", "m", 3)], action="rollback", actor="bob", reason="fixed")
    assert checksum(connection, "p", "m") == (published[2].rows, published[2].checksum)
    history = [
        (m.action, m.previous_version, m.version, m.actor, m.reason) for m in moves(connection, "p")
    ]
    assert history[-2:] == [
        ("rollback", 3, 1, "alice", "bad data"),
        ("rollback", 1, 3, "bob", "fixed"),
    ]
    with pytest.raises(LookupError, match="no retained version 9"):
        move_pointers(connection, "p", [("m", "m", 9)], action="rollback", actor="a", reason="")
    assert published_version(connection, "p", "m") == published[2]


def test_retention_drops_old_versions_but_never_the_published_one() -> None:
    connection = duckdb.connect()
    for run in range(4):
        _build(connection, 50, factor=run + 1)
        _publish(connection, f"run-{run}", retain=2)
    kept = [(int(v.version or 0), v.dropped_at is None) for v in versions(connection, "p", "m")]
    assert kept == [(1, False), (2, False), (3, True), (4, True)]
    for number, alive in kept:
        exists = relation_kind(connection, version_schema("p"), version_table("m", number))
        assert (exists == "table") == alive
    move_pointers(connection, "p", [("m", "m", 3)], action="rollback", actor="a", reason="")
    assert apply_retention(connection, "p", "m", 1) == []  # v4 newest, v3 published: both kept
    _build(connection, 50, factor=9)
    _publish(connection, "run-5", retain=1)
    alive = [v.version for v in versions(connection, "p", "m") if v.dropped_at is None]
    assert alive == [5]
    assert checksum(connection, "p", "m")[0] == 50


def test_retention_never_drops_a_version_a_consumer_pinned() -> None:
    connection = duckdb.connect()
    for run in range(5):
        _build(connection, 20, factor=run + 1)
        publish(
            connection,
            product="p",
            port="m",
            model="m",
            contract_id="urn:c",
            contract_version="1.0.0",
            run_id=f"run-{run}",
            retain=2,
            pinned=(2,),
        )
    alive = [v.version for v in versions(connection, "p", "m") if v.dropped_at is None]
    assert alive == [2, 4, 5]
    table = version_table("m", 2)
    assert relation_kind(connection, version_schema("p"), table) == "table"
    # once the pin is gone, the next retention drops it
    assert apply_retention(connection, "p", "m", 2) == [2]


def test_an_input_ports_pin_reaches_the_publish_asset(tmp_path: Path) -> None:
    import shutil

    from ddp_assets.contracts.port_asset import port_asset
    from ddp_assets.contracts.rollback import pinned_versions
    from ddp_assets.settings import ProjectPaths
    from ddp_assets.spec.registry import Registry

    defs = tmp_path / "defs"
    shutil.copytree(ROOT / "ddp_assets" / "defs", defs)
    spec = defs / "sales" / "orders" / "defs.yaml"
    text = spec.read_text(encoding="utf-8")
    pinned = text.replace(
        "      product: customers.customers\n", "      product: customers.customers\n      pin: 2\n"
    )
    assert pinned != text
    spec.write_text(pinned, encoding="utf-8")
    registry = Registry.load(defs, tmp_path)  # a project whose products live in tmp_path
    assert not registry.errors, registry.errors
    assert pinned_versions(registry, "customers", "customers") == {2: ["orders"]}
    customers = registry.get("customers")
    output = customers.spec.output_port("customers")
    assert output is not None
    assert port_asset(customers, output, ProjectPaths(tmp_path), registry).pinned == (2,)
    spec.write_text(pinned.replace("pin: 2", "pin: 0"), encoding="utf-8")
    broken = Registry.load(defs, tmp_path)
    assert any("pin" in str(problem) for problem in broken.errors)


def test_a_rollback_refreshes_the_consumers_as_a_publish_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consumer's automation condition (ddp's refresh on upstream change) requests a run
    after a rollback's announcement, as after a publish: a real Dagster instance and tick."""
    import dagster as dg

    from ddp_assets.contracts.rollback import rollback
    from ddp_assets.policies import automation_condition
    from ddp_assets.ports.rollbacks import announce
    from ddp_assets.ports.store import Store
    from ddp_assets.settings import ProjectPaths
    from ddp_assets.spec.registry import Registry

    monkeypatch.setenv("DDP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")  # the lineage: tests/test_time_travel.py
    paths = ProjectPaths(ROOT)
    registry = Registry.load(paths.defs_dir, paths.root)
    connection = duckdb.connect()
    for run in range(2):
        _build(connection, 10 + run, product="customers", model="customers")
        publish(
            connection,
            product="customers",
            port="customers",
            model="customers",
            contract_id="urn:ddp:sales:customers:customers",
            contract_version="1.0.0",
            run_id=f"run-{run}",
        )
    result = rollback(connection, registry, "customers", steps=1, actor="a", reason="bad")
    condition = automation_condition(registry.products["orders"].spec)
    assert condition is not None

    @dg.asset(key=["customers", "customers"])
    def upstream() -> None: ...

    @dg.asset(key=["orders", "orders"], deps=[upstream], automation_condition=condition)
    def consumer() -> None: ...

    with dg.instance_for_test() as instance:
        dg.materialize([upstream, consumer], instance=instance)
        first = dg.evaluate_automation_conditions(defs=[upstream, consumer], instance=instance)
        assert first.total_requested == 0
        store = Store.open(paths)
        try:
            announced = announce(paths, registry, result, instance, store)
        finally:
            store.close()
        assert announced.lineage == "disabled"
        after = dg.evaluate_automation_conditions(
            defs=[upstream, consumer], instance=instance, cursor=first.cursor
        )
        assert after.total_requested == 1
        assert after.get_requested_partitions(dg.AssetKey(["orders", "orders"])) == {None}


def test_a_table_published_by_the_former_copy_is_replaced_by_the_view(tmp_path: Path) -> None:
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    connection.execute("create schema p; create table p.m as select 1 as id, 2 as x")
    connection.execute("create schema q; create view q.reader as select * from p.m")
    _build(connection, 5)
    version = _publish(connection, "run-1")
    assert relation_kind(connection, "p", "m") == "view"
    row = connection.execute("select count(*) from q.reader").fetchone()
    assert row is not None and row[0] == 5 == version.rows  # another product's view follows


@pytest.mark.slow
def test_postgres_publish_and_rollback_keep_consumers_views_bound(postgres_server) -> None:
    warehouse = postgres_server.warehouse("ddp_versions")
    with warehouse.writer() as connection:
        connection.execute("drop schema if exists p cascade")
        connection.execute("drop schema if exists p__staging cascade")
        connection.execute("drop schema if exists q cascade")
        connection.execute("drop schema if exists _ddp cascade")
        connection.execute("create schema p__staging")
        # a dbt build with a primary key: its index name must not block the next build
        connection.execute(
            "create table p__staging.m (id bigint primary key, x bigint); "
            "insert into p__staging.m select g, g from generate_series(1, 100) g"
        )
        first = _publish(connection, "run-1")
        connection.execute("create schema q; create view q.reader as select id, x from p.m")
        connection.execute("drop view p__staging.m")
        connection.execute(
            "create table p__staging.m (id bigint primary key, x bigint); "
            "insert into p__staging.m select g, g * 2 from generate_series(1, 7) g"
        )
        second = _publish(connection, "run-2")
        assert relation_kind(connection, "p", "m") == "view"
        row = connection.execute("select count(*), sum(x) from q.reader").fetchone()
        assert row is not None and (row[0], int(row[1])) == (7, 56)
        move_pointers(connection, "p", [("m", "m", 1)], action="rollback", actor="a", reason="")
        row = connection.execute("select count(*) from q.reader").fetchone()
        assert row is not None and row[0] == 100
        assert checksum(connection, "p", "m") == (first.rows, first.checksum)
        assert published_version(connection, "p", "m") == first
        assert second.checksum != first.checksum


# --- faults: SIGKILL at random moments of real publishes and rollbacks ------------------------

_PUBLISHER = textwrap.dedent(
    """
    import sys, duckdb
    from ddp_assets.contracts.wap import publish, published_version
    from tests.test_versioned_publish import _build
    path, start = sys.argv[1], int(sys.argv[2])
    connection = duckdb.connect(path)
    for run in range(start, start + 1000):
        _build(connection, 300_000, factor=run)
        publish(connection, product="p", port="m", model="m", contract_id="urn:c",
                contract_version="1.0.0", run_id=f"run-{run}", retain=3)
        print("published", run, flush=True)
    """
)

_ROLLER = textwrap.dedent(
    """
    import sys, duckdb
    from ddp_assets.contracts.wap import move_pointers, versions
    path = sys.argv[1]
    connection = duckdb.connect(path)
    retained = [v.version for v in versions(connection, "p", "m") if v.dropped_at is None]
    print("ready", flush=True)
    for step in range(100_000):
        move_pointers(connection, "p", [("m", "m", retained[step % len(retained)])],
                      action="rollback", actor="fault-test", reason=f"step {step}")
    """
)


def _consistent(path: Path) -> int:
    """Every invariant of a published port after a crash; returns its published version."""
    with duckdb.connect(str(path), read_only=True) as connection:
        current = published_version(connection, "p", "m")
        assert current is not None and current.version is not None
        retained = {v.version for v in versions(connection, "p", "m") if v.dropped_at is None}
        assert current.version in retained
        for number in retained:
            table = version_table("m", int(number or 0))
            assert relation_kind(connection, version_schema("p"), table) == "table"
        assert relation_kind(connection, "p", "m") == "view"
        assert checksum(connection, "p", "m") == (current.rows, current.checksum)
        row = connection.execute('select count(*) from "p"."m"').fetchone()
        assert row is not None and row[0] == current.rows
        return current.version


def _run_and_kill(script: str, path: Path, delay: float, *args: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(path), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    if script is _ROLLER:
        assert process.stdout.readline().strip() == "ready", process.stderr
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, process.stderr.read() if process.stderr else ""


@pytest.mark.slow
def test_publishes_killed_at_random_moments_leave_a_retained_version(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as connection:
        _build(connection, 1000)
        _publish(connection, "run-0")
    chooser = random.Random(20)
    seen = set()
    for kill in range(10):
        # from inside the first build to several publishes later (each is ~0.1-0.3 s)
        _run_and_kill(_PUBLISHER, path, chooser.uniform(0.6, 3.0), str(100 * (kill + 1)))
        seen.add(_consistent(path))
    assert len(seen) > 1, "no kill landed after a publish: the kills test nothing"
    with duckdb.connect(str(path)) as connection:  # a rerun succeeds
        _build(connection, 10, factor=7)
        rerun = _publish(connection, "rerun")
    assert _consistent(path) == rerun.version


@pytest.mark.slow
def test_rollbacks_killed_at_random_moments_leave_a_retained_version(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as connection:
        for run in range(3):
            _build(connection, 20_000, factor=run + 1)
            _publish(connection, f"run-{run}")
    chooser = random.Random(21)
    seen = set()
    for _ in range(10):
        _run_and_kill(_ROLLER, path, chooser.uniform(0.05, 1.0))
        seen.add(_consistent(path))
    assert len(seen) > 1, "every kill left the same version: the rollbacks never committed"
    with duckdb.connect(str(path)) as connection:  # a rerun succeeds
        move_pointers(connection, "p", [("m", "m", 3)], action="rollback", actor="a", reason="")
        _build(connection, 10, factor=7)
        rerun = _publish(connection, "rerun")
    assert _consistent(path) == rerun.version


# --- ddp versions / ddp rollback on the demo's customers and orders ----------------------------


def _ddp(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "ddp"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_ddp_rollback_moves_the_product_back_and_forward(tmp_path: Path) -> None:
    import csv
    import json

    import dagster as dg

    from ddp_assets.demo.generator import generate_landing_zone
    from ddp_assets.runtime.materialize import materialize
    from ddp_assets.settings import ProjectPaths

    data_dir, home = tmp_path / "data", tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_bytes((ROOT / "dagster.yaml").read_bytes())
    env = {
        **os.environ,
        "DDP_DATA_DIR": str(data_dir),
        "DAGSTER_HOME": str(home),
        "DDP_PROJECT_ROOT": str(ROOT),
    }
    paths = ProjectPaths(ROOT)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DDP_DATA_DIR", str(data_dir))
        patch.setenv("DAGSTER_HOME", str(home))
        generate_landing_zone(data_dir / "landing", scale=1_000)
        outcome = materialize(paths, ["customers", "orders"], log_level="ERROR")
        assert outcome.success, outcome.errors
        export = data_dir / "landing" / "customers" / "customers.csv"
        with export.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        for row in rows:
            row["country"] = "NL"  # every customer moved: a new version
        with export.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        outcome = materialize(paths, ["customers"], log_level="ERROR")
        assert outcome.success, outcome.errors

    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as connection:
        v1, v2 = versions(connection, "customers", "customers")
    assert (v1.version, v2.version, v1.product_version, v2.product_version) == (1, 2, 1, 2)

    listed = _ddp(env, "versions", "customers", "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert data["published"] == {"customers": 2}
    assert [pv["product_version"] for pv in data["product_versions"]] == [1, 2]

    back = _ddp(
        env, "rollback", "customers", "--steps", "1", "--reason", "moved customers", "--json"
    )
    assert back.returncode == 0, back.stderr
    (moved,) = json.loads(back.stdout)["ports"]
    assert (moved["from_version"], moved["to_version"]) == (2, 1)

    def published() -> tuple[int, str]:
        with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as connection:
            current = published_version(connection, "customers", "customers")
            assert current is not None
            assert checksum(connection, "customers", "customers") == (
                current.rows,
                current.checksum,
            )
            return int(current.version or 0), current.checksum

    assert published() == (1, v1.checksum)
    # the ports' audit log and Dagster's asset history have the move, with who and why
    audit = json.loads(_ddp(env, "audit", "customers", "--json").stdout)
    assert any(
        r["action"] == "rollback" and "moved customers" in (r["reason"] or "") for r in audit
    )
    instance = dg.DagsterInstance.from_config(str(home))
    event = instance.get_latest_materialization_event(dg.AssetKey(["customers", "customers"]))
    assert event is not None and event.asset_materialization is not None
    metadata = event.asset_materialization.metadata
    assert metadata["ddp/version"].value == 1
    assert metadata["ddp/rolled_back_from"].value == 2
    assert metadata["ddp/reason"].value == "moved customers"

    forward = _ddp(env, "rollback", "customers", "--to", "2")
    assert forward.returncode == 0, forward.stderr
    assert published() == (2, v2.checksum)

    # the team published a breaking contract version; moving across it breaks 'orders'
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as connection:
        publish(
            connection,
            product="customers",
            port="customers",
            model="customers",
            contract_id="urn:ddp:sales:customers:customers",
            contract_version="2.0.0",
            run_id="breaking",
        )
    refused = _ddp(env, "rollback", "customers", "--steps", "1")
    assert refused.returncode == 1
    assert "orders" in refused.stderr and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert published()[0] == 3
    forced = _ddp(env, "rollback", "customers", "--steps", "1", "--force", "--reason", "undo v2")
    assert forced.returncode == 0, forced.stderr
    assert published() == (2, v2.checksum)
    outside = _ddp(env, "rollback", "customers", "--to", "9")
    assert outside.returncode == 1 and "no product version 9" in outside.stderr
    shown = _ddp(env, "versions", "customers", "customers")
    assert shown.returncode == 0 and "v3" in shown.stdout and "undo v2" in shown.stdout


_PG_PUBLISHER = textwrap.dedent(
    """
    import sys
    from ddp_assets.contracts.wap import publish
    from ddp_assets.warehouse.postgres import PostgresSettings, PostgresWarehouse
    from tests.test_versioned_publish import _build
    host, port, user, dbname, start = sys.argv[1:6]
    warehouse = PostgresWarehouse(PostgresSettings(host, int(port), user, "", dbname))
    with warehouse.writer() as connection:
        for run in range(int(start), int(start) + 1000):
            _build(connection, 200_000, factor=run)
            publish(connection, product="p", port="m", model="m", contract_id="urn:c",
                    contract_version="1.0.0", run_id=f"run-{run}", retain=3)
            print("published", run, flush=True)
    """
)


def _first_publish(process: subprocess.Popen[str], timeout: float = 120.0) -> None:
    """Wait until the publisher has published once (its first line), however loaded the
    machine: a kill after that lands after a publish."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f"the publisher published nothing in {timeout:.0f} s"
    line = process.stdout.readline()
    assert line.startswith("published"), (line, process.stderr.read() if process.stderr else "")


@pytest.mark.slow
def test_postgres_publishes_killed_at_random_moments(postgres_server) -> None:
    warehouse = postgres_server.warehouse("ddp_versions_kill")
    with warehouse.writer() as connection:
        for schema in ("p", "p__staging", "_ddp"):
            connection.execute(f'drop schema if exists "{schema}" cascade')
        _build(connection, 100)
        _publish(connection, "run-0")
        connection.execute("create schema if not exists q")
        connection.execute("create or replace view q.reader as select * from p.m")
    chooser = random.Random(22)
    seen = set()
    for kill in range(10):
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _PG_PUBLISHER,
                postgres_server.host,
                str(postgres_server.port),
                postgres_server.user,
                "ddp_versions_kill",
                str(100 * (kill + 1)),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if kill % 2:  # after its first publish: inside a later build or publish
            _first_publish(process)
            time.sleep(chooser.uniform(0.0, 1.5))
        else:  # from its start: imports, the first build, or the first publish
            time.sleep(chooser.uniform(0.8, 3.0))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL, (
            process.stderr.read() if process.stderr else ""
        )
        with warehouse.reader() as connection:
            current = published_version(connection, "p", "m")
            assert current is not None and current.stored_as is not None
            store, table = current.stored_as.split(".", 1)
            assert relation_kind(connection, store, table) == "table"
            assert checksum(connection, "p", "m") == (current.rows, current.checksum)
            row = connection.execute("select count(*) from q.reader").fetchone()
            assert row is not None and row[0] == current.rows  # the consumer's view is bound
            seen.add(current.version)
    assert len(seen) > 1, "no kill landed after a publish: the kills test nothing"
    with warehouse.writer() as connection:  # a rerun succeeds (the server ended the sessions)
        _build(connection, 10, factor=7)
        rerun = _publish(connection, "rerun")
        assert published_version(connection, "p", "m") == rerun


def test_a_publish_handed_the_audits_checksum_records_it_and_reads_no_row() -> None:
    """``content=``: the row count and checksum the audit step computed of the staging table
    are what the ledger records (the rename keeps the bytes, so they are the version's); the
    publish itself reads no row: handed figures that are not the table's, it records them as
    given, which is why only the audit of the same table on the same writer may hand them."""
    connection = duckdb.connect()
    _build(connection, 5000, factor=7)
    audited = checksum(connection, staging_schema("p"), "m")
    first = publish(
        connection,
        product="p",
        port="m",
        model="m",
        contract_id="urn:c",
        contract_version="1.0.0",
        run_id="run-1",
        content=audited,
    )
    assert (first.rows, first.checksum) == audited
    assert checksum(connection, version_schema("p"), version_table("m", 1)) == audited
    assert published_version(connection, "p", "m") == first
    _build(connection, 10)
    second = publish(
        connection,
        product="p",
        port="m",
        model="m",
        contract_id="urn:c",
        contract_version="1.0.0",
        run_id="run-2",
        content=(3, "not-scanned"),
    )
    assert (second.rows, second.checksum) == (3, "not-scanned")  # recorded, no scan
    assert checksum(connection, "p", "m")[0] == 10


def test_a_python_ports_next_build_replaces_the_view_a_publish_left_in_staging() -> None:
    """A publish leaves ``<product>__staging.<model>`` a view of the version (the product's own
    models read it there); a Python model's next build writes its result over that view."""
    connection = duckdb.connect()
    _build(connection, 100)
    _publish(connection, "run-1")
    assert relation_kind(connection, staging_schema("p"), "m") == "view"
    connection.execute("select 1").fetchall()  # no unfinished result under the relation API
    result = connection.sql("select range as id, range * 2 as x from range(7)")
    warehouse_of(connection).write_result(connection, connection, result, staging_schema("p"), "m")
    assert relation_kind(connection, staging_schema("p"), "m") == "table"
    second = _publish(connection, "run-2")
    assert (second.version, second.rows) == (2, 7)
    assert connection.execute('select count(*) from "p"."m"').fetchone() == (7,)
