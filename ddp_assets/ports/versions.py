"""Time travel for consumers: reading a retained version of an output port.

A publish makes every audited build an immutable version, and retention keeps the newest few
(:mod:`ddp_assets.contracts.wap`). ``ddp ports build`` copies into the serving snapshot each
port's published table ``<product>.<port>``, and the port's history into ``_ddp.versions``
(every version, the dropped ones with when) and ``_ddp.version_moves`` (every publish and
rollback, with when). A retained version is immutable, so it is copied out of the warehouse
once: into its own Parquet file under ``$DDP_DATA_DIR/ports/versions/`` (:func:`version_file`,
named by its number and checksum, never rewritten), and the snapshot's
``<product>.<port>__v<N>`` is a view over that file. A later build reuses the file; a version
retention dropped loses its file.

A consumer names a version by number (``?version=N``, ``--version N``, the SQL port's
``<product>.<port>__v<N>``) or by time (``?as_of=2026-12-04T10:00:00Z``: the version consumers
read at that moment, rollbacks included). It is always read through the port's *current*
policy: the same grants, masks and row filters as the published version, over the columns the
version has of those the current contract names. A version that is not retained (dropped by
retention, or never published) is an error that names the retained ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from ddp_assets.contracts.wap import Move, PublishedVersion
from ddp_assets.naming import version_table
from ddp_assets.ports.policy import PortAccess, PortError
from ddp_assets.warehouse import quote, relation

META = "_ddp"
_VERSION_COLUMNS = (
    "product varchar, port varchar, version bigint, product_version bigint, rows bigint, "
    "checksum varchar, contract_id varchar, contract_version varchar, run_id varchar, "
    "published_at varchar, dropped_at varchar, stored_as varchar, published boolean"
)
_MOVE_COLUMNS = (
    "move bigint, product varchar, port varchar, version bigint, previous_version bigint, "
    "action varchar, actor varchar, reason varchar, moved_at varchar"
)


@dataclass(frozen=True)
class ServedVersion:
    """One version of a port as the snapshot (or a SQL port) knows it.

    ``stored_as`` is the version's table in the snapshot (``<port>`` for the published one,
    ``<port>__v<N>`` for the others), None when retention dropped it."""

    product: str
    port: str
    version: int
    product_version: int | None
    rows: int
    checksum: str
    contract_id: str
    contract_version: str
    run_id: str
    published_at: str
    dropped_at: str | None
    stored_as: str | None
    published: bool

    @property
    def retained(self) -> bool:
        return self.stored_as is not None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["retained"] = self.retained
        data.pop("stored_as")
        return data


@dataclass(frozen=True)
class ServedMove:
    move: int
    product: str
    port: str
    version: int
    previous_version: int | None
    action: str
    actor: str
    reason: str
    moved_at: str


def served_version(
    version: PublishedVersion, published: PublishedVersion | None, retained: bool
) -> ServedVersion:
    """The snapshot's record of a ledger version (``retained``: copied into the snapshot)."""
    number = int(version.version or 0)
    current = published is not None and published.version == number
    stored = (
        (version.port if current else version_table(version.port, number)) if retained else None
    )
    return ServedVersion(
        version.product,
        version.port,
        number,
        version.product_version,
        version.rows,
        version.checksum,
        version.contract_id,
        version.contract_version,
        version.run_id,
        version.published_at,
        version.dropped_at,
        stored,
        current,
    )


VERSIONS_FOLDER = "versions"
"""The folder, beside the serving snapshot, of the retained versions' files."""


def version_file(folder: Path, version: ServedVersion) -> Path:
    """The immutable file of a retained version: ``<product>/<port>__v<N>.<checksum>.parquet``.

    The checksum is in the name so that a version number reused by a new warehouse (the old
    one deleted) never reads an old file."""
    key = "".join(ch for ch in (version.checksum or version.run_id) if ch.isalnum())[:16]
    name = version_table(version.port, version.version)
    return folder / version.product / f"{name}.{key or 'unknown'}.parquet"


def served_move(move: Move) -> ServedMove:
    return ServedMove(
        move.move,
        move.product,
        move.port,
        move.version,
        move.previous_version,
        move.action,
        move.actor,
        move.reason,
        move.moved_at,
    )


def write_versions(
    connection: Any, versions: Iterable[ServedVersion], moves: Iterable[ServedMove]
) -> None:
    """``_ddp.versions`` and ``_ddp.version_moves`` of a snapshot or SQL port (DuckDB)."""
    connection.execute(f"create schema if not exists {quote(META)}")
    connection.execute(f"create table {relation(META, 'versions')} ({_VERSION_COLUMNS})")
    connection.execute(f"create table {relation(META, 'version_moves')} ({_MOVE_COLUMNS})")
    rows = [list(asdict(v).values()) for v in versions]
    if rows:
        marks = ", ".join("?" for _ in rows[0])
        connection.executemany(f"insert into {relation(META, 'versions')} values ({marks})", rows)
    rows = [list(asdict(m).values()) for m in moves]
    if rows:
        marks = ", ".join("?" for _ in rows[0])
        connection.executemany(
            f"insert into {relation(META, 'version_moves')} values ({marks})", rows
        )


def _names(columns: str) -> str:
    return ", ".join(part.split()[0] for part in columns.split(","))


def read_versions(
    connection: Any, catalog: str | None = None
) -> tuple[dict[tuple[str, str], list[ServedVersion]], dict[tuple[str, str], list[ServedMove]]]:
    """(product, port) → its versions (oldest first) and its moves (oldest first); empty for a
    snapshot built before time travel."""
    prefix = "" if catalog is None else f"{quote(catalog)}."
    present = connection.execute(
        "select count(*) from duckdb_tables() where schema_name = ? and table_name = ?"
        + ("" if catalog is None else " and database_name = ?"),
        [META, "versions", *([catalog] if catalog else [])],
    ).fetchone()
    if not (present and present[0]):
        return {}, {}
    versions: dict[tuple[str, str], list[ServedVersion]] = {}
    for row in connection.execute(
        f"select {_names(_VERSION_COLUMNS)} from {prefix}{relation(META, 'versions')} "
        "order by product, port, version"
    ).fetchall():
        found = ServedVersion(*row)
        versions.setdefault((found.product, found.port), []).append(found)
    moves: dict[tuple[str, str], list[ServedMove]] = {}
    for row in connection.execute(
        f"select {_names(_MOVE_COLUMNS)} from {prefix}{relation(META, 'version_moves')} "
        "order by product, port, move"
    ).fetchall():
        move = ServedMove(*row)
        moves.setdefault((move.product, move.port), []).append(move)
    return versions, moves


def parse_as_of(text: str) -> datetime:
    """An ISO 8601 time (a date alone is its midnight; no zone is UTC); 400 otherwise."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise PortError(
            400,
            f"as_of {text[:60]!r} is not an ISO 8601 time",
            "e.g. as_of=2026-12-04T10:00:00Z or as_of=2026-12-04",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _retained_hint(product: str, port: str, versions: Sequence[ServedVersion]) -> str:
    retained = [v for v in versions if v.retained]
    if not retained:
        return f"'{product}.{port}' has no retained version"
    shown = ", ".join(f"v{v.version}" + (" (published)" if v.published else "") for v in retained)
    return f"retained versions of '{product}.{port}': {shown}"


def resolve_version(
    product: str,
    port: str,
    versions: Sequence[ServedVersion],
    moves: Sequence[ServedMove],
    *,
    version: int | None = None,
    as_of: str | None = None,
) -> ServedVersion:
    """The version a consumer asked for, by number or by time; :class:`PortError` 404 naming
    the retained versions when it is not retained, 400 for both or a bad time."""
    if version is not None and as_of is not None:
        raise PortError(400, "give version or as_of, not both")
    if as_of is not None:
        moment = parse_as_of(as_of)
        before = [m for m in moves if _moment(m.moved_at) <= moment]
        if not before:
            first = moves[0].moved_at if moves else None
            raise PortError(
                404,
                f"port '{product}.{port}' was not published yet at {moment.isoformat()}"
                + (f" (first published {first})" if first else ""),
                _retained_hint(product, port, versions),
            )
        version = before[-1].version
    found = next((v for v in versions if v.version == version), None)
    if found is None or not found.retained:
        why = (
            f"was dropped by retention at {found.dropped_at}"
            if found is not None and found.dropped_at
            else "is not retained"
            if found is not None
            else "does not exist"
        )
        when = f" (published at {as_of})" if as_of is not None else ""
        raise PortError(
            404,
            f"version {version}{when} of port '{product}.{port}' {why}",
            _retained_hint(product, port, versions),
        )
    return found


def version_access(access: PortAccess, present: Sequence[str]) -> PortAccess:
    """``access`` for a version whose table has the columns ``present``: the current policy
    over the current contract's columns that the version has. A row filter on a column the
    version lacks cannot be applied: 409, never the unfiltered rows."""
    have = set(present)
    needed = {c.column for branch in access.row_filter or () for c in branch}
    missing = sorted(needed - have)
    if missing:
        raise PortError(
            409,
            f"this version of '{access.product}.{access.port}' has no column "
            f"{', '.join(missing)}, which your row filter needs",
            "read the published version, or a version with those columns",
        )
    columns = tuple(c for c in access.columns if c.name in have)
    return replace(access, columns=columns, primary_key=tuple(access.primary_key))


def columns_of(cursor: Any, source: str) -> list[str]:
    """The column names of a relation (no rows read)."""
    cursor.execute(f"select * from {source} limit 0")
    return [str(d[0]) for d in cursor.description or ()]


@dataclass(frozen=True)
class PortHistory:
    """What a snapshot holds of a port's versions, read from the warehouse's ledger."""

    versions: list[ServedVersion]
    moves: list[ServedMove]
    copies: list[tuple[str, str, str]]  # (warehouse schema, table, the snapshot's table)


def port_history(
    connection: Any, product: str, port: str, published: PublishedVersion
) -> PortHistory:
    """The port's versions in the ledger, which of them are still stored in the warehouse
    (to copy into the snapshot beside the published one), and its pointer moves."""
    from ddp_assets.contracts.wap import moves, versions
    from ddp_assets.warehouse.base import relation_kind

    listed, copies = [], []
    for version in versions(connection, product, port):
        stored = version.stored_as
        retained = version.dropped_at is None and stored is not None
        if retained and stored is not None and version.version != published.version:
            schema, table = stored.split(".", 1)
            # a partitioned port's version is a view over its store (contracts/partitioned.py)
            kind = "view" if version.partitioned else "table"
            retained = relation_kind(connection, schema, table) == kind
            if retained:
                copies.append((schema, table, version_table(port, int(version.version or 0))))
        listed.append(served_version(version, published, retained))
    return PortHistory(listed, [served_move(m) for m in moves(connection, product, port)], copies)


def travel(
    cursor: Any,
    catalog: str,
    access: PortAccess,
    history: tuple[Sequence[ServedVersion], Sequence[ServedMove]],
    *,
    version: int | None = None,
    as_of: str | None = None,
) -> tuple[str, PortAccess, ServedVersion]:
    """The relation of the version asked for (in the attached ``catalog``), the consumer's
    access to it under the current policy, and the version."""
    versions, moves = history
    found = resolve_version(
        access.product, access.port, versions, moves, version=version, as_of=as_of
    )
    assert found.stored_as is not None
    source = f"{quote(catalog)}.{relation(access.product, found.stored_as)}"
    try:
        present = columns_of(cursor, source)
    except (duckdb.CatalogException, duckdb.IOException):
        # a new snapshot was swapped in since the history was read (its dropped versions'
        # files are gone)
        raise PortError(
            404,
            f"version {found.version} of port '{access.product}.{access.port}' is not in the "
            "serving snapshot any more",
            "retry: the list of retained versions changed (GET .../versions)",
        ) from None
    return source, version_access(access, present), found
