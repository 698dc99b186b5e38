"""A partitioned consumer of a partitioned product: day maps to day.

A copy of the project gets one more product, ``usage_daily``, daily-partitioned like the demo's
``usage_events`` and reading its ``events`` port; its model keeps the run's day with
``ddp_partition_filter``. Real Dagster, dbt and DuckDB through the ``ddp`` command.

- Dagster maps each day of ``usage_daily`` to the same day of ``usage_events``;
- the first build publishes every day of both; a late event for one day, materialized for that
  day, republishes that day in both products and leaves every other day as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.slow

SPEC = """\
type: ddp_assets.components.DataProduct
attributes:
  id: usage_daily
  name: Daily usage per customer
  domain: product
  version: 1.0.0
  status: active
  owners: [team:product-analytics]
  description:
    purpose: Events per customer and day, one partition per day.
  input_ports:
    - name: events
      type: product
      product: usage_events.events
  output_ports:
    - name: daily
      model: usage_daily
      contract: contracts/daily.odcs.yaml
      partition_column: event_date
  partitions:
    by: day
    column: occurred_at
    start: "2025-01-01"
"""

MODEL = """\
select
    customer_id,
    event_date,
    count(*) as events
from {{ ref('usage_events_clean') }}
where {{ ddp_partition_filter('occurred_at') }}
group by customer_id, event_date
"""

CONTRACT = """\
apiVersion: v3.2.0
kind: DataContract
id: urn:ddp:product:usage_daily:daily
name: Daily usage per customer
version: 1.0.0
status: active
domain: product
dataProduct: usage_daily
schema:
  - name: usage_daily
    physicalName: usage_daily
    physicalType: view
    properties:
      - name: customer_id
        primaryKey: true
        primaryKeyPosition: 1
        logicalType: integer
        physicalType: bigint
        required: true
      - name: event_date
        primaryKey: true
        primaryKeyPosition: 2
        logicalType: date
        physicalType: date
        required: true
      - name: events
        logicalType: integer
        physicalType: bigint
        required: true
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from bench.common import copy_project
    from ddp_assets.demo.generator import generate_landing_zone

    base = tmp_path_factory.mktemp("partitioned_consumer")
    root = copy_project(base / "project")
    folder = root / "ddp_assets" / "defs" / "product" / "usage_daily"
    (folder / "models").mkdir(parents=True)
    (folder / "contracts").mkdir()
    (folder / "defs.yaml").write_text(SPEC, encoding="utf-8")
    (folder / "models" / "usage_daily.sql").write_text(MODEL, encoding="utf-8")
    (folder / "contracts" / "daily.odcs.yaml").write_text(CONTRACT, encoding="utf-8")
    data, home = base / "data", base / "home"
    home.mkdir()
    shutil.copy2(root / "dagster.yaml", home / "dagster.yaml")
    generate_landing_zone(data / "landing", scale=2_000, days=4)
    return {"root": root, "data": data, "home": home}


def _ddp(project: dict[str, Path], *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DDP_PROJECT_ROOT": str(project["root"]),
        "PYTHONPATH": str(project["root"]),
        "DDP_DATA_DIR": str(project["data"]),
        "DAGSTER_HOME": str(project["home"]),
    }
    ddp = str(Path(sys.executable).parent / "ddp")
    return subprocess.run(
        [ddp, *args],
        env=env,
        cwd=project["root"],
        capture_output=True,
        text=True,
        timeout=900,
    )


def _live(project: dict[str, Path], product: str, port: str) -> dict[str, tuple[int, int]]:
    warehouse = project["data"] / "warehouse.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        rows = connection.execute(
            "select partition, written_in, rows from _ddp.partition_versions "
            "where product = ? and port = ? and version = (select version from "
            "_ddp.version_moves where product = ? and port = ? order by move desc limit 1)",
            [product, port, product, port],
        ).fetchall()
    return {str(p): (int(w), int(r)) for p, w, r in rows}


def test_days_map_to_days_and_a_late_day_republishes_only_that_day(project) -> None:
    first = _ddp(project, "materialize", "customers", "usage_events", "usage_daily", "--json")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    outcome = json.loads(first.stdout)
    assert len(outcome["runs"]) == 3, outcome["runs"]  # customers, then each product's batch
    days = sorted(_live(project, "usage_events", "events"))
    assert len(days) == 4
    before = _live(project, "usage_daily", "daily")
    assert sorted(before) == days

    day = days[1]
    day_file = project["data"] / "landing" / "usage_events" / f"events_{day}.jsonl"
    late = {
        "event_id": "evt-late-consumer",
        "customer_id": 1,
        "event_type": "login",
        "feature": None,
        "occurred_at": f"{day}T08:00:00",
        "duration_ms": 5,
    }
    with day_file.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(late) + "\n")
    again = _ddp(project, "materialize", "usage_events", "usage_daily", "--partition", day)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    after = _live(project, "usage_daily", "daily")
    assert after[day][0] != before[day][0]
    assert {k: v for k, v in after.items() if k != day} == {
        k: v for k, v in before.items() if k != day
    }
    warehouse = project["data"] / "warehouse.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        row = connection.execute(
            "select sum(events) from usage_daily.usage_daily where event_date = ?", [day]
        ).fetchone()
        expected = connection.execute(
            "select count(*) from usage_events.usage_events_clean where event_date = ?", [day]
        ).fetchone()
    assert row == expected
