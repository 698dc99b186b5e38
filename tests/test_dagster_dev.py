"""``ddp dev`` serves the real Dagster UI: drive it through its GraphQL API.

Starts webserver + daemon on a free port, lists the product groups, launches materializations
(two at once, to exercise the DuckDB writer pool through the run queue) and waits for success.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ddp_assets.spec.registry import Registry

pytestmark = [pytest.mark.slow, pytest.mark.integration]

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""
RUN_STATUS = """
query Status($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { status } ... on PythonError { message } }
}
"""
ASSET_NODES = "{ assetNodes { assetKey { path } groupName } }"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DagsterDev:
    def __init__(self, url: str):
        self.url = url
        self.client = httpx.Client(timeout=30)

    def query(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.client.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}
        )
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def launch(self, keys: list[list[str]]) -> str:
        params = {
            "selector": {
                "repositoryLocationName": "ddp",
                "repositoryName": "__repository__",
                "jobName": "__ASSET_JOB",
                "assetSelection": [{"path": key} for key in keys],
            },
            "mode": "default",
        }
        result = self.query(LAUNCH, {"params": params})["launchRun"]
        assert result["__typename"] == "LaunchRunSuccess", result
        return result["run"]["runId"]

    def wait(self, run_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        status = "?"
        while time.monotonic() < deadline:
            status = self.query(RUN_STATUS, {"runId": run_id})["runOrError"]["status"]
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                return status
            time.sleep(1)
        raise AssertionError(f"run {run_id} still {status} after {timeout}s")


@pytest.fixture(scope="module")
def dagster_dev(built_demo, demo_env) -> Iterator[DagsterDev]:
    port = free_port()
    log = demo_env.dagster_home / "dagster_dev.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "ddp"), "dev", "--port", str(port)],
            env=demo_env.env(),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = DagsterDev(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, log.read_text()[-4000:]
            try:
                nodes = server.query(ASSET_NODES)["assetNodes"]
                if nodes:
                    break
            except (httpx.HTTPError, AssertionError):
                pass
            assert time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(1)
        yield server
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def test_groups_are_the_products(dagster_dev: DagsterDev, demo_env) -> None:
    registry = Registry.load(demo_env.paths.defs_dir, demo_env.paths.root)
    nodes = dagster_dev.query(ASSET_NODES)["assetNodes"]
    groups = {node["groupName"] for node in nodes}
    assert groups == set(registry.products)


def test_launch_materialization_and_see_it_succeed(dagster_dev: DagsterDev) -> None:
    keys = [
        ["customers", "raw_customers"],
        ["customers", "stg_customers"],
        ["customers", "customers"],
    ]
    run_id = dagster_dev.launch(keys)
    assert dagster_dev.wait(run_id) == "SUCCESS"


def test_two_runs_launched_at_once_both_succeed(dagster_dev: DagsterDev) -> None:
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


LATEST = """
query Latest($key: AssetKeyInput!) {
  assetOrError(assetKey: $key) {
    __typename
    ... on Asset { assetMaterializations(limit: 1) { timestamp runId } }
  }
}
"""


def latest_materialization(server: DagsterDev, key: list[str]) -> float:
    result = server.query(LATEST, {"key": {"path": key}})["assetOrError"]
    events = result.get("assetMaterializations") or []
    return float(events[0]["timestamp"]) / 1000 if events else 0.0


def test_new_landing_file_ripples_to_downstream_products(dagster_dev: DagsterDev, demo_env) -> None:
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
            latest = latest_materialization(dagster_dev, key)
            if latest > threshold:
                done[name] = latest
        time.sleep(2)
    assert set(done) == set(watched), f"not refreshed in order: {set(watched) - set(done)}"
    latency = max(done.values()) - dropped
    (demo_env.dagster_home / "ripple_latency_seconds.txt").write_text(f"{latency:.1f}\n")
    print(f"file arrival → last downstream product published: {latency:.1f}s")
