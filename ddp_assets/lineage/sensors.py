"""Run-status sensors that emit OpenLineage events for runs launched from the UI or schedules.

Headless runs (``ddp materialize``) emit at the end of the run themselves; the daemon sees those
runs too, and the per-run marker of :mod:`ddp_assets.lineage.emit` keeps it to one emission.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from ddp_assets.settings import ProjectPaths

STATUSES = {
    "success": dg.DagsterRunStatus.SUCCESS,
    "failure": dg.DagsterRunStatus.FAILURE,
    "canceled": dg.DagsterRunStatus.CANCELED,
}


def lineage_sensors(root: Path, minimum_interval_seconds: int = 15) -> list[dg.SensorDefinition]:
    paths = ProjectPaths(root)
    sensors: list[dg.SensorDefinition] = []
    for name, status in STATUSES.items():

        @dg.run_status_sensor(
            run_status=status,
            name=f"ddp_openlineage_on_{name}",
            description=f"Emits the OpenLineage events of every run that ends in {name}.",
            minimum_interval_seconds=minimum_interval_seconds,
            default_status=dg.DefaultSensorStatus.RUNNING,
        )
        def _emit(context: dg.RunStatusSensorContext) -> None:
            # imported here: the OpenLineage client is not needed to load the code location
            from ddp_assets.lineage.emit import emit_lineage_safely

            result = emit_lineage_safely(context.instance, context.dagster_run.run_id, paths)
            if result is not None:
                context.log.info(
                    f"OpenLineage: run {result.run_id} {result.status} ({result.events} events)"
                )
                if result.notice:
                    context.log.warning(result.notice)

        sensors.append(_emit)
    return sensors


class LineageSensors(dg.Component, dg.Model, dg.Resolvable):
    """OpenLineage emission for every run of this code location (success, failure, cancel)."""

    minimum_interval_seconds: int = 15

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return dg.Definitions(
            sensors=lineage_sensors(Path(context.project_root), self.minimum_interval_seconds)
        )
