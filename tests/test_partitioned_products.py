"""Partitioned products end to end: the demo's ``usage_events`` is daily-partitioned beside
unpartitioned products (customers upstream, usage_metrics downstream). Real Dagster, dbt, Soda
and DuckDB on a private data directory and Dagster instance (the shared demo is not touched).

- a first materialize builds every day that has a landing file, in bounded batches, between its
  unpartitioned upstream and consumers;
- a late file for an old day republishes only that day (the other days' rows are the same
  version's rows, by the ledger's partition map);
- a failing day is held back alone: every published day stays as it was, downstream does not run;
- partitions named wrong are refused before anything runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from ddp_assets.runtime.materialize import PartitionSelection, RunOutcome, materialize
from ddp_assets.settings import ProjectPaths

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = "usage_events"
PORT = "events"
PRODUCTS = ["customers", "usage_events", "usage_metrics"]


class PartitionedEnv:
    def __init__(self, data_dir: Path, home: Path) -> None:
        self.data_dir, self.home = data_dir, home
        self.paths = ProjectPaths(ROOT)

    @property
    def events_dir(self) -> Path:
        return self.data_dir / "landing" / "usage_events"

    def day_files(self) -> list[Path]:
        return sorted(self.events_dir.glob("*.jsonl"))

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DDP_DATA_DIR": str(self.data_dir),
            "DAGSTER_HOME": str(self.home),
            "DDP_PROJECT_ROOT": str(ROOT),
        }

    def read(self, sql: str) -> list[tuple]:
        import time

        deadline = time.monotonic() + 60
        while True:  # a run process of the served UI may still be closing its connection
            try:
                with duckdb.connect(str(self.paths.warehouse_path), read_only=True) as connection:
                    return connection.execute(sql).fetchall()
            except duckdb.IOException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def live_partitions(self) -> dict[str, tuple[int, int]]:
        """partition → (written_in, rows) of the port version consumers read now."""
        rows = self.read(
            "select m.partition, m.written_in, m.rows from _ddp.partition_versions m "
            "where m.product = 'usage_events' and m.port = 'events' and m.version = ("
            "  select version from _ddp.version_moves where product = 'usage_events' "
            "  and port = 'events' order by move desc limit 1)"
        )
        return {str(p): (int(w), int(r)) for p, w, r in rows}

    def published_rows(self) -> int:
        return int(self.read("select count(*) from usage_events.usage_events_clean")[0][0])

    def materialize(self, products: list[str], **selection: object) -> RunOutcome:
        return materialize(
            self.paths,
            products,
            log_level="ERROR",
            partitions=PartitionSelection(**selection),  # type: ignore[arg-type]
        )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PartitionedEnv]:
    from ddp_assets.demo.generator import generate_landing_zone

    base = tmp_path_factory.mktemp("partitioned")
    built = PartitionedEnv(base / "data", base / "home")
    built.home.mkdir()
    (built.home / "dagster.yaml").write_bytes((ROOT / "dagster.yaml").read_bytes())
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DDP_DATA_DIR", str(built.data_dir))
        patch.setenv("DAGSTER_HOME", str(built.home))
        generate_landing_zone(built.data_dir / "landing", scale=2_000, days=6)
        first = built.materialize(PRODUCTS)
        assert first.success, first.errors or first.failed_checks
        built.first = first  # type: ignore[attr-defined]
        yield built


def _expected_events(env: PartitionedEnv) -> int:
    files = [str(f) for f in env.day_files()]
    with duckdb.connect() as connection:
        row = connection.execute(
            "select count(distinct trim(cast(event_id as varchar))) from read_json_auto(?) "
            "where event_id is not null and customer_id is not null and occurred_at is not null",
            [files],
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_first_build_publishes_every_day_between_unpartitioned_products(env) -> None:
    first: RunOutcome = env.first
    # customers (unpartitioned), then usage_events' days in one batch, then usage_metrics
    assert len(first.runs) == 3, first.runs
    days = [f.stem.split("_")[-1] for f in env.day_files()]
    assert len(days) == 6
    partitioned = [a for p in first.products if p.product == PRODUCT for a in p.assets]
    assert partitioned and all(a.partitions == days for a in partitioned), partitioned
    assert set(env.live_partitions()) == set(days)
    assert env.published_rows() == _expected_events(env)
    assert all(a.status == "materialized" for p in first.products for a in p.assets)


def test_a_late_file_republishes_only_its_day(env) -> None:
    before = env.live_partitions()
    day_file = env.day_files()[2]
    day = day_file.stem.split("_")[-1]
    late = {
        "event_id": "evt-late-0001",
        "customer_id": 1,
        "event_type": "login",
        "feature": None,
        "occurred_at": f"{day}T12:00:00",
        "duration_ms": 10,
    }
    with day_file.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(late) + "\n")
    outcome = env.materialize([PRODUCT], keys=(day,))
    assert outcome.success, outcome.errors
    # the day reaches dbt in DDP_PARTITION, not --vars: dbt kept its partial parse
    logs = [
        log.read_text(encoding="utf-8")
        for run_id in outcome.runs
        for log in (ROOT / "dbt_project" / "target" / "dev" / "runs").glob(
            f"{run_id[:8]}-*/dbt.log"
        )
    ]
    assert logs and all("UnableToPartialParse" not in log for log in logs)
    after = env.live_partitions()
    assert after[day][1] == before[day][1] + 1
    assert after[day][0] != before[day][0]  # a new version's rows for that day
    assert {k: v for k, v in after.items() if k != day} == {
        k: v for k, v in before.items() if k != day
    }  # every other day: the same rows of the same version, not rewritten
    assert env.published_rows() == _expected_events(env)


def test_a_failing_day_is_held_back_alone_and_downstream_does_not_run(env) -> None:
    before = env.live_partitions()
    rows_before = env.published_rows()
    day_file = env.day_files()[4]
    day = day_file.stem.split("_")[-1]
    original = day_file.read_bytes()
    stray = {
        "event_id": "evt-stray-0001",
        "customer_id": 1,
        "event_type": "login",
        "feature": None,
        "occurred_at": "2001-01-01T00:00:00",  # not this file's day
        "duration_ms": 10,
    }
    try:
        with day_file.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(stray) + "\n")
        outcome = env.materialize([PRODUCT, "usage_metrics"], keys=(day,))
        assert not outcome.success
        assert any(day in error or "outside" in error for error in outcome.errors), outcome.errors
        assert env.live_partitions() == before
        assert env.published_rows() == rows_before
        metrics = [a for p in outcome.products if p.product == "usage_metrics" for a in p.assets]
        assert metrics and all(a.status == "skipped" for a in metrics), metrics
    finally:
        day_file.write_bytes(original)
    again = env.materialize([PRODUCT], keys=(day,))
    assert again.success, again.errors


def test_a_range_runs_as_one_bounded_batch(env) -> None:
    days = [f.stem.split("_")[-1] for f in env.day_files()]
    outcome = env.materialize([PRODUCT], first=days[0], last=days[2])
    assert outcome.success, outcome.errors
    assert len(outcome.runs) == 1
    assert {a.partitions[0] for p in outcome.products for a in p.assets} == {days[0]}
    assert set(env.live_partitions()) == set(days)


def test_contiguous_chunks_are_bounded_and_split_at_gaps() -> None:
    from ddp_assets.runtime.materialize import _contiguous_chunks

    known = [f"2026-01-{d:02d}" for d in range(1, 11)]
    chosen = known[:5] + known[6:9]
    assert _contiguous_chunks(chosen, known, 2) == [
        known[0:2],
        known[2:4],
        known[4:5],
        known[6:8],
        known[8:9],
    ]


def _ddp(env: PartitionedEnv, *args: str) -> subprocess.CompletedProcess[str]:
    ddp = str(Path(sys.executable).parent / "ddp")
    return subprocess.run(
        [ddp, *args], env=env.env(), cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_an_unknown_partition_is_refused_before_anything_runs(env) -> None:
    moves = env.read("select count(*) from _ddp.version_moves")[0][0]
    result = _ddp(env, "materialize", PRODUCT, "--partition", "1999-13-01")
    assert result.returncode != 0
    assert (
        "'1999-13-01' is not a partition of product 'usage_events'" in result.stdout + result.stderr
    )
    assert "Traceback" not in result.stdout + result.stderr
    both = _ddp(env, "materialize", PRODUCT, "--partition", "x", "--from", "y")
    assert both.returncode != 0 and "two ways" in both.stdout + both.stderr
    assert env.read("select count(*) from _ddp.version_moves")[0][0] == moves


def test_status_lists_the_published_days(env) -> None:
    result = _ddp(env, "status", PRODUCT, "--json")
    assert result.returncode == 0, result.stderr
    card = json.loads(result.stdout)[0]
    days = [f.stem.split("_")[-1] for f in env.day_files()]
    assert card["partitions"]["published"] == len(days)
    assert card["partitions"]["latest"] == days[-1]


BACKFILL = """
mutation ($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
  }
}
"""
BACKFILL_STATUS = """
query ($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      status numPartitions runs(limit: 50) { runId status tags { key value } }
    }
  }
}
"""


@pytest.mark.integration
def test_a_backfill_launched_from_the_ui_runs_in_bounded_batches(env) -> None:
    """The UI's "Materialize → backfill" (GraphQL ``launchPartitionBackfill``) over two days:
    the daemon runs it under the product's backfill policy, and each day is republished."""
    import time

    from ddp_assets.runtime.webserver import dagster_dev

    days = [f.stem.split("_")[-1] for f in env.day_files()][:2]
    before = env.live_partitions()
    keys = [
        ["usage_events", "raw_events"],
        ["usage_events", "stg_usage_events"],
        ["usage_events", "staging", "usage_events_clean"],
        ["usage_events", "usage_events_clean"],
    ]
    command = [str(Path(sys.executable).parent / "ddp"), "dev"]
    with dagster_dev(command, env.env(), env.home / "dev.log") as ui:
        launched = ui.query(
            BACKFILL,
            {
                "params": {
                    "partitionNames": days,
                    "assetSelection": [{"path": key} for key in keys],
                    "fromFailure": False,
                }
            },
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        deadline = time.monotonic() + 420
        backfill: dict = {}
        while time.monotonic() < deadline:
            backfill = ui.query(BACKFILL_STATUS, {"id": launched["backfillId"]})[
                "partitionBackfillOrError"
            ]
            runs = backfill.get("runs") or []
            if backfill.get("status") in (
                "COMPLETED",
                "COMPLETED_SUCCESS",
                "FAILED",
                "CANCELED",
            ) or (
                runs
                and all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs)
                and backfill.get("status") != "REQUESTED"
            ):
                break
            time.sleep(2)
        runs = backfill.get("runs") or []
        assert runs and all(r["status"] == "SUCCESS" for r in runs), backfill
        assert len(runs) == 1  # two days fit one batch of the backfill policy
    after = env.live_partitions()
    for day in days:
        assert after[day][0] > before[day][0]  # republished by the backfill's run
        assert after[day][1] == before[day][1]
