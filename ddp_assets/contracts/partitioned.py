"""Write-audit-publish per partition: a partitioned run publishes only its partitions.

A partitioned product's run builds, in ``<product>__staging.<model>``, only the rows of the run's
windows (:class:`~ddp_assets.partitions.Window`: one partition or a contiguous range). Each
output port keeps:

- **one store table** ``<product>__staging.<port>__parts``
  (:func:`~ddp_assets.naming.partition_store`): the port's columns, ``_ddp_partition`` (the
  partition key of the row) and ``_ddp_version`` (the port version that wrote the row). Rows are
  only ever appended by a publish and deleted by retention;
- **a partition map** ``_ddp.partition_versions`` (product, port, version, partition,
  written_in, rows, hash_sum): for each port version N, the partitions live in N and which
  version's rows they are (``written_in``), with their row count and raw order-independent hash
  sum, so N's rows and checksum come from the map, without reading the store;
- **a view per version**, ``<product>__staging.<port>__v<N>`` (the name an unpartitioned
  version's table has): the store's rows whose (partition, written_in) is in N's map. The
  published view ``<product>.<model>`` is a view of one of them, exactly as for an unpartitioned
  port, so a rollback (:func:`~ddp_assets.contracts.wap.move_pointers`), the serving snapshot and
  time travel read a partitioned version by its ``stored_as`` as they read any other.

:func:`publish_partitions` publishes the run's windows as version N in one transaction: it holds
the port back (:class:`HeldBack`, nothing written) when a staging row falls outside the windows,
when the staging relation's columns are not the store's, or when a key column (the contract's
primary key, each unique column) repeats within the batch or across the batch and the live rows
of the other partitions; else it appends the batch to the store tagged with its partitions and N,
writes N's map (the base version's map without the run's partitions, plus the run's partitions
that have rows: an emptied partition disappears), creates N's view, points the published view
and the staging model at it, and records the version (``partitions``: the JSON list of the
partitions written) and the move. The base is the version consumers read now (after a rollback
to M, the next publish builds on M). A promote (``ddp promote``) publishes an environment's
version the same way, reading its rows where they are (``source``), inside the promote's one
transaction (``own_transaction=False``).

Cost grows with the batch: the checks, the append and the hash sums read the staging rows; the
map is copied per version (one row per live partition, never a row of data); the only read of
the store is the key-uniqueness probe on the key columns. Reading a version scans the store
(its rows of every retained version), filtered by a semi-join on the map.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ddp_assets.contracts.wap import (
    RETAINED_VERSIONS,
    PublishedVersion,
    apply_retention,
    atomic,
    ensure_meta,
    next_numbers,
    point_published,
    published_version,
    record_version,
    republish_staged,
    staged_version,
)
from ddp_assets.naming import (
    meta_schema,
    partition_store,
    staging_schema,
    version_schema,
    version_table,
)
from ddp_assets.partitions import Window
from ddp_assets.warehouse import (
    Connection,
    literal,
    quote,
    relation,
    relation_exists,
    table_columns,
    warehouse_of,
)
from ddp_assets.warehouse.base import Warehouse, relation_kind

if TYPE_CHECKING:
    from ddp_assets.contracts.compiler import ContractPlan

PARTITION_COLUMN = "_ddp_partition"
VERSION_COLUMN = "_ddp_version"
MAP_TABLE = "partition_versions"
_MAP_COLUMNS = (
    "product varchar, port varchar, version bigint, partition varchar, written_in bigint, "
    "rows bigint, hash_sum varchar"
)


class HeldBack(Exception):
    """A partitioned publish refused (nothing was written): which check, and why."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check
        self.message = message


@dataclass(frozen=True)
class PartitionMap:
    """One partition of a version: whose rows, how many, their raw hash sum."""

    partition: str
    written_in: int
    rows: int
    hash_sum: int


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _map() -> str:
    return relation(meta_schema(), MAP_TABLE)


def ensure_partition_meta(connection: Connection) -> None:
    ensure_meta(connection)
    connection.execute(warehouse_of(connection).meta_table_ddl(_map(), _MAP_COLUMNS))


def _row_hash(warehouse: Warehouse, alias: str) -> str:
    """A row's hash as ``Warehouse.checksum`` sums it, so the sums of a version's partitions
    give the checksum of the version's view (kept in step with the warehouses' ``checksum``;
    tests/test_partitioned_publish.py compares them)."""
    if warehouse.kind == "postgres":
        return f"('x' || substr(md5({alias}::text), 1, 15))::bit(60)::bigint::numeric"
    return f"hash({alias})::hugeint"


def digest(total: int) -> str:
    """The checksum of a raw hash sum, in ``Warehouse.checksum``'s format."""
    return hashlib.sha256(str(total).encode()).hexdigest()[:32]


def partition_map(
    connection: Connection, product: str, port: str, version: int
) -> list[PartitionMap]:
    """The partitions live in a version of a partitioned port, in partition order."""
    rows = connection.execute(
        f"select partition, written_in, rows, hash_sum from {_map()} "
        "where product = ? and port = ? and version = ? order by partition",
        [product, port, version],
    ).fetchall()
    return [PartitionMap(str(p), int(w), int(r), int(h)) for p, w, r, h in rows]


def _windows_sql(windows: Sequence[Window]) -> str:
    if all(w.start is not None and w.end is not None for w in windows):
        values = ", ".join(
            f"({literal(w.key)}, cast({literal(d['start'])} as timestamp), "
            f"cast({literal(d['end'])} as timestamp))"
            for w in windows
            for d in [w.to_dict()]
        )
        return f"(values {values}) as w(key, lo, hi)"
    values = ", ".join(f"({literal(w.key)})" for w in windows)
    return f"(values {values}) as w(key)"


def _in_window(windows: Sequence[Window], column: str) -> str:
    """The predicate joining a staging row ``s`` to its window ``w``."""
    if all(w.start is not None for w in windows):
        return f"s.{column} >= w.lo and s.{column} < w.hi"
    return f"cast(s.{column} as varchar) = w.key"


def _describe(windows: Sequence[Window]) -> str:
    keys = ", ".join(w.key for w in windows)
    timed = [w for w in windows if w.start is not None and w.end is not None]
    if len(timed) == len(windows):
        first, last = timed[0].to_dict(), timed[-1].to_dict()
        return f"window [{first['start']}, {last['end']}) (partitions {keys})"
    return f"partitions {keys}"


def _key_sets(keys: Sequence[Sequence[str]]) -> list[tuple[str, ...]]:
    seen: list[tuple[str, ...]] = []
    for key in keys:
        if key and tuple(key) not in seen:
            seen.append(tuple(key))
    return seen


def key_columns(plan: ContractPlan) -> list[tuple[str, ...]]:
    """The key column sets a partitioned port keeps unique across its partitions: the
    contract's primary key, and each column it declares unique (the publish of a run and a
    promote check the same ones)."""
    unique = [c.name for c in plan.columns if c.unique]
    return _key_sets([tuple(plan.primary_key), *[(c,) for c in unique]])


def _check_outside(
    connection: Connection, source: str, column: str, windows: Sequence[Window], name: str
) -> None:
    quoted = quote(column)
    row = connection.execute(
        f"select count(*), count(s.{quoted}), cast(min(s.{quoted}) as varchar), "
        f"cast(max(s.{quoted}) as varchar) from {source} as s where not exists (select 1 "
        f"from {_windows_sql(windows)} where {_in_window(windows, quoted)})"
    ).fetchone()
    outside = int(row[0]) if row else 0
    if not outside:
        return
    assert row is not None
    nulls = outside - int(row[1])
    seen = [f"{column} from {row[2]} to {row[3]}"] if int(row[1]) else []
    if nulls:
        seen.append(f"{nulls} with {column} null")
    raise HeldBack(
        "ddp_partition_bounds",
        f"output port '{name}' held back: {outside} row(s) of the staging relation fall outside "
        f"the run's {_describe(windows)} ({'; '.join(seen)}). A partitioned run publishes only "
        f"its own partitions. Hint: filter the model with "
        f"{{{{ ddp_partition_filter('{column}') }}}}, or fix the landing file that holds them.",
    )


def _check_keys(
    connection: Connection,
    source: str,
    store: str,
    keys: Sequence[tuple[str, ...]],
    base: int | None,
    windows: Sequence[Window],
    where: tuple[str, str],
) -> None:
    product, port = where
    name = f"{product}.{port}"
    run_keys = ", ".join(literal(w.key) for w in windows)
    for key in keys:
        columns = ", ".join(f"s.{quote(c)}" for c in key)
        present = " and ".join(f"s.{quote(c)} is not null" for c in key)
        row = connection.execute(
            f"select {columns}, count(*) from {source} as s where {present} "
            f"group by {columns} having count(*) > 1 limit 1"
        ).fetchone()
        if row is not None:
            raise HeldBack(
                "ddp_partition_keys",
                f"output port '{name}' held back: key ({', '.join(key)}) = "
                f"{_key_text(row[: len(key)])} occurs {row[-1]} times in the run's "
                f"{_describe(windows)}. Hint: deduplicate the model's rows on its key.",
            )
        if base is None:
            continue
        joined = " and ".join(f"p.{quote(c)} = s.{quote(c)}" for c in key)
        row = connection.execute(
            f"select {columns}, p.{PARTITION_COLUMN} from {source} as s "
            f"join {store} as p on {joined} "
            f"join {_map()} as m on m.product = ? and m.port = ? and m.version = ? "
            f"and m.partition = p.{PARTITION_COLUMN} and m.written_in = p.{VERSION_COLUMN} "
            f"where p.{PARTITION_COLUMN} not in ({run_keys}) limit 1",
            [product, port, base],
        ).fetchone()
        if row is not None:
            raise HeldBack(
                "ddp_partition_keys",
                f"output port '{name}' held back: key ({', '.join(key)}) = "
                f"{_key_text(row[: len(key)])} of the run's {_describe(windows)} is already "
                f"published in partition {row[-1]}. A key lives in one partition. Hint: fix "
                f"the partition column of those rows, or rebuild partition {row[-1]} too.",
            )


def _key_text(values: Sequence[object]) -> str:
    return ", ".join(repr(v) for v in values)


def _check_shape(
    connection: Connection, staged: list[tuple[str, str]], store: tuple[str, str], name: str
) -> None:
    kept = [c for c in table_columns(connection, *store) if not c[0].startswith("_ddp_")]
    if kept == staged:
        return
    added = [n for n, _ in staged if n not in dict(kept)]
    removed = [n for n, _ in kept if n not in dict(staged)]
    changed = [n for n, t in staged if n in dict(kept) and dict(kept)[n] != t]
    parts = [
        f"{label}: {', '.join(names)}"
        for label, names in (("added", added), ("removed", removed), ("retyped", changed))
        if names
    ] or ["the same columns in another order"]
    raise HeldBack(
        "ddp_partition_shape",
        f"output port '{name}' held back: its staging relation's columns differ from the "
        f"partitions already stored in {store[0]}.{store[1]} ({'; '.join(parts)}). Every "
        "partition of a partitioned port has the same columns. Hint: keep the port's columns, "
        "or publish the change as a new port (a new contract major version) and backfill it.",
    )


def publish_partitions(
    connection: Connection,
    *,
    product: str,
    port: str,
    model: str,
    column: str,
    windows: Sequence[Window],
    contract_id: str,
    contract_version: str,
    run_id: str,
    keys: Sequence[tuple[str, ...]] = (),
    retain: int | None = None,
    actor: str = "ddp",
    pinned: Collection[int] = (),
    source: tuple[str, str] | None = None,
    own_transaction: bool = True,
) -> PublishedVersion:
    """Publish the run's ``windows`` of the audited ``<product>__staging.<model>`` as the
    port's next version (see the module's docstring); raises :class:`HeldBack`, having
    written nothing, when the batch does not fit its partitions.

    ``source``: the batch's relation (schema, table) when it is not the staging model (a
    promote publishes an environment's version: its rows are appended to the store straight
    from it, the one copy). ``own_transaction=False``: run inside the caller's transaction,
    which commits it, and apply no retention (the caller does, after its commit)."""
    if not windows:
        raise ValueError(f"{product}.{port}: a partitioned publish needs the run's windows")
    ensure_partition_meta(connection)
    warehouse = warehouse_of(connection)
    staging = staging_schema(product)
    name = f"{product}.{port}"
    batch = source or (staging, model)
    kind = relation_kind(connection, *batch)
    if kind is None:
        raise LookupError(f"{batch[0]}.{batch[1]} does not exist: nothing to publish")
    if kind == "view" and source is None:
        staged = staged_version(connection, product, port, model)
        if staged is not None:  # staging shows what a publish left, not a build of the run
            if (staged.contract_id, staged.contract_version) != (contract_id, contract_version):
                raise HeldBack(
                    "ddp_partition_build",
                    f"output port '{name}' held back: {staging}.{model} shows version "
                    f"{staged.version} published before, not a build of the run's "
                    f"{_describe(windows)}. Hint: build the product's models for these "
                    "partitions first.",
                )
            return republish_staged(
                connection, product, port, model, staged, actor, run_id, own_transaction
            )
    source_relation = relation(*batch)
    store_schema, store_table = version_schema(product), partition_store(port)
    store = relation(store_schema, store_table)
    quoted = quote(column)
    staged_columns = table_columns(connection, *batch)
    if column not in {c for c, _ in staged_columns}:
        raise HeldBack(
            "ddp_partition_bounds",
            f"output port '{name}' held back: {batch[0]}.{batch[1]} has no column '{column}', "
            "the port's partition column. Hint: keep the column in the port's model, or name "
            "the port's own with 'partition_column' in the product's spec.",
        )
    names = ", ".join(quote(c) for c, _ in staged_columns)
    run_keys = [w.key for w in windows]
    with atomic(connection, own_transaction):
        if source is not None:  # the target may have no staging schema yet
            connection.execute(f"create schema if not exists {quote(store_schema)}")
        previous = published_version(connection, product, port)
        base = previous.version if previous is not None and previous.partitioned else None
        stored = relation_kind(connection, store_schema, store_table) == "table"
        _check_outside(connection, source_relation, column, windows, name)
        if stored:
            _check_shape(connection, staged_columns, (store_schema, store_table), name)
        _check_keys(
            connection,
            source_relation,
            store,
            keys,
            base if stored else None,
            windows,
            (product, port),
        )
        number, product_version = next_numbers(connection, product, port, run_id)
        if not stored:
            connection.execute(
                f"create table {store} as select s.*, cast(null as varchar) as "
                f"{PARTITION_COLUMN}, cast(null as bigint) as {VERSION_COLUMN} "
                f"from {source_relation} as s where 1 = 0"
            )
        written = _append(
            connection,
            source_relation,
            store,
            [c for c, _ in staged_columns],
            quoted,
            windows,
            number,
        )
        live = _write_map(connection, (product, port), number, base, run_keys, written)
        table = version_table(port, number)
        if relation_kind(connection, store_schema, table) == "table":  # never a version
            warehouse.drop_table(connection, store_schema, table)
        connection.execute(
            f"create or replace view {relation(store_schema, table)} as select {names} "
            f"from {store} as s where exists (select 1 from {_map()} as m "
            f"where m.product = {literal(product)} and m.port = {literal(port)} "
            f"and m.version = {number} and m.partition = s.{PARTITION_COLUMN} "
            f"and m.written_in = s.{VERSION_COLUMN})"
        )
        # the product's own models and tests read the port in staging: the whole version
        schema, view = point_published(connection, product, model, store_schema, table)
        version = PublishedVersion(
            product,
            port,
            f"{schema}.{view}",
            sum(m.rows for m in live),
            digest(sum(m.hash_sum for m in live)),
            contract_id,
            contract_version,
            run_id,
            _now(),
            number,
            product_version,
            f"{store_schema}.{table}",
            None,
            json.dumps(run_keys),
        )
        record_version(connection, version, previous, actor)
    if own_transaction:
        kept = RETAINED_VERSIONS if retain is None else retain
        apply_retention(connection, product, port, kept, pinned)
    return version


def _write_map(
    connection: Connection,
    where: tuple[str, str],
    number: int,
    base: int | None,
    run_keys: Sequence[str],
    written: Sequence[PartitionMap],
) -> list[PartitionMap]:
    """Version ``number``'s map: the base's partitions but the run's, then the run's partitions
    that have rows; two statements whatever the number of partitions. Returns the map."""
    product, port = where
    columns = "product, port, version, partition, written_in, rows, hash_sum"
    if base is not None:
        connection.execute(
            f"insert into {_map()} ({columns}) select product, port, {number}, partition, "
            f"written_in, rows, hash_sum from {_map()} where product = ? and port = ? "
            f"and version = ? and partition not in ({', '.join('?' for _ in run_keys)})",
            [product, port, base, *run_keys],
        )
    if written:
        connection.execute(
            f"insert into {_map()} ({columns}) values "
            + ", ".join("(?, ?, ?, ?, ?, ?, ?)" for _ in written),
            [
                value
                for m in written
                for value in (
                    product,
                    port,
                    number,
                    m.partition,
                    m.written_in,
                    m.rows,
                    str(m.hash_sum),
                )
            ],
        )
    return partition_map(connection, product, port, number)


def _append(
    connection: Connection,
    source: str,
    store: str,
    columns: Sequence[str],
    column: str,
    windows: Sequence[Window],
    number: int,
) -> list[PartitionMap]:
    """Append the batch to the store, tagged with its partitions and ``number``; each
    partition's rows and raw hash sum (read from the batch, which has the view's columns)."""
    row_hash = _row_hash(warehouse_of(connection), "s")
    names = ", ".join(quote(c) for c in columns)
    selected = ", ".join(f"s.{quote(c)}" for c in columns)
    if len(windows) == 1:
        key = literal(windows[0].key)
        connection.execute(
            f"insert into {store} ({names}, {PARTITION_COLUMN}, {VERSION_COLUMN}) "
            f"select {selected}, {key}, {number} from {source} as s"
        )
        stats = connection.execute(
            f"select {key}, count(*), coalesce(sum({row_hash}), 0) from {source} as s"
        ).fetchall()
    else:
        joined = f"{source} as s join {_windows_sql(windows)} on {_in_window(windows, column)}"
        connection.execute(
            f"insert into {store} ({names}, {PARTITION_COLUMN}, {VERSION_COLUMN}) "
            f"select {selected}, w.key, {number} from {joined}"
        )
        stats = connection.execute(
            f"select w.key, count(*), sum({row_hash}) from {joined} group by w.key"
        ).fetchall()
    return [
        PartitionMap(str(key), number, int(rows), int(total))
        for key, rows, total in stats
        if int(rows)
    ]


def drop_version(connection: Connection, version: PublishedVersion) -> None:
    """Retention of a partitioned version, inside the transaction of
    :func:`~ddp_assets.contracts.wap.apply_retention`: drop its view and its map, and delete
    the store rows no other version's map reads. The published version and the pinned ones are
    never passed here."""
    assert version.stored_as is not None and version.version is not None
    schema, table = version.stored_as.split(".", 1)
    if relation_kind(connection, schema, table) == "view":
        connection.execute(f"drop view {relation(schema, table)}")
    if not relation_exists(connection, meta_schema(), MAP_TABLE):
        return
    product, port, number = version.product, version.port, int(version.version)
    orphans = connection.execute(
        f"select partition, written_in from {_map()} as m where product = ? and port = ? "
        "and version = ? and not exists (select 1 from "
        f"{_map()} as o where o.product = m.product and o.port = m.port "
        "and o.version <> m.version and o.partition = m.partition "
        "and o.written_in = m.written_in)",
        [product, port, number],
    ).fetchall()
    connection.execute(
        f"delete from {_map()} where product = ? and port = ? and version = ?",
        [product, port, number],
    )
    store = relation(version_schema(product), partition_store(port))
    by_writer: dict[int, list[str]] = {}
    for partition, written_in in orphans:
        by_writer.setdefault(int(written_in), []).append(str(partition))
    for written_in, partitions in sorted(by_writer.items()):
        # one delete per writing version: its rows were appended together (zone maps prune)
        connection.execute(
            f"delete from {store} where {VERSION_COLUMN} = ? and {PARTITION_COLUMN} in "
            f"({', '.join('?' for _ in partitions)})",
            [written_in, *partitions],
        )
