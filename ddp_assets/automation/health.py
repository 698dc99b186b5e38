"""The product health scorecard behind ``ddp status``.

Per product: freshness of each output port against its SLO, the result of the last run that
touched the product, the pass rate of its checks over their last N executions, the open alerts,
and an overall state: ``healthy``, ``degraded``, ``failing`` (or ``unknown`` before any run).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from ddp_assets.automation.alerts import Alert, alerts_file, open_alerts, slo_state
from ddp_assets.spec.registry import Product, Registry


@dataclass
class PortFreshness:
    port: str
    last_materialized_at: str | None
    age_seconds: float | None
    max_age_seconds: float | None
    state: str  # pass | warn | fail | unknown | no_slo


@dataclass
class Scorecard:
    product: str
    state: str
    freshness: list[PortFreshness] = field(default_factory=list)
    last_run: dict[str, Any] | None = None
    checks_passed: int = 0
    checks_evaluated: int = 0
    open_alerts: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def contract_pass_rate(self) -> float | None:
        if not self.checks_evaluated:
            return None
        return self.checks_passed / self.checks_evaluated

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "contract_pass_rate": self.contract_pass_rate}


def _freshness(instance: dg.DagsterInstance, product: Product, now: float) -> list[PortFreshness]:
    slo = product.spec.slos.freshness
    fail = slo.max_age_delta if slo else None
    ports = []
    for port in product.spec.output_ports:
        event = instance.get_latest_materialization_event(dg.AssetKey([product.id, port.model]))
        at = None if event is None else event.timestamp
        ports.append(
            PortFreshness(
                port=port.name,
                last_materialized_at=None
                if at is None
                else datetime.fromtimestamp(at, UTC).isoformat(),
                age_seconds=None if at is None else round(now - at, 1),
                max_age_seconds=None if fail is None else fail.total_seconds(),
                state=slo_state(slo, at, now),
            )
        )
    return ports


def _last_run(instance: dg.DagsterInstance, keys: set[dg.AssetKey]) -> dict[str, Any] | None:
    for record in instance.get_run_records(limit=200):
        run = record.dagster_run
        if run.asset_selection and keys & set(run.asset_selection):
            return {
                "run_id": run.run_id,
                "status": run.status.value,
                "ended_at": None
                if record.end_time is None
                else datetime.fromtimestamp(record.end_time, UTC).isoformat(),
            }
    return None


def scorecard(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    registry: Registry,
    product: Product,
    *,
    last_n: int = 10,
    alerts: list[Alert] | None = None,
) -> Scorecard:
    now = datetime.now(UTC).timestamp()
    graph = defs.resolve_asset_graph()
    keys = {k for k in graph.materializable_asset_keys if graph.get(k).group_name == product.id}
    card = Scorecard(product=product.id, state="healthy")
    card.freshness = _freshness(instance, product, now)
    card.last_run = _last_run(instance, keys)
    for key in keys:
        for check_key in graph.get(key).check_keys:
            history = instance.event_log_storage.get_asset_check_execution_history(
                check_key, limit=last_n
            )
            for record in history:
                passed = _check_passed(record)
                if passed is not None:
                    card.checks_evaluated += 1
                    card.checks_passed += passed
    if alerts is None:
        alerts = open_alerts(alerts_file(Path(instance.root_directory)))
    card.open_alerts = [asdict(a) for a in alerts if a.product == product.id]
    card.state, card.reasons = _overall(card)
    return card


def _check_passed(record: Any) -> bool | None:
    """Whether one execution of a check passed; ``None`` while it is planned or running.

    Read from the execution's evaluation event, a public ``dg.EventLogEntry`` holding a
    ``dg.AssetCheckEvaluation`` (the record's status enum lives in a private module).
    """
    entry = getattr(record, "event", None)
    evaluation = entry.asset_check_evaluation if isinstance(entry, dg.EventLogEntry) else None
    return evaluation.passed if isinstance(evaluation, dg.AssetCheckEvaluation) else None


def _overall(card: Scorecard) -> tuple[str, list[str]]:
    if card.last_run is None and all(f.state == "unknown" for f in card.freshness):
        return "unknown", ["never materialized"]
    failing, degraded = [], []
    if card.last_run and card.last_run["status"] == "FAILURE":
        failing.append(f"last run {card.last_run['run_id']} failed")
    for port in card.freshness:
        if port.state == "fail":
            failing.append(f"output port {port.port} is stale")
        elif port.state == "warn":
            degraded.append(f"output port {port.port} is close to its freshness SLO")
    rate = card.contract_pass_rate
    if rate is not None and rate < 1:
        (failing if rate < 0.5 else degraded).append(f"checks passed {rate:.0%} of the time")
    if card.open_alerts:
        degraded.append(f"{len(card.open_alerts)} open alert(s)")
    if failing:
        return "failing", failing + degraded
    if degraded:
        return "degraded", degraded
    return "healthy", []


def scorecards(
    instance: dg.DagsterInstance, defs: dg.Definitions, registry: Registry, products: list[str]
) -> list[Scorecard]:
    alerts = open_alerts(alerts_file(Path(instance.root_directory)))
    return [
        scorecard(instance, defs, registry, registry.products[pid], alerts=alerts)
        for pid in products
    ]
