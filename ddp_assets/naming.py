"""ddp's naming conventions, in one place: every module that names an asset, a schema, a job,
a sensor, a pool or a tag asks here (dbt properties, the translator, publish, lineage, the gate,
policies, automation, ports).

- a product's **group** and **schema** are its id; its output ports are built in
  ``<product>__staging``, kept there as versions ``<port>__v<N>`` and published as the view
  ``<product>.<model>`` of one of them;
- asset keys: ``[product, model]`` for a published port, a dbt model, a Python model or a
  landing table (``[product, port]``); ``[product, "staging", model]`` for a port's build;
- Dagster objects: ``<product>__schedule``, ``<product>__landing``, the ``duckdb_writer`` pool;
- tags: ``ddp/<name>``.

The module imports nothing of ddp's and only Dagster's ``AssetKey``: it sits under every layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

STAGING = "staging"  # the middle part of a staging asset key
STAGING_SUFFIX = "__staging"
META_SCHEMA = "_ddp"  # ddp's own tables in the warehouse (audits, published versions)

WRITER_POOL = "duckdb_writer"
"""The Dagster pool that serializes every DuckDB writer (DuckDB allows one writer process).

Kept on a PostgreSQL warehouse too: harmless there, and it keeps ddp's publish steps ordered."""

TAG_PREFIX = "ddp/"


def product_schema(product: str) -> str:
    """The schema a product publishes to (and builds its private models in)."""
    return product


def dbt_asset_name(product: str | None) -> str:
    """The dbt multi-asset (its step) of the unpartitioned products (None), or of one
    partitioned product (a multi-asset has one PartitionsDefinition)."""
    return "ddp_dbt_models" if product is None else f"ddp_dbt_{product}"


def staging_schema(product: str) -> str:
    """The schema where a product's output ports are built before they are published."""
    return f"{product}{STAGING_SUFFIX}"


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


def landing_sensor_name(product: str) -> str:
    return f"{product}__landing"


def tag(name: str) -> str:
    """A ddp tag key (``ddp/<name>``)."""
    return f"{TAG_PREFIX}{name}"


# --- versioned publish (contracts/wap.py) ---------------------------------------------------

VERSION_MARK = "__v"


def version_schema(product: str) -> str:
    """The schema holding a product's retained port versions: its staging schema.

    A publish renames the audited build into a version, and DuckDB renames a table only within
    its schema (it has no ``ALTER TABLE ... SET SCHEMA``); PostgreSQL keeps the same layout."""
    return staging_schema(product)


def version_table(port: str, version: int) -> str:
    """The immutable table of an output port's version ``version`` (``<port>__v<N>``)."""
    return f"{port}{VERSION_MARK}{version}"


def partition_store(port: str) -> str:
    """The one table holding every retained partition's rows of a partitioned output port
    (``<port>__parts``, in :func:`version_schema`); its versions are views over it."""
    return f"{port}__parts"


def published_relation(product: str, model: str) -> tuple[str, str]:
    """(schema, name) of the relation consumers read: a view over the published version."""
    return product_schema(product), model
