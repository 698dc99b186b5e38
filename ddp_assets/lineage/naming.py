"""Dataset names by the OpenLineage naming conventions.

- DuckDB: namespace ``duckdb://<absolute file path>``, name ``<database>.<schema>.<table>``.
- Postgres: namespace ``postgres://<host>:<port>``, name ``<database>.<schema>.<table>``.
- Local files: namespace ``file``, name ``<absolute path>``.

Jobs are in the namespace ``ddp``, named ``<product>.<model>`` (the Dagster asset key).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from openlineage.client.naming.dataset import Postgres

from ddp_assets.settings import ProjectPaths

JOB_NAMESPACE = "ddp"
FILE_NAMESPACE = "file"

_ENV_VAR = re.compile(
    r"""\{\{\s*env_var\(\s*['"](?P<name>\w+)['"]\s*(?:,\s*['"](?P<default>[^'"]*)['"]\s*)?\)\s*\}\}"""
)


def job_name(product: str, model: str) -> str:
    return f"{product}.{model}"


def _render(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    return _ENV_VAR.sub(lambda m: os.environ.get(m["name"], m["default"] or ""), value)


def dbt_target(paths: ProjectPaths) -> dict[str, Any]:
    """The active output of the project's dbt profile, with ``env_var()`` resolved."""
    try:
        profiles = yaml.safe_load((paths.dbt_dir / "profiles.yml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {"type": "duckdb"}
    profile = next(iter((profiles or {}).values()), {}) or {}
    target = os.environ.get("DDP_DBT_TARGET") or _render(profile.get("target")) or "dev"
    output = (profile.get("outputs") or {}).get(target) or {}
    return {key: _render(value) for key, value in output.items()}


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


def warehouse_database(paths: ProjectPaths) -> str:
    """The database (DuckDB catalog) name the tables live in: the file's stem for DuckDB."""
    return Path(paths.warehouse_path).stem


def table_name(database: str, schema: str, table: str) -> str:
    return f"{database}.{schema}.{table}"


def file_name(path: Path) -> str:
    return str(path.resolve())
