"""The ``ProductAutomation`` component: schedules, landing sensors, the automation sensor and
alert sensors of every product, from the product specs (instance: ``defs/_platform/automation``).
"""

from __future__ import annotations

import os

import dagster as dg

from ddp_assets.automation.alerts import AlertSink, alerts_file, failure_sensor, slo_sensor
from ddp_assets.automation.landing import landing_sensor
from ddp_assets.automation.schedules import product_schedules
from ddp_assets.components.context import context_for
from ddp_assets.ports.access import expiry_sensor
from ddp_assets.ports.refresh import ports_refresh_sensor
from ddp_assets.spec.model import FileInputPort


class ProductAutomation(dg.Component, dg.Model, dg.Resolvable):
    """Keeps data products fresh and raises alerts; every piece can be switched off in the UI."""

    # short ticks keep the ripple from a landing file to its last consumer under a minute
    landing_interval_seconds: int = 5
    automation_interval_seconds: int = 5
    slo_interval_seconds: int = 60
    ports_interval_seconds: int = 15
    access_interval_seconds: int = 30  # expired access grants leave the SQL ports
    alert_webhook_url: str | None = None  # default: $DDP_ALERT_WEBHOOK, read when loading

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        platform = context_for(context)
        paths, registry = platform.paths, platform.registry
        webhook = self.alert_webhook_url or os.environ.get("DDP_ALERT_WEBHOOK") or None
        sink = AlertSink(alerts_file(paths.dagster_home), webhook)
        sensors: list[dg.SensorDefinition] = [
            landing_sensor(product, paths, self.landing_interval_seconds)
            for product in sorted(registry.products.values(), key=lambda p: p.id)
            if any(isinstance(p, FileInputPort) for p in product.spec.input_ports)
        ]
        sensors.append(
            dg.AutomationConditionSensorDefinition(
                "ddp_automation",
                target=dg.AssetSelection.all(),
                default_status=dg.DefaultSensorStatus.RUNNING,
                minimum_interval_seconds=self.automation_interval_seconds,
                description="Refreshes products declared 'refresh: on_upstream_change'.",
            )
        )
        sensors.append(failure_sensor(registry, sink))
        sensors.append(slo_sensor(registry, sink, self.slo_interval_seconds))
        sensors.append(ports_refresh_sensor(registry, paths, self.ports_interval_seconds))
        sensors.append(expiry_sensor(registry, paths, self.access_interval_seconds))
        return dg.Definitions(schedules=product_schedules(registry), sensors=sensors)
