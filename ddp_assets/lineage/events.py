"""OpenLineage RunEvents for one finished Dagster run, read from the run's event log.

Each asset the run planned is one OpenLineage job (namespace ``ddp``, name
``<product>.<model>``) with its own run: a START, then exactly one of COMPLETE (materialized),
FAIL (its step failed) or ABORT (skipped or cancelled). Every event carries a parent run facet
naming the Dagster run (its run id) and the run's job, by this rule
(:func:`~ddp_assets.lineage.naming.parent_job_name`):

1. the run's Dagster job when it is one defined in code, not Dagster's internal
   ``__ASSET_JOB`` (nor another ``__``-prefixed job, as ``dg.materialize`` runs);
2. else the schedule or sensor that launched the run (tags ``dagster/schedule_name``,
   ``dagster/sensor_name``);
3. else, an ad-hoc run (``ddp materialize``, *Materialize* in the UI):
   ``ddp.materialize.<product>`` when it materialized one product's assets, else
   ``ddp.materialize``.

The Dagster run is also the root (``root`` of the parent facet). The asset checks evaluated in
the run become a test job per asset (``<product>.<model>.checks``) whose input, the asset's
table, carries the ``dataQualityAssertions`` facet: that facet is an *input* dataset facet in
the spec.

Every input and output dataset carries a ``dataSource`` facet: ``name`` the dataset's
namespace, ``uri`` the warehouse (``duckdb://<file>``, ``postgres://host:port/<database>``) or,
for landing files, the landing zone (``file:///<landing dir>``); see
:func:`~ddp_assets.lineage.naming.data_source`. The ``producer`` of every event and facet is
:func:`~ddp_assets.lineage.facets.producer` (``$DDP_OPENLINEAGE_PRODUCER``, read when the
events are built).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attr
import dagster as dg
from openlineage.client.event_v2 import (
    InputDataset,
    Job,
    OutputDataset,
    Run,
    RunEvent,
    RunState,
)
from openlineage.client.generated import (
    column_lineage_dataset,
    data_quality_assertions_dataset,
    datasource_dataset,
    documentation_dataset,
    documentation_job,
    error_message_run,
    job_type_job,
    output_statistics_output_dataset,
    ownership_dataset,
    ownership_job,
    parent_run,
    processing_engine_run,
    schema_dataset,
    sql_job,
)
from openlineage.client.uuid import generate_static_uuid

from ddp_assets.lineage.facets import (
    FACET_NAME,
    DataProductDatasetFacet,
    DataProductJobFacet,
    producer,
)
from ddp_assets.lineage.graph import AssetLineage, DatasetRef, LineageGraph
from ddp_assets.lineage.naming import JOB_NAMESPACE, data_source, parent_job_name
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.registry import Registry

FINISHED = {
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
}


@dataclass
class CheckResult:
    name: str
    passed: bool
    severity: str
    timestamp: float
    description: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class AssetExecution:
    """What happened to one asset in a Dagster run."""

    key: str  # product/model
    step_key: str | None = None
    started: float | None = None
    finished: float | None = None
    state: str = "ABORT"  # COMPLETE | FAIL | ABORT
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    checks: list[CheckResult] = field(default_factory=list)
    planned: bool = False  # False for an asset the run only checked


@dataclass
class RunRecord:
    run_id: str
    job_name: str
    status: str
    started: float
    finished: float
    assets: dict[str, AssetExecution]
    tags: dict[str, str] = field(default_factory=dict)


def _value(value: Any) -> Any:
    raw = getattr(value, "value", value)
    if isinstance(raw, dg.TableSchema):
        return {c.name: c.type for c in raw.columns}
    if isinstance(raw, (str, int, float, bool)) or raw is None:
        return raw
    if isinstance(raw, (list, tuple)):
        return [_value(v) for v in raw]
    if isinstance(raw, dict):
        return {str(k): _value(v) for k, v in raw.items()}
    return str(raw)


def _error_message(error: Any) -> str:
    """The message of a step failure and of what caused it (Dagster wraps user errors)."""
    messages: list[str] = []
    while error is not None and len(messages) < 5:
        message = str(getattr(error, "message", "") or "").strip()
        if message:
            messages.append(message)
        error = getattr(error, "cause", None)
    return " <- ".join(reversed(messages)) or "step failed"


def _key(asset_key: dg.AssetKey) -> str:
    return "/".join(asset_key.path)


_READ_KINDS = {
    dg.DagsterEventType.RUN_START,
    dg.DagsterEventType.RUN_SUCCESS,
    dg.DagsterEventType.RUN_FAILURE,
    dg.DagsterEventType.RUN_CANCELED,
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
    dg.DagsterEventType.ASSET_MATERIALIZATION,
    dg.DagsterEventType.ASSET_CHECK_EVALUATION,
}


def read_run(instance: dg.DagsterInstance, run_id: str) -> RunRecord | None:
    """The run's outcome per asset, from its event log; None while it has not finished."""
    run = instance.get_run_by_id(run_id)
    if run is None or run.status not in FINISHED:
        return None
    step_started: dict[str, float] = {}
    step_failed: dict[str, str] = {}
    assets: dict[str, AssetExecution] = {}
    run_started = run_finished = None
    # only the kinds read below: a run's log also holds every log line, step output and check
    # plan, which would be deserialized for nothing
    for record in instance.get_records_for_run(run_id, of_type=_READ_KINDS).records:
        entry = record.event_log_entry
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type
        if kind == dg.DagsterEventType.RUN_START:
            run_started = entry.timestamp
        elif kind in (
            dg.DagsterEventType.RUN_SUCCESS,
            dg.DagsterEventType.RUN_FAILURE,
            dg.DagsterEventType.RUN_CANCELED,
        ):
            run_finished = entry.timestamp
        elif kind == dg.DagsterEventType.STEP_START and event.step_key:
            step_started.setdefault(event.step_key, entry.timestamp)
        elif kind == dg.DagsterEventType.STEP_FAILURE and event.step_key:
            step_failed[event.step_key] = _error_message(
                getattr(event.event_specific_data, "error", None)
            )
        elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED and event.asset_key:
            execution = assets.setdefault(
                _key(event.asset_key), AssetExecution(_key(event.asset_key))
            )
            execution.step_key = execution.step_key or event.step_key
            execution.planned = True
        elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.step_materialization_data.materialization
            key = _key(materialization.asset_key)
            execution = assets.setdefault(key, AssetExecution(key))
            execution.step_key = execution.step_key or event.step_key
            execution.state = "COMPLETE"
            execution.planned = True
            execution.finished = entry.timestamp
            execution.metadata = {k: _value(v) for k, v in materialization.metadata.items()}
        elif kind == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            asset_key = getattr(evaluation, "asset_key", None)
            if asset_key is None:
                continue
            key = _key(asset_key)
            execution = assets.setdefault(key, AssetExecution(key))
            severity = getattr(evaluation, "severity", None)
            execution.checks.append(
                CheckResult(
                    name=str(getattr(evaluation, "check_name", "check")),
                    passed=bool(getattr(evaluation, "passed", False)),
                    severity=str(getattr(severity, "value", severity or "ERROR")),
                    timestamp=entry.timestamp,
                    description=getattr(evaluation, "description", None),
                    metadata={
                        k: _value(v) for k, v in (getattr(evaluation, "metadata", {}) or {}).items()
                    },
                )
            )
    started = run_started or (min(step_started.values()) if step_started else 0.0)
    finished = run_finished or max(
        [started, *(a.finished or 0.0 for a in assets.values()), *step_started.values()]
    )
    for execution in assets.values():
        step = execution.step_key
        execution.started = step_started.get(step or "", execution.finished or finished)
        if execution.state != "COMPLETE":
            if step in step_failed:
                execution.state = "FAIL"
                execution.error = step_failed[step]
            execution.finished = finished
    return RunRecord(
        run_id=run.run_id,
        job_name=run.job_name,
        status=run.status.value,
        started=started,
        finished=finished,
        assets=assets,
        tags=dict(run.tags),
    )


def _time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat()


def _owner(owner: str) -> tuple[str, str]:
    return (owner, "team") if owner.startswith("team:") else (f"email:{owner}", "email")


def _schema_facet(columns: Mapping[str, str | None], descriptions: Mapping[str, str]) -> Any:
    return schema_dataset.SchemaDatasetFacet(
        fields=[
            schema_dataset.SchemaDatasetFacetFields(
                name=name, type=kind or None, description=descriptions.get(name)
            )
            for name, kind in columns.items()
        ],
    )


@dataclass
class EventBuilder:
    """Turns a :class:`RunRecord` into RunEvents, with the graph and specs for the facets."""

    graph: LineageGraph
    registry: Registry
    manifest: Mapping[str, Any]
    contracts_root: Path | None = None
    # the landing zone, for the dataSource of file datasets: the project's (the registry's
    # root) when not given
    landing_dir: Path | None = None
    _parents: dict[str, parent_run.ParentRunFacet] = field(
        default_factory=dict, init=False, repr=False
    )

    def events(self, record: RunRecord) -> list[RunEvent]:
        if self.landing_dir is None:
            self.landing_dir = ProjectPaths(self.registry.root).landing_dir.resolve()
        self._parents.clear()
        events: list[tuple[float, int, RunEvent]] = []
        for execution in record.assets.values():
            asset = self.graph.assets.get(execution.key)
            if asset is None:
                continue
            if execution.planned:
                for order, (time, event) in enumerate(self._asset_events(record, execution, asset)):
                    events.append((time, order, event))
            if execution.checks:
                for order, (time, event) in enumerate(self._check_events(record, execution, asset)):
                    events.append((time, order, event))
        events.sort(key=lambda item: (item[0], item[1]))
        stamp = producer()  # read once per run: every event of a run names the same producer
        return [_stamp(event, stamp) for _, _, event in events]

    # -- facets -------------------------------------------------------------------------

    def _parent(self, record: RunRecord) -> parent_run.ParentRunFacet:
        """The Dagster run, named by ``naming.parent_job_name`` (one facet per run: the
        builder stamps copies of it, never changes it)."""
        if record.run_id in self._parents:
            return self._parents[record.run_id]
        name = parent_job_name(record.job_name, record.tags, self._products_of(record))
        self._parents[record.run_id] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=record.run_id),
            job=parent_run.Job(namespace=JOB_NAMESPACE, name=name),
            root=parent_run.Root(
                run=parent_run.RootRun(runId=record.run_id),
                job=parent_run.RootJob(namespace=JOB_NAMESPACE, name=name),
            ),
        )
        return self._parents[record.run_id]

    def _products_of(self, record: RunRecord) -> set[str]:
        """The products the run materialized; those it only checked for a check-only run."""
        known = [e for e in record.assets.values() if e.key in self.graph.assets]
        planned = [e for e in known if e.planned] or known
        return {self.graph.assets[e.key].product for e in planned}

    def _data_source(self, namespace: str, name: str) -> datasource_dataset.DatasourceDatasetFacet:
        source, uri = data_source(namespace, name, self.landing_dir)
        return datasource_dataset.DatasourceDatasetFacet(name=source, uri=uri)

    def _engine(self) -> processing_engine_run.ProcessingEngineRunFacet:
        return processing_engine_run.ProcessingEngineRunFacet(
            version=dg.__version__,
            name="Dagster",
            openlineageAdapterVersion=importlib.metadata.version("openlineage-python"),
        )

    def _product_fields(self, asset: AssetLineage) -> dict[str, Any]:
        spec = self.registry.products[asset.product].spec
        contract = None
        if asset.port:
            contract = _contract_id(self.registry, asset.product, asset.port)
        return {
            "product": spec.id,
            "name": spec.name,
            "version": spec.version,
            "domain": spec.domain,
            "port": asset.port,
            "contract": contract,
            "status": spec.status,
            "tier": spec.tier,
        }

    def _job(self, asset: AssetLineage, *, checks: bool = False) -> Job:
        spec = self.registry.products[asset.product].spec
        facets: dict[str, Any] = {
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH",
                integration="DBT" if asset.kind == "dbt" and not checks else "DAGSTER",
                jobType="TEST"
                if checks
                else {"dbt": "MODEL", "python": "MODEL"}.get(asset.kind, "TASK"),
            ),
            "ownership": ownership_job.OwnershipJobFacet(
                owners=[ownership_job.Owner(name=n, type=t) for n, t in map(_owner, spec.owners)],
            ),
            FACET_NAME: DataProductJobFacet(**self._product_fields(asset)),
        }
        description = asset.description or spec.description.purpose
        if checks:
            description = f"Checks of {asset.output.name}."
        facets["documentation"] = documentation_job.DocumentationJobFacet(description=description)
        if asset.sql and not checks:
            facets["sql"] = sql_job.SQLJobFacet(query=asset.sql, dialect=self.graph.dialect)
        name = asset.job + (".checks" if checks else "")
        return Job(namespace=JOB_NAMESPACE, name=name, facets=facets)

    def _input(self, ref: DatasetRef, inputs_facets: Mapping[str, Any] | None = None) -> Any:
        facets: dict[str, Any] = {"dataSource": self._data_source(ref.namespace, ref.name)}
        upstream = self.graph.assets.get(ref.asset) if ref.asset else None
        if upstream is not None and upstream.columns:
            facets["schema"] = _schema_facet(upstream.columns, upstream.column_descriptions)
        return InputDataset(
            namespace=ref.namespace,
            name=ref.name,
            facets=facets,
            inputFacets=dict(inputs_facets or {}),
        )

    def _output(
        self, asset: AssetLineage, execution: AssetExecution, *, final: bool
    ) -> OutputDataset:
        spec = self.registry.products[asset.product].spec
        columns = asset.columns or {
            k: v for k, v in (execution.metadata.get("dagster/column_schema") or {}).items()
        }
        facets: dict[str, Any] = {
            "dataSource": self._data_source(asset.output.namespace, asset.output.name),
            "ownership": ownership_dataset.OwnershipDatasetFacet(
                owners=[
                    ownership_dataset.Owner(name=n, type=t) for n, t in map(_owner, spec.owners)
                ],
            ),
            FACET_NAME: DataProductDatasetFacet(**self._product_fields(asset)),
        }
        if columns:
            facets["schema"] = _schema_facet(columns, asset.column_descriptions)
        port = spec.output_port(asset.port) if asset.port else None
        description = (port.description if port else None) or asset.description
        if description:
            facets["documentation"] = documentation_dataset.DocumentationDatasetFacet(
                description=description
            )
        if asset.column_lineage:
            facets["columnLineage"] = column_lineage_facet(asset, self.graph)
        output_facets: dict[str, Any] = {}
        rows = execution.metadata.get("dagster/row_count")
        if final and isinstance(rows, int):
            output_facets["outputStatistics"] = (
                output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(rowCount=rows)
            )
        return OutputDataset(
            namespace=asset.output.namespace,
            name=asset.output.name,
            facets=facets,
            outputFacets=output_facets,
        )

    # -- events -------------------------------------------------------------------------

    def _run_id(self, record: RunRecord, name: str, started: float) -> str:
        instant = datetime.fromtimestamp(started, tz=UTC)
        return str(generate_static_uuid(instant, f"{record.run_id}/{name}".encode()))

    def _asset_events(
        self, record: RunRecord, execution: AssetExecution, asset: AssetLineage
    ) -> Iterable[tuple[float, RunEvent]]:
        started = execution.started or record.started
        finished = max(execution.finished or record.finished, started)
        job = self._job(asset)
        run_id = self._run_id(record, job.name, started)
        run_facets: dict[str, Any] = {
            "parent": self._parent(record),
            "processing_engine": self._engine(),
        }
        inputs = [self._input(ref) for ref in asset.inputs]
        yield (
            started,
            RunEvent(
                eventType=RunState.START,
                eventTime=_time(started),
                run=Run(runId=run_id, facets=run_facets),
                job=job,
                inputs=inputs,
                outputs=[self._output(asset, execution, final=False)],
            ),
        )
        final_facets = dict(run_facets)
        if execution.state == "FAIL" and execution.error:
            final_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=execution.error[:4000], programmingLanguage="python"
            )
        yield (
            finished,
            RunEvent(
                eventType=RunState[execution.state],
                eventTime=_time(finished),
                run=Run(runId=run_id, facets=final_facets),
                job=job,
                inputs=inputs,
                outputs=[self._output(asset, execution, final=True)],
            ),
        )

    def _check_events(
        self, record: RunRecord, execution: AssetExecution, asset: AssetLineage
    ) -> Iterable[tuple[float, RunEvent]]:
        started = min(c.timestamp for c in execution.checks)
        finished = max(c.timestamp for c in execution.checks)
        job = self._job(asset, checks=True)
        run_id = self._run_id(record, job.name, started)
        assertions = data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
            assertions=[self._assertion(check) for check in execution.checks],
        )
        run_facets: dict[str, Any] = {"parent": self._parent(record)}
        blocking = [c.name for c in execution.checks if not c.passed and c.severity == "ERROR"]
        final_facets = dict(run_facets)
        if blocking:
            final_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=f"failed checks: {', '.join(blocking)}",
                programmingLanguage="python",
            )
        yield (
            started,
            RunEvent(
                eventType=RunState.START,
                eventTime=_time(started),
                run=Run(runId=run_id, facets=run_facets),
                job=job,
                inputs=[self._input(asset.output)],
            ),
        )
        yield (
            finished,
            RunEvent(
                eventType=RunState.FAIL if blocking else RunState.COMPLETE,
                eventTime=_time(finished),
                run=Run(runId=run_id, facets=final_facets),
                job=job,
                inputs=[self._input(asset.output, {"dataQualityAssertions": assertions})],
            ),
        )

    def _assertion(self, check: CheckResult) -> data_quality_assertions_dataset.Assertion:
        test = self.manifest.get("nodes", {}).get(str(check.metadata.get("unique_id", "")), {})
        kind = (test.get("test_metadata") or {}).get("name")
        column = test.get("column_name") or check.metadata.get("column")
        actual = check.metadata.get("dagster_dbt/failed_row_count")
        return data_quality_assertions_dataset.Assertion(
            assertion=str(kind or check.name),
            success=check.passed,
            column=str(column) if column else None,
            severity=check.severity.lower(),
            name=check.name,
            description=check.description or None,
            actual=None if actual is None else f"{actual} failing rows",
            params=None,
        )


def _stamp(event: RunEvent, stamp: str | None = None) -> RunEvent:
    """Set ddp (``stamp``, else :func:`producer`) as the producer of the event and its facets.

    A facet's producer is its constructor's ``producer`` argument (the attrs field
    ``_producer``); ``attr.evolve`` rebuilds each facet with it, through that public argument.
    """
    stamp = stamp or producer()
    event.producer = stamp
    facet_maps: list[dict[str, Any] | None] = [event.run.facets, event.job.facets]
    for dataset in [*(event.inputs or []), *(event.outputs or [])]:
        facet_maps.append(dataset.facets)
        facet_maps.append(getattr(dataset, "inputFacets", None))
        facet_maps.append(getattr(dataset, "outputFacets", None))
    for facets in facet_maps:
        if facets:
            for name, facet in facets.items():
                facets[name] = attr.evolve(facet, producer=stamp)
    return event


def column_lineage_facet(
    asset: AssetLineage, graph: LineageGraph
) -> column_lineage_dataset.ColumnLineageDatasetFacet:
    namespaces = {i.table: i.namespace for i in asset.inputs if i.table}
    fields: dict[str, column_lineage_dataset.Fields] = {}
    for column, sources in asset.column_lineage.items():
        if not sources:
            continue
        fields[column] = column_lineage_dataset.Fields(
            inputFields=[
                column_lineage_dataset.InputField(
                    namespace=namespaces.get(s.table, graph.namespace),
                    name=".".join(s.table),
                    field=s.column,
                    transformations=[
                        column_lineage_dataset.Transformation(type="DIRECT", subtype=s.subtype)
                    ],
                )
                for s in sources
            ]
        )
    return column_lineage_dataset.ColumnLineageDatasetFacet(fields=fields)


def _contract_id(registry: Registry, product_id: str, port: str) -> str | None:
    # the compiled plan: memoized, and already in memory after a code location load
    # (ddp_assets/dbt/load_cache.py), where parsing the contract again cost ~0.05 s per port;
    # compiled with the product's inputs, as the load compiled it, or it is another plan
    # (13 contracts read and compiled again: ~1 s of a demo run's emission, measured)
    from ddp_assets.contracts.compiler import compile_contract
    from ddp_assets.contracts.sql_rules import input_relations

    product = registry.products[product_id]
    try:
        output = product.spec.output_port(port)
        assert output is not None
        plan = compile_contract(
            product.contract_path(port),
            output.model,
            registry.root,
            inputs=input_relations(product, registry),
        )
        return plan.contract_id
    except Exception:
        return None


def landing_files_of(
    record: RunRecord, landing_dir: Path, keys: Sequence[str]
) -> dict[str, list[Path]]:
    """The files each landing load of the run read (from its materialization metadata)."""
    found: dict[str, list[Path]] = {}
    for key in keys:
        execution = record.assets.get(key)
        files = execution.metadata.get("ddp/files") if execution else None
        if isinstance(files, list):
            found[key] = [landing_dir / str(f) for f in files]
    return found
