"""Loading one depot input port with dlt, into the product's raw schema.

:func:`load_port` runs dlt's three steps with a gate between normalize and load:

1. ``sync_destination``: dlt's state and schema of the port's pipeline are restored from the
   warehouse (``<product>._dlt_pipeline_state``). The pipeline's working folder is a fresh
   temporary one on every run, so the warehouse is the only place state lives: it survives
   restarts and moves with the warehouse, and dlt restores only the state of a *completed*
   load (one recorded in ``_dlt_loads``), so a failed or killed load never advances the
   cursor;
2. ``extract`` + ``normalize``: the rows newer than the cursor, and dlt's schema evolution;
3. the gate (:func:`schema_changes`): a column the source adds is a warning naming the port;
   a column the source no longer has, or whose values changed type (dlt's variant columns,
   ``amount__v_text``, for data whose types dlt infers; a new data type in the reflected
   table or the files' schema otherwise), fails the port when its input contract lists that
   column. Then
   nothing is loaded: the raw table, the cursor and everything downstream stay as they were;
4. ``load``: into ``<product>.<port>`` (merge on the primary key, else append with a cursor,
   else replace).

dlt and SQLAlchemy are imported inside these functions: a code location without depot ports
never loads them.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ddp_assets.depots.connect import (
    DepotError,
    aws_credentials,
    bucket_url,
    connection_problem,
    default_schema,
    rest_auth,
    source_dataset,
    sql_engine,
)
from ddp_assets.depots.loader import LoadedDepot
from ddp_assets.depots.model import FilesystemDepot, PostgresDepot, RestApiDepot, SqlDepot
from ddp_assets.depots.secrets import redact
from ddp_assets.naming import product_schema
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.model import DepotInputPort
from ddp_assets.warehouse import DuckDBWarehouse, Warehouse, table_columns, warehouse_for

DLT_PREFIX = "_dlt_"
_VARIANT = re.compile(r"^(?P<base>.+)__v_[a-z0-9_]+$")


class PortMismatch(Exception):
    """The source no longer fits the port's input contract; nothing was loaded."""

    def __init__(self, message: str, removed: list[str], retyped: list[str]):
        super().__init__(message)
        self.message = message
        self.removed = removed
        self.retyped = retyped


@dataclass
class LoadReport:
    """What one load did."""

    rows: int
    columns: list[tuple[str, str]]
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    retyped: list[str] = field(default_factory=list)
    load_id: str | None = None
    cursor: str | None = None
    source: tuple[str, str] = ("", "")
    warnings: list[str] = field(default_factory=list)


def pipeline_name(product: str, port: str) -> str:
    return f"ddp__{product}__{port}"


def write_disposition(port: DepotInputPort) -> str:
    if port.primary_key:
        return "merge"
    return "append" if port.cursor or port.files else "replace"


def source_what(port: DepotInputPort) -> str:
    """What the port reads, as a dataset name part: the table, the resource or the glob."""
    return port.table or port.resource or port.files or "query"


def _quiet_dlt() -> None:
    # dlt's anonymous usage telemetry is off unless the deployment turns it on itself
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    # SQL sources extract Arrow tables (backend="pyarrow"); dlt adds its load id and row id
    # to dict rows only, unless told: the raw table keeps the columns it always had
    os.environ.setdefault("NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID", "true")
    os.environ.setdefault("NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_ID", "true")


def destination(warehouse: Warehouse) -> Any:
    import dlt

    # dlt's own merge staging: <product>_dlt_staging (dlt's naming keeps one underscore)
    layout = "%s_dlt_staging"
    if isinstance(warehouse, DuckDBWarehouse):
        warehouse.create()  # in ddp's storage version: dlt would create it in DuckDB's newest
        return dlt.destinations.duckdb(str(warehouse.path), staging_dataset_name_layout=layout)
    from ddp_assets.warehouse.postgres import PostgresWarehouse

    assert isinstance(warehouse, PostgresWarehouse)
    s = warehouse.settings
    credentials = {
        "database": s.dbname,
        "username": s.user,
        "password": s.password,  # dlt requires the field; empty for a trusted login
        "host": s.host,
        "port": s.port,
    }
    return dlt.destinations.postgres(credentials=credentials, staging_dataset_name_layout=layout)


# -- the resources ------------------------------------------------------------------------


class _Observer:
    """Records the fields of every item extracted (the source's columns, as it sends them)."""

    def __init__(self) -> None:
        self.columns: dict[str, None] = {}
        self.items = 0

    def __call__(self, item: Any) -> Any:
        self.items += 1
        if isinstance(item, dict):
            for key in item:
                self.columns.setdefault(str(key), None)
        elif hasattr(item, "schema") and hasattr(item.schema, "names"):  # arrow
            for name in item.schema.names:
                self.columns.setdefault(str(name), None)
        return item


@dataclass
class Built:
    resource: Any
    source_columns: Callable[[], list[str] | None]
    close: Callable[[], None] = lambda: None


def _incremental(port: DepotInputPort) -> Any:
    import dlt

    if not port.cursor:
        return None
    return dlt.sources.incremental(port.cursor, initial_value=port.initial_value)


def build_resource(loaded: LoadedDepot, port: DepotInputPort, paths: ProjectPaths) -> Built:
    """The dlt resource of a port (named after it), and how to learn the source's columns."""
    import dlt

    depot = loaded.depot
    disposition = write_disposition(port)
    primary_key: Any = list(port.primary_key) or None
    observer = _Observer()
    if isinstance(depot, (PostgresDepot, SqlDepot)):
        from sqlalchemy import inspect, text

        engine = sql_engine(loaded, paths)
        if port.table:
            schema, _, table = port.table.rpartition(".")
            schema = schema or default_schema(loaded)
            from dlt.sources.sql_database import sql_table

            resource = sql_table(
                credentials=engine,
                table=table,
                schema=schema,
                incremental=_incremental(port),
                reflection_level="full",
                # rows go to dlt as Arrow tables, not one Python dict per row: at the demo's
                # 10M scale (300k tickets) the load took 47.7 s with dlt's default backend
                backend="pyarrow",
                write_disposition=disposition,  # type: ignore[arg-type]
                primary_key=primary_key,
            ).with_name(port.name)

            def table_columns_now() -> list[str]:
                return [str(c["name"]) for c in inspect(engine).get_columns(table, schema=schema)]

            return Built(resource, table_columns_now, engine.dispose)
        query = port.query or ""
        quote = engine.dialect.identifier_preparer.quote

        def rows(
            cursor: Any = _incremental(port),  # noqa: B008 (dlt reads the default)
        ) -> Iterable[list[dict[str, Any]]]:
            sql = f"select * from ({query}) as ddp_query"
            parameters: dict[str, Any] = {}
            if port.cursor:
                if cursor.last_value is not None:
                    sql += f" where {quote(port.cursor)} >= :ddp_last"
                    parameters["ddp_last"] = cursor.last_value
                sql += f" order by {quote(port.cursor)}"
            with engine.connect() as connection:
                result = connection.execution_options(stream_results=True).execute(
                    text(sql), parameters
                )
                for chunk in result.mappings().partitions(10_000):
                    yield [dict(row) for row in chunk]

        resource = dlt.resource(
            rows if port.cursor else (lambda: rows(None)),
            name=port.name,
            write_disposition=disposition,  # type: ignore[arg-type]
            primary_key=primary_key,
        )

        def query_columns() -> list[str]:
            with engine.connect() as connection:
                result = connection.execute(text(f"select * from ({query}) as ddp_query where 1=0"))
                return [str(k) for k in result.keys()]  # noqa: SIM118

        return Built(resource, query_columns, engine.dispose)
    if isinstance(depot, RestApiDepot):
        from dlt.sources.rest_api import rest_api_source

        endpoint: dict[str, Any] = {"path": port.resource, "params": dict(port.params)}
        if port.data_selector:
            endpoint["data_selector"] = port.data_selector
        if port.paginator:
            endpoint["paginator"] = port.paginator
        if port.cursor and port.cursor_param:
            endpoint["incremental"] = {
                "start_param": port.cursor_param,
                "cursor_path": port.cursor,
                "initial_value": port.initial_value,
            }
        client: dict[str, Any] = {"base_url": depot.base_url, "headers": dict(depot.headers)}
        auth = rest_auth(loaded, paths)
        if auth:
            client["auth"] = auth
        resource_config: dict[str, Any] = {
            "name": port.name,
            "endpoint": endpoint,
            "write_disposition": disposition,
        }
        if primary_key:
            resource_config["primary_key"] = primary_key
        source = rest_api_source(
            {"client": client, "resources": [resource_config]},  # type: ignore[typeddict-item]
            name=port.name,
        )
        resource = source.resources[port.name]
        if port.cursor and not port.cursor_param:
            resource.apply_hints(incremental=_incremental(port))
        resource.add_map(observer)
        return Built(resource, lambda: list(observer.columns) if observer.items else None)
    assert isinstance(depot, FilesystemDepot)
    from dlt.sources.filesystem import filesystem, read_csv, read_jsonl, read_parquet

    credentials: Any = None
    if depot.scheme == "s3":
        from dlt.common.configuration.specs import AwsCredentials

        credentials = AwsCredentials(**aws_credentials(loaded, paths))
    files = filesystem(
        bucket_url=bucket_url(loaded, paths),
        file_glob=port.files or "*",
        credentials=credentials,
        incremental=dlt.sources.incremental("modification_date"),
    )
    reader = {"csv": read_csv, "parquet": read_parquet, "jsonl": read_jsonl}[port.format or "csv"]
    resource = (files | reader()).with_name(port.name)
    resource.apply_hints(write_disposition=disposition, primary_key=primary_key)  # type: ignore[arg-type]
    if port.cursor:
        resource.apply_hints(incremental=_incremental(port))
    resource.add_map(observer)
    return Built(resource, lambda: list(observer.columns) if observer.items else None)


# -- the gate -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaChanges:
    added: list[str]
    removed: list[str]
    retyped: list[str]


def schema_changes(
    known: Iterable[str],
    now: Iterable[str],
    source: list[str] | None,
    types_before: dict[str, str] | None = None,
    types_now: dict[str, str] | None = None,
) -> SchemaChanges:
    """What changed: ``known`` the raw table's columns before the load, ``now`` dlt's schema
    after normalize, ``source`` the columns the source has now (None: it sent nothing);
    ``types_before``/``types_now``: dlt's data type of each column in the schema restored
    from the warehouse and after normalize (a reflected table or a file's schema states its
    types, so a changed type shows there rather than as a variant column)."""
    known_set = [c for c in known if not c.startswith(DLT_PREFIX)]
    retyped: list[str] = []
    added: list[str] = []
    before, after = types_before or {}, types_now or {}
    for column in known_set:
        old, new = before.get(column), after.get(column)
        if old and new and old != new:
            retyped.append(column)
    for column in now:
        if column.startswith(DLT_PREFIX) or column in known_set:
            continue
        match = _VARIANT.match(column)
        if match and match["base"] in known_set:
            if match["base"] not in retyped:
                retyped.append(match["base"])
        elif known_set:
            added.append(column)
    removed = [c for c in known_set if source is not None and c not in source]
    return SchemaChanges(added, removed, retyped)


def load_port(
    product: str,
    port: DepotInputPort,
    loaded: LoadedDepot,
    paths: ProjectPaths,
    contract_columns: list[str] | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> LoadReport:
    """Load one depot port (see the module's docstring); raise :class:`PortMismatch` or a
    located :class:`~ddp_assets.depots.connect.DepotError`, never with a secret in it."""
    _quiet_dlt()
    import dlt

    warehouse = warehouse_for(paths)
    where = f"input port '{product}.{port.name}'"
    schema = product_schema(product)  # the environment's raw schema (docs/architecture.md)
    with warehouse.writer() as connection:
        known = [name for name, _ in table_columns(connection, schema, port.name)]
    built: Built | None = None
    with tempfile.TemporaryDirectory(prefix="ddp-dlt-") as work:
        try:
            pipeline = dlt.pipeline(
                pipeline_name=pipeline_name(product, port.name),
                pipelines_dir=work,
                destination=destination(warehouse),
                dataset_name=schema,
                progress=None,  # type: ignore[arg-type]
            )
            pipeline.sync_destination()
            types_before = _column_types(pipeline, port.name)
            built = build_resource(loaded, port, paths)
            pipeline.extract(built.resource)
            pipeline.normalize()
            naming = pipeline.default_schema.naming
            table = pipeline.default_schema.tables.get(port.name, {})
            now = list((table.get("columns") or {}).keys())
            types_now = _column_types(pipeline, port.name)
            raw_source = built.source_columns()
            source = (
                None if raw_source is None else [naming.normalize_identifier(c) for c in raw_source]
            )
        except DepotError:
            raise
        except Exception as error:
            raise _failure(loaded, error) from None
        changes = schema_changes(known, now, source, types_before, types_now)
        warnings = []
        for column in changes.added:
            warnings.append(f"{where}: the source adds column '{column}' (loaded as a new column)")
        contract = {c.lower() for c in contract_columns or []}
        breaking_removed = [c for c in changes.removed if c.lower() in contract]
        breaking_retyped = [c for c in changes.retyped if c.lower() in contract]
        for column in changes.removed:
            if column not in breaking_removed:
                warnings.append(f"{where}: the source no longer has column '{column}'")
        for column in changes.retyped:
            if column not in breaking_retyped:
                warnings.append(f"{where}: column '{column}' changed type in the source")
        for warning in warnings:
            log(warning)
        if breaking_removed or breaking_retyped:
            parts = []
            if breaking_removed:
                parts.append("the source no longer has column(s) " + ", ".join(breaking_removed))
            if breaking_retyped:
                parts.append("column(s) " + ", ".join(breaking_retyped) + " changed type")
            if built is not None:
                built.close()
            raise PortMismatch(
                f"{where} fails its input contract: {'; '.join(parts)}. Nothing was loaded: "
                f"{product}.{port.name}, its cursor and the product's published ports are "
                "unchanged. Hint: fix the source, or change the contract "
                f"(contracts/{port.name}.odcs.yaml) and the models that read the column",
                breaking_removed,
                breaking_retyped,
            )
        try:
            info = pipeline.load()
        except Exception as error:
            raise _failure(loaded, error) from None
        finally:
            if built is not None:
                built.close()
        trace = pipeline.last_trace
        counts = trace.last_normalize_info.row_counts if trace and trace.last_normalize_info else {}
        state = pipeline.state.get("sources", {})
        cursor = _cursor_value(state, port.name)
        with warehouse.writer() as connection:
            columns = table_columns(connection, schema, port.name)
        return LoadReport(
            rows=int(counts.get(port.name, 0)),
            columns=columns,
            added=changes.added,
            removed=changes.removed,
            retyped=changes.retyped,
            load_id=info.loads_ids[0] if info.loads_ids else None,
            cursor=None if cursor is None else redact(cursor),
            source=source_dataset(loaded, paths, source_what(port)),
            warnings=warnings,
        )


def _column_types(pipeline: Any, table: str) -> dict[str, str]:
    """dlt's data type of each column of ``table`` in the pipeline's schemas ({} before the
    first load: no schema was restored)."""
    types: dict[str, str] = {}
    for schema in pipeline.schemas.values():
        columns = (schema.tables.get(table) or {}).get("columns") or {}
        for name, column in columns.items():
            if column.get("data_type"):
                types[str(name)] = str(column["data_type"])
    return types


def _cursor_value(state: dict[str, Any], resource: str) -> str | None:
    for source in state.values():
        incremental = (source.get("resources", {}).get(resource) or {}).get("incremental") or {}
        for value in incremental.values():
            if isinstance(value, dict) and value.get("last_value") is not None:
                return str(value["last_value"])
    return None


def _failure(loaded: LoadedDepot, error: BaseException) -> DepotError:
    """A load's error, located at the depot, redacted; dlt wraps the driver's error."""
    cause: BaseException = error
    while True:
        inner = getattr(cause, "exception", None) or cause.__cause__
        if inner is None or inner is cause:
            break
        cause = inner
    return connection_problem(loaded, cause, "cannot load")
