"""OpenLineage events of a rollback: the published datasets pointed at other versions.

A rollback is one run of the job ``<product>.rollback`` (namespace ``ddp``; ``jobType``
ROLLBACK, integration DDP): its inputs are the versions' tables ``<product>__staging.<port>__v<N>``,
its outputs the published relations ``<product>.<model>``, each with the ``version`` dataset
facet (the port version now published), ddp's data-product facet and the row count. The run's
documentation facet says who rolled back, from which version and why. Events go through the
outbox as a run's do (:mod:`ddp_assets.lineage.emit`), once per rollback id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.generated import (
    dataset_version_dataset,
    datasource_dataset,
    documentation_job,
    job_type_job,
    output_statistics_output_dataset,
)

from ddp_assets.lineage.emit import (
    EmitResult,
    Outbox,
    event_dict,
    lineage_dir,
    lineage_disabled,
    make_transport,
)
from ddp_assets.lineage.events import _stamp
from ddp_assets.lineage.facets import FACET_NAME, DataProductDatasetFacet, DataProductJobFacet
from ddp_assets.lineage.naming import (
    JOB_NAMESPACE,
    data_source,
    table_name,
    warehouse_database,
    warehouse_namespace,
)
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.registry import Registry


@dataclass(frozen=True)
class MovedPort:
    """One port of a rollback: its model, the version it left and the one it points at."""

    port: str
    model: str
    from_version: int | None
    to_version: int
    stored_as: str  # the target version's table, schema.table
    rows: int
    contract: str


def _source(namespace: str, name: str) -> datasource_dataset.DatasourceDatasetFacet:
    source, uri = data_source(namespace, name)
    return datasource_dataset.DatasourceDatasetFacet(name=source, uri=uri)


def rollback_events(
    paths: ProjectPaths,
    registry: Registry,
    product: str,
    moved: Sequence[MovedPort],
    *,
    rollback_id: str,
    actor: str,
    reason: str,
    at: datetime | None = None,
) -> list[RunEvent]:
    """START and COMPLETE of the rollback's run."""
    spec = registry.get(product).spec
    namespace, database = warehouse_namespace(paths), warehouse_database(paths)
    fields: dict[str, Any] = {
        "product": spec.id,
        "name": spec.name,
        "version": spec.version,
        "domain": spec.domain,
        "status": spec.status,
        "tier": spec.tier,
    }
    inputs, outputs = [], []
    for move in moved:
        schema, table = move.stored_as.split(".", 1)
        name = table_name(database, schema, table)
        inputs.append(
            InputDataset(
                namespace=namespace, name=name, facets={"dataSource": _source(namespace, name)}
            )
        )
        published = table_name(database, product, move.model)
        facets: dict[str, Any] = {
            "dataSource": _source(namespace, published),
            "version": dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=str(move.to_version)
            ),
            FACET_NAME: DataProductDatasetFacet(
                **fields, port=move.port, contract=move.contract or None
            ),
        }
        outputs.append(
            OutputDataset(
                namespace=namespace,
                name=published,
                facets=facets,
                outputFacets={
                    "outputStatistics": (
                        output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                            rowCount=move.rows
                        )
                    )
                },
            )
        )
    summary = "; ".join(f"{m.port}: v{m.from_version} -> v{m.to_version}" for m in moved)
    job = Job(
        namespace=JOB_NAMESPACE,
        name=f"{product}.rollback",
        facets={
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH", integration="DDP", jobType="ROLLBACK"
            ),
            "documentation": documentation_job.DocumentationJobFacet(
                description=f"Rollback of {product} by {actor or 'unknown'} ({summary})"
                + (f": {reason}" if reason else "")
            ),
            FACET_NAME: DataProductJobFacet(**fields),
        },
    )
    when = (at or datetime.now(UTC)).isoformat()
    return [
        _stamp(
            RunEvent(
                eventType=state,
                eventTime=when,
                run=Run(runId=rollback_id),
                job=job,
                inputs=inputs,
                outputs=outputs,
            )
        )
        for state in (RunState.START, RunState.COMPLETE)
    ]


def emit_rollback_lineage(
    instance: dg.DagsterInstance | Path, rollback_id: str, events: Sequence[RunEvent]
) -> EmitResult:
    """Append the rollback's events to the outbox and deliver it (once per ``rollback_id``);
    a transport that fails leaves them pending for ``ddp lineage flush``."""
    if lineage_disabled():
        return EmitResult(rollback_id, "disabled")
    outbox = Outbox(lineage_dir(instance))
    transport = make_transport(outbox.folder)
    if transport is None:
        return EmitResult(rollback_id, "disabled")
    return outbox.emit_once(rollback_id, [event_dict(event) for event in events], transport)
