"""Ripple latency: a file lands, how long until the last downstream product is published?

Against a snapshot of the checkout, the demo is generated at ``scale`` landing rows and built
once (``ddp materialize --all``, not counted), then ``ddp dev`` (webserver + daemon) serves it.
When no run is in flight, a late batch of orders lands in ``orders/`` and the harness follows,
through the webserver's GraphQL API, what the platform does on its own:

    file lands → landing sensor tick → run of ``orders`` (load, build, audit, publish)
               → declarative automation tick → runs of the consumers
               → ``customer_360.customer_profile`` and ``supplier_performance.stock_out_alerts``
                 published

Each step must come after the one it waits for. The target (issue 5) is under 60 s from file
arrival to the last downstream publish on the embedded default. The breakdown separates the
time spent waiting for a tick from the time spent running, which is where to look when it
misses.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import duckdb

from bench.common import (
    BenchError,
    Settings,
    copy_project,
    fresh_dir,
    python_env,
    run_measured,
    tool,
    wait_for_quiet,
)
from ddp_assets.demo.generator import generate_landing_zone
from ddp_assets.runtime.webserver import DagsterUI, dagster_dev

TARGET_SECONDS = 60.0
# what is followed, and the step each one must come after
STEPS: dict[str, tuple[list[str], str | None]] = {
    "landing load (orders.raw_orders)": (["orders", "raw_orders"], None),
    "source published (orders.orders)": (["orders", "orders"], "landing load (orders.raw_orders)"),
    "consumer published (customer_360.customer_profile)": (
        ["customer_360", "customer_profile"],
        "source published (orders.orders)",
    ),
    "cross-domain consumer published (supplier_performance.stock_out_alerts)": (
        ["supplier_performance", "stock_out_alerts"],
        "source published (orders.orders)",
    ),
}
IN_FLIGHT = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")


def _wait_idle(ui: DagsterUI, quiet_for: float = 20.0, timeout: float = 300.0) -> None:
    """Wait until no run has been in flight for ``quiet_for`` seconds."""
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        if any(run["status"] in IN_FLIGHT for run in ui.runs()):
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_for:
            return
        time.sleep(2)
    raise BenchError("runs kept starting in the served demo; cannot measure the ripple")


def _drop_late_batch(landing: Path) -> Path:
    source = landing / "orders" / "orders.csv"
    target = landing / "orders" / "orders_late_batch.csv"
    staged = target.with_name(".orders_late_batch.csv")  # hidden: not matched until renamed
    with duckdb.connect() as connection:
        connection.execute(
            "copy (select order_id + 1000000000 as order_id, customer_id, ordered_at, status, "
            f"channel from read_csv('{source}') limit 500) to '{staged}' (header)"
        )
    staged.rename(target)  # the file appears whole, as a well-behaved producer delivers it
    return target


def _follow(ui: DagsterUI, dropped: float, timeout: float) -> dict[str, float]:
    done: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(done) < len(STEPS):
        for name, (key, after) in STEPS.items():
            if name in done or (after is not None and after not in done):
                continue
            latest = ui.latest_materialization(key)
            if latest > (dropped if after is None else done[after]):
                done[name] = latest
        time.sleep(0.5)
    return done


def _runs_breakdown(ui: DagsterUI, dropped: float) -> list[dict[str, Any]]:
    rows = []
    for run in reversed(ui.runs(after=dropped - 1)):
        start, end = run.get("startTime"), run.get("endTime")
        rows.append(
            {
                "run_id": run["runId"],
                "status": run["status"],
                "created_after_drop_s": round(run["creationTime"] - dropped, 2),
                "started_after_drop_s": round(start - dropped, 2) if start else None,
                "duration_s": round(end - start, 2) if start and end else None,
            }
        )
    return rows


def run(settings: Settings, scale: int, log: Any, timeout: float = 900.0) -> dict[str, Any]:
    root = copy_project(settings.work / "ripple" / "project")
    data = fresh_dir(settings.work / "ripple" / "data")
    home = fresh_dir(settings.work / "ripple" / "dagster_home")
    shutil.copy2(root / "dagster.yaml", home / "dagster.yaml")
    logs = settings.work / "logs" / "ripple"
    env = python_env(
        settings, PYTHONPATH=root, DDP_PROJECT_ROOT=root, DDP_DATA_DIR=data, DAGSTER_HOME=home
    )
    log(f"ripple: generating {scale:,} landing rows and building the demo (not counted)")
    generate_landing_zone(data / "landing", scale=scale)
    build = run_measured(
        "ddp materialize --all", [tool("ddp"), "materialize", "--all"], env=env, cwd=root, logs=logs
    ).check()
    log("ripple: starting ddp dev (webserver + daemon)")
    logs.mkdir(parents=True, exist_ok=True)
    with dagster_dev([tool("ddp"), "dev"], env, logs / "dagster_dev.log") as ui:
        _wait_idle(ui)
        waited = wait_for_quiet(settings)
        dropped = time.time()
        _drop_late_batch(data / "landing")
        log("ripple: late batch of orders landed; following the ripple")
        done = _follow(ui, dropped, timeout)
        breakdown = _runs_breakdown(ui, dropped)
    if len(done) < len(STEPS):
        missing = sorted(set(STEPS) - set(done))
        raise BenchError(f"the ripple did not complete within {timeout:.0f}s: {missing}")
    latency = max(done.values()) - dropped
    return {
        "scale": scale,
        "build_seconds": round(build.seconds, 1),
        "waited_for_quiet_s": round(waited, 1),
        "steps_after_drop_s": {name: round(t - dropped, 2) for name, t in done.items()},
        "runs": breakdown,
        "latency_s": round(latency, 2),
        "target_s": TARGET_SECONDS,
        "ratio_to_target": round(latency / TARGET_SECONDS, 2),
    }
