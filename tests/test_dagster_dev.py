"""``ddp dev`` serves the real Dagster UI: drive it through its GraphQL API.

Starts webserver + daemon on a free port, lists the product groups, launches materializations
(two at once, to exercise the DuckDB writer pool through the run queue) and waits for success.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ddp_assets.runtime.webserver import DagsterUI
from ddp_assets.runtime.webserver import dagster_dev as start_dagster_dev
from ddp_assets.spec.registry import Registry

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def dagster_dev(built_demo, demo_env) -> Iterator[DagsterUI]:
    command = [str(Path(sys.executable).parent / "ddp"), "dev"]
    with start_dagster_dev(command, demo_env.env(), demo_env.dagster_home / "dev.log") as ui:
        yield ui


def test_starts_on_the_current_dagster_command_without_warnings(
    dagster_dev: DagsterUI, demo_env
) -> None:
    """`dg dev`, not the superseded `dagster dev`; no warning about the project's dagster.yaml."""
    log = (demo_env.dagster_home / "dev.log").read_text()
    assert "Serving dagster-webserver" in log
    assert "SupersessionWarning" not in log
    assert "dagster.yaml) in the current folder" not in log
    assert " - WARNING - " not in log.replace("\x1b[34m", "").replace("\x1b[0m", ""), log[-3000:]


def test_groups_are_the_products(dagster_dev: DagsterUI, demo_env) -> None:
    registry = Registry.load(demo_env.paths.defs_dir, demo_env.paths.root)
    nodes = dagster_dev.asset_nodes()
    groups = {node["groupName"] for node in nodes}
    assert groups == set(registry.products)


def test_launch_materialization_and_see_it_succeed(dagster_dev: DagsterUI) -> None:
    keys = [
        ["customers", "raw_customers"],
        ["customers", "stg_customers"],
        ["customers", "customers"],
    ]
    run_id = dagster_dev.launch(keys)
    assert dagster_dev.wait(run_id) == "SUCCESS"


def test_two_runs_launched_at_once_both_succeed(dagster_dev: DagsterUI) -> None:
    orders = [
        ["orders", "raw_orders"],
        ["orders", "raw_order_items"],
        ["orders", "stg_orders"],
        ["orders", "stg_order_items"],
        ["orders", "order_lines"],
        ["orders", "orders"],
    ]
    customers = [
        ["customers", "raw_customers"],
        ["customers", "stg_customers"],
        ["customers", "customers"],
    ]
    first = dagster_dev.launch(orders)
    second = dagster_dev.launch(customers)
    assert dagster_dev.wait(first) == "SUCCESS"
    assert dagster_dev.wait(second) == "SUCCESS"


def test_new_landing_file_ripples_to_downstream_products(dagster_dev: DagsterUI, demo_env) -> None:
    """Drop a file: the source product runs (landing sensor), then its consumers (automation)."""
    import duckdb

    watched = {
        "landing": ["orders", "raw_orders"],  # loaded by the landing sensor's run
        "source": ["orders", "orders"],
        "consumer": ["customer_360", "customer_profile"],
        "cross-domain consumer": ["supplier_performance", "stock_out_alerts"],
    }
    landing = demo_env.data_dir / "landing" / "orders"
    new_file = landing / "orders_late_batch.csv"
    with duckdb.connect() as connection:
        connection.execute(
            "copy (select order_id + 100000000 as order_id, customer_id, ordered_at, status, "
            f"channel from read_csv('{landing / 'orders.csv'}') limit 50) to '{new_file}' (header)"
        )
    dropped = time.time()
    # each step must come after the one it waits for: the landing load after the drop, the
    # source's publish after that load, the consumers after that publish (earlier, unrelated
    # refreshes do not count)
    after: dict[str, str | None] = {
        "landing": None,
        "source": "landing",
        "consumer": "source",
        "cross-domain consumer": "source",
    }
    # generous: two runs and two sensor ticks on a shared 2-core machine (~2 min when quiet)
    deadline = time.monotonic() + 900
    done: dict[str, float] = {}
    while time.monotonic() < deadline and len(done) < len(watched):
        for name, key in watched.items():
            prerequisite = after[name]
            if name in done or (prerequisite is not None and prerequisite not in done):
                continue
            threshold = dropped if prerequisite is None else done[prerequisite]
            latest = dagster_dev.latest_materialization(key)
            if latest > threshold:
                done[name] = latest
        time.sleep(2)
    assert set(done) == set(watched), f"not refreshed in order: {set(watched) - set(done)}"
    latency = max(done.values()) - dropped
    (demo_env.dagster_home / "ripple_latency_seconds.txt").write_text(f"{latency:.1f}\n")
    print(f"file arrival → last downstream product published: {latency:.1f}s")


def sensor_runs(ui: DagsterUI, product: str, after: float) -> list[dict[str, Any]]:
    """Runs the landing sensor started for a product since ``after`` (epoch seconds)."""
    return ui.runs(tags={"ddp/product": product}, after=after)


def wait_for_sensor_run(server: DagsterUI, product: str, after: float, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = sensor_runs(server, product, after)
        if runs and runs[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return runs[0]
        time.sleep(2)
    raise AssertionError(f"no finished landing run for {product} within {timeout}s")


def test_bad_landing_file_is_quarantined_and_starts_no_run(
    dagster_dev: DagsterUI, demo_env
) -> None:
    landing = demo_env.data_dir / "landing" / "inventory"
    bad = landing / "suppliers_bad.csv"
    dropped = time.time()
    bad.write_text("supplier_id,supplier_name,country,lead_time_days\n9001,Bad Co,not-a-code,3\n")
    deadline = time.monotonic() + 180
    while bad.exists() and time.monotonic() < deadline:
        time.sleep(1)
    assert not bad.exists(), "the landing sensor did not quarantine the file"
    notes = list((demo_env.data_dir / "quarantine" / "inventory").rglob("suppliers_bad.csv.*"))
    assert notes and "input contract" in json.loads(notes[0].read_text())["reason"]
    time.sleep(20)  # one more sensor tick: the remaining files are unchanged, so no run
    assert sensor_runs(dagster_dev, "inventory", dropped) == []


def test_failing_contract_stops_the_ripple(dagster_dev: DagsterUI, demo_env) -> None:
    """Orders whose ids repeat fail the orders contract: nothing is published downstream."""
    import duckdb

    from ddp_assets.contracts.wap import published_version
    from ddp_assets.warehouse import reader

    def published() -> object:
        with reader(demo_env.paths.warehouse_path) as connection:
            return published_version(connection, "orders", "orders")

    before = published()
    landing = demo_env.data_dir / "landing" / "orders"
    dupes = landing / "orders_replayed.csv"
    with duckdb.connect() as connection:  # ten orders sent again: order_id is no longer unique
        connection.execute(
            f"copy (select * from read_csv('{landing / 'orders.csv'}') limit 10) "
            f"to '{dupes}' (header)"
        )
    dropped = time.time()
    try:
        run = wait_for_sensor_run(dagster_dev, "orders", dropped, timeout=600)
        assert run["status"] == "FAILURE", run
        # give declarative automation a few ticks: nothing downstream may start
        time.sleep(45)
        assert published() == before, "the orders port was republished despite its contract"
        for key in (["orders", "orders"], ["customer_360", "customer_profile"]):
            assert dagster_dev.latest_materialization(key) < dropped, key
        assert dagster_dev.latest_materialization(["orders", "stg_orders"]) > dropped
    finally:
        dupes.unlink(missing_ok=True)
    # the good files again: the sensor reloads them and the product recovers
    recovered = wait_for_sensor_run(dagster_dev, "orders", time.time() - 1, timeout=600)
    assert recovered["status"] == "SUCCESS", recovered
