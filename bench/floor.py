"""The floor F: the work the platform has to do, done directly on one DuckDB connection.

The plan holds, in dependency order:

- one ``create or replace table <product>.<port> as select * from read_*(...)`` per file input
  port of every product spec (``Registry.load``), reading the same files with the same options
  as ``ddp_assets/ingest/landing.py``; a view per table input port;
- every dbt model's compiled SQL (from the manifest of ``dbt compile``), wrapped as
  ``create or replace view|table <relation> as <compiled sql>`` by its materialization
  (ephemeral models are inlined by dbt and skipped; incremental ones are built as tables);
- every dbt data test's compiled SQL as ``select count(*) from (<compiled sql>)``;
- every Python model, called through ``ddp_assets.compute.python_models`` as the platform does.

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

from ddp_assets.ingest.landing import landing_files
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
    """One statement (or Python model) of the plan."""

    id: str
    kind: str  # load | model | test | python
    sql: str | None = None
    run: Callable[[duckdb.DuckDBPyConnection], None] | None = None
    deps: set[str] = field(default_factory=set)
    schema: str | None = None


def _key(schema: str, table: str) -> tuple[str, str]:
    return (schema.lower(), table.lower())


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
            steps.append(Step(f"load:{product.id}.{port.name}", "load", sql, schema=product.id))
    return steps


def python_steps(registry: Registry) -> list[Step]:
    """Every Python model, run with the platform's own helpers; deps are relations for now."""
    from ddp_assets.compute.python_models import (
        PythonModelContext,
        input_relations,
        load_function,
        write_result,
    )

    steps: list[Step] = []
    log = logging.getLogger("bench.floor")
    for product in registry.products.values():
        for model in product.spec.python_models:
            inputs = input_relations(product, model, registry)
            function = load_function(product, model)  # imported outside the timed section

            def run(
                connection: duckdb.DuckDBPyConnection,
                *,
                function: Callable[[PythonModelContext], Any] = function,
                inputs: dict[str, tuple[str, str]] = inputs,
                product_id: str = product.id,
                name: str = model.name,
            ) -> None:
                result = function(PythonModelContext(connection, product_id, inputs, log))
                write_result(connection, result, product_id, name)

            step = Step(f"python:{product.id}.{model.name}", "python", run=run, schema=product.id)
            step.deps = {"rel:{}.{}".format(*_key(s, t)) for s, t in inputs.values()}
            steps.append(step)
    return steps


def dbt_steps(manifest: dict[str, Any]) -> list[Step]:
    """Every model and data test of a compiled manifest; deps are unique ids or relations."""
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
        compiled = node.get("compiled_code")
        if compiled is None:
            raise ValueError(f"{unique_id} has no compiled_code: run `dbt compile` first")
        materialized = config.get("materialized", "view")
        if kind == "model" and materialized == "ephemeral":
            continue
        deps: set[str] = set()
        for parent in node["depends_on"]["nodes"]:
            if parent in sources:
                source = sources[parent]
                deps.add("rel:{}.{}".format(*_key(source["schema"], source["identifier"])))
            elif parent in nodes:
                deps.add(parent)
        if kind == "model":
            verb = "view" if materialized == "view" else "table"
            sql = f"create or replace {verb} {node['relation_name']} as (\n{compiled}\n)"
            steps.append(Step(unique_id, "model", sql, deps=deps, schema=node["schema"]))
        else:
            sql = f"select count(*) from (\n{compiled}\n) as dbt_test"
            steps.append(Step(unique_id, "test", sql, deps=deps))
    return steps


def order(steps: list[Step], manifest: dict[str, Any] | None = None) -> list[Step]:
    """Steps in a dependency order; relation deps resolve to the step that writes them."""
    writers: dict[str, str] = {}
    for step in steps:
        if step.kind in ("load", "python"):
            schema, name = step.id.split(":", 1)[1].split(".", 1)
            writers["rel:{}.{}".format(*_key(schema, name))] = step.id
    if manifest is not None:
        for unique_id, node in manifest["nodes"].items():
            if node["resource_type"] == "model":
                writers["rel:{}.{}".format(*_key(node["schema"], node["alias"]))] = unique_id
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 3),
            "by_kind": {k: round(v, 3) for k, v in self.by_kind.items()},
            "counts": self.counts,
        }


def execute(steps: list[Step], warehouse: Path) -> FloorResult:
    """Run the steps in order on one connection to ``warehouse``; time each kind."""
    by_kind: dict[str, float] = {}
    counts: dict[str, int] = {}
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    connection = duckdb.connect(str(warehouse))
    try:
        schemas: set[str] = set()
        for step in steps:
            t0 = time.perf_counter()
            if step.schema and step.schema not in schemas:
                connection.execute(f"create schema if not exists {quote(step.schema)}")
                schemas.add(step.schema)
            if step.run is not None:
                step.run(connection)
            elif step.sql is not None:
                connection.execute(step.sql).fetchall()
            by_kind[step.kind] = by_kind.get(step.kind, 0.0) + time.perf_counter() - t0
            counts[step.kind] = counts.get(step.kind, 0) + 1
    finally:
        connection.close()
    return FloorResult(time.perf_counter() - started, by_kind, counts)


def compiled_manifest(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
