"""Models computed in Python, beside the dbt models of the same product.

A Python model is a plain function in the product folder::

    def score_customers(ctx: PythonModelContext) -> polars.DataFrame: ...

It reads its inputs as lazy DuckDB relations (``ctx.table("customer_profile")``: nothing is
loaded until the function asks) and returns a polars/pandas DataFrame, a pyarrow Table or a
DuckDB relation, which the platform writes to ``<product>.<model>``.

The function's code is the same on every warehouse. On DuckDB it computes on the warehouse
connection itself; on PostgreSQL in an in-memory DuckDB into which ``ctx.table`` copies each
input it asks for (under the same ``schema.table`` name, so ``ctx.sql`` reads it too), and the
result is copied back (:meth:`~ddp_assets.warehouse.Warehouse.python_input`, ``write_result``).
"""

import hashlib
import importlib.util
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from ddp_assets.contracts.gate import check_input_ports
from ddp_assets.contracts.port_asset import (
    PortAsset,
    audit_and_publish,
    held_back_failure,
    port_asset,
    staging_key,
)
from ddp_assets.contracts.wap import staging_schema
from ddp_assets.metadata import WRITER_POOL, column_schema, product_meta, product_tags
from ddp_assets.naming import port_key, product_schema
from ddp_assets.policies import refresh_condition
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.model import PythonModel
from ddp_assets.spec.registry import Product, Registry
from ddp_assets.warehouse import (
    Warehouse,
    row_count,
    table_columns,
    warehouse_for,
    warehouse_of,
)

if TYPE_CHECKING:
    import duckdb  # imported where used: not at a definitions load


@dataclass(frozen=True)
class PythonModelContext:
    """What a Python model function receives."""

    connection: "duckdb.DuckDBPyConnection"
    product: str
    inputs: Mapping[str, tuple[str, str]]  # input name → (schema, table)
    log: logging.Logger | Any
    # where the inputs live when it is not ``connection`` itself (a PostgreSQL warehouse)
    warehouse_connection: Any = None

    def table(self, name: str) -> "duckdb.DuckDBPyRelation":
        """A declared input as a lazy DuckDB relation."""
        if name not in self.inputs:
            raise KeyError(
                f"'{name}' is not an input of this Python model; declared: {sorted(self.inputs)}"
            )
        schema, table = self.inputs[name]
        schema = product_schema(schema)  # the environment's (its own build, or prod's pointer)
        source = self.warehouse_connection or self.connection
        return warehouse_of(source).python_input(self.connection, source, schema, table)

    def sql(self, query: str) -> "duckdb.DuckDBPyRelation":
        return self.connection.sql(query)


def load_function(product: Product, model: PythonModel) -> Callable[[PythonModelContext], Any]:
    """Import the entrypoint file of a Python model and return its function."""
    file_name, function_name = model.entrypoint.split(":", 1)
    path = product.folder / file_name
    module_name = f"ddp_python_models.{product.id}.{Path(file_name).stem}"
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise dg.Failure(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    function = getattr(module, function_name, None)
    if not callable(function):
        raise dg.Failure(
            description=f"{path} has no function '{function_name}' "
            f"(python_models entry '{model.name}' of product '{product.id}')"
        )
    return function


def write_result(
    connection: "duckdb.DuckDBPyConnection",
    result: Any,
    schema: str,
    table: str,
    warehouse_connection: Any = None,
) -> None:
    """Write whatever the function returned to ``schema.table`` (replacing it atomically).

    ``connection`` is the DuckDB the function computed in; the table is written to
    ``warehouse_connection`` when that is another database (PostgreSQL).
    """
    target = warehouse_connection or connection
    warehouse: Warehouse = warehouse_of(target)
    warehouse.write_result(connection, target, result, schema, table)


def python_model_asset(
    product: Product, model: PythonModel, registry: Registry, paths: ProjectPaths
) -> dg.AssetsDefinition:
    """The Python model's asset; for an output port, its publish asset too, in the same step.

    A port written from Python is computed into staging, audited and published by one step
    (:func:`~ddp_assets.contracts.port_asset.audit_and_publish`); either asset can be
    materialized alone (a publish of what staging holds, or a staging build for inspection).
    """
    spec = product.spec
    inputs = registry.python_model_inputs(product, model)
    port = product.output_models.get(model.name)
    tags = product_tags(product_meta(product), port=port)
    metadata: dict[str, Any] = {"ddp/version": spec.version, "ddp/entrypoint": model.entrypoint}
    published: PortAsset | None = None
    if port:
        output = spec.output_port(port)
        assert output is not None
        metadata["ddp/output_port"] = port
        metadata["ddp/contract"] = dg.MetadataValue.path(
            str((product.folder / output.contract).relative_to(paths.root))
        )
        published = port_asset(product, output, paths, registry)

    # An output port is written to staging and published after the audit.
    schema = staging_schema(spec.id) if port else product_schema(spec.id)
    key = staging_key(spec.id, model.name) if port else port_key(spec.id, model.name)
    compute_spec = dg.AssetSpec(
        key=key,
        automation_condition=refresh_condition(spec),
        deps=[dg.AssetKey(list(rel)) for rel in inputs.values()],
        group_name=spec.id,
        owners=list(spec.owners),
        tags=tags,
        kinds={"python", warehouse_for(paths).kind},
        description=model.description or f"Computed in Python by {model.entrypoint}.",
        metadata=metadata,
        code_version=_code_version(product.folder / model.entrypoint.split(":", 1)[0]),
        skippable=True,
    )

    @dg.multi_asset(
        name=f"{spec.id}__{model.name}",
        specs=[compute_spec, *([published.spec] if published else [])],
        check_specs=published.check_specs if published else None,
        can_subset=True,
        pool=WRITER_POOL,
    )
    def _compute(context: dg.AssetExecutionContext) -> Iterator[Any]:
        selected = context.selected_asset_keys
        warehouse = warehouse_for(paths)
        if key in selected:
            blocked = check_input_ports(context, registry, paths, [key])
            if blocked:
                raise dg.Failure(description="\n".join(b.message() for b in blocked))
            function = load_function(product, model)
            with warehouse.writer() as connection, warehouse.python_session(connection) as session:
                result = function(
                    PythonModelContext(session, spec.id, inputs, context.log, connection)
                )
                write_result(session, result, schema, model.name, connection)
                rows = row_count(connection, schema, model.name)
                columns = table_columns(connection, schema, model.name)
            yield dg.MaterializeResult(
                asset_key=key,
                metadata={
                    "dagster/row_count": rows,
                    "dagster/column_schema": column_schema(columns),
                    "dagster/table_name": f"{schema}.{model.name}",
                },
            )
        if published is not None and published.key in selected:
            with warehouse.writer() as connection:
                outcome = audit_and_publish(connection, published, context.run.run_id, context.log)
            yield from outcome.events
            if outcome.held_back:
                raise held_back_failure([outcome.held_back])

    return _compute


def _code_version(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return None
