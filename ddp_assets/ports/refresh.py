"""Keep the serving snapshot and the consumers' SQL ports in step with what is published.

The REST and SQL ports read a snapshot of the published output ports (``ports/serving.py``),
never the warehouse. This sensor watches the Dagster instance for new materializations of the
publish assets (``[product, model]`` of every output port) and, when there are any, rebuilds the
snapshot and the SQL ports, exactly as ``ddp ports build`` does. It launches no run: the rebuild
reads the warehouse read-only after the publishing run released it, and swaps files in
atomically, so a reader never sees half a snapshot. On a PostgreSQL warehouse it first applies
the ports' views and grants to the warehouse (:func:`ddp_assets.ports.postgres.apply_ports`).
The cursor is the storage id of the newest publish it has served.
"""

from __future__ import annotations

import dagster as dg

from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.registry import Registry


def publish_keys(registry: Registry) -> list[dg.AssetKey]:
    return [
        dg.AssetKey([product.id, port.model])
        for product in registry.products.values()
        for port in product.spec.output_ports
    ]


def latest_publish(instance: dg.DagsterInstance, keys: list[dg.AssetKey]) -> int:
    """Storage id of the newest materialization of any publish asset (0 when none)."""
    newest = 0
    for record in instance.get_asset_records(keys):
        last = record.asset_entry.last_materialization_record
        if last is not None:
            newest = max(newest, last.storage_id)
    return newest


def ports_refresh_sensor(
    registry: Registry, paths: ProjectPaths, interval_seconds: int
) -> dg.SensorDefinition:
    keys = publish_keys(registry)

    @dg.sensor(
        name="ddp_ports_refresh",
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Rebuilds the serving snapshot and the consumers' SQL ports after an output "
        "port is published, on PostgreSQL applies the port views and grants (what "
        "`ddp ports build` does); launches no run.",
    )
    def _refresh(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        from ddp_assets.ports.api import build_ports
        from ddp_assets.ports.store import Store
        from ddp_assets.warehouse import DuckDBWarehouse, warehouse_for

        newest = latest_publish(context.instance, keys)
        if newest <= int(context.cursor or 0):
            return dg.SkipReason("no output port published since the last snapshot")
        store = Store.open(paths)
        applied = ""
        if not isinstance(warehouse_for(paths), DuckDBWarehouse):
            # PostgreSQL: the port views and grants first (a publish that changed a table's
            # columns dropped them); an ApplyError fails the tick and the next one retries
            from ddp_assets.ports.postgres import apply_ports

            done = apply_ports(paths, registry, store)
            applied = f"; PostgreSQL port views applied: {len(done.ports) if done else 0}"
        report = build_ports(paths, registry, store)
        context.update_cursor(str(newest))
        return dg.SkipReason(
            f"serving snapshot rebuilt: {len(report.snapshot)} port(s), "
            f"{len(report.sql_ports)} consumer SQL port(s){applied}"
        )

    return _refresh
