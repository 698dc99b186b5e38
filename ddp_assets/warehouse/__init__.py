"""The warehouse: DuckDB (embedded default) or PostgreSQL, chosen by the dbt target.

``warehouse_for(paths)`` returns the :class:`Warehouse` of the active dbt output
(``DDP_DBT_TARGET``; see ``docs/warehouse-targets.md``). Everything in ddp that reads or writes
tables itself goes through it; the dialect-specific code is in :mod:`.duckdb` and :mod:`.postgres`.
"""

from __future__ import annotations

from pathlib import Path

from ddp_assets.settings import ProjectPaths
from ddp_assets.warehouse.base import (
    Connection,
    Warehouse,
    WarehouseUnavailable,
    literal,
    quote,
    relation,
    relation_exists,
    row_count,
    table_columns,
)
from ddp_assets.warehouse.config import WarehouseConfigError, dbt_target
from ddp_assets.warehouse.duckdb import DuckDBWarehouse, reader, writer

__all__ = [
    "Connection",
    "DuckDBWarehouse",
    "Warehouse",
    "WarehouseConfigError",
    "WarehouseUnavailable",
    "literal",
    "quote",
    "reader",
    "relation",
    "relation_exists",
    "row_count",
    "table_columns",
    "warehouse_for",
    "warehouse_from_target",
    "warehouse_of",
    "writer",
]


def warehouse_from_target(paths: ProjectPaths, target: dict[str, object]) -> Warehouse:
    """The warehouse a dbt output (``profiles.yml``, rendered) describes."""
    kind = str(target.get("type", "duckdb"))
    if kind == "duckdb":
        # ddp's DuckDB file is $DDP_DATA_DIR/warehouse.duckdb, as the dev output's path says
        return DuckDBWarehouse(paths.warehouse_path)
    if kind == "postgres":
        from ddp_assets.warehouse.postgres import PostgresSettings, PostgresWarehouse

        return PostgresWarehouse(PostgresSettings.from_target(dict(target)))
    raise WarehouseConfigError(
        f"{paths.dbt_dir / 'profiles.yml'}: dbt adapter '{kind}' is not a ddp warehouse; "
        "use a duckdb or postgres output"
    )


def warehouse_of(connection: object) -> Warehouse:
    """The warehouse an open connection belongs to (for the dialect-specific operations).

    A :class:`~ddp_assets.warehouse.postgres.PostgresConnection` knows its warehouse; anything
    else is a DuckDB connection (the embedded default, and what the tests and benchmarks open).
    """
    owner = getattr(connection, "warehouse", None)
    if isinstance(owner, Warehouse):
        return owner
    return DuckDBWarehouse(Path(":memory:"))


def warehouse_for(paths: ProjectPaths) -> Warehouse:
    """The warehouse of the active dbt target."""
    return warehouse_from_target(paths, dbt_target(paths))
