"""Validating OpenLineage events against the official JSON Schemas in ``../shared/spec``.

The facet schemas reference the core schema by URL; every file is registered under its ``$id``
with ``referencing`` so nothing is fetched. ddp's own facet schema ships in the package.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
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


# -- the producer, ddp's facet schema, parent and dataSource facets ----------------------


def test_producer_is_the_setting_read_when_events_are_built(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from ddp_assets.lineage.facets import PRODUCER_ENV, ddp_version, default_producer, producer

    monkeypatch.delenv(PRODUCER_ENV, raising=False)
    assert producer() == default_producer() == f"https://pypi.org/project/ddp/{ddp_version()}/"
    monkeypatch.setenv(PRODUCER_ENV, "https://git.example.org/data/ddp/tree/v1.4.0")
    assert producer() == "https://git.example.org/data/ddp/tree/v1.4.0"  # not cached
    monkeypatch.setenv(PRODUCER_ENV, "  ")  # blank is unset
    assert producer() == default_producer()
    monkeypatch.setenv(PRODUCER_ENV, "our ddp fork")
    monkeypatch.setattr("ddp_assets.lineage.facets._warned", set())  # warned once per value
    with caplog.at_level(logging.WARNING, logger="ddp_assets.lineage.facets"):
        assert producer() == default_producer()
    (warning,) = [r.getMessage() for r in caplog.records]
    assert PRODUCER_ENV in warning and "'our ddp fork'" in warning and "Hint" in warning


def test_facet_schema_is_published_under_the_facets_schema_url() -> None:
    from ddp_assets.lineage.facets import (
        SCHEMA_URL,
        DataProductDatasetFacet,
        DataProductJobFacet,
        default_producer,
    )

    schema = facet_schema()
    assert schema["$id"] == SCHEMA_URL
    assert SCHEMA_URL.startswith("https://") and "example" not in SCHEMA_URL
    assert SCHEMA_URL.endswith("/spec/facets/1-0-0/DataProductFacet.json")
    assert SCHEMA_URL.startswith(default_producer().rsplit("/", 2)[0] + "/")  # the same base
    job = DataProductJobFacet(product="orders", version="1.0.0", domain="sales")
    dataset = DataProductDatasetFacet(product="orders", version="1.0.0", domain="sales")
    for facet in (job, dataset):
        url, _, pointer = facet._schemaURL.partition("#")
        assert url == SCHEMA_URL
        assert pointer.removeprefix("/$defs/") in schema["$defs"]


def _event_with_parent_and_sources(producer_uri: str) -> dict[str, Any]:
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )
    from openlineage.client.generated import datasource_dataset, parent_run
    from openlineage.client.serde import Serde

    from ddp_assets.lineage.events import _stamp
    from ddp_assets.lineage.facets import FACET_NAME, DataProductDatasetFacet

    def source(name: str, uri: str) -> datasource_dataset.DatasourceDatasetFacet:
        return datasource_dataset.DatasourceDatasetFacet(name=name, uri=uri)

    run_id = "0195f2a0-0000-7000-8000-000000000001"
    parent = parent_run.ParentRunFacet(
        run=parent_run.Run(runId=run_id),
        job=parent_run.Job(namespace="ddp", name="ddp.materialize.orders"),
        root=parent_run.Root(
            run=parent_run.RootRun(runId=run_id),
            job=parent_run.RootJob(namespace="ddp", name="ddp.materialize.orders"),
        ),
    )
    event = RunEvent(
        eventType=RunState.START,
        eventTime="2026-12-01T10:00:00+00:00",
        run=Run(runId="0195f2a0-0000-7000-8000-000000000002", facets={"parent": parent}),
        job=Job(namespace="ddp", name="orders.raw_orders"),
        inputs=[
            InputDataset(
                namespace="file",
                name="/srv/data/landing/orders/orders.csv",
                facets={"dataSource": source("file", "file:///srv/data/landing")},
            )
        ],
        outputs=[
            OutputDataset(
                namespace="postgres://db.internal:5432",
                name="analytics.orders.raw_orders",
                facets={
                    "dataSource": source(
                        "postgres://db.internal:5432", "postgres://db.internal:5432/analytics"
                    ),
                    FACET_NAME: DataProductDatasetFacet(
                        product="orders", version="1.0.0", domain="sales"
                    ),
                },
            )
        ],
    )
    return Serde.to_dict(_stamp(event, producer_uri))


def test_parent_and_data_source_facets_validate(shared_spec: Path) -> None:
    spec_dir = shared_spec / "openlineage"
    event = _event_with_parent_and_sources("https://git.example.org/ddp")
    assert schema_errors(event, spec_dir) == []
    assert event["producer"] == "https://git.example.org/ddp"
    source = event["inputs"][0]["facets"]["dataSource"]
    assert source["_schemaURL"].endswith(
        "DatasourceDatasetFacet.json#/$defs/DatasourceDatasetFacet"
    )
    assert source["_producer"] == "https://git.example.org/ddp"
    # the validation can fail: a parent without its run id, a dataSource name that is no string
    broken = json.loads(json.dumps(event))
    del broken["run"]["facets"]["parent"]["run"]["runId"]
    broken["outputs"][0]["facets"]["dataSource"]["name"] = 5
    errors = schema_errors(broken, spec_dir)
    assert any("parent" in e and "runId" in e for e in errors), errors
    assert any("dataSource" in e for e in errors), errors
