"""The floor F: the work the platform has to do, done directly on one DuckDB connection.

The plan holds, in dependency order:

- one ``create or replace table <product>.<port> as select * from read_*(...)`` per file input
  port of every product spec (``Registry.load``), reading the same files with the same options
  as ``ddp_assets/ingest/landing.py``; a view per table input port;
- every dbt model's compiled SQL (from the manifest of ``dbt compile``), wrapped as
  ``create or replace view|table <relation> as <compiled sql>`` by its materialization
  (ephemeral models are inlined by dbt and skipped; incremental ones are built as tables);
- every dbt data test's compiled SQL as ``select count(*) from (<compiled sql>)``;
- every Python model, called through ``ddp_assets.compute.python_models`` as the platform does;
- write-audit-publish's publish: every output port built in its product's staging schema is
  copied to ``<product>.<model>`` (consumers' compiled SQL reads that relation), without the
  audit (contract quality checks) and without the bookkeeping (checksum, version records).

Not counted, on purpose: process start-up, imports, dbt's parse/compile, Dagster's event log.
dbt model contracts are not re-checked here (dbt-duckdb creates the table with its declared
columns and ``not null`` constraints, then inserts; F uses a plain CTAS).
"""

from __future__ import annotations

import graphlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from ddp_assets.ingest.files import landing_files
from ddp_assets.spec.model import FileInputPort, TableInputPort
from ddp_assets.spec.registry import Registry
from ddp_assets.warehouse import quote, relation

# The same readers and options as ddp_assets/ingest/landing.py.
READERS = {
    "csv": "read_csv({files}, header = true, union_by_name = true)",
    "parquet": "read_parquet({files}, union_by_name = true)",
    "json": "read_json({files}, format = 'newline_delimited', union_by_name = true)",
}


@dataclass
class Step:
    """One unit of the plan: SQL statements (each timed under its kind) or a Python model."""

    id: str
    kind: str  # load | model | test | python | publish
    statements: list[tuple[str, str]] = field(default_factory=list)  # (kind, sql)
    run: Callable[[duckdb.DuckDBPyConnection], None] | None = None
    deps: set[str] = field(default_factory=set)
    schemas: list[str] = field(default_factory=list)
    writes: list[tuple[str, str]] = field(default_factory=list)  # relations it creates


def _key(schema: str, table: str) -> str:
    return f"rel:{schema.lower()}.{table.lower()}"


def _publish_sql(product: str, staging: str, name: str) -> str:
    """What ddp's publish does to the data (ddp_assets/contracts/wap.py), minus its bookkeeping:
    the audited staging relation copied to the relation consumers read."""
    target, source = relation(product, name), relation(staging, name)
    return f"create or replace table {target} as select * from {source}"


def _publish_view_sql(product: str, staging: str, name: str) -> str:
    """F0's publish: the relation consumers read is a view of the staging build (no copy)."""
    target, source = relation(product, name), relation(staging, name)
    return f"create or replace view {target} as select * from {source}"


def _staging_schema(product: str) -> str:
    try:
        from ddp_assets.contracts.wap import staging_schema
    except ImportError:  # a platform without write-audit-publish
        return product
    return staging_schema(product)


def load_steps(registry: Registry, landing_dir: Path) -> list[Step]:
    """The raw loads of every file input port (and the views of table input ports)."""
    steps: list[Step] = []
    for product in registry.products.values():
        for port in product.spec.input_ports:
            target = relation(product.id, port.name)
            if isinstance(port, FileInputPort):
                files = landing_files(landing_dir, port.path)
                if not files:
                    raise FileNotFoundError(f"{product.id}.{port.name}: no file '{port.path}'")
                listing = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
                source = READERS[port.format].format(files=f"[{listing}]")
                sql = f"create or replace table {target} as select * from {source}"
            elif isinstance(port, TableInputPort):
                schema, table = port.table.split(".", 1)
                sql = f"create or replace view {target} as select * from {relation(schema, table)}"
            else:
                continue
            steps.append(
                Step(
                    f"load:{product.id}.{port.name}",
                    "load",
                    [("load", sql)],
                    schemas=[product.id],
                    writes=[(product.id, port.name)],
                )
            )
    return steps


def python_steps(registry: Registry, *, copies: bool = True) -> list[Step]:
    """Every Python model, run with the platform's own helpers (then published if it is an
    output port; ``copies=False``: as a view, F0)."""
    from ddp_assets.compute.python_models import (
        PythonModelContext,
        load_function,
        write_result,
    )

    steps: list[Step] = []
    log = logging.getLogger("bench.floor")
    for product in registry.products.values():
        for model in product.spec.python_models:
            inputs = registry.python_model_inputs(product, model)
            function = load_function(product, model)  # imported outside the timed section
            is_port = model.name in product.output_models
            schema = _staging_schema(product.id) if is_port else product.id

            def run(
                connection: duckdb.DuckDBPyConnection,
                *,
                function: Callable[[PythonModelContext], Any] = function,
                inputs: dict[str, tuple[str, str]] = inputs,
                product_id: str = product.id,
                schema: str = schema,
                name: str = model.name,
            ) -> None:
                result = function(PythonModelContext(connection, product_id, inputs, log))
                write_result(connection, result, schema, name)

            step = Step(
                f"python:{product.id}.{model.name}",
                "python",
                run=run,
                schemas=[schema, product.id],
                writes=[(schema, model.name), (product.id, model.name)],
            )
            if schema != product.id:
                publish_sql = _publish_sql if copies else _publish_view_sql
                step.statements.append(("publish", publish_sql(product.id, schema, model.name)))
            step.deps = {_key(s, t) for s, t in inputs.values()}
            steps.append(step)
    return steps


def _ddp_meta(node: dict[str, Any]) -> dict[str, Any]:
    return (
        (node.get("config", {}).get("meta") or {}).get("ddp")
        or (node.get("meta") or {}).get("ddp")
        or {}
    )


def dbt_steps(
    manifest: dict[str, Any],
    *,
    build: bool = True,
    publish: bool = True,
    tests: bool = True,
    copies: bool = True,
) -> list[Step]:
    """Every model and data test of a compiled manifest, in steps whose deps are unique ids or
    relations. An output-port model built outside its product's schema (write-audit-publish
    staging) is then published to ``<product>.<model>``, as ddp does after its audit.

    F0, the physical floor of the work: ``tests=False`` leaves the data tests out and
    ``copies=False`` publishes each port as a view of its staging build (no copy)."""
    nodes = manifest["nodes"]
    sources = manifest.get("sources", {})
    steps: list[Step] = []
    for unique_id, node in nodes.items():
        kind = node["resource_type"]
        if kind not in ("model", "test"):
            continue
        config = node.get("config", {})
        if not config.get("enabled", True):
            continue
        materialized = config.get("materialized", "view")
        if kind == "model" and materialized == "ephemeral":
            continue
        compiled = node.get("compiled_code")
        if compiled is None and build:
            raise ValueError(f"{unique_id} has no compiled_code: run `dbt compile` first")
        deps: set[str] = set()
        for parent in node["depends_on"]["nodes"]:
            if parent in sources:
                deps.add(_key(sources[parent]["schema"], sources[parent]["identifier"]))
            elif parent in nodes:
                deps.add(parent)
        if kind == "test":
            if build and tests:
                sql = f"select count(*) from (\n{compiled}\n) as dbt_test"
                steps.append(Step(unique_id, "test", [("test", sql)], deps=deps))
            continue
        schema, alias = node["schema"], node["alias"]
        step = Step(unique_id, "model", deps=deps, schemas=[schema], writes=[(schema, alias)])
        if build:
            verb = "view" if materialized == "view" else "table"
            sql = f"create or replace {verb} {node['relation_name']} as (\n{compiled}\n)"
            step.statements.append(("model", sql))
        meta = _ddp_meta(node)
        product = meta.get("product")
        if publish and meta.get("port") and product and product != schema:
            publish_sql = _publish_sql if copies else _publish_view_sql
            step.statements.append(("publish", publish_sql(product, schema, alias)))
            step.schemas.append(product)
            step.writes.append((product, alias))
        if step.statements:
            steps.append(step)
    return steps


def order(steps: list[Step]) -> list[Step]:
    """Steps in a dependency order; relation deps resolve to the step that writes them."""
    writers = {_key(*rel): step.id for step in steps for rel in step.writes}
    by_id = {s.id: s for s in steps}
    graph: dict[str, set[str]] = {}
    for step in steps:
        resolved = {writers.get(d, d) for d in step.deps}
        graph[step.id] = {d for d in resolved if d in by_id and d != step.id}
    return [by_id[i] for i in graphlib.TopologicalSorter(graph).static_order()]


@dataclass
class FloorResult:
    seconds: float
    by_kind: dict[str, float]
    counts: dict[str, int]
    cpu_seconds: float = 0.0  # this process's CPU (all threads, DuckDB's included)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 3),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "by_kind": {k: round(v, 3) for k, v in self.by_kind.items()},
            "counts": self.counts,
        }


def execute(steps: list[Step], warehouse: Path) -> FloorResult:
    """Run the steps in order on one connection to ``warehouse``; time each kind."""
    by_kind: dict[str, float] = {}
    counts: dict[str, int] = {}

    def add(kind: str, seconds: float) -> None:
        by_kind[kind] = by_kind.get(kind, 0.0) + seconds
        counts[kind] = counts.get(kind, 0) + 1

    warehouse.parent.mkdir(parents=True, exist_ok=True)
    started, cpu = time.perf_counter(), time.process_time()
    connection = duckdb.connect(str(warehouse))
    try:
        schemas: set[str] = set()
        for step in steps:
            t0 = time.perf_counter()
            for schema in step.schemas:
                if schema not in schemas:
                    connection.execute(f"create schema if not exists {quote(schema)}")
                    schemas.add(schema)
            if step.run is not None:
                step.run(connection)
                add(step.kind, time.perf_counter() - t0)
            for kind, sql in step.statements:
                t0 = time.perf_counter()
                connection.execute(sql).fetchall()
                add(kind, time.perf_counter() - t0)
    finally:
        connection.close()
    return FloorResult(time.perf_counter() - started, by_kind, counts, time.process_time() - cpu)


def compiled_manifest(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
