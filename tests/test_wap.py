"""Write-audit-publish: a failing contract, a failing SQL model or a killed run never touches the
published version (same rows, same checksum, still readable), and downstream products do not run.

Each test runs the real thing (Dagster, dbt, Soda, DuckDB) on a private data directory and
Dagster instance, so the shared demo of the other tests is never touched.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ddp_assets.contracts.wap import (
    checksum,
    latest_audit,
    publish,
    published_version,
    staging_schema,
)
from ddp_assets.runtime.materialize import RunOutcome, materialize
from ddp_assets.settings import ProjectPaths

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PRODUCTS = ["customers", "orders"]


class WapEnv:
    def __init__(self, paths: ProjectPaths, data_dir: Path, home: Path):
        self.paths = paths
        self.data_dir = data_dir
        self.home = home

    @property
    def customers_csv(self) -> Path:
        return self.data_dir / "landing" / "customers" / "customers.csv"

    def published(self) -> dict[str, tuple[int, str]]:
        """Rows and checksum of every published port of the two products (read-only)."""
        with duckdb.connect(str(self.paths.warehouse_path), read_only=True) as connection:
            return {
                f"{schema}.{table}": checksum(connection, schema, table)
                for schema, table in (
                    ("customers", "customers"),
                    ("orders", "orders"),
                    ("orders", "order_lines"),
                )
            }

    def rewrite_customers(self, change) -> None:
        """Rewrite the CRM export in place, with ``change(row)`` applied to every row."""
        with self.customers_csv.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        for row in rows:
            change(row)
        with self.customers_csv.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DDP_DATA_DIR": str(self.data_dir),
            "DAGSTER_HOME": str(self.home),
            "DDP_PROJECT_ROOT": str(ROOT),
        }


@pytest.fixture(scope="module")
def published_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Customers and orders built and published once; each test starts from a copy."""
    from ddp_assets.demo.generator import generate_landing_zone

    base = tmp_path_factory.mktemp("wap_template")
    data_dir, home = base / "data", base / "home"
    home.mkdir()
    (home / "dagster.yaml").write_bytes((ROOT / "dagster.yaml").read_bytes())
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DDP_DATA_DIR", str(data_dir))
        patch.setenv("DAGSTER_HOME", str(home))
        generate_landing_zone(data_dir / "landing", scale=1_000)
        outcome = materialize(ProjectPaths(ROOT), PRODUCTS, log_level="ERROR")
        assert outcome.success, outcome.errors or outcome.failed_checks
    return base


@pytest.fixture
def wap_env(published_template: Path, tmp_path: Path) -> Iterator[WapEnv]:
    """A private copy of the published warehouse, landing zone and Dagster instance."""
    import shutil

    shutil.copytree(published_template / "data", tmp_path / "data")
    shutil.copytree(published_template / "home", tmp_path / "home")
    data_dir, home = tmp_path / "data", tmp_path / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DDP_DATA_DIR", str(data_dir))
        patch.setenv("DAGSTER_HOME", str(home))
        yield WapEnv(ProjectPaths(ROOT), data_dir, home)


def _status(outcome: RunOutcome, asset: str) -> str:
    return next(a.status for p in outcome.products for a in p.assets if a.asset == asset)


def test_failing_contract_holds_the_new_version_back(wap_env: WapEnv) -> None:
    before = wap_env.published()
    # 'vip' is not a valid segment: the contract's invalidValues rule has severity error
    wap_env.rewrite_customers(
        lambda row: row.update(segment="vip") if int(row["customer_id"]) % 3 == 0 else None
    )
    outcome = materialize(wap_env.paths, PRODUCTS, log_level="ERROR")

    assert not outcome.success
    assert _status(outcome, "customers/staging/customers") == "materialized"
    assert _status(outcome, "customers/customers") == "failed"  # held back
    # orders reads the customers port: it does not run on the held-back build
    for downstream in ("orders/staging/orders", "orders/orders"):
        assert _status(outcome, downstream) == "skipped", downstream
    failed = {check.name: check for _, check in outcome.failed_checks}
    segment = failed["segment_invalid_values"]
    assert segment.severity == "ERROR"
    assert segment.metadata["observed"] > 0 and segment.metadata["threshold"] == "= 0"
    assert "vip" in segment.metadata["failing_rows_sample"]
    assert 0 < segment.metadata["failing_rows_sample_size"] <= 100
    assert any(
        "held back" in error and "segment_invalid_values" in error for error in outcome.errors
    )

    # the published version is exactly as it was, and still readable; staging has the bad rows
    assert wap_env.published() == before
    with duckdb.connect(str(wap_env.paths.warehouse_path), read_only=True) as connection:
        (bad,) = connection.execute(
            f'select count(*) from "{staging_schema("customers")}"."customers" '
            "where segment = 'vip'"
        ).fetchone() or (0,)
        assert bad > 0
        audit = latest_audit(connection, "customers", "customers")
        assert audit is not None and not audit.passed
        assert audit.failed_checks == ["segment_invalid_values"]
        version = published_version(connection, "customers", "customers")
        assert version is not None and version.run_id != outcome.run_id

    # Dagster shows which version is published: the asset's last materialization is the old one
    instance = dg.DagsterInstance.get()
    event = instance.get_latest_materialization_event(dg.AssetKey(["customers", "customers"]))
    assert event is not None and event.run_id != outcome.run_id
    assert event.asset_materialization is not None
    published_checksum = event.asset_materialization.metadata["ddp/published_checksum"]
    assert getattr(published_checksum, "value", None) == before["customers.customers"][1]

    # input-port contracts: run alone, orders is blocked before it runs, and says why
    blocked = materialize(wap_env.paths, ["orders"], log_level="ERROR")
    assert not blocked.success
    message = "\n".join(blocked.errors)
    for part in (
        "product 'orders' blocked",
        "input port 'customers'",
        "customers.customers",
        "urn:ddp:sales:customers:customers 1.0.0",
        "segment_invalid_values",
    ):
        assert part in message, message
    assert _status(blocked, "orders/staging/orders") != "materialized"
    assert wap_env.published() == before

    # fixing the data publishes a new version (the test above could fail)
    wap_env.rewrite_customers(
        lambda row: row.update(segment="smb") if row["segment"] == "vip" else None
    )
    outcome = materialize(wap_env.paths, PRODUCTS, log_level="ERROR")
    assert outcome.success, outcome.errors
    assert wap_env.published()["customers.customers"] != before["customers.customers"]


def test_failing_sql_model_keeps_the_published_version(wap_env: WapEnv) -> None:
    before = wap_env.published()
    # stg_customers casts customer_id to bigint: this row makes the SQL fail
    wap_env.rewrite_customers(
        lambda row: row.update(customer_id="not-a-number") if row["customer_id"] == "7" else None
    )
    outcome = materialize(wap_env.paths, PRODUCTS, log_level="ERROR")
    assert not outcome.success
    assert _status(outcome, "customers/customers") != "materialized"
    assert _status(outcome, "orders/orders") != "materialized"
    assert wap_env.published() == before


def _wait_for(process: subprocess.Popen[str], needle: str, timeout: float) -> bool:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            return False
        if needle in line:
            return True
    return False


def test_killed_run_keeps_the_published_version(wap_env: WapEnv) -> None:
    before = wap_env.published()
    wap_env.rewrite_customers(lambda row: row.update(country="NL"))  # a new version would differ
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "ddp"), "materialize", *PRODUCTS, "--verbose"],
        env=wap_env.env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # so the kill reaches dbt, its child, too
    )
    try:
        # killed while dbt builds the new version into staging
        assert _wait_for(process, "ddp_dbt_models", timeout=120), "the run never reached dbt"
        time.sleep(1.0)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert wap_env.published() == before  # readable after the crash, same rows and checksum


def test_killed_publish_transaction_rolls_back(tmp_path: Path) -> None:
    """The publish step itself: a process killed inside the transaction changes nothing."""
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute(f"create schema p; create schema {staging_schema('p')}")
        connection.execute(
            f"create table {staging_schema('p')}.m as select range as x from range(1000)"
        )
        publish(
            connection,
            product="p",
            port="m",
            model="m",
            contract_id="urn:c",
            contract_version="1.0.0",
            run_id="run-1",
        )
        before = checksum(connection, "p", "m")
        # a new build replaces the view of the published version that staging kept (as dbt does)
        connection.execute(f"drop view {staging_schema('p')}.m")
        connection.execute(
            f"create or replace table {staging_schema('p')}.m "
            "as select range * 2 as x from range(5)"
        )
    script = (
        "import os, signal, duckdb\n"
        f"c = duckdb.connect({str(path)!r})\n"
        "c.execute('begin transaction')\n"
        "c.execute('alter table p__staging.m rename to m__v2')\n"
        "c.execute('create or replace view p.m as select * from p__staging.m__v2')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script], check=False)
    assert killed.returncode == -signal.SIGKILL
    with duckdb.connect(str(path), read_only=True) as connection:
        assert checksum(connection, "p", "m") == before
        version = published_version(connection, "p", "m")
        assert version is not None and (version.rows, version.checksum) == before


def test_incompatible_upstream_contract_version_blocks_the_reader(wap_env: WapEnv) -> None:
    """The upstream republished its port under contract 2.0.0; orders expects >=1.0.0,<2.0.0."""
    with duckdb.connect(str(wap_env.paths.warehouse_path)) as connection:
        publish(
            connection,
            product="customers",
            port="customers",
            model="customers",
            contract_id="urn:ddp:sales:customers:customers",
            contract_version="2.0.0",
            run_id="upstream-v2",
        )
    before = wap_env.published()
    outcome = materialize(wap_env.paths, ["orders"], log_level="ERROR")
    assert not outcome.success
    message = "\n".join(outcome.errors)
    assert "input port 'customers'" in message and "customers.customers" in message
    assert "version '>=1.0.0,<2.0.0'" in message and "2.0.0" in message
    assert wap_env.published() == before

    # once the upstream is back on a compatible contract, orders runs again
    outcome = materialize(wap_env.paths, PRODUCTS, log_level="ERROR")
    assert outcome.success, outcome.errors


def test_landing_files_failing_their_contract_stop_the_product(tmp_path: Path) -> None:
    """inventory's raw_suppliers has a landing contract (pandera): a bad export stops there."""
    from ddp_assets.demo.generator import generate_landing_zone

    data_dir, home = tmp_path / "data", tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_bytes((ROOT / "dagster.yaml").read_bytes())
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DDP_DATA_DIR", str(data_dir))
        patch.setenv("DAGSTER_HOME", str(home))
        generate_landing_zone(data_dir / "landing", scale=1_000)
        suppliers = data_dir / "landing" / "inventory" / "suppliers.csv"
        lines = suppliers.read_text(encoding="utf-8").splitlines()
        header = lines[0].split(",")
        country = header.index("country")
        rows = [line.split(",") for line in lines[1:]]
        for row in rows[::2]:
            row[country] = row[country].lower()  # 'es' is not an ISO alpha-2 code in capitals
        suppliers.write_text(
            "\n".join([lines[0], *(",".join(r) for r in rows)]) + "\n", encoding="utf-8"
        )
        outcome = materialize(ProjectPaths(ROOT), ["inventory"], log_level="ERROR")
    assert not outcome.success
    (check,) = [c for asset, c in outcome.failed_checks if asset == "inventory/raw_suppliers"]
    assert check.name == "pandera_schema" and check.severity == "ERROR"
    assert "country" in str(check.metadata["messages"])
    assert 0 < check.metadata["failing_rows_sample_size"] <= 100
    assert _status(outcome, "inventory/stg_inventory_suppliers") == "skipped"
    assert _status(outcome, "inventory/suppliers") != "materialized"
