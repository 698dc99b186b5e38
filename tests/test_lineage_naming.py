"""The parent job of a run's events and the ``dataSource`` of a dataset, by
:mod:`ddp_assets.lineage.naming` (pure functions; ``tests/test_lineage.py`` checks real runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddp_assets.lineage.naming import data_source, parent_job_name


@pytest.mark.parametrize(
    ("job", "tags", "products", "expected"),
    [
        ("orders_refresh", {}, ["orders"], "orders_refresh"),  # a job defined in code
        (
            "orders_refresh",
            {"dagster/schedule_name": "nightly"},
            ["orders"],
            "orders_refresh",
        ),
        (
            "__ASSET_JOB",
            {"dagster/schedule_name": "orders__schedule"},
            ["orders"],
            "orders__schedule",
        ),
        ("__ASSET_JOB", {"dagster/sensor_name": "orders__landing"}, ["orders"], "orders__landing"),
        ("__ASSET_JOB", {"ddp/command": "materialize"}, ["orders"], "ddp.materialize.orders"),
        ("__ASSET_JOB", {}, ["orders", "customers", "orders"], "ddp.materialize"),
        ("__ephemeral_asset_job__", {}, ["orders"], "ddp.materialize.orders"),
        ("__ASSET_JOB", {"dagster/sensor_name": ""}, [], "ddp.materialize"),
    ],
)
def test_parent_job_name(
    job: str, tags: dict[str, str], products: list[str], expected: str
) -> None:
    assert parent_job_name(job, tags, products) == expected


def test_data_source_of_warehouse_tables() -> None:
    duckdb = "duckdb:///srv/data/warehouse.duckdb"
    assert data_source(duckdb, "warehouse.orders.orders") == (duckdb, duckdb)
    postgres = "postgres://db.internal:5433"
    assert data_source(postgres, "analytics.orders.orders") == (
        postgres,
        "postgres://db.internal:5433/analytics",
    )


def test_data_source_of_files_is_the_landing_zone(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    inside = landing / "orders" / "orders.csv"
    assert data_source("file", str(inside), landing) == ("file", landing.as_uri())
    outside = tmp_path / "elsewhere" / "x.csv"
    assert data_source("file", str(outside), landing) == ("file", outside.parent.as_uri())
    assert data_source("file", str(inside)) == ("file", inside.parent.as_uri())
