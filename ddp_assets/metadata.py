"""The tags and metadata every asset of a product carries, whatever computes it (landing
tables, Python models, dbt models, output ports).

Dagster and dbt assets both get their product tags from here, so the UI can filter the whole
catalog by domain, status, tier or output port the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:
    from ddp_assets.spec.registry import Product

from ddp_assets.naming import PROD, current_env, tag
from ddp_assets.naming import WRITER_POOL as WRITER_POOL

_TAG_VALUE = re.compile(r"[^A-Za-z0-9_.-]")


def tag_value(value: str) -> str:
    """A string made safe as a Dagster tag value (letters, digits, '_', '.', '-'; <= 63)."""
    return _TAG_VALUE.sub("_", value)[:63]


def product_meta(product: Product) -> dict[str, Any]:
    """The ``meta.ddp`` block every dbt node of the product carries into the manifest."""
    spec = product.spec
    return {
        "product": spec.id,
        "domain": spec.domain,
        "version": spec.version,
        "status": spec.status,
        "tier": spec.tier,
        "owners": list(spec.owners),
    }


def product_tags(meta: Mapping[str, Any], port: str | None = None) -> dict[str, str]:
    """Tags from a product's metadata (:func:`product_meta`), and ``ddp/env`` outside prod."""
    tags = {
        tag("product"): tag_value(meta["product"]),
        tag("domain"): tag_value(meta["domain"]),
        tag("status"): tag_value(meta["status"]),
        tag("tier"): tag_value(meta["tier"]),
    }
    if port:
        tags[tag("output_port")] = tag_value(port)
    if (env := current_env()) != PROD:  # an environment's assets say so in the UI
        tags[tag("env")] = env
    return tags


def column_schema(columns: list[tuple[str, str]]) -> dg.TableSchema:
    """``dagster/column_schema`` of a table: its (name, type) columns, in order."""
    return dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in columns])
