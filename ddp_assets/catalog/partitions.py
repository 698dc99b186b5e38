"""A partitioned product's partitions as its consumers see them: which are published, the
latest one and its age, and which are missing (``ddp status``, the catalog).

A product partitioned by file knows the partitions its instance holds (one per landing file the
landing sensor or ``ddp materialize`` added, in the order they came); every one of them not
published is missing, and ``latest`` is the last one published in that order."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from ddp_assets.naming import port_key
from ddp_assets.partitions import partitions_def
from ddp_assets.spec.registry import Product

MISSING_SHOWN = 10


def built_everywhere(instance: dg.DagsterInstance, keys: Sequence[dg.AssetKey]) -> set[str]:
    """The partitions every one of ``keys`` has materialized."""
    built: set[str] | None = None
    for key in keys:
        done = set(instance.get_materialized_partitions(key))
        built = done if built is None else built & done
    return built or set()


def partition_status(
    instance: dg.DagsterInstance, product: Product, now: datetime | None = None
) -> dict[str, Any] | None:
    """None for an unpartitioned product; else how it is partitioned (``by``), the partitions
    every output port has published (Dagster's materialized partitions of the ports) of those
    known, the latest of them and its window's age in hours, and the partitions missing between
    the first and the latest published (by file: every known file's partition not published)."""
    definition = partitions_def(product.spec)
    if definition is None or product.spec.partitions is None:
        return None
    by = product.spec.partitions.by
    now = now or datetime.now(UTC)
    known = list(definition.get_partition_keys(current_time=now, dynamic_partitions_store=instance))
    ports = [port_key(product.id, port.model) for port in product.spec.output_ports]
    built = built_everywhere(instance, ports)
    published = [key for key in known if key in built]
    if not published:
        return {
            "by": by,
            "partitions": len(known),
            "published": 0,
            "latest": None,
            "missing": known[:MISSING_SHOWN],
            "missing_count": len(known),
        }
    first, latest = known.index(published[0]), published[-1]
    done = set(published)
    # gaps between the first and the latest published; the windows after the latest show in
    # its age (the freshness SLO judges them). Files have no windows: each unpublished one
    # is missing
    if isinstance(definition, dg.DynamicPartitionsDefinition):
        missing = [key for key in known if key not in done]
    else:
        missing = [key for key in known[first : known.index(latest)] if key not in done]
    age_hours: float | None = None
    if isinstance(definition, dg.TimeWindowPartitionsDefinition):
        end = definition.time_window_for_partition_key(latest).end
        age_hours = round(max((now - end).total_seconds(), 0) / 3600, 1)
    return {
        "by": by,
        "partitions": len(known),
        "published": len(published),
        "latest": latest,
        "latest_age_hours": age_hours,
        "missing": missing[:MISSING_SHOWN],
        "missing_count": len(missing),
    }
