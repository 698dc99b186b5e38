"""Validating OpenLineage events against the official JSON Schemas in ``../shared/spec``.

The facet schemas reference the core schema by URL; every file is registered under its ``$id``
with ``referencing`` so nothing is fetched. ddp's own facet schema ships in the package.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from ddp_assets.lineage.facets import facet_schema


@cache
def _registry(spec_dir: Path) -> tuple[Registry, str]:
    documents = [
        json.loads(path.read_text(encoding="utf-8"))
        for path in [spec_dir / "OpenLineage.json", *sorted((spec_dir / "facets").glob("*.json"))]
    ]
    documents.append(facet_schema())
    registry: Registry = Registry().with_resources(
        (document["$id"], Resource.from_contents(document)) for document in documents
    )
    return registry, documents[0]["$id"]


def _facets(event: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    yield "run", event["run"].get("facets") or {}
    yield "job", event["job"].get("facets") or {}
    for kind in ("inputs", "outputs"):
        for dataset in event.get(kind) or []:
            yield f"{kind}[{dataset['name']}]", dataset.get("facets") or {}
            yield (
                f"{kind}[{dataset['name']}].io",
                (dataset.get("inputFacets") or dataset.get("outputFacets") or {}),
            )


def schema_errors(event: Mapping[str, Any], spec_dir: Path) -> list[str]:
    """Every error of the event against the core RunEvent schema and each facet's own schema."""
    registry, core = _registry(spec_dir)
    errors = [
        f"RunEvent: {e.message} at {list(e.absolute_path)}"
        for e in Draft202012Validator(
            {"$ref": f"{core}#/$defs/RunEvent"}, registry=registry
        ).iter_errors(event)
    ]
    for where, facets in _facets(event):
        for name, facet in facets.items():
            url = facet.get("_schemaURL", "")
            if not url:
                errors.append(f"{where}.{name}: no _schemaURL")
                continue
            validator = Draft202012Validator({"$ref": url}, registry=registry)
            errors.extend(
                f"{where}.{name}: {e.message} at {list(e.absolute_path)}"
                for e in validator.iter_errors(facet)
            )
    return errors


def test_every_facet_names_ddp_as_its_producer(shared_spec: Path) -> None:
    """``lineage.events._stamp`` sets the producer of an event and of each facet in it through
    the facets' public constructor argument; the facets keep their values and schema URLs, and
    the event still validates."""
    from openlineage.client.event_v2 import Job, OutputDataset, Run, RunEvent, RunState
    from openlineage.client.generated import (
        documentation_job,
        output_statistics_output_dataset,
        processing_engine_run,
        schema_dataset,
        sql_job,
    )
    from openlineage.client.serde import Serde

    from ddp_assets.lineage.events import _stamp
    from ddp_assets.lineage.facets import FACET_NAME, DataProductJobFacet, producer

    fields = schema_dataset.SchemaDatasetFacetFields(name="id", type="bigint")
    event = RunEvent(
        eventType=RunState.COMPLETE,
        eventTime="2026-12-01T10:00:00+00:00",
        run=Run(
            runId="0195f2a0-0000-7000-8000-000000000000",
            facets={
                "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
                    version="1.13", name="dagster"
                )
            },
        ),
        job=Job(
            namespace="ddp",
            name="sales.orders",
            facets={
                "sql": sql_job.SQLJobFacet(query="select 1", dialect="duckdb"),
                "documentation": documentation_job.DocumentationJobFacet(description="d"),
                FACET_NAME: DataProductJobFacet(product="orders", version="1.0.0", domain="s"),
            },
        ),
        inputs=[],
        outputs=[
            OutputDataset(
                namespace="duckdb://warehouse",
                name="warehouse.orders.orders",
                facets={"schema": schema_dataset.SchemaDatasetFacet(fields=[fields])},
                outputFacets={
                    "outputStatistics": (
                        output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                            rowCount=3
                        )
                    )
                },
            )
        ],
    )
    stamped = Serde.to_dict(_stamp(event))
    assert stamped["producer"] == producer()
    facets = [
        *stamped["run"]["facets"].values(),
        *stamped["job"]["facets"].values(),
        *stamped["outputs"][0]["facets"].values(),
        *stamped["outputs"][0]["outputFacets"].values(),
    ]
    assert len(facets) == 6
    assert {facet["_producer"] for facet in facets} == {producer()}
    assert stamped["job"]["facets"]["sql"]["query"] == "select 1"
    assert stamped["job"]["facets"][FACET_NAME]["_schemaURL"].endswith("DataProductJobFacet")
    assert stamped["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 3
    assert schema_errors(stamped, shared_spec / "openlineage") == []
