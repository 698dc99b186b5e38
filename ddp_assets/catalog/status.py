"""A product's last materialization and the status of its checks, from the Dagster instance."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dagster as dg

from ddp_assets.naming import port_key, staging_key
from ddp_assets.spec.registry import Product


def asset_keys(product: Product) -> list[dg.AssetKey]:
    """Every asset key the product may have (output port models also built in staging)."""
    names = [p.name for p in product.spec.input_ports if p.type in ("file", "table")]
    keys = [port_key(product.id, n) for n in [*names, *product.model_names]]
    keys += [staging_key(product.id, m) for m in product.output_models]
    return keys


def product_status(instance: dg.DagsterInstance, product: Product) -> dict[str, Any]:
    """The latest materialization of each asset of the product, and the checks of that run."""
    latest = instance.get_latest_materialization_events(asset_keys(product))
    entries = {k: e for k, e in latest.items() if e is not None}
    if not entries:
        return {"materialized": False, "last_materialization": None, "checks": None}
    newest = max(entries.values(), key=lambda e: e.timestamp)
    run_id = newest.run_id
    keys = set(entries)
    checks: list[dict[str, Any]] = []
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = record.dagster_event.event_specific_data if record.dagster_event else None
        asset_key = getattr(evaluation, "asset_key", None)
        if asset_key not in keys:
            continue
        severity = getattr(evaluation, "severity", None)
        checks.append(
            {
                "asset": "/".join(asset_key.path),
                "check": getattr(evaluation, "check_name", "?"),
                "passed": bool(getattr(evaluation, "passed", False)),
                "severity": str(getattr(severity, "value", severity or "ERROR")),
            }
        )
    run = instance.get_run_by_id(run_id)
    failed = [c for c in checks if not c["passed"]]
    return {
        "materialized": True,
        "last_materialization": {
            "at": datetime.fromtimestamp(newest.timestamp, tz=UTC).isoformat(timespec="seconds"),
            "run_id": run_id,
            "run_status": run.status.value if run else None,
            "assets": sum(1 for e in entries.values() if e.run_id == run_id),
            "of_assets": len(entries),
        },
        "checks": {
            "total": len(checks),
            "passed": len(checks) - len(failed),
            "failed": [f"{c['asset']}:{c['check']}" for c in failed],
            "status": "no checks" if not checks else ("failing" if failed else "passing"),
            "results": checks,
        },
    }


def instance_if_any(paths: Any) -> dg.DagsterInstance | None:
    """The project's Dagster instance when it exists (never creates one for a read)."""
    from ddp_assets.runtime.instance import ensure_dagster_home

    if not (paths.dagster_home / "dagster.yaml").exists():
        return None
    ensure_dagster_home(paths)
    return dg.DagsterInstance.get()
