"""Every demo product builds end to end on the embedded default, with every check green."""

from __future__ import annotations

import os
import socket

import duckdb
import pytest

from ddp_assets.runtime.materialize import RunOutcome
from ddp_assets.spec.registry import Registry

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registry(demo_env) -> Registry:
    return Registry.load(demo_env.paths.defs_dir, demo_env.paths.root)


def test_every_product_succeeds(built_demo: RunOutcome, registry: Registry) -> None:
    assert built_demo.success
    assert {p.product for p in built_demo.products} == set(registry.products)
    for product in built_demo.products:
        assert product.status == "succeeded", product
        assert all(a.status == "materialized" for a in product.assets), product


def test_every_check_ran_and_passed(built_demo: RunOutcome) -> None:
    checks = [c for p in built_demo.products for a in p.assets for c in a.checks]
    assert len(checks) >= 10
    assert not built_demo.failed_checks


def test_output_ports_are_tables_with_rows(
    built_demo: RunOutcome, registry: Registry, demo_env
) -> None:
    from ddp_assets.contracts.wap import published_version

    with duckdb.connect(str(demo_env.paths.warehouse_path), read_only=True) as connection:
        for product in registry.products.values():
            for port in product.spec.output_ports:
                kind = connection.execute(
                    "select table_type from information_schema.tables "
                    "where table_schema = ? and table_name = ?",
                    [product.id, port.model],
                ).fetchone()
                assert kind is not None, f"{product.id}.{port.model} missing"
                # consumers read a view of the published version, an immutable table whatever
                # the port's build type (contracts/wap.py)
                assert kind[0] == "VIEW"
                version = published_version(connection, product.id, port.name)
                assert version is not None and version.stored_as is not None
                schema, table = version.stored_as.split(".", 1)
                stored = connection.execute(
                    "select table_type from information_schema.tables "
                    "where table_schema = ? and table_name = ?",
                    [schema, table],
                ).fetchone()
                # a partitioned port's version is a view of its store (contracts/partitioned.py)
                expected = "VIEW" if product.spec.partitions else "BASE TABLE"
                assert stored == (expected,), version.stored_as
                (rows,) = connection.execute(
                    f'select count(*) from "{product.id}"."{port.model}"'
                ).fetchone() or (0,)
                assert rows > 0, f"{product.id}.{port.model} is empty"


def test_landing_rows_arrive_in_raw_tables(built_demo: RunOutcome, demo_env) -> None:
    """The raw table holds exactly the rows of the files its latest load says it read
    (later tests may drop more files and reload, so the files come from that record)."""
    import dagster as dg

    event = dg.DagsterInstance.get().get_latest_materialization_event(
        dg.AssetKey(["orders", "raw_orders"])
    )
    assert event is not None and event.asset_materialization is not None
    recorded = event.asset_materialization.metadata["ddp/files"]
    names: list[str] = list(getattr(recorded, "value", recorded))  # type: ignore[arg-type]
    files = [str(demo_env.paths.landing_dir / name) for name in names]
    assert files
    with duckdb.connect(str(demo_env.paths.warehouse_path), read_only=True) as connection:
        (landing,) = connection.execute("select count(*) from read_csv(?)", [files]).fetchone() or (
            0,
        )
        (raw,) = connection.execute('select count(*) from "orders"."raw_orders"').fetchone() or (0,)
    assert landing == raw > 0


def test_runs_are_recorded_in_the_instance(built_demo: RunOutcome, demo_env) -> None:
    import dagster as dg

    instance = dg.DagsterInstance.get()
    run = instance.get_run_by_id(built_demo.run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags["ddp/command"] == "materialize"
    # the process that executed it, so that a later run can tell whether it died
    # (ddp_assets/runtime/orphans.py; the build ran in this test process)
    assert run.tags["ddp/pid"] == str(os.getpid())
    assert run.tags["ddp/host"] == socket.gethostname()


def test_output_ports_are_published_after_their_audit(
    built_demo: RunOutcome, registry: Registry, demo_env
) -> None:
    """Every port was built in staging, audited, and published with a recorded version."""
    import dagster as dg

    from ddp_assets.contracts.wap import checksum, latest_audit, published_version, staging_schema

    ports = {p.product: {a.asset: a for a in p.assets} for p in built_demo.products}
    with duckdb.connect(str(demo_env.paths.warehouse_path), read_only=True) as connection:
        for product in registry.products.values():
            for port in product.spec.output_ports:
                version = published_version(connection, product.id, port.name)
                assert version is not None, port
                # the demo build published it, or a later test's run republished it
                # (a run may fail elsewhere yet publish this port: its publish step succeeded)
                instance = dg.DagsterInstance.get()
                assert instance.get_run_by_id(version.run_id) is not None
                published = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=dg.AssetKey([product.id, port.model])),
                    limit=1000,
                ).records
                assert version.run_id in {record.run_id for record in published}, port
                assert (version.rows, version.checksum) == checksum(
                    connection, product.id, port.model
                )
                assert (
                    version.rows == checksum(connection, staging_schema(product.id), port.model)[0]
                )
                audit = latest_audit(connection, product.id, port.name)
                assert audit is not None and audit.passed
                asset = ports[product.id][f"{product.id}/{port.model}"]
                assert asset.status == "materialized"
                # the port's quality rules ran as checks on the publish asset, with their values
                for check in asset.checks:
                    assert "observed" in check.metadata and "threshold" in check.metadata


def test_a_whole_build_runs_in_a_few_steps(
    built_demo: RunOutcome, registry: Registry, demo_env
) -> None:
    """Write-audit-publish does not cost a step per port or per dbt layer.

    One step loads each product's landing files, one builds every dbt model with the audit and
    publish of the ports they build between its dbt rounds, one runs each Python model with its
    port's publish: every step costs its events, a writer-pool claim and a connection.
    """
    import dagster as dg

    from ddp_assets.naming import dbt_asset_name

    instance = dg.DagsterInstance.get()
    # the demo builds in three runs: the unpartitioned products it can, usage_events' days
    # (a partitioned product's own run), then the products that read usage_events
    assert len(built_demo.runs) == 3, built_demo.runs
    steps = {s.step_key for run in built_demo.runs for s in instance.get_run_step_stats(run)}
    partitioned = {dbt_asset_name(p.id) for p in registry.products.values() if p.spec.partitions}
    assert partitioned == {"ddp_dbt_usage_events"}
    landing = {
        f"{p.id}__landing"
        for p in registry.products.values()
        if any(port.type == "file" for port in p.spec.input_ports)
    }
    python = {f"{p.id}__{m.name}" for p in registry.products.values() for m in p.spec.python_models}
    # a depot port is a load of its own (dlt), one step per port
    depots = {
        f"{p.id}__{port.name}"
        for p in registry.products.values()
        for port in p.spec.input_ports
        if port.type == "depot"
    }
    assert landing and python and depots
    assert steps - {"ddp_dbt_models"} - partitioned <= landing | python | depots, steps
    # the demo's one Python model reads published ports and nothing dbt builds reads it back,
    # so the unpartitioned dbt work is one step (a step per run that has some) with its rounds
    # inside, and the partitioned product's its own
    assert "ddp_dbt_models" in steps and partitioned <= steps
    assert len(steps) == len(landing) + len(python) + len(depots) + 1 + len(partitioned)


@pytest.mark.parametrize(
    ("products", "hint"), [(["custmers"], "did you mean 'customers'?"), (["nope-x"], "customers")]
)
def test_a_selection_of_no_assets_is_refused_and_runs_nothing(
    demo_env, products: list[str], hint: str
) -> None:
    """An empty asset selection would run the whole job (every product republished)."""
    import dagster as dg

    from ddp_assets.runtime.materialize import materialize
    from ddp_assets.spec.errors import SpecErrors

    runs = dg.DagsterInstance.get().get_runs_count()
    with pytest.raises(SpecErrors) as caught:
        materialize(demo_env.paths, products, log_level="ERROR")
    (problem,) = caught.value.problems
    assert problem.field == "products" and problem.severity == "error"
    assert f"nothing to materialize for '{products[0]}'" in problem.message
    assert "no product of the asset graph is named so" in problem.message
    assert problem.hint and hint in problem.hint, problem.hint
    assert dg.DagsterInstance.get().get_runs_count() == runs  # nothing was run
