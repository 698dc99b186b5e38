"""The embedded DuckDB warehouse (the default): one file, ``$DDP_DATA_DIR/warehouse.duckdb``.

DuckDB allows one writer process at a time: every asset that writes runs in the
:data:`~ddp_assets.metadata.WRITER_POOL` Dagster pool and opens the file through
:func:`writer`; everything else opens it read-only through :func:`reader`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddp_assets.warehouse.base import (
    Warehouse,
    WarehouseUnavailable,
    literal,
    quote,
    relation,
    relation_kind,
)
from ddp_assets.warehouse.permissions import private_file, protect_database

if TYPE_CHECKING:
    import duckdb  # imported where used: not at a definitions load

LOCK_WAIT_SECONDS = 120.0

AUDIT_SETTINGS: Mapping[str, str] = {"memory_limit": "64MiB"}
"""DuckDB settings while the contract checks run (:func:`bounded_memory`).

64 MiB, measured on the demo products (``bench/contract_pass.py``): the checking process's peak
stays within 1.25x of its 100k-row peak at 10M rows (1.18x; 256 MiB let it grow 1.8x; Python,
Soda, pandera and ibis are ~310 MB of it), for 5-10 % more CPU in the checks at 10M rows
(DuckDB evicts and re-reads blocks; the spread of a shared machine is of the same order).
"""

log = logging.getLogger(__name__)


STORAGE_VERSION_ENV = "DDP_DUCKDB_STORAGE_VERSION"
DEFAULT_STORAGE_VERSION = "v1.4.0"
"""The DuckDB storage format of every file ddp creates (the warehouse, the serving snapshot,
the consumers' SQL ports): readable by DuckDB >= 1.4 (what datacontract-cli, notebooks and BI
drivers run), where DuckDB 2.0's own format is not. ``DDP_DUCKDB_STORAGE_VERSION`` sets
another (a DuckDB release such as ``v1.5.0``, or ``latest``: readable by this DuckDB only)."""


def storage_version() -> str:
    """The configured storage version (``$DDP_DUCKDB_STORAGE_VERSION``, else the default)."""
    return os.environ.get(STORAGE_VERSION_ENV, "").strip() or DEFAULT_STORAGE_VERSION


def storage_config() -> dict[str, str | bool | int | float | list[str]]:
    """``duckdb.connect`` config for a *new* file: written in :func:`storage_version`.

    An existing file keeps the format it was created in whoever opens it later (dbt-duckdb,
    a plain ``duckdb.connect``), so only the creation needs it.
    """
    return {"storage_compatibility_version": storage_version()}


def connect_new(path: Path) -> duckdb.DuckDBPyConnection:
    """Create the DuckDB file ``path`` (which must not exist) in :func:`storage_version`."""
    import duckdb

    try:
        return duckdb.connect(str(path), config=storage_config())
    except duckdb.InvalidInputException as error:
        if "version string" not in str(error):
            raise
        raise WarehouseUnavailable(
            f"{STORAGE_VERSION_ENV}={storage_version()!r} is not a DuckDB storage version\n"
            f"    hint: a DuckDB release such as {DEFAULT_STORAGE_VERSION} (the default, read by "
            "DuckDB >= 1.4) or 'latest' (read by this DuckDB only), or unset it"
        ) from None


def _version_tuple(name: str) -> tuple[int, ...] | None:
    found = re.match(r"^v?(\d+)\.(\d+)\.(\d+)", name)
    return tuple(int(part) for part in found.groups()) if found else None


def file_storage_version(connection: duckdb.DuckDBPyConnection) -> str:
    """The storage version of the connection's database file as DuckDB tags it (``v1.4.0+``)."""
    rows = connection.execute(  # fetched whole: an unfinished result blocks the connection
        "select tags['storage_version'] from duckdb_databases() "
        "where database_name = current_database()"
    ).fetchall()
    return str(rows[0][0]) if rows and rows[0][0] else ""


def _needs_migration(connection: duckdb.DuckDBPyConnection) -> str | None:
    """The file's storage version when it is newer than the configured one, else None."""
    wanted = _version_tuple(storage_version())  # None for 'latest': any file will do
    found = file_storage_version(connection)
    have = _version_tuple(found)
    return found if wanted and have and have > wanted else None


def migrate_storage(connection: duckdb.DuckDBPyConnection, path: Path, found: str) -> None:
    """Rewrite the file ``path`` (open for writing on ``connection``, which this closes) in the
    configured storage version: a copy of every schema, table, view, sequence and macro
    (DuckDB's ``COPY FROM DATABASE``), swapped in with one rename. The file is not touched when
    the copy fails."""
    import duckdb

    started = time.monotonic()
    for stale in path.parent.glob(f".{path.name}.*.migrating.duckdb*"):  # a killed migration's
        stale.unlink(missing_ok=True)  # (this connection holds the file's write lock)
    migrated = path.with_name(f".{path.name}.{os.getpid()}.migrating.duckdb")
    alias = "__ddp_migrated"
    try:
        connection.execute(
            f"attach {literal(str(migrated))} as {alias} "
            f"(storage_version {literal(storage_version())})"
        )
        private_file(migrated)
        ((database,),) = connection.execute("select current_database()").fetchall()
        connection.execute(f"copy from database {quote(str(database))} to {alias}")
        connection.execute(f"detach {alias}")
    except duckdb.Error as error:
        connection.close()
        migrated.unlink(missing_ok=True)
        raise WarehouseUnavailable(
            f"{path}: written in DuckDB storage {found}, which DuckDB < 2.0 cannot open, and "
            f"rewriting it in {storage_version()} ({STORAGE_VERSION_ENV}) failed: {error}\n"
            f"    hint: set {STORAGE_VERSION_ENV}=latest to keep the file as it is (read by "
            "DuckDB 2.0 only), or remove it and build again (ddp materialize --all)"
        ) from None
    connection.close()
    os.replace(migrated, path)
    log.warning(
        "%s was in DuckDB storage %s (DuckDB < 2.0 cannot open it): rewritten in %s (%s) in %.1fs",
        path,
        found,
        storage_version(),
        STORAGE_VERSION_ENV,
        time.monotonic() - started,
    )


def _connect_waiting(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open the file, waiting (bounded) while another process briefly holds its lock.

    The ``duckdb_writer`` pool serializes ddp's own writers; this covers the moments it cannot
    see: a process that has not yet released the file after its step, or a user's DuckDB shell.
    """
    import duckdb

    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    delay = 0.05
    while True:
        try:
            if not read_only and not path.exists():
                return connect_new(path)
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as error:
            if "lock" not in str(error).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


@contextmanager
def writer(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = _connect_waiting(path, read_only=False)
    found = _needs_migration(connection)
    if found:  # an earlier ddp wrote it in DuckDB 2.0's own format
        migrate_storage(connection, path, found)
        connection = _connect_waiting(path, read_only=False)
    protect_database(path)  # it holds unmasked rows: 0600 (DDP_DATA_GROUP: 0640)
    try:
        yield connection
    finally:
        connection.close()


@contextmanager
def reader(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = _connect_waiting(path, read_only=True)
    try:
        yield connection
    finally:
        connection.close()


def _setting(connection: duckdb.DuckDBPyConnection, name: str) -> str:
    row = connection.execute("select current_setting(?)", [name]).fetchone()
    return str(row[0]) if row else ""


def _set(connection: duckdb.DuckDBPyConnection, name: str, value: str) -> None:
    # SET takes no parameters; names and values come from AUDIT_SETTINGS or DuckDB itself
    connection.execute(f"set {name} = '{value.replace(chr(39), chr(39) * 2)}'")


_PRINTED_SIZE = re.compile(r"^(?P<number>\d+\.\d) (?P<unit>[KMGT]iB)$")


def _restore(connection: duckdb.DuckDBPyConnection, name: str, previous: str) -> None:
    """Put a setting back to the value DuckDB printed for it before."""
    # RESET restores a default exactly. A value set on purpose can only be read back as DuckDB
    # prints it: sizes truncated to a tenth ("2.7 GiB" for 3 GB), and setting the printed
    # value reads back a tenth lower through floating point. Halfway up the printed tenth
    # prints the same and is within 0.05 of a unit of the original.
    connection.execute(f"reset {name}")
    if _setting(connection, name) == previous:
        return
    _set(connection, name, previous)
    printed = _PRINTED_SIZE.match(previous)
    if _setting(connection, name) != previous and printed:
        _set(connection, name, f"{float(printed['number']) + 0.05:.2f} {printed['unit']}")
    if _setting(connection, name) != previous:
        log.warning("DuckDB's %s is now %s, was %s", name, _setting(connection, name), previous)


@contextmanager
def bounded_memory(
    connection: duckdb.DuckDBPyConnection, settings: Mapping[str, str] | None = None
) -> Iterator[None]:
    """Run the block with ``settings`` on the database of ``connection``, then restore them.

    Why: DuckDB's default memory limit is 80 % of the machine, and its buffer manager keeps
    every block a scan reads (and the hash tables of ``count(distinct)``) in memory up to that
    limit. The contract checks scan each port's table whole, so without a cap the checking
    process's peak memory grows with the rows; with one, DuckDB evicts clean blocks and spills
    what does not fit to its temp directory (next to the database file), and the peak stays
    flat. These settings are global to the database instance, that is to every connection of
    the process on this file (dbt's and the publish step's too, in the same process), so the
    previous values are put back afterwards, also when the block raises.

    Settings are changed through a cursor (a second handle on the same database), so that
    restoring them works even when the block left the connection's transaction aborted. A
    setting DuckDB refuses (say the database holds more pinned memory than the cap) is left as
    it was, with a warning: the checks still run, only unbounded.
    """
    import duckdb

    settings = AUDIT_SETTINGS if settings is None else settings
    with closing(connection.cursor()) as handle:
        previous = {name: _setting(handle, name) for name in settings}
        changed: list[str] = []
        try:
            for name, value in settings.items():
                try:
                    _set(handle, name, value)
                except duckdb.Error as error:
                    log.warning("contract checks run with DuckDB's %s unchanged: %s", name, error)
                    continue
                changed.append(name)
            yield
        finally:
            for name in reversed(changed):
                _restore(handle, name, previous[name])


class ReadOnlyCursor:
    """A second handle on the database on which only reads run: each call one ``SELECT``, in a
    read-only transaction that is rolled back at the end.

    The contract checks run SQL from contracts through it (Soda's queries and the failing-row
    samples). Two checks, both DuckDB's own, beside the parsed allow-list of
    :mod:`ddp_assets.contracts.sql_rules`:

    - DuckDB's parser (``extract_statements``) must find exactly one statement, of type
      SELECT (``COPY``, ``ATTACH``, ``PRAGMA``, ``SET``, ``CALL``, ``INSTALL``/``LOAD``, DDL and
      DML are other types, and so is a second statement after a ``;``);
    - it runs in ``BEGIN TRANSACTION READ ONLY``: whatever writes to the database (a sequence's
      ``nextval`` included) fails.

    A failed statement aborts a DuckDB transaction, so the transaction starts again after an
    error, and after Soda's ``commit``/``rollback``: the next statement is isolated from the
    error and still read-only. File and network access cannot be switched off per connection
    (see :mod:`ddp_assets.contracts.sql_rules`): table functions such as ``read_csv`` are
    stopped by the allow-list, not here.
    """

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self._cursor = connection.cursor()
        self._begin()

    def _begin(self) -> None:
        self._cursor.execute("begin transaction read only")

    def _restart(self) -> None:
        import duckdb

        with suppress(duckdb.Error):  # no transaction left to roll back
            self._cursor.execute("rollback")
        self._begin()

    def execute(self, query: str, parameters: Sequence[Any] | None = None) -> Any:
        import duckdb

        statements = self._cursor.extract_statements(query)
        kinds = [str(s.type).rsplit(".", 1)[-1] for s in statements]
        if kinds != ["SELECT"]:
            raise duckdb.PermissionException(
                "refused by ddp: a contract check runs exactly one SELECT, not "
                + (" + ".join(kinds) or "an empty statement")
            )
        try:
            if parameters is None:
                self._cursor.execute(query)
            else:
                self._cursor.execute(query, parameters)
        except duckdb.Error:
            self._restart()
            raise
        return self._cursor

    def commit(self) -> None:
        self._restart()

    def rollback(self) -> None:
        self._restart()

    def close(self) -> None:
        import duckdb

        try:
            with suppress(duckdb.Error):
                self._cursor.execute("rollback")
        finally:
            self._cursor.close()

    def __getattr__(self, name: str) -> Any:
        # fetchone, fetchall, fetchmany, description ...: the cursor's own
        return getattr(self._cursor, name)


@contextmanager
def read_only(connection: duckdb.DuckDBPyConnection) -> Iterator[ReadOnlyCursor]:
    """A :class:`ReadOnlyCursor` on ``connection``'s database, closed (rolled back) after."""
    cursor = ReadOnlyCursor(connection)
    try:
        yield cursor
    finally:
        cursor.close()


_READERS = {
    "csv": "read_csv({files}, header = true, union_by_name = true)",
    "parquet": "read_parquet({files}, union_by_name = true)",
    "json": "read_json({files}, format = 'newline_delimited', union_by_name = true)",
}


def file_reader(files: Sequence[Path], file_format: str) -> str:
    """A DuckDB table function reading landing files of one format (schemas unioned by name)."""
    listing = ", ".join(literal(str(f)) for f in files)
    return _READERS[file_format].format(files=f"[{listing}]")


class DuckDBWarehouse(Warehouse):
    """The DuckDB file dbt-duckdb writes (``path`` of the dbt output)."""

    kind = "duckdb"
    sql_dialect = "duckdb"
    insertion_order = "rowid"

    def __init__(self, path: Path) -> None:
        self.path = path

    def writer(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        return writer(self.path)

    def reader(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        return reader(self.path)

    def exists(self) -> bool:
        return self.path.exists()

    def create(self) -> None:
        """Create the file in ddp's storage version when it is missing (before dbt-duckdb,
        which would create it in DuckDB's newest format); an existing file keeps its own."""
        if not self.path.exists():
            with self.writer():
                pass

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def database(self) -> str:
        return self.path.stem

    @property
    def namespace(self) -> str:
        return f"duckdb://{self.path}"

    def meta_table_ddl(self, table: str, columns: str) -> str:
        return f"create table if not exists {table} ({columns})"

    def _replace_table(self, connection: Any, schema: str, table: str, source: str) -> None:
        # DuckDB binds views by name, so replacing a table under readers' views is safe
        connection.execute(
            f"create or replace table {relation(schema, table)} as select * from {source}"
        )

    def copy_table(
        self, connection: Any, source_schema: str, source_table: str, schema: str, table: str
    ) -> None:
        self._replace_table(connection, schema, table, relation(source_schema, source_table))

    def point_view(
        self, connection: Any, schema: str, name: str, target_schema: str, target_table: str
    ) -> None:
        # DuckDB binds views by name: readers' views over schema.name follow the new target
        if relation_kind(connection, schema, name) == "table":  # published by a copy before
            connection.execute(f"drop table {relation(schema, name)}")
        connection.execute(
            f"create or replace view {relation(schema, name)} as "
            f"select * from {relation(target_schema, target_table)}"
        )

    def checksum(self, connection: Any, schema: str, table: str) -> tuple[int, str]:
        row = connection.execute(
            f"select count(*), coalesce(sum(hash(t)::hugeint), 0) "
            f"from {relation(schema, table)} as t"
        ).fetchone()
        assert row is not None
        return int(row[0]), hashlib.sha256(str(row[1]).encode()).hexdigest()[:32]

    def load_files(
        self, connection: Any, files: Sequence[Path], file_format: str, schema: str, table: str
    ) -> None:
        # entirely inside DuckDB: no row passes through Python
        connection.execute(f"create schema if not exists {quote(schema)}")
        self._replace_table(connection, schema, table, file_reader(files, file_format))

    def python_session(self, connection: Any) -> AbstractContextManager[Any]:
        # the model computes on the warehouse connection itself: its inputs stay lazy
        return nullcontext(connection)

    def python_input(self, session: Any, connection: Any, schema: str, table: str) -> Any:
        return session.table(relation(schema, table))

    def write_result(
        self, session: Any, connection: Any, result: Any, schema: str, table: str
    ) -> None:
        import duckdb

        view = "__ddp_python_result"
        if isinstance(result, duckdb.DuckDBPyRelation):
            result.create_view(view, replace=True)
        else:
            connection.register(view, result)
        connection.execute(f"create schema if not exists {quote(schema)}")
        if relation_kind(connection, schema, table) == "view":  # a publish left it in staging
            connection.execute(f"drop view {relation(schema, table)}")
        self._replace_table(connection, schema, table, view)
        if isinstance(result, duckdb.DuckDBPyRelation):
            connection.execute(f"drop view {view}")
        else:
            connection.unregister(view)

    def bounded_memory(self, connection: Any) -> AbstractContextManager[None]:
        return bounded_memory(connection)

    def soda_data_source(self, connection: Any, name: str) -> tuple[Any, Any]:
        from soda_duckdb.common.data_sources.duckdb_data_source import (
            DuckDBDataSourceConnection,
            DuckDBDataSourceConnectionWrapper,
            DuckDBDataSourceImpl,
        )
        from soda_duckdb.common.data_sources.duckdb_data_source_connection import (
            DuckDBDataSource,
        )

        # What DuckDBDataSourceImpl.from_existing_cursor builds, with Soda's queries going
        # through a ReadOnlyCursor (from_existing_cursor accepts only a DuckDB connection).
        # The model holds no connection: should Soda reconnect, it gets none rather than an
        # unguarded handle on the warehouse.
        cursor = ReadOnlyCursor(connection)
        model = DuckDBDataSource.model_validate(
            {"name": name, "connection": {"duckdb_connection": None}}
        )
        soda_connection = DuckDBDataSourceConnection(
            name=name,
            connection_properties={},
            connection=DuckDBDataSourceConnectionWrapper(cursor),
        )
        # A DuckDB cursor is a second handle on the database: left to the garbage collector,
        # it keeps the file locked after the step released the writer pool.
        return DuckDBDataSourceImpl(data_source_model=model, connection=soda_connection), (
            cursor.close
        )

    def read_only(self, connection: Any) -> AbstractContextManager[ReadOnlyCursor]:
        return read_only(connection)

    def ibis_backend(self, connection: Any) -> Any:
        import ibis

        return ibis.duckdb.from_connection(connection)

    def regex_mismatch(self, column: str, pattern: str) -> str:
        return f"not regexp_matches(cast({column} as varchar), {pattern})"

    def duplicate_rows(self, table_relation: str, keys: str, limit: int) -> str:
        return (
            f"select * from {table_relation} qualify count(*) over (partition by {keys}) > 1 "
            f"order by {keys} limit {limit}"
        )
