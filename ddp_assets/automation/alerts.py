"""Alerts: run failures and SLO breaches, written to a sink.

The default sink is a JSON-lines file under the Dagster instance (``$DAGSTER_HOME/ddp/
alerts.jsonl``); a webhook URL adds an HTTP POST of the same JSON. Each alert has a ``key``;
an SLO that recovers writes a ``resolved`` alert with the same key, so open alerts can be
derived from the log alone.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg

from ddp_assets.naming import port_key
from ddp_assets.spec.model import Freshness
from ddp_assets.spec.registry import Registry


@dataclass
class Alert:
    kind: str  # run_failure | slo_warn | slo_fail | slo_resolved
    key: str  # what the alert is about: one per run, or per output port for SLOs
    product: str | None
    message: str
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def resolves(self) -> bool:
        return self.kind == "slo_resolved"


def alerts_file(dagster_home: Path) -> Path:
    return dagster_home / "ddp" / "alerts.jsonl"


@dataclass(frozen=True)
class AlertSink:
    """Where alerts go: always a JSON-lines file; a webhook too when configured."""

    path: Path
    webhook_url: str | None = None

    def send(self, alert: Alert) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(asdict(alert), sort_keys=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        if self.webhook_url:
            request = urllib.request.Request(
                self.webhook_url,
                data=line.encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=10):
                pass


def read_alerts(path: Path) -> Iterator[Alert]:
    if not path.exists():
        return
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            yield Alert(**json.loads(line))


def open_alerts(path: Path) -> list[Alert]:
    """Alerts not resolved since: every run failure, and SLO breaches still on."""
    latest: dict[str, Alert] = {}
    for alert in read_alerts(path):
        latest[alert.key] = alert
    return [a for a in latest.values() if not a.resolves]


def run_asset_keys(instance: dg.DagsterInstance, run: dg.DagsterRun) -> set[dg.AssetKey]:
    """The assets a run set out to materialize (its selection, else its planned events)."""
    if run.asset_selection:
        return set(run.asset_selection)
    records = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
    ).records
    return {
        r.event_log_entry.dagster_event.asset_key
        for r in records
        if r.event_log_entry.dagster_event and r.event_log_entry.dagster_event.asset_key
    }


def run_products(instance: dg.DagsterInstance, run: dg.DagsterRun, registry: Registry) -> list[str]:
    groups = {key.path[0] for key in run_asset_keys(instance, run)}
    return sorted(g for g in groups if g in registry.products)


def failure_sensor(registry: Registry, sink: AlertSink) -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name="ddp_run_failure_alerts",
        default_status=dg.DefaultSensorStatus.RUNNING,
        monitor_all_code_locations=False,
        description="Writes an alert for every failed run of a data product.",
    )
    def _failures(context: dg.RunFailureSensorContext) -> None:
        run = context.dagster_run
        products = run_products(context.instance, run, registry)
        message = context.failure_event.message or "run failed"
        sink.send(
            Alert(
                kind="run_failure",
                key=f"run:{run.run_id}",
                product=products[0] if len(products) == 1 else None,
                message=f"run {run.run_id} failed: {message}",
                details={"run_id": run.run_id, "products": products, "job": run.job_name},
            )
        )

    return _failures


def last_deadline(deadline: str, timezone: str, now: float) -> datetime:
    """The most recent 'HH:MM' in the timezone that is not after now."""
    zone = ZoneInfo(timezone)
    local_now = datetime.fromtimestamp(now, zone)
    hours, minutes = (int(part) for part in deadline.split(":"))
    tick = local_now.replace(hour=hours, minute=minutes, second=0, microsecond=0)
    return tick if tick <= local_now else tick - timedelta(days=1)


def slo_state(freshness: Freshness | None, materialized_at: float | None, now: float) -> str:
    """pass / warn / fail against the SLO; unknown before any materialization; no_slo."""
    if freshness is None:
        return "no_slo" if materialized_at is not None else "unknown"
    if materialized_at is None:
        return "unknown"
    if freshness.max_age_delta is not None:
        fail = freshness.max_age_delta
        warn = freshness.warn_after_delta or fail * 3 / 4
        age = now - materialized_at
        if age > fail.total_seconds():
            return "fail"
        return "warn" if age > warn.total_seconds() else "pass"
    assert freshness.deadline is not None
    tick = last_deadline(freshness.deadline, freshness.timezone, now)
    # Data for the latest deadline must have been built in the day before it (as Dagster's cron
    # freshness policy with a one-day lower bound); warn_after warns that long before the next.
    if materialized_at < (tick - timedelta(days=1)).timestamp():
        return "fail"
    warn = freshness.warn_after_delta
    next_tick = tick + timedelta(days=1)
    if (
        warn is not None
        and now >= (next_tick - warn).timestamp()
        and materialized_at < tick.timestamp()
    ):
        return "warn"
    return "pass"


def slo_sensor(
    defs_registry: Registry, sink: AlertSink, interval_seconds: int
) -> dg.SensorDefinition:
    """Alerts when an output port's age passes its SLO's warn or fail window, and on recovery."""

    @dg.sensor(
        name="ddp_slo_alerts",
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Writes an alert when an output port breaches its freshness SLO.",
    )
    def _slo(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        states: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        now = datetime.now(UTC).timestamp()
        for product in defs_registry.products.values():
            freshness = product.spec.slos.freshness
            if freshness is None:
                continue
            for port in product.spec.output_ports:
                key = port_key(product.id, port.model)
                event = context.instance.get_latest_materialization_event(key)
                at = None if event is None else event.timestamp
                age = None if at is None else now - at
                state = slo_state(freshness, at, now)
                alert_key = f"slo:{product.id}.{port.name}"
                before = states.get(alert_key, "pass")
                if state in ("warn", "fail") and state != before:
                    sink.send(
                        Alert(
                            kind=f"slo_{state}",
                            key=alert_key,
                            product=product.id,
                            message=f"output port {product.id}.{port.name} breaches its "
                            f"freshness SLO ({state}): last built {age or 0:.0f}s ago",
                            details={
                                "age_seconds": age,
                                "max_age": freshness.max_age,
                                "deadline": freshness.deadline,
                            },
                        )
                    )
                elif state == "pass" and before in ("warn", "fail"):
                    sink.send(
                        Alert(
                            kind="slo_resolved",
                            key=alert_key,
                            product=product.id,
                            message=f"output port {product.id}.{port.name} is fresh again",
                        )
                    )
                if state != "unknown":
                    states[alert_key] = state
        context.update_cursor(json.dumps(states, sort_keys=True))
        return dg.SkipReason("SLO states checked")

    return _slo
