"""Dataset names by the OpenLineage naming conventions.

- DuckDB: namespace ``duckdb://<absolute file path>``, name ``<database>.<schema>.<table>``.
- Postgres: namespace ``postgres://<host>:<port>``, name ``<database>.<schema>.<table>``.
- Local files: namespace ``file``, name ``<absolute path>``.

Jobs are in the namespace ``ddp``, named ``<product>.<model>`` (the Dagster asset key).

The parent of those jobs (the ``parent`` run facet) is the Dagster run, named by
:func:`parent_job_name`:

1. the run's Dagster job, when it is one defined in code (not Dagster's implicit asset job
   ``__ASSET_JOB`` nor any other ``__``-prefixed internal job, such as the ephemeral job of
   ``dg.materialize``);
2. else the schedule or sensor that launched it (the run's tags ``dagster/schedule_name``,
   ``dagster/sensor_name``), e.g. ``orders__schedule``;
3. else an ad-hoc materialization (``ddp materialize``, the UI's *Materialize*):
   ``ddp.materialize.<product>`` when it materialized the assets of one product, else
   ``ddp.materialize``.

Every dataset carries a ``dataSource`` facet (:func:`data_source`): its ``name`` is the
dataset's namespace, its ``uri`` where the data lives: the DuckDB warehouse
(``duckdb://<file>``, the namespace itself; a depot's SQLite file likewise), the Postgres database
(``postgres://host:port/<database>``, the database being the first part of the dataset name),
or, for a file, the landing zone (``file:///<landing dir>``; the file's folder when it lies
outside the landing zone).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from openlineage.client.naming.dataset import Postgres

from ddp_assets.settings import ProjectPaths
from ddp_assets.warehouse import config

JOB_NAMESPACE = "ddp"
FILE_NAMESPACE = "file"
ADHOC_JOB = "ddp.materialize"
SCHEDULE_TAG = "dagster/schedule_name"
SENSOR_TAG = "dagster/sensor_name"


def job_name(product: str, model: str) -> str:
    return f"{product}.{model}"


def parent_job_name(job: str, tags: Mapping[str, str], products: Iterable[str]) -> str:
    """The name of the job of a Dagster run, as its events' parent facet names it (see above).

    ``products``: the products whose assets the run materialized (or checked).
    """
    if job and not job.startswith("__"):
        return job
    for tag in (SCHEDULE_TAG, SENSOR_TAG):
        if tags.get(tag):
            return tags[tag]
    found = sorted(set(products))
    return f"{ADHOC_JOB}.{found[0]}" if len(found) == 1 else ADHOC_JOB


def data_source(namespace: str, name: str, landing_dir: Path | None = None) -> tuple[str, str]:
    """``(name, uri)`` of the ``dataSource`` facet of the dataset ``namespace`` + ``name``."""
    if namespace == FILE_NAMESPACE:
        path = Path(name).absolute()
        if landing_dir is not None and path.is_relative_to(landing_dir.absolute()):
            return namespace, landing_dir.absolute().as_uri()
        return namespace, path.parent.as_uri()
    if namespace.startswith(("duckdb://", "sqlite://")) or "://" not in namespace:
        return namespace, namespace
    database = name.split(".", 1)[0]
    return namespace, f"{namespace.rstrip('/')}/{database}"


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
