"""``refresh: schedule`` → one Dagster schedule per product, over the product's asset group."""

from __future__ import annotations

import dagster as dg

from ddp_assets.spec.registry import Registry


def product_schedules(registry: Registry) -> list[dg.ScheduleDefinition]:
    schedules = []
    for product in sorted(registry.products.values(), key=lambda p: p.id):
        slos = product.spec.slos
        if slos.refresh != "schedule" or not slos.schedule:
            continue
        schedules.append(
            dg.ScheduleDefinition(
                name=f"{product.id}__schedule",
                cron_schedule=slos.schedule,
                execution_timezone=slos.timezone,
                target=dg.AssetSelection.groups(product.id),
                default_status=dg.DefaultScheduleStatus.RUNNING,
                description=f"Refreshes data product '{product.id}' "
                f"({slos.schedule}, {slos.timezone}).",
                tags={"ddp/product": product.id, "ddp/trigger": "schedule"},
            )
        )
    return schedules
