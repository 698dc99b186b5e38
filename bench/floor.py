"""The floor F: the work the platform has to do, done directly on one DuckDB connection.

The plan holds, in dependency order:

- one ``create or replace table <product>.<port> as select * from read_*(...)`` per file input
  port of every product spec (``Registry.load``), reading the same files with the same options
  as ``ddp_assets/ingest/landing.py``; a view per table input port; for a depot input port on a
  SQLite depot (the demo's ``helpdesk``, ``depots/helpdesk.yaml``), its table or query read with
  :mod:`sqlite3` and written as ``<product>.<port>`` through Arrow (what dlt does for ddp, minus
  dlt: no normalize, no ``_dlt_*`` columns, no merge state; DuckDB's sqlite extension is not
  installed here);
- every dbt model's compiled SQL (from the manifest of ``dbt compile``), wrapped as
  ``create or replace view|table <relation> as <compiled sql>`` by its materialization
  (ephemeral models are inlined by dbt and skipped; incremental ones are built as tables);
- every dbt data test's compiled SQL as ``select count(*) from (<compiled sql>)``;
- every Python model, called through ``ddp_assets.compute.python_models`` as the platform does;
- write-audit-publish's publish as ddp does it since versioned publish (issue 20,
  ``ddp_assets/contracts/wap.py``): in one transaction, every output port built in its
  product's staging schema is renamed to its next version ``<product>__staging.<port>__v<N>``
  (a port built as a view is copied into it), and ``<product>.<model>`` (which consumers'
  compiled SQL reads) and ``<product>__staging.<model>`` (which the product's own tests read)
  become views of it; without the audit (contract quality checks) and without the bookkeeping
  (checksum, ledger and move records, retention).

F0, the physical floor of the work (``tests=False, copies=False``): the loads, the model SQL and
the Python model only; each port's published relation is a view of its staging build.

Not counted, on purpose: process start-up, imports, dbt's parse/compile, Dagster's event log.
dbt model contracts are not re-checked here (dbt-duckdb creates the table with its declared
columns and ``not null`` constraints, then inserts; F uses a plain CTAS).
"""

from __future__ import annotations

import graphlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from ddp_assets.ingest.files import landing_files
from ddp_assets.spec.model import DepotInputPort, FileInputPort, TableInputPort
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


def _version_table(port: str, number: int) -> str:
    try:
        from ddp_assets.naming import version_table
    except ImportError:  # a platform without versioned publish
        return f"{port}__v{number}"
    return version_table(port, number)


def _publish_sql(
    product: str, staging: str, name: str, port: str, version: int = 1, *, view: bool = False
) -> str:
    """What ddp's publish does to the data (``ddp_assets/contracts/wap.py::publish``), minus its
    bookkeeping, as one transaction: the audited staging table renamed to the port's version
    ``version`` (``view``: a staging view materialized into it), the published relation and the
    staging name pointed at it. (ddp's ``point_view`` also drops a table left at the published
    name by a publish by copy, before versioning: no warehouse a floor runs on has one.)"""
    table = _version_table(port, version)
    stored, built = relation(staging, table), relation(staging, name)
    target = relation(product, name)
    keep = (
        f"create table {stored} as select * from {built}"
        if view
        else f"alter table {built} rename to {quote(table)}"
    )
    return ";\n".join(
        [
            "begin transaction",
            f"drop table if exists {stored}",  # an orphan of that name (never in the ledger)
            keep,
            f"create or replace view {target} as select * from {stored}",
            f"create or replace view {built} as select * from {stored}",
            "commit",
        ]
    )


def _publish_view_sql(product: str, staging: str, name: str) -> str:
    """F0's publish: the relation consumers read is a view of the staging build (no copy)."""
    target, source = relation(product, name), relation(staging, name)
    return f"create or replace view {target} as select * from {source}"


def next_versions(warehouse: Path) -> dict[tuple[str, str], int]:
    """(product, port) → the number ddp's next publish gives that port in ``warehouse`` (one more
    than the ledger's greatest, ``_ddp.published_versions``); ports not listed get 1. Read before
    a floor runs on a copy of a warehouse ddp published (B'), not timed."""
    if not warehouse.exists():
        return {}
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        present = connection.execute(
            "select count(*) from information_schema.columns where table_schema = '_ddp' "
            "and table_name = 'published_versions' and column_name = 'version'"
        ).fetchone()
        if not present or not present[0]:
            return {}
        rows = connection.execute(
            "select product, port, max(version) from _ddp.published_versions "
            "where version is not null group by product, port"
        ).fetchall()
    return {(str(p), str(port)): int(v) + 1 for p, port, v in rows}


def _staging_schema(product: str) -> str:
    try:
        from ddp_assets.contracts.wap import staging_schema
    except ImportError:  # a platform without write-audit-publish
        return product
    return staging_schema(product)


def load_steps(registry: Registry, landing_dir: Path, data_dir: Path | None = None) -> list[Step]:
    """The raw loads of every file input port and depot input port (and the views of table
    input ports). ``data_dir`` fills a depot URL's ``{data_dir}`` (default: the landing
    folder's parent, as ``<data>/landing``)."""
    steps: list[Step] = []
    depots: Any = None
    for product in registry.products.values():
        for port in product.spec.input_ports:
            target = relation(product.id, port.name)
            run: Callable[[duckdb.DuckDBPyConnection], None] | None = None
            statements: list[tuple[str, str]] = []
            if isinstance(port, FileInputPort):
                files = landing_files(landing_dir, port.path)
                if not files:
                    raise FileNotFoundError(f"{product.id}.{port.name}: no file '{port.path}'")
                listing = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
                source = READERS[port.format].format(files=f"[{listing}]")
                statements.append(
                    ("load", f"create or replace table {target} as select * from {source}")
                )
            elif isinstance(port, TableInputPort):
                schema, table = port.table.split(".", 1)
                statements.append(
                    (
                        "load",
                        f"create or replace view {target} as select * from "
                        f"{relation(schema, table)}",
                    )
                )
            elif isinstance(port, DepotInputPort):
                if depots is None:
                    depots = _depots(registry.root)
                database, query = _sqlite_source(
                    product.id, port, depots, registry.root, data_dir or landing_dir.parent
                )
                run = _sqlite_load(database, query, product.id, port.name)
            else:
                continue
            steps.append(
                Step(
                    f"load:{product.id}.{port.name}",
                    "load",
                    statements,
                    run=run,
                    schemas=[product.id],
                    writes=[(product.id, port.name)],
                )
            )
    return steps


def _depots(root: Path) -> dict[str, Any]:
    from ddp_assets.depots.loader import load_depots
    from ddp_assets.settings import ProjectPaths

    loaded = load_depots(ProjectPaths(root))
    loaded.raise_for_errors()
    return loaded.depots


def _sqlite_source(
    product: str, port: DepotInputPort, depots: dict[str, Any], root: Path, data_dir: Path
) -> tuple[Path, str]:
    """The SQLite file and the SELECT of a depot port (the floor loads SQLite depots only)."""
    name = f"{product}.{port.name}"
    loaded = depots.get(port.depot)
    if loaded is None:
        raise FileNotFoundError(f"{name}: no depot '{port.depot}' (depots/{port.depot}.yaml)")
    url = str(getattr(loaded.depot, "url", "") or "")
    if loaded.kind != "sql" or not url.startswith("sqlite:///"):
        raise ValueError(
            f"{name}: depot '{port.depot}' is a {loaded.kind} depot"
            + (f" ({url.split(':', 1)[0]})" if url else "")
            + "; the floor loads SQLite depots only (sqlite:/// URLs)"
        )
    path = url.replace("{data_dir}", str(data_dir)).replace("{project_root}", str(root))
    database = Path(path[len("sqlite:///") :].split("?", 1)[0])  # sqlite:////abs: absolute
    if not database.is_file():
        raise FileNotFoundError(f"{name}: depot '{port.depot}' has no database at {database}")
    if port.query:
        return database, port.query
    if not port.table:
        raise ValueError(f"{name}: a depot port of a sql depot names a table or a query")
    table = ".".join('"' + part.replace('"', '""') + '"' for part in port.table.split("."))
    return database, f"select * from {table}"


def _sqlite_load(
    database: Path, query: str, schema: str, table: str
) -> Callable[[duckdb.DuckDBPyConnection], None]:
    import sqlite3

    import pyarrow as pa  # imported outside the timed section

    target = relation(schema, table)

    def run(connection: duckdb.DuckDBPyConnection) -> None:
        source = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
        try:
            cursor = source.execute(query)
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        finally:
            source.close()
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        arrow = pa.table({n: pa.array(list(c)) for n, c in zip(names, columns, strict=True)})
        view = "__bench_depot_rows"
        connection.register(view, arrow)
        try:
            connection.execute(f"create or replace table {target} as select * from {view}")
        finally:
            connection.unregister(view)

    return run


def python_steps(
    registry: Registry,
    *,
    versioned: bool = True,
    versions: Mapping[tuple[str, str], int] | None = None,
) -> list[Step]:
    """Every Python model, run with the platform's own helpers, then published if it is an
    output port: as ddp's next version (``versions``: (product, port) → its number, default 1;
    :func:`next_versions`), or with ``versioned=False`` (F0) as a view of its staging build."""
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
                port = product.output_models[model.name]
                sql = (
                    _publish_sql(
                        product.id,
                        schema,
                        model.name,
                        port,
                        (versions or {}).get((product.id, port), 1),
                    )
                    if versioned
                    else _publish_view_sql(product.id, schema, model.name)
                )
                step.statements.append(("publish", sql))
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
    versioned: bool = True,
    versions: Mapping[tuple[str, str], int] | None = None,
) -> list[Step]:
    """Every model and data test of a compiled manifest, in steps whose deps are unique ids or
    relations. An output-port model built outside its product's schema (write-audit-publish
    staging) is then published to ``<product>.<model>`` as ddp does after its audit: renamed to
    the port's next version (``versions``: (product, port) → its number, default 1), the
    published name a view of it.

    F0, the physical floor of the work: ``tests=False`` leaves the data tests out and
    ``versioned=False`` publishes each port as a view of its staging build (no rename)."""
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
        port = meta.get("port")
        if publish and port and product and product != schema:
            sql = (
                _publish_sql(
                    product,
                    schema,
                    alias,
                    str(port),
                    (versions or {}).get((product, str(port)), 1),
                    view=materialized == "view",
                )
                if versioned
                else _publish_view_sql(product, schema, alias)
            )
            step.statements.append(("publish", sql))
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
