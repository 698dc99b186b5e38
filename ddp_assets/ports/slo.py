"""A port's SLO status for the REST port: freshness against the product's SLO, open alerts.

The same computation as ``ddp status`` (:mod:`ddp_assets.automation.health`), for one port and
from the Dagster instance only: the full scorecard also walks the code location's asset graph,
which takes a server many seconds to load, and the check pass rate is a product-level figure
that ``ddp status`` already gives.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from ddp_assets.automation.alerts import alerts_file, open_alerts, slo_state
from ddp_assets.spec.registry import Product


def port_slo(instance: dg.DagsterInstance, product: Product, port: str) -> dict[str, Any]:
    output = product.spec.output_port(port)
    assert output is not None
    freshness = product.spec.slos.freshness
    now = datetime.now(UTC).timestamp()
    event = instance.get_latest_materialization_event(dg.AssetKey([product.id, output.model]))
    at = None if event is None else event.timestamp
    state = slo_state(freshness, at, now)
    fail = freshness.max_age_delta if freshness else None
    alerts = [
        {"kind": a.kind, "message": a.message, "at": a.at}
        for a in open_alerts(alerts_file(Path(instance.root_directory)))
        if a.product == product.id
    ]
    return {
        "product": product.id,
        "port": port,
        "state": state,
        "refresh": product.spec.slos.refresh,
        "last_materialized_at": None if at is None else datetime.fromtimestamp(at, UTC).isoformat(),
        "age_seconds": None if at is None else round(now - at, 1),
        "max_age_seconds": None if fail is None else fail.total_seconds(),
        "deadline": freshness.deadline if freshness else None,
        "open_alerts": alerts,
    }
