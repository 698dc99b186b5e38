"""Dataset names by the OpenLineage naming conventions.

- DuckDB: namespace ``duckdb://<absolute file path>``, name ``<database>.<schema>.<table>``.
- Postgres: namespace ``postgres://<host>:<port>``, name ``<database>.<schema>.<table>``.
- Local files: namespace ``file``, name ``<absolute path>``.

Jobs are in the namespace ``ddp``, named ``<product>.<model>`` (the Dagster asset key).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openlineage.client.naming.dataset import Postgres

from ddp_assets.settings import ProjectPaths
from ddp_assets.warehouse import config

JOB_NAMESPACE = "ddp"
FILE_NAMESPACE = "file"


def job_name(product: str, model: str) -> str:
    return f"{product}.{model}"


def dbt_target(paths: ProjectPaths) -> dict[str, Any]:
    """The active output of the project's dbt profile, with ``env_var()`` resolved.

    Lineage never breaks a run: an unreadable profile is reported as the DuckDB default.
    """
    try:
        return config.dbt_target(paths)
    except config.WarehouseConfigError:
        return {"type": "duckdb"}


def warehouse_namespace(paths: ProjectPaths, target: dict[str, Any] | None = None) -> str:
    """The OpenLineage namespace of the warehouse the dbt target writes."""
    target = dbt_target(paths) if target is None else target
    kind = str(target.get("type", "duckdb"))
    if kind == "postgres":
        return Postgres(
            host=str(target.get("host", "localhost")),
            port=str(target.get("port", 5432)),
            database=str(target.get("dbname", "postgres")),
            schema="public",
            table="t",
        ).get_namespace()
    if kind == "duckdb":
        return f"duckdb://{paths.warehouse_path}"
    return f"{kind}://{target.get('host', 'localhost')}"


def warehouse_database(paths: ProjectPaths, target: dict[str, Any] | None = None) -> str:
    """The database the tables live in: the DuckDB file's stem, or the Postgres dbname."""
    target = dbt_target(paths) if target is None else target
    if str(target.get("type", "duckdb")) == "postgres":
        return str(target.get("dbname") or target.get("database") or "postgres")
    return Path(paths.warehouse_path).stem


def warehouse_dialect(paths: ProjectPaths, target: dict[str, Any] | None = None) -> str:
    """The sqlglot dialect of the SQL the models compile to."""
    target = dbt_target(paths) if target is None else target
    return "postgres" if str(target.get("type", "duckdb")) == "postgres" else "duckdb"


def table_name(database: str, schema: str, table: str) -> str:
    return f"{database}.{schema}.{table}"


def file_name(path: Path) -> str:
    return str(path.resolve())
