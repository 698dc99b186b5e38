"""Keep the serving snapshot and the consumers' SQL ports in step with what is published.

The REST and SQL ports read a snapshot of the published output ports (``ports/serving.py``),
never the warehouse. This sensor watches the Dagster instance for new materializations of the
publish assets (``[product, model]`` of every output port) and, when there are any, rebuilds the
snapshot and the SQL ports, exactly as ``ddp ports build`` does. It launches no run: the rebuild
reads the warehouse read-only after the publishing run released it, and swaps files in
atomically, so a reader never sees half a snapshot. The cursor is the storage id of the newest
publish it has served.
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
        "port is published (what `ddp ports build` does); launches no run.",
    )
    def _refresh(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        from ddp_assets.ports.api import build_ports
        from ddp_assets.ports.store import Store
        from ddp_assets.warehouse import DuckDBWarehouse, warehouse_for

        if not isinstance(warehouse_for(paths), DuckDBWarehouse):
            return dg.SkipReason(
                "the serving snapshot is built from the DuckDB warehouse; on PostgreSQL the "
                "ports are views and grants (`ddp ports postgres`)"
            )
        newest = latest_publish(context.instance, keys)
        if newest <= int(context.cursor or 0):
            return dg.SkipReason("no output port published since the last snapshot")
        report = build_ports(paths, registry, Store.open(paths))
        context.update_cursor(str(newest))
        return dg.SkipReason(
            f"serving snapshot rebuilt: {len(report.snapshot)} port(s), "
            f"{len(report.sql_ports)} consumer SQL port(s)"
        )

    return _refresh
