"""A product's partitions: the Dagster ``PartitionsDefinition`` its assets share, and the windows
a run builds.

A partitioned product (its spec's ``partitions:``, :class:`~ddp_assets.spec.model.Partitioning`)
has every asset partitioned alike: the landing tables, the dbt models, the output ports and their
checks. A run builds one partition or a contiguous range of them (a backfill batch); what the run
builds is a list of :class:`Window`: a time window ``[start, end)`` in UTC (the warehouse keeps
UTC timestamps), or a key (a static key, or a landing file's: :func:`file_partition_key`).
dbt receives them in the ``DDP_PARTITION`` environment variable (the ``ddp_partition_filter``
macro turns it into a ``WHERE`` clause); the publish replaces exactly those partitions of each
output port (:mod:`ddp_assets.contracts.partitioned`).

Why not a dbt var: dbt keys its partial parse on the project's vars, so a ``--vars`` that
changes with every partition made every partitioned run parse the whole project again (1.5 s of
a one-day run of the demo; seconds per run at a thousand models). The macro reads the variable
only when dbt executes (``execute``), so parsing never records it and the prepared parse is
reused.

Dagster's own partition definitions are used as they are (``TimeWindowPartitionsDefinition``
keys, time zones, daylight saving; a ``DynamicPartitionsDefinition`` per product partitioned by
file, :func:`file_partitions_name`); this module only translates them for dbt and the warehouse.

A product partitioned by file (``partitions: {by: file, column: ...}``) has one partition per
landing file, added to the instance when the landing sensor (or ``ddp materialize``) first sees
the file. Its key is the file's path relative to the landing zone, when that path is a valid,
unambiguous key (:func:`file_partition_key`, the rule there), so a file's rows are found by its
name in every port version (the key is also the value of the partition column).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import Any

import dagster as dg

from ddp_assets.naming import file_partitions_name as file_partitions_name
from ddp_assets.spec.model import Partitioning, ProductSpec, partition_start

DBT_ENV = "DDP_PARTITION"
"""The environment variable a partitioned run gives dbt: the JSON of :func:`dbt_partition`."""

_CRON = {"hour": "0 * * * *", "day": "0 0 * * *", "month": "0 0 1 * *"}
_FORMAT = {"hour": "%Y-%m-%d-%H:%M", "day": "%Y-%m-%d", "month": "%Y-%m-%d"}


@dataclass(frozen=True)
class Window:
    """One partition a run builds: a time window ``[start, end)`` (naive UTC), or a static key."""

    key: str
    start: datetime | None = None
    end: datetime | None = None

    def to_dict(self) -> dict[str, str]:
        if self.start is None or self.end is None:
            return {"key": self.key}
        return {"key": self.key, "start": _sql_time(self.start), "end": _sql_time(self.end)}


def _sql_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _start(partitioning: Partitioning) -> datetime:
    # the spec requires a valid start for time windows (Partitioning validates it)
    start = partition_start(partitioning.start or "")
    if start is None:
        raise ValueError(f"start {partitioning.start!r} is not a date")
    return start


FILE_KEY_MAX = 200
"""The longest file partition key (longer paths are shortened, with their digest)."""

_FILE_KEY_CHARS = "A-Za-z0-9_.=+@/-"
_FILE_KEY_PLAIN = re.compile(rf"[A-Za-z0-9_][{_FILE_KEY_CHARS}]*")
_FILE_KEY_OTHER = re.compile(rf"[^{_FILE_KEY_CHARS}]+")
_FILE_KEY_DIGEST = 12  # hex digits of sha256 after '~'


def file_partition_key(relative_path: str | PurePath) -> str:
    """The partition key of a landing file of a product partitioned by file.

    The rule (docs/partitions.md): the file's path relative to the landing zone, with ``/``
    between folders (``receipts/2026/receipts_a.csv``), *is* the key when it uses only ASCII
    letters, digits and ``_ . = + @ / -``, starts with a letter, digit or ``_``, holds no
    ``...`` (Dagster's range separator), and has at most :data:`FILE_KEY_MAX`
    characters. Any other path gets a derived key: each run of other characters becomes
    ``_``, dot runs of three or more become ``_``, the result is cut to fit, and ``~`` with the
    first 12 hex digits of the SHA-256 of the path is appended
    (``receipts/receipt_march_2026.csv~fce67dd9af01`` for ``receipts/receipt march 2026.csv``).

    So a key is stable (it depends on the path only: the same file keeps its partition when
    its content changes, a renamed file is a new partition), unique (a plain key is the path
    itself and never holds ``~``; derived keys differ by the path's digest), and safe as a
    Dagster key, in a URL, and as a SQL string (no quote, comma, bracket or control character).
    """
    path = Path(relative_path).as_posix()
    if len(path) <= FILE_KEY_MAX and _FILE_KEY_PLAIN.fullmatch(path) and "..." not in path:
        return path
    digest = hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()
    readable = re.sub(r"\.{3,}", "_", _FILE_KEY_OTHER.sub("_", path))
    readable = readable[: FILE_KEY_MAX - _FILE_KEY_DIGEST - 1]
    return f"{readable}~{digest[:_FILE_KEY_DIGEST]}"


def definition_of(partitioning: Partitioning, product: str = "") -> dg.PartitionsDefinition:
    """The Dagster partitions of a ``partitions:`` declaration (equal declarations give equal
    definitions, so products partitioned alike map window to window); ``product`` names a
    by-file product's dynamic partitions (:func:`file_partitions_name`)."""
    if partitioning.by == "file":
        if not product:
            raise ValueError("partitions by file are named after their product: pass product")
        return dg.DynamicPartitionsDefinition(name=file_partitions_name(product))
    if partitioning.by == "key":
        return dg.StaticPartitionsDefinition(list(partitioning.keys))
    return dg.TimeWindowPartitionsDefinition(
        start=_start(partitioning),
        cron_schedule=_CRON[partitioning.by],
        fmt=_FORMAT[partitioning.by],
        timezone=partitioning.timezone,
    )


def partitions_def(spec: ProductSpec) -> dg.PartitionsDefinition | None:
    """The partitions every asset of the product shares; None when it is unpartitioned."""
    return definition_of(spec.partitions, spec.id) if spec.partitions is not None else None


def backfill_policy(spec: ProductSpec) -> dg.BackfillPolicy | None:
    """Backfills run in bounded batches of ``partitions.batch`` partitions per run."""
    if spec.partitions is None:
        return None
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=spec.partitions.batch)


def windows(spec: ProductSpec, keys: Sequence[str]) -> list[Window]:
    """The windows of the given partition keys of a partitioned product, in key order."""
    assert spec.partitions is not None
    definition = definition_of(spec.partitions, spec.id)
    if not isinstance(definition, dg.TimeWindowPartitionsDefinition):
        return [Window(key) for key in keys]
    found: list[Window] = []
    for key in keys:
        window = definition.time_window_for_partition_key(key)
        found.append(Window(key, _utc(window.start), _utc(window.end)))
    return sorted(found, key=lambda w: (w.start or datetime.min, w.key))


def run_windows(spec: ProductSpec, context: Any) -> list[Window] | None:
    """The windows an asset execution context builds (None: the product is unpartitioned or
    the run is not partitioned)."""
    # a single-partition run has only the partition tag, a range run the range tags
    if spec.partitions is None or not (
        context.has_partition_key or context.has_partition_key_range
    ):
        return None
    return windows(spec, list(context.partition_keys))


def dbt_partition(spec: ProductSpec, built: Sequence[Window]) -> dict[str, Any]:
    """What ``ddp_partition_filter`` reads of a run over ``built``: ``{"by", "column", "keys",
    "start", "end"}`` (``start``/``end`` for time windows: the run's whole range, UTC)."""
    assert spec.partitions is not None
    value: dict[str, Any] = {
        "by": spec.partitions.by,
        "column": spec.partitions.column,
        "keys": [w.key for w in built],
    }
    starts = [w.start for w in built if w.start is not None]
    ends = [w.end for w in built if w.end is not None]
    if starts and ends:
        value.update(start=_sql_time(min(starts)), end=_sql_time(max(ends)))
    return value


def dbt_env(spec: ProductSpec | None, built: Sequence[Window] | None) -> dict[str, str]:
    """The environment dbt gets for a run: :data:`DBT_ENV` in a partitioned run, else nothing."""
    if spec is None or spec.partitions is None or not built:
        return {}
    return {DBT_ENV: json.dumps(dbt_partition(spec, built), separators=(",", ":"))}


@contextmanager
def dbt_environment(values: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` (and without :data:`DBT_ENV` when they do not set it)
    for a whole dbt invocation, from ``dbt.cli`` until its events have all streamed:
    dagster-dbt's subprocess takes the environment when it starts, but ddp's in-process dbt
    runs in a thread that sets and reads ``os.environ`` while the events stream, so the block
    must not end before the invocation does (ending it at ``cli()``'s return raced with dbt's
    rendering). A step runs one invocation at a time in its process."""
    saved = {key: os.environ.get(key) for key in {DBT_ENV, *values}}
    os.environ.pop(DBT_ENV, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
