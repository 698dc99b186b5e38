"""Write-audit-publish with versions: output ports are built in staging, audited, then
published as an immutable version by a pointer move.

- **write**: dbt (or a Python model) builds an output port's model into the staging schema
  ``<product>__staging`` (:func:`staging_schema`);
- **audit**: the contract's checks run against the staging relation;
- **publish**: :func:`publish` renames the audited table into the port's next version,
  ``<product>__staging.<port>__v<N>`` (:func:`~ddp_assets.naming.version_table`; no row is
  copied), and points the published view ``<product>.<model>`` at it, in one database
  transaction (DuckDB or PostgreSQL, through :mod:`ddp_assets.warehouse`), with a record of the
  version (number, product version, rows, content checksum, contract version, run id) in
  ``_ddp.published_versions`` and of the pointer move in ``_ddp.version_moves``. Every audit
  is recorded in ``_ddp.audits``, so an input port can check its upstream's latest audit
  before its product runs.
- **rollback**: :func:`move_pointers` points the published views of some ports at other
  retained versions, in one transaction (``ddp rollback``, :mod:`ddp_assets.contracts.rollback`).
- **retention**: after a publish, versions beyond the newest ``retain`` are dropped
  (:func:`apply_retention`), never the published one, a consumer's pinned one, nor one an
  environment's views read (:func:`environment_pins`).
- **partitioned ports**: a partitioned product's run publishes only its partitions; a version
  is then a view over the port's one store table (:mod:`ddp_assets.contracts.partitioned`).

The ports a run publishes form one *product version* (numbered per product). A failed audit, a
failed build or a killed process never reaches the published relation: it is only ever
replaced by a committed transaction, and the database rolls back an uncommitted one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from ddp_assets.naming import (
    ENV_SEPARATOR,
    ENV_TABLE,
    POINTERS_TABLE,
    current_env,
    published_relation,
    version_schema,
    version_table,
)
from ddp_assets.naming import META_SCHEMA as META_SCHEMA
from ddp_assets.naming import STAGING_SUFFIX as STAGING_SUFFIX
from ddp_assets.naming import meta_schema as meta_schema
from ddp_assets.naming import staging_schema as staging_schema
from ddp_assets.warehouse import Connection, quote, relation, table_columns, warehouse_of
from ddp_assets.warehouse import relation_exists as relation_exists
from ddp_assets.warehouse.base import relation_kind

RETAINED_VERSIONS = 3
"""The platform default: how many versions of a port are kept (the spec's ``retain``)."""


@dataclass(frozen=True)
class PublishedVersion:
    """What a consumer reads at ``<product>.<model>``: which build, which contract, which rows."""

    product: str
    port: str
    relation: str
    rows: int
    checksum: str
    contract_id: str
    contract_version: str
    run_id: str
    published_at: str
    version: int | None = None  # None: published by a copy, before versioning
    product_version: int | None = None
    stored_as: str | None = None  # the version's table, schema.table
    dropped_at: str | None = None  # set when retention dropped the version's table
    partitions: str | None = None  # partitioned port: JSON list of the partitions it wrote

    @property
    def partitioned(self) -> bool:
        """A version of a partitioned port: ``stored_as`` is a view over the port's store."""
        return self.partitions is not None

    @property
    def partitions_written(self) -> list[str]:
        return list(json.loads(self.partitions)) if self.partitions else []

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Audit:
    """The latest audit of an output port (passed or not, and which blocking checks failed)."""

    product: str
    port: str
    contract_id: str
    contract_version: str
    run_id: str
    passed: bool
    failed_checks: list[str]
    audited_at: str


_LEGACY_PUBLISHED_COLUMNS = (
    "product varchar, port varchar, relation varchar, rows bigint, checksum varchar, "
    "contract_id varchar, contract_version varchar, run_id varchar, published_at varchar"
)
_VERSION_COLUMNS = "version bigint, product_version bigint, stored_as varchar, dropped_at varchar"
_PARTITION_COLUMNS = "partitions varchar"
_PUBLISHED_COLUMNS = f"{_LEGACY_PUBLISHED_COLUMNS}, {_VERSION_COLUMNS}, {_PARTITION_COLUMNS}"
_MOVE_COLUMNS = (
    "move bigint, product varchar, port varchar, version bigint, previous_version bigint, "
    "action varchar, actor varchar, reason varchar, run_id varchar, moved_at varchar"
)
_AUDIT_COLUMNS = (
    "product varchar, port varchar, contract_id varchar, contract_version varchar, "
    "run_id varchar, passed boolean, failed_checks varchar, audited_at varchar"
)


def _names(columns: str) -> str:
    return ", ".join(part.split()[0] for part in columns.split(","))


def ensure_meta(connection: Connection) -> None:
    """ddp's metadata tables; an older ledger gets the version (and partition) columns."""
    warehouse = warehouse_of(connection)
    meta = meta_schema()
    connection.execute(f"create schema if not exists {quote(meta)}")
    ledger = relation(meta, "published_versions")
    connection.execute(warehouse.meta_table_ddl(ledger, _PUBLISHED_COLUMNS))
    present = {name for name, _ in table_columns(connection, meta, "published_versions")}
    for column in [*_VERSION_COLUMNS.split(", "), _PARTITION_COLUMNS]:
        if column.split()[0] not in present:
            connection.execute(f"alter table {ledger} add column {column}")
    connection.execute(warehouse.meta_table_ddl(relation(meta, "audits"), _AUDIT_COLUMNS))
    connection.execute(warehouse.meta_table_ddl(relation(meta, "version_moves"), _MOVE_COLUMNS))


def _meta_exists(connection: Connection, table: str) -> bool:
    return relation_exists(connection, meta_schema(), table)


@contextmanager
def atomic(connection: Connection, own: bool = True) -> Iterator[None]:
    """A publish's transaction: its own (``own``), or the caller's, which then commits it (a
    promote publishes several ports in one: ``environments.promote``). DuckDB has no nested
    transactions, so a publish inside a caller's opens none."""
    if not own:
        yield
        return
    with warehouse_of(connection).transaction(connection):
        yield


def checksum(connection: Connection, schema: str, table: str) -> tuple[int, str]:
    """Row count and an order-independent content checksum, computed in the warehouse."""
    return warehouse_of(connection).checksum(connection, schema, table)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record_audit(
    connection: Connection,
    *,
    product: str,
    port: str,
    contract_id: str,
    contract_version: str,
    run_id: str,
    failed_checks: list[str],
) -> Audit:
    ensure_meta(connection)
    audit = Audit(
        product,
        port,
        contract_id,
        contract_version,
        run_id,
        not failed_checks,
        failed_checks,
        _now(),
    )
    connection.execute(
        f"insert into {relation(meta_schema(), 'audits')} ({_names(_AUDIT_COLUMNS)}) "
        "values (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            product,
            port,
            contract_id,
            contract_version,
            run_id,
            audit.passed,
            json.dumps(failed_checks),
            audit.audited_at,
        ],
    )
    return audit


def _scalar(connection: Connection, query: str, parameters: Sequence[Any]) -> Any:
    row = connection.execute(query, parameters).fetchone()
    return row[0] if row else None


def _ledger() -> str:
    return relation(meta_schema(), "published_versions")


def _moves() -> str:
    return relation(meta_schema(), "version_moves")


def _record_move(
    connection: Connection,
    *,
    product: str,
    port: str,
    version: int,
    previous: int | None,
    action: str,
    actor: str,
    reason: str,
    run_id: str,
) -> None:
    number = _scalar(connection, f"select coalesce(max(move), 0) + 1 from {_moves()}", [])
    connection.execute(
        f"insert into {_moves()} ({_names(_MOVE_COLUMNS)}) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [int(number), product, port, version, previous, action, actor, reason, run_id, _now()],
    )


def publish(
    connection: Connection,
    *,
    product: str,
    port: str,
    model: str,
    contract_id: str,
    contract_version: str,
    run_id: str,
    retain: int | None = None,
    actor: str = "ddp",
    pinned: Collection[int] = (),
    content: tuple[int, str] | None = None,
    source: tuple[str, str] | None = None,
    own_transaction: bool = True,
) -> PublishedVersion:
    """Publish the audited ``<product>__staging.<model>`` as the port's next version.

    In one transaction: the staging table is renamed to the version's table (a staging view is
    materialized into it instead, so a version never changes), and ``<product>.<model>``
    becomes a view of it. Then versions beyond the newest ``retain`` are dropped, except the
    ``pinned`` ones (consumers' input ports pin them) and those environments read
    (:func:`environment_pins`).

    ``content``: the staging table's row count and :func:`checksum`, when the audit step already
    computed them on this connection (it reads the table anyway); the ledger records them and
    the publish reads no row. Without it the publish scans the table once for them. A rename
    keeps the bytes, so the recorded checksum is the version's as long as nothing wrote the
    staging table between the audit and the publish (DuckDB: one writer, this connection).

    ``source``: publish that relation (schema, table) instead of the staging model, copied once
    into the version's table (a promote publishes an environment's version, which stays where
    it is; ``content`` is then the source's). ``own_transaction=False``: run inside the
    caller's transaction, which commits it, and apply no retention (the caller calls
    :func:`apply_retention` after its commit).
    """
    ensure_meta(connection)
    warehouse = warehouse_of(connection)
    staging = staging_schema(product)
    if source is None:
        kind = relation_kind(connection, staging, model)
        if kind is None:
            raise LookupError(f"{staging}.{model} does not exist: nothing to publish")
    elif relation_kind(connection, *source) is None:
        raise LookupError(f"{source[0]}.{source[1]} does not exist: nothing to publish")
    else:
        kind = "copy"
    schema, name = published_relation(product, model)
    store = version_schema(product)
    staged = staged_version(connection, product, port, model) if kind == "view" else None
    if staged is not None and (staged.contract_id, staged.contract_version) == (
        contract_id,
        contract_version,
    ):  # staging is what a publish left, under the same contract: nothing new to version
        return republish_staged(
            connection, product, port, model, staged, actor, run_id, own_transaction
        )
    with atomic(connection, own_transaction):
        previous = published_version(connection, product, port)
        number, product_version = next_numbers(connection, product, port, run_id)
        table = version_table(port, number)
        if kind == "copy":
            connection.execute(f"create schema if not exists {quote(store)}")
        # a table of that name not in the ledger is an orphan (never committed as a version)
        warehouse.drop_table(connection, store, table)
        if kind == "table":
            warehouse.rename_table(connection, staging, model, table)
        else:
            copied = relation(*source) if source is not None else relation(staging, model)
            connection.execute(f"create table {relation(store, table)} as select * from {copied}")
        rows, digest = (
            content
            if content is not None and kind != "view"
            else checksum(connection, store, table)
        )
        point_published(connection, product, model, store, table)
        version = PublishedVersion(
            product,
            port,
            f"{schema}.{name}",
            rows,
            digest,
            contract_id,
            contract_version,
            run_id,
            _now(),
            number,
            product_version,
            f"{store}.{table}",
            None,
        )
        record_version(connection, version, previous, actor)
    if own_transaction:
        kept = RETAINED_VERSIONS if retain is None else retain
        apply_retention(connection, product, port, kept, pinned)
    return version


def point_published(
    connection: Connection, product: str, model: str, store: str, table: str
) -> tuple[str, str]:
    """Point the published view ``<product>.<model>`` and the staging model at the version
    ``store.table`` (inside the publish's transaction); returns the published (schema, name).

    The product's own models and tests read its ports in staging: staging keeps the version
    under the model's name until the next build replaces it."""
    warehouse = warehouse_of(connection)
    schema, name = published_relation(product, model)
    connection.execute(f"create schema if not exists {quote(schema)}")
    warehouse.point_view(connection, schema, name, store, table)
    warehouse.point_view(connection, staging_schema(product), model, store, table)
    return schema, name


def next_numbers(connection: Connection, product: str, port: str, run_id: str) -> tuple[int, int]:
    """The port's next version number and the run's product version (the run's first publish
    numbers it, its other ports reuse it). Inside the publish's transaction."""
    number = int(
        _scalar(
            connection,
            f"select coalesce(max(version), 0) + 1 from {_ledger()} where product = ? and port = ?",
            [product, port],
        )
    )
    run_version = _scalar(
        connection,
        f"select max(product_version) from {_ledger()} where product = ? and run_id = ?",
        [product, run_id],
    )
    product_version = int(
        run_version
        if run_version is not None
        else _scalar(
            connection,
            f"select coalesce(max(product_version), 0) + 1 from {_ledger()} where product = ?",
            [product],
        )
    )
    return number, product_version


def record_version(
    connection: Connection,
    version: PublishedVersion,
    previous: PublishedVersion | None,
    actor: str,
) -> None:
    """The version's ledger row and its publish move (inside the publish's transaction)."""
    values = list(version.to_dict().values())
    connection.execute(
        f"insert into {_ledger()} ({_names(_PUBLISHED_COLUMNS)}) "
        f"values ({', '.join('?' for _ in values)})",
        values,
    )
    _record_move(
        connection,
        product=version.product,
        port=version.port,
        version=int(version.version or 0),
        previous=previous.version if previous else None,
        action="publish",
        actor=actor,
        reason="",
        run_id=version.run_id,
    )


def republish_staged(
    connection: Connection,
    product: str,
    port: str,
    model: str,
    staged: PublishedVersion,
    actor: str,
    run_id: str,
    own_transaction: bool = True,
) -> PublishedVersion:
    """Publish again the version a staging view left: a pointer move, no new version."""
    move_pointers(
        connection,
        product,
        [(port, model, int(staged.version or 0))],
        action="publish",
        actor=actor,
        reason="published again from staging",
        run_id=run_id,
        own_transaction=own_transaction,
    )
    return staged


def staged_version(
    connection: Connection, product: str, port: str, model: str
) -> PublishedVersion | None:
    """The version a staging view left by :func:`publish` shows, or None (a new build)."""
    history = versions(connection, product, port)
    if not history or history[-1].dropped_at or history[-1].version is None:
        return None
    newest = max(history, key=lambda v: v.version or 0)
    row = connection.execute(
        "select view_definition from information_schema.views "
        "where table_schema = ? and table_name = ?",
        [staging_schema(product), model],
    ).fetchone()
    definition = str(row[0]) if row and row[0] else ""
    table = version_table(port, newest.version or 0)
    return newest if re.search(rf"\b{re.escape(table)}\b", definition) else None


def versions(
    connection: Connection, product: str, port: str | None = None
) -> list[PublishedVersion]:
    """Every version of a product's ports (or of one port) in the ledger, oldest first, dropped
    ones included (``dropped_at`` says when)."""
    if not _meta_exists(connection, "version_moves"):
        return []
    where, parameters = "product = ? and version is not null", [product]
    if port is not None:
        where, parameters = where + " and port = ?", [product, port]
    rows = connection.execute(
        f"select {_names(_PUBLISHED_COLUMNS)} from {_ledger()} where {where} "
        "order by product_version, port, version",
        parameters,
    ).fetchall()
    return [PublishedVersion(*row) for row in rows]


def version_of(
    connection: Connection, product: str, port: str, number: int
) -> PublishedVersion | None:
    found = [v for v in versions(connection, product, port) if v.version == number]
    return found[0] if found else None


@dataclass(frozen=True)
class Move:
    """A pointer move of a port: a publish or a rollback (who, when, why)."""

    move: int
    product: str
    port: str
    version: int
    previous_version: int | None
    action: str
    actor: str
    reason: str
    run_id: str
    moved_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def moves(connection: Connection, product: str, port: str | None = None) -> list[Move]:
    """The pointer moves of a product's ports (or of one), oldest first."""
    if not _meta_exists(connection, "version_moves"):
        return []
    where, parameters = "product = ?", [product]
    if port is not None:
        where, parameters = where + " and port = ?", [product, port]
    rows = connection.execute(
        f"select {_names(_MOVE_COLUMNS)} from {_moves()} where {where} order by move",
        parameters,
    ).fetchall()
    return [Move(*row) for row in rows]


def move_pointers(
    connection: Connection,
    product: str,
    targets: Sequence[tuple[str, str, int]],
    *,
    action: str,
    actor: str,
    reason: str,
    run_id: str = "",
    own_transaction: bool = True,
) -> list[tuple[PublishedVersion | None, PublishedVersion]]:
    """Point the published views of ``targets`` ((port, model, version)) at those retained
    versions, all in one transaction (the caller's with ``own_transaction=False``); returns
    (previous, new) per port."""
    ensure_meta(connection)
    warehouse = warehouse_of(connection)
    moved: list[tuple[PublishedVersion | None, PublishedVersion]] = []
    with atomic(connection, own_transaction):
        for port, model, number in targets:
            target = version_of(connection, product, port, number)
            if target is None or target.dropped_at or target.stored_as is None:
                raise LookupError(
                    f"{product}.{port} has no retained version {number}: see 'ddp versions "
                    f"{product} {port}'"
                )
            store, table = target.stored_as.split(".", 1)
            # a partitioned port's version is a view over its store (contracts/partitioned.py)
            if relation_kind(connection, store, table) != (
                "view" if target.partitioned else "table"
            ):
                raise LookupError(
                    f"{target.stored_as}, version {number} of {product}.{port}, is gone"
                )
            previous = published_version(connection, product, port)
            schema, name = published_relation(product, model)
            warehouse.point_view(connection, schema, name, store, table)
            _record_move(
                connection,
                product=product,
                port=port,
                version=number,
                previous=previous.version if previous else None,
                action=action,
                actor=actor,
                reason=reason,
                run_id=run_id,
            )
            moved.append((previous, target))
    return moved


def apply_retention(
    connection: Connection, product: str, port: str, retain: int, pinned: Collection[int] = ()
) -> list[int]:
    """Drop the versions of a port beyond its newest ``retain``, never the published one, a
    ``pinned`` one, nor one an environment's views read (:func:`environment_pins`).

    Each drop commits on its own after the publish: a failure here leaves a version too many,
    never a published relation without its table. A partitioned port's version is a view: its
    drop also deletes its partition map and the store rows no kept version reads
    (:func:`~ddp_assets.contracts.partitioned.drop_version`)."""
    current = published_version(connection, product, port)
    listed = versions(connection, product, port)
    kept = {v.version for v in listed[-max(retain, 1) :]}
    kept |= set(pinned)
    if current is not None:
        kept.add(current.version)
    candidates = [v for v in listed if v.version not in kept and not v.dropped_at and v.stored_as]
    if candidates:  # only then read the environments' pointers
        kept |= set(environment_pins(connection, product, port))
    warehouse = warehouse_of(connection)
    dropped = []
    for old in candidates:
        if old.version in kept or old.stored_as is None:
            continue
        store, table = old.stored_as.split(".", 1)
        with warehouse.transaction(connection):
            if old.partitioned:
                from ddp_assets.contracts.partitioned import drop_version

                drop_version(connection, old)
            else:
                warehouse.drop_table(connection, store, table)
            connection.execute(
                f"update {_ledger()} set dropped_at = ? where product = ? and port = ? "
                "and version = ?",
                [_now(), product, port, old.version],
            )
        dropped.append(int(old.version or 0))
    return dropped


def environment_pins(connection: Connection, product: str, port: str) -> dict[int, list[str]]:
    """Version → the environments whose views read it: ``ddp env create`` records, in each
    environment's ``pointers`` table (its meta schema ``_ddp__<env>``), the version of its base
    each view reads. Only environments based on the current one count (their base is this
    ledger). Retention keeps these versions, like a consumer's ``pin:``, until ``ddp env
    drop`` drops the environment's records."""
    prefix = f"{META_SCHEMA}{ENV_SEPARATOR}"
    rows = connection.execute(
        "select distinct table_schema from information_schema.tables where table_name = ?",
        [POINTERS_TABLE],
    ).fetchall()
    here = current_env()
    pins: dict[int, list[str]] = {}
    for schema in sorted({str(row[0]) for row in rows}):
        if not schema.startswith(prefix) or not relation_exists(connection, schema, ENV_TABLE):
            continue
        found = connection.execute(
            f"select distinct p.base_version, e.name from {relation(schema, POINTERS_TABLE)} "
            f"as p cross join {relation(schema, ENV_TABLE)} as e where e.based_on = ? "
            "and p.product = ? and p.port = ? and p.base_version is not null",
            [here, product, port],
        ).fetchall()
        for number, env in found:
            pins.setdefault(int(number), []).append(str(env))
    return pins


def published_version(connection: Connection, product: str, port: str) -> PublishedVersion | None:
    """The version consumers read now, or None if the port was never published."""
    if not _meta_exists(connection, "published_versions"):
        return None
    if not _meta_exists(connection, "version_moves"):  # a ledger from before versioning
        row = connection.execute(
            f"select {_names(_LEGACY_PUBLISHED_COLUMNS)} from {_ledger()} "
            "where product = ? and port = ? "
            f"order by published_at desc, {warehouse_of(connection).insertion_order} desc limit 1",
            [product, port],
        ).fetchone()
        return PublishedVersion(*row) if row else None
    columns = ", ".join(f"v.{name}" for name in _names(_PUBLISHED_COLUMNS).split(", "))
    row = connection.execute(
        f"select {columns} from {_moves()} as m join {_ledger()} as v "
        "on v.product = m.product and v.port = m.port and v.version = m.version "
        "where m.product = ? and m.port = ? order by m.move desc limit 1",
        [product, port],
    ).fetchone()
    if row is not None:
        return PublishedVersion(*row)
    row = connection.execute(  # published by a copy before versioning, not since
        f"select {_names(_LEGACY_PUBLISHED_COLUMNS)} from {_ledger()} "
        "where product = ? and port = ? and version is null "
        f"order by published_at desc, {warehouse_of(connection).insertion_order} desc limit 1",
        [product, port],
    ).fetchone()
    return PublishedVersion(*row) if row else None


def latest_audit(connection: Connection, product: str, port: str) -> Audit | None:
    if not _meta_exists(connection, "audits"):
        return None
    row = connection.execute(
        f"select {_names(_AUDIT_COLUMNS)} from {relation(meta_schema(), 'audits')} "
        "where product = ? and port = ? "
        f"order by audited_at desc, {warehouse_of(connection).insertion_order} desc limit 1",
        [product, port],
    ).fetchone()
    if row is None:
        return None
    product, port, contract_id, contract_version, run_id = row[:5]
    return Audit(
        product,
        port,
        contract_id,
        contract_version,
        run_id,
        bool(row[5]),
        json.loads(row[6]),
        row[7],
    )
