"""ddp's naming conventions, in one place: every module that names an asset, a schema, a job,
a sensor, a pool or a tag asks here (dbt properties, the translator, publish, lineage, the gate,
policies, automation, ports).

- a product's **group** and **schema** are its id; its output ports are built in
  ``<product>__staging``, kept there as versions ``<port>__v<N>`` and published as the view
  ``<product>.<model>`` of one of them;
- asset keys: ``[product, model]`` for a published port, a dbt model, a Python model or a
  landing table (``[product, port]``); ``[product, "staging", model]`` for a port's build;
- Dagster objects: ``<product>__schedule``, ``<product>__landing``, the ``duckdb_writer`` pool;
- tags: ``ddp/<name>``;
- environments (docs/architecture.md, "Environments"): ``prod`` (the default) names everything
  as above; another environment ``<env>`` (``DDP_ENV``) prefixes every schema with ``<env>__``
  and keeps its meta tables in ``_ddp__<env>``. The schema functions read the environment when
  called: pass ``env`` to name another environment's schemas.

The module imports nothing of ddp's and only Dagster's ``AssetKey``: it sits under every layer.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import dagster as dg

STAGING = "staging"  # the middle part of a staging asset key
STAGING_SUFFIX = "__staging"
META_SCHEMA = "_ddp"  # prod's meta schema (audits, published versions): use meta_schema()

WRITER_POOL = "duckdb_writer"
"""The Dagster pool that serializes every DuckDB writer (DuckDB allows one writer process).

Kept on a PostgreSQL warehouse too: harmless there, and it keeps ddp's publish steps ordered."""

TAG_PREFIX = "ddp/"


# --- environments -----------------------------------------------------------------------------

PROD = "prod"
ENV_VAR = "DDP_ENV"
ENV_NAME = re.compile(r"[a-z][a-z0-9_]{0,30}")
ENV_SEPARATOR = "__"


ENV_TABLE = "environment"  # in an environment's meta schema: its name, base, creation
POINTERS_TABLE = "pointers"  # there too: each base port version its views read (ddp env create)


class BadEnvironmentName(ValueError):
    """An environment name that is not ``[a-z][a-z0-9_]{0,30}`` (or has ``__``)."""


def check_env(name: str) -> str:
    """``name`` when it names an environment; :class:`BadEnvironmentName` otherwise."""
    if not ENV_NAME.fullmatch(name) or ENV_SEPARATOR in name or name.endswith("_"):
        raise BadEnvironmentName(
            f"'{name}' is not an environment name: a lowercase letter, then up to 30 lowercase "
            "letters, digits or single underscores (not ending with one)"
        )
    if name.startswith("pg_"):  # PostgreSQL reserves the schemas pg_*
        raise BadEnvironmentName(
            f"'{name}' is not an environment name: PostgreSQL reserves schema names starting "
            "with 'pg_'"
        )
    return name


def current_env() -> str:
    """The environment this process works in: ``DDP_ENV`` (``ddp --env``), else ``prod``."""
    value = os.environ.get(ENV_VAR, "").strip()
    return check_env(value) if value else PROD


def _env(env: str | None) -> str:
    return current_env() if env is None else check_env(env)


def env_prefix(env: str | None = None) -> str:
    """What an environment puts before every schema name: nothing in prod, ``<env>__`` else."""
    chosen = _env(env)
    return "" if chosen == PROD else f"{chosen}{ENV_SEPARATOR}"


def meta_schema(env: str | None = None) -> str:
    """ddp's own tables of an environment (ledger, audits): ``_ddp``, ``_ddp__<env>``."""
    chosen = _env(env)
    return META_SCHEMA if chosen == PROD else f"{META_SCHEMA}{ENV_SEPARATOR}{chosen}"


def in_some_env(schema: str, prod_schema: str) -> bool:
    """Whether ``schema`` is ``prod_schema`` in prod or in some other environment (a dbt
    manifest parsed in one environment may be read in another: its schemas are that one's)."""
    if schema == prod_schema:
        return True
    env, sep, rest = schema.partition(ENV_SEPARATOR)
    if not sep or rest != prod_schema:
        return False
    try:
        return check_env(env) != PROD
    except BadEnvironmentName:
        return False


def product_schema(product: str, env: str | None = None) -> str:
    """The schema a product publishes to (and builds its private models in): its id, in prod."""
    return f"{env_prefix(env)}{product}"


def dbt_asset_name(product: str | None) -> str:
    """The dbt multi-asset (its step) of the unpartitioned products (None), or of one
    partitioned product (a multi-asset has one PartitionsDefinition)."""
    return "ddp_dbt_models" if product is None else f"ddp_dbt_{product}"


def staging_schema(product: str, env: str | None = None) -> str:
    """The schema where a product's output ports are built before they are published."""
    return f"{product_schema(product, env)}{STAGING_SUFFIX}"


def port_key(product: str, model: str) -> dg.AssetKey:
    """A product's asset: a published output port, a model, a Python model or a landing table."""
    return dg.AssetKey([product, model])


def staging_key(product: str, model: str) -> dg.AssetKey:
    """The build of an output port in staging, before its audit and publish."""
    return dg.AssetKey([product, STAGING, model])


def is_staging_key(key: dg.AssetKey) -> bool:
    return len(key.path) == 3 and key.path[1] == STAGING


def published_key(staging: dg.AssetKey) -> dg.AssetKey:
    """The published port of a staging key (``[p, "staging", m]`` → ``[p, m]``)."""
    return port_key(staging.path[0], staging.path[2])


def ddp_meta(props: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``meta.ddp`` block ddp writes for every dbt node of a product (``{}`` for others),
    from a manifest node or dagster-dbt's resource props."""
    return (
        (props.get("meta") or {}).get("ddp")
        or ((props.get("config") or {}).get("meta") or {}).get("ddp")
        or {}
    )


def dbt_asset_key(props: Mapping[str, Any]) -> dg.AssetKey | None:
    """ddp's asset key of a dbt node: :func:`staging_key` for an output port's model (built in
    staging), :func:`port_key` for any other model of a product; None for a source or a node
    without ddp's meta (dagster-dbt's default key is theirs)."""
    meta = ddp_meta(props)
    if props.get("resource_type") == "source" or not meta.get("product"):
        return None
    if meta.get("port"):  # built in staging; [product, model] is the published port
        return staging_key(meta["product"], props["name"])
    return port_key(meta["product"], props["name"])


def schedule_name(product: str) -> str:
    return f"{product}__schedule"


FILE_PARTITIONS_SUFFIX = "__files"


def file_partitions_name(product: str) -> str:
    """The ``DynamicPartitionsDefinition`` of a product partitioned by landing file (the
    instance keeps its keys under this name): ``<product>__files``."""
    return f"{product}{FILE_PARTITIONS_SUFFIX}"


def landing_sensor_name(product: str) -> str:
    return f"{product}__landing"


def tag(name: str) -> str:
    """A ddp tag key (``ddp/<name>``)."""
    return f"{TAG_PREFIX}{name}"


# --- versioned publish (contracts/wap.py) ---------------------------------------------------

VERSION_MARK = "__v"


def version_schema(product: str, env: str | None = None) -> str:
    """The schema holding a product's retained port versions: its staging schema.

    A publish renames the audited build into a version, and DuckDB renames a table only within
    its schema (it has no ``ALTER TABLE ... SET SCHEMA``); PostgreSQL keeps the same layout."""
    return staging_schema(product, env)


def version_table(port: str, version: int) -> str:
    """The immutable table of an output port's version ``version`` (``<port>__v<N>``)."""
    return f"{port}{VERSION_MARK}{version}"


def partition_store(port: str) -> str:
    """The one table holding every retained partition's rows of a partitioned output port
    (``<port>__parts``, in :func:`version_schema`); its versions are views over it."""
    return f"{port}__parts"


def published_relation(product: str, model: str, env: str | None = None) -> tuple[str, str]:
    """(schema, name) of the relation consumers read: a view over the published version."""
    return product_schema(product, env), model
