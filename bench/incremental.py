"""Incremental bench (issue 17): does a small batch cost what it changes, or what came before?

On a snapshot of the checkout, with the demo's daily-partitioned ``usage_events`` (its upstream
``customers`` and its unpartitioned consumer ``usage_metrics`` beside it), for each history size
``H`` (usage events over :data:`DAYS` daily files):

1. **history** (not a figure): ``ddp materialize customers usage_events usage_metrics`` builds
   every day (one backfill batch) and the consumer;
2. **batch**: a late file of 0.1 % of ``H`` events for one old day lands
   (``events_<day>_late.jsonl``); ``ddp materialize usage_events usage_metrics --partition
   <day>`` republishes that day of ``usage_events`` and rebuilds ``usage_metrics`` (which
   reads every day: it is unpartitioned). The figure is the command's wall time, with the
   partitioned run and the consumer's run split from the Dagster runs' own times;
3. **backfill vs full build**: ``ddp materialize usage_events --from <first> --to <last>`` (the
   :data:`DAYS` days again, in runs of the spec's ``batch``) against ``ddp materialize
   usage_events`` of the same rows in a copy of the project whose ``usage_events`` has no
   ``partitions:`` block (one unpartitioned build, the floor of the same work; its second
   build is measured, as the backfill follows the history build: dbt parsed, instance set up).

Targets: batch(10M) / batch(100k) ≤ 1.3 (the cost of a batch does not grow with the history)
and backfill / full build ≤ 1.2, each measured in one run of this bench.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import duckdb

from bench.common import (
    Settings,
    copy_project,
    fresh_dir,
    python_env,
    ratio,
    run_measured,
    tool,
    wait_for_quiet,
)
from ddp_assets.demo.generator import EVENT_DAYS, generate_landing_zone

DAYS = EVENT_DAYS
BATCH_SHARE = 0.001
EVENTS_SHARE = 0.25  # the generator's share of usage events in the landing rows
TARGET_BATCH_RATIO = 1.3
TARGET_BACKFILL_RATIO = 1.2
PRODUCTS = ["customers", "usage_events", "usage_metrics"]


def _unpartitioned(root: Path) -> None:
    """Remove ``usage_events``' ``partitions:`` block in a project snapshot."""
    spec = root / "ddp_assets" / "defs" / "product" / "usage_events" / "defs.yaml"
    text = spec.read_text(encoding="utf-8")
    stripped = re.sub(r"\n  partitions:\n(    .*\n)+", "\n", text)
    if stripped == text:
        raise RuntimeError(f"{spec} has no partitions block to remove")
    spec.write_text(stripped, encoding="utf-8")


def _late_batch(landing: Path, rows: int) -> tuple[str, Path]:
    """A late file of ``rows`` new events for the middle day (the day's key, the file)."""
    files = sorted((landing / "usage_events").glob("events_*.jsonl"))
    day_file = files[len(files) // 2]
    day = day_file.stem.removeprefix("events_")
    target = day_file.with_name(f"events_{day}_late.jsonl")
    with duckdb.connect() as connection:
        connection.execute(
            "copy (select 'late-' || event_id as event_id, customer_id, event_type, feature, "
            "occurred_at, duration_ms from read_json_auto(?) "
            f"limit {int(rows)}) to '{target}' (format json)",
            [str(day_file)],
        )
    return day, target


def _run_ids(outcome_json: str) -> list[str]:
    """The run ids of a ``ddp materialize --json`` output."""
    data = json.loads(outcome_json)
    return list(data.get("runs") or [data.get("run_id")])


def _history(settings: Settings, events: int, log: Any) -> dict[str, Any]:
    work = settings.work / "incremental" / f"h{events}"
    root = copy_project(work / "project")
    data, home = fresh_dir(work / "data"), fresh_dir(work / "home")
    shutil.copy2(root / "dagster.yaml", home / "dagster.yaml")
    env = python_env(
        settings, PYTHONPATH=root, DDP_PROJECT_ROOT=root, DDP_DATA_DIR=data, DAGSTER_HOME=home
    )
    logs = settings.work / "logs" / "incremental" / f"h{events}"
    scale = max(int(events / EVENTS_SHARE), 1_000)
    log(
        f"incremental: {events:,} events of history ({scale:,} landing rows); building it "
        "(not counted)"
    )
    generate_landing_zone(data / "landing", scale=scale)
    ddp = tool("ddp")
    run_measured("history", [ddp, "materialize", *PRODUCTS], env=env, cwd=root, logs=logs).check()
    batch_rows = max(int(events * BATCH_SHARE), 1)
    day, _ = _late_batch(data / "landing", batch_rows)
    wait_for_quiet(settings)
    batch = run_measured(
        "batch",
        [ddp, "materialize", "usage_events", "usage_metrics", "--partition", day, "--json"],
        env=env,
        cwd=root,
        logs=logs,
    ).check()
    runs = _runs_of(home, _run_ids(batch.stdout))
    return {
        "events": events,
        "batch_rows": batch_rows,
        "day": day,
        "batch": batch.to_dict(),
        "runs": runs,
        "env": env,
        "root": root,
        "logs": logs,
    }


def _runs_of(home: Path, run_ids: list[str]) -> list[dict[str, Any]]:
    """Each run's wall time from the Dagster instance (start to end)."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        found = []
        for run_id in run_ids:
            record = instance.get_run_record_by_id(run_id)
            if record is None:
                continue
            start, end = record.start_time, record.end_time
            found.append(
                {
                    "run_id": run_id,
                    "partition": record.dagster_run.tags.get("dagster/partition"),
                    "seconds": round(end - start, 3) if start and end else None,
                }
            )
    return found


def _backfill_vs_full(settings: Settings, history: dict[str, Any], log: Any) -> dict[str, Any]:
    env, root, logs = history["env"], history["root"], history["logs"]
    ddp = tool("ddp")
    landing = Path(env["DDP_DATA_DIR"]) / "landing" / "usage_events"
    days = sorted({p.stem.removeprefix("events_")[:10] for p in landing.glob("events_*.jsonl")})
    wait_for_quiet(settings)
    backfill = run_measured(
        "backfill",
        [ddp, "materialize", "usage_events", "--from", days[0], "--to", days[-1]],
        env=env,
        cwd=root,
        logs=logs,
    ).check()
    log("incremental: the same rows, unpartitioned (a copy of the project without partitions)")
    plain_root = copy_project(settings.work / "incremental" / "plain" / "project")
    _unpartitioned(plain_root)
    plain_home = fresh_dir(settings.work / "incremental" / "plain" / "home")
    shutil.copy2(plain_root / "dagster.yaml", plain_home / "dagster.yaml")
    plain_data = fresh_dir(settings.work / "incremental" / "plain" / "data")
    shutil.copytree(Path(env["DDP_DATA_DIR"]) / "landing", plain_data / "landing")
    plain_env = python_env(
        settings,
        PYTHONPATH=plain_root,
        DDP_PROJECT_ROOT=plain_root,
        DDP_DATA_DIR=plain_data,
        DAGSTER_HOME=plain_home,
    )
    # not counted: the copy's first build parses dbt and fills the instance, as the history
    # build did for the backfill; the measured build is the second, of the same rows
    run_measured(
        "full build (warm-up)",
        [ddp, "materialize", "usage_events"],
        env=plain_env,
        cwd=plain_root,
        logs=logs,
    ).check()
    wait_for_quiet(settings)
    full = run_measured(
        "full build", [ddp, "materialize", "usage_events"], env=plain_env, cwd=plain_root, logs=logs
    ).check()
    return {
        "days": len(days),
        "backfill": backfill.to_dict(),
        "full_build": full.to_dict(),
        "backfill_over_full": round(ratio(backfill.seconds, full.seconds), 3),
        "target": TARGET_BACKFILL_RATIO,
    }


def run(settings: Settings, histories: list[int], log: Any) -> dict[str, Any]:
    """The batch at each history size, then backfill vs full build at the largest."""
    measured = [_history(settings, events, log) for events in sorted(histories)]
    result: dict[str, Any] = {
        "histories": [
            {k: v for k, v in m.items() if k not in ("env", "root", "logs")} for m in measured
        ]
    }
    if len(measured) >= 2:
        small, big = measured[0], measured[-1]
        result["batch_ratio"] = round(ratio(big["batch"]["seconds"], small["batch"]["seconds"]), 3)
        result["batch_ratio_target"] = TARGET_BATCH_RATIO
    result["backfill"] = _backfill_vs_full(settings, measured[-1], log)
    return result
