"""The serving snapshot: every published output port, copied out of the warehouse.

The DuckDB warehouse has one writer process, and a reader holding it open keeps the writer
out. The ports therefore never read the warehouse while they serve (on PostgreSQL too, so both
targets serve the same way): ``ddp ports build`` takes
a read lock for as long as one copy takes, copies each port's *published* relation (never
staging, never another schema) with its published version into
``$DDP_DATA_DIR/ports/serving.duckdb``, and swaps the file in atomically. The port's other
retained versions are immutable: each is copied once, into its own Parquet file under
``$DDP_DATA_DIR/ports/versions/`` (:func:`~ddp_assets.ports.versions.version_file`), and the
snapshot's ``<product>.<port>__v<N>`` is a view over it, so a build copies only versions it
has not stored yet. The REST server reads the snapshot read-only (and the versions' files,
the only files its locked-down connection may open) and notices a new one by its inode; the
SQL ports are built from it, so REST and SQL read the same bytes. The snapshot is never handed
to a consumer.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from ddp_assets.contracts.wap import PublishedVersion, published_version, relation_exists
from ddp_assets.ports.policy import PortAccess
from ddp_assets.ports.store import ports_dir
from ddp_assets.ports.versions import (
    VERSIONS_FOLDER,
    PortHistory,
    ServedMove,
    ServedVersion,
    port_history,
    read_versions,
    version_file,
    write_versions,
)
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.registry import Registry
from ddp_assets.warehouse import Warehouse, literal, quote, relation
from ddp_assets.warehouse.duckdb import LOCK_WAIT_SECONDS, connect_new
from ddp_assets.warehouse.permissions import private_dir, private_file

META = "_ddp"
LOCKED_DOWN: dict[str, str | bool | int | float | list[str]] = {
    # A port's connection can read its own tables and nothing else: no files, no network,
    # no extensions, and no way to change these settings back.
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    # a query's unknown table name is never looked up among the Python process's variables
    "python_enable_replacements": False,
    "lock_configuration": True,
}
EXTENSION_SETTINGS = (
    "autoinstall_known_extensions",
    "autoload_known_extensions",
    "allow_community_extensions",
    "python_enable_replacements",
)
_BUILDING = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.building\.duckdb(\.wal)?$")


def serving_path(paths: ProjectPaths) -> Path:
    return ports_dir(paths) / "serving.duckdb"


def versions_dir(snapshot: Path) -> Path:
    """The retained versions' files of the snapshot at ``snapshot``."""
    return snapshot.parent / VERSIONS_FOLDER


def _stored_version(
    folder: Path, version: ServedVersion, write: Callable[[Path], None], used: set[Path]
) -> Path:
    """The version's file, written by ``write`` (to a temporary name, then renamed) only when
    no earlier build stored it: a version never changes, so its file never does."""
    path = version_file(folder, version)
    used.add(path)
    if path.exists():
        return path
    private_dir(path.parent)
    partial = path.with_name(f".{path.name}.{os.getpid()}.writing")
    partial.unlink(missing_ok=True)
    write(partial)
    private_file(partial)
    os.replace(partial, path)
    return path


def _version_view(
    connection: duckdb.DuckDBPyConnection, product: str, name: str, path: Path
) -> None:
    connection.execute(
        f"create view {relation(product, name)} as select * from read_parquet({literal(str(path))})"
    )


def _prune_versions(folder: Path, used: set[Path]) -> list[Path]:
    """Remove the files of versions the new snapshot does not hold (dropped by retention), and
    partial files of killed builds."""
    removed = []
    for path in sorted(folder.glob("*/*")) if folder.is_dir() else []:
        match = re.match(r"^\..+\.(?P<pid>\d+)\.writing$", path.name)
        if path in used or (match and _alive(int(match["pid"]))):
            continue
        if path.suffix == ".parquet" or match:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def mask_salt(paths: ProjectPaths) -> str:
    """The secret salt of hashed columns (created once, readable by the owner only)."""
    path = ports_dir(paths) / "mask.salt"
    private_dir(path.parent)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_hex(32))
    return path.read_text(encoding="utf-8").strip()


def attach_waiting(connection: duckdb.DuckDBPyConnection, path: Path, alias: str) -> None:
    """ATTACH a database read-only, waiting (bounded) while a writer holds its lock."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    delay = 0.05
    while True:
        try:
            connection.execute(f"attach {literal(str(path))} as {quote(alias)} (read_only)")
            return
        except duckdb.IOException as error:
            if "lock" not in str(error).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


@dataclass(frozen=True)
class ServedPort:
    """A port in the snapshot: which published version it holds."""

    product: str
    port: str
    model: str
    rows: int
    run_id: str
    published_at: str
    contract_id: str
    contract_version: str
    checksum: str
    snapshot_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_snapshot(paths: ProjectPaths, registry: Registry) -> list[ServedPort]:
    """Copy every published output port into a new snapshot and swap it in.

    From the DuckDB warehouse the copy is one ``create table ... as select`` per port over the
    warehouse attached read-only; from PostgreSQL each published table is streamed out with
    ``COPY`` (the warehouse's :meth:`~ddp_assets.warehouse.Warehouse.python_input`).
    """
    from ddp_assets.warehouse import DuckDBWarehouse, warehouse_for

    warehouse = warehouse_for(paths)
    target = serving_path(paths)
    private_dir(target.parent)
    clean_stale_builds(target.parent)
    building = target.with_name(f".serving.{os.getpid()}.building.duckdb")
    building.unlink(missing_ok=True)
    connection = connect_new(building)  # in ddp's DuckDB storage version
    private_file(building)  # unmasked rows: the owner's (or DDP_DATA_GROUP's) only
    histories: list[PortHistory] = []  # the retained versions beside the published ones
    folder, used = versions_dir(target), set[Path]()  # the versions' files this one reads
    try:
        if isinstance(warehouse, DuckDBWarehouse):
            served = _copy_from_duckdb(connection, paths, registry, histories, (folder, used))
        else:
            served = _copy_from_warehouse(
                connection, warehouse, registry, histories, (folder, used)
            )
        write_meta(connection, served)
        write_versions(
            connection,
            [v for h in histories for v in h.versions],
            [m for h in histories for m in h.moves],
        )
    finally:
        connection.close()
    os.replace(building, target)
    private_file(target)
    _prune_versions(versions_dir(target), used)
    return served


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def clean_stale_builds(folder: Path) -> list[Path]:
    """Remove ``.<name>.<pid>.building.duckdb`` files (and WALs) left by a killed build.

    Only those whose process is gone: a build running in another process keeps its file.
    """
    removed = []
    for path in sorted(folder.glob(".*.building.duckdb*")) if folder.is_dir() else []:
        match = _BUILDING.match(path.name)
        if match is None:
            continue
        pid = int(match["pid"])
        if pid != os.getpid() and not _alive(pid):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def partial_view(access: PortAccess) -> bool:
    """Whether the consumer sees less than the published table: filtered rows or masked
    values (its counts and checksums are then of what it sees)."""
    return access.row_filter is not None or any(c.mask for c in access.columns)


def view_checksum(
    connection: duckdb.DuckDBPyConnection, sql: str, params: list[Any]
) -> tuple[int, str]:
    """Row count and order-independent checksum of a query's rows (as the warehouse's)."""
    row = connection.execute(
        f"select count(*), coalesce(sum(hash(t)::hugeint), 0) from ({sql}) as t", params
    ).fetchone()
    assert row is not None
    return int(row[0]), hashlib.sha256(str(row[1]).encode()).hexdigest()[:32]


def _published(connection: Any, registry: Registry) -> list[tuple[str, str, str, PublishedVersion]]:
    versions = []
    for product in registry.products.values():
        for output in product.spec.output_ports:
            version = published_version(connection, product.id, output.name)
            if version and relation_exists(connection, product.id, output.model):
                versions.append((product.id, output.name, output.model, version))
    return versions


def _served(product: str, port: str, model: str, version: PublishedVersion) -> ServedPort:
    return ServedPort(
        product,
        port,
        model,
        version.rows,
        version.run_id,
        version.published_at,
        version.contract_id,
        version.contract_version,
        version.checksum,
        datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _copy_from_duckdb(
    connection: duckdb.DuckDBPyConnection,
    paths: ProjectPaths,
    registry: Registry,
    histories: list[PortHistory],
    store: tuple[Path, set[Path]],
) -> list[ServedPort]:
    folder, used = store
    if not paths.warehouse_path.exists():
        raise FileNotFoundError(
            f"no warehouse at {paths.warehouse_path}: materialize the products first"
        )
    home = connection.execute("select current_database()").fetchone()
    assert home is not None
    attach_waiting(connection, paths.warehouse_path, "wh")
    connection.execute("use wh")  # wap's queries name the warehouse's tables unqualified
    versions = _published(connection, registry)
    found = [port_history(connection, p, port, v) for p, port, _, v in versions]
    connection.execute(f"use {quote(str(home[0]))}")
    served = []
    for (product_id, port, model, version), history in zip(versions, found, strict=True):
        connection.execute(f"create schema if not exists {quote(product_id)}")
        connection.execute(
            f"create table {relation(product_id, port)} as "
            f"select * from wh.{relation(product_id, model)}"
        )
        for schema, table, name in history.copies:
            source = f"wh.{relation(schema, table)}"

            def write(path: Path, source: str = source) -> None:
                connection.execute(
                    f"copy (select * from {source}) to {literal(str(path))} (format parquet)"
                )

            stored = _version_of(history, name)
            path = _stored_version(folder, stored, write, used)
            _version_view(connection, product_id, name, path)
        histories.append(history)
        served.append(_served(product_id, port, model, version))
    connection.execute("detach wh")
    return served


def _copy_from_warehouse(
    connection: duckdb.DuckDBPyConnection,
    warehouse: Warehouse,
    registry: Registry,
    histories: list[PortHistory],
    store: tuple[Path, set[Path]],
) -> list[ServedPort]:
    folder, used = store
    served = []
    with warehouse.reader() as source:
        for product_id, port, model, version in _published(source, registry):
            history = port_history(source, product_id, port, version)
            connection.execute(f"create schema if not exists {quote(product_id)}")
            tables = [(product_id, model, port), *history.copies]
            for schema, table, name in tables:
                # each table lands in a scratch DuckDB under its own name, then in Parquet
                def write(path: Path, schema: str = schema, table: str = table) -> None:
                    with duckdb.connect() as scratch:
                        warehouse.python_input(scratch, source, schema, table)
                        scratch.execute(
                            f"copy {relation(schema, table)} to {literal(str(path))} "
                            "(format parquet)"
                        )

                if name != port:  # a retained version: stored once, a view in the snapshot
                    stored = _version_of(history, name)
                    _version_view(
                        connection, product_id, name, _stored_version(folder, stored, write, used)
                    )
                    continue
                with tempfile.TemporaryDirectory() as scratch_dir:
                    parquet = Path(scratch_dir) / "port.parquet"
                    write(parquet)
                    connection.execute(
                        f"create table {relation(product_id, name)} as "
                        f"select * from read_parquet({literal(str(parquet))})"
                    )
            histories.append(history)
            served.append(_served(product_id, port, model, version))
    return served


def _version_of(history: PortHistory, name: str) -> ServedVersion:
    return next(v for v in history.versions if v.stored_as == name)


def write_meta(connection: duckdb.DuckDBPyConnection, served: list[ServedPort]) -> None:
    connection.execute(f"create schema if not exists {quote(META)}")
    connection.execute(
        f"create table {relation(META, 'ports')} (product varchar, port varchar, model varchar, "
        "rows bigint, run_id varchar, published_at varchar, contract_id varchar, "
        "contract_version varchar, checksum varchar, snapshot_at varchar)"
    )
    for port in served:
        connection.execute(
            f"insert into {relation(META, 'ports')} values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            list(asdict(port).values()),
        )


def served_ports(
    connection: duckdb.DuckDBPyConnection, catalog: str | None = None
) -> dict[tuple[str, str], ServedPort]:
    """(product, port) → what the snapshot (or a SQL port) holds."""
    table = (
        relation(META, "ports")
        if catalog is None
        else f"{quote(catalog)}.{relation(META, 'ports')}"
    )
    rows = connection.execute(
        "select product, port, model, rows, run_id, published_at, contract_id, "
        f"contract_version, checksum, snapshot_at from {table}"
    ).fetchall()
    return {(r[0], r[1]): ServedPort(*r) for r in rows}


SNAPSHOT = "snapshot"
"""The catalog name the snapshot is attached under in a :class:`Serving` connection."""


def snapshot_relation(product: str, port: str) -> str:
    """A port's table as a :class:`Serving` cursor names it."""
    return f"{quote(SNAPSHOT)}.{relation(product, port)}"


class Serving:
    """Read-only, locked-down access to the snapshot; reopens when a new one is swapped in.

    The snapshot is ATTACHed to an in-memory database rather than opened directly: DuckDB
    caches open databases by path within a process, so connecting to the same path again
    would return the old, still open, file instead of the new one.
    """

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._inode: int | None = None
        self._ports: dict[tuple[str, str], ServedPort] = {}
        self._versions: dict[tuple[str, str], list[ServedVersion]] = {}
        self._moves: dict[tuple[str, str], list[ServedMove]] = {}

    def _open(self) -> duckdb.DuckDBPyConnection:
        settings = {k: v for k, v in LOCKED_DOWN.items() if k in EXTENSION_SETTINGS}
        connection = duckdb.connect(":memory:", config=settings)
        connection.execute(f"attach {literal(str(self.path))} as {quote(SNAPSHOT)} (read_only)")
        # the retained versions are views over their files: those, and no other file, stay open
        folder = str(versions_dir(self.path)) + os.sep
        connection.execute(f"set allowed_directories = [{literal(folder)}]")
        connection.execute("set enable_external_access = false")
        connection.execute("set lock_configuration = true")
        return connection

    def _current(self) -> tuple[duckdb.DuckDBPyConnection, dict[tuple[str, str], ServedPort]]:
        try:
            inode = self.path.stat().st_ino
        except FileNotFoundError:
            raise SnapshotMissing(self.path) from None
        with self._lock:
            if self._connection is None or inode != self._inode:
                connection = self._open()
                self._ports = served_ports(connection, SNAPSHOT)
                self._versions, self._moves = read_versions(connection, SNAPSHOT)
                # The old connection is left to the garbage collector: requests may still
                # hold cursors on it.
                self._connection, self._inode = connection, inode
            return self._connection, self._ports

    @contextmanager
    def cursor(
        self,
    ) -> Iterator[tuple[duckdb.DuckDBPyConnection, dict[tuple[str, str], ServedPort]]]:
        connection, ports = self._current()
        cursor = connection.cursor()
        try:
            yield cursor, ports
        finally:
            cursor.close()

    def ports(self) -> dict[tuple[str, str], ServedPort]:
        return self._current()[1]

    def history(self, product: str, port: str) -> tuple[list[ServedVersion], list[ServedMove]]:
        """The port's versions and pointer moves in the current snapshot (time travel)."""
        self._current()
        with self._lock:
            return self._versions.get((product, port), []), self._moves.get((product, port), [])


class SnapshotMissing(FileNotFoundError):
    def __init__(self, path: Path):
        super().__init__(f"no serving snapshot at {path}")
        self.hint = "run 'ddp ports build' after materializing the products"
