"""What ddp's own Python needs from a warehouse, whichever database it is.

dbt writes the models through its adapter. Beside dbt, ddp writes and reads a few things itself:
raw tables loaded from landing files, Python models' outputs, the audit and publish steps of
write-audit-publish, and the contract checks (Soda, pandera). Those places talk to the database
through a :class:`Warehouse` and a :class:`Connection`, and nothing else in ddp knows which
database it is:

- :class:`~ddp_assets.warehouse.duckdb.DuckDBWarehouse`, the embedded default (one file);
- :class:`~ddp_assets.warehouse.postgres.PostgresWarehouse`, a PostgreSQL server.

Plain SQL that both databases run identically (``information_schema``, ``count(*)``, inserts
into ddp's metadata tables) is written once here, with ``?`` placeholders; anything dialectal
(copying tables, checksums, loading files, the DuckDB relations handed to Python models, Soda's
and ibis's connections) is a method each warehouse implements.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, ClassVar, Protocol


class Cursor(Protocol):
    """The DB-API subset ddp uses (a DuckDB connection and a psycopg cursor both have it)."""

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchmany(self, size: int = ...) -> list[Any]: ...


class Connection(Protocol):
    """An open session on the warehouse; ``?`` marks a parameter on every warehouse."""

    def execute(self, query: str, parameters: Sequence[Any] | None = None) -> Cursor: ...


class WarehouseUnavailable(RuntimeError):
    """The warehouse cannot be reached (a server down, wrong credentials): the message says
    where and which settings to check."""


def quote(identifier: str) -> str:
    """An identifier, quoted (the same rule in DuckDB and PostgreSQL)."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: Any) -> str:
    """A constant as SQL text: booleans and numbers as such, anything else as a quoted string
    (the same rule in DuckDB and PostgreSQL)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def relation(schema: str, table: str) -> str:
    return f"{quote(schema)}.{quote(table)}"


def table_columns(connection: Connection, schema: str, table: str) -> list[tuple[str, str]]:
    """(column, type) pairs of a table, from the catalog (no data is read)."""
    rows = connection.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [schema, table],
    ).fetchall()
    return [(str(name), str(kind)) for name, kind in rows]


def relation_exists(connection: Connection, schema: str, table: str) -> bool:
    row = connection.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])


def relation_kind(connection: Connection, schema: str, table: str) -> str | None:
    """``table``, ``view`` or None (no such relation), from the catalog."""
    row = connection.execute(
        "select table_type from information_schema.tables where table_schema = ? "
        "and table_name = ?",
        [schema, table],
    ).fetchone()
    if row is None:
        return None
    return "view" if "VIEW" in str(row[0]).upper() else "table"


def row_count(connection: Connection, schema: str, table: str) -> int:
    row = connection.execute(f"select count(*) from {relation(schema, table)}").fetchone()
    return int(row[0]) if row else 0


class Warehouse(ABC):
    """One warehouse: how to connect to it and the few operations that differ per database."""

    kind: ClassVar[str]
    """The dbt adapter type (``duckdb``, ``postgres``), also the Dagster kind of its assets."""

    sql_dialect: ClassVar[str]
    """The sqlglot dialect of the SQL this warehouse runs (lineage parses the models with it)."""

    # --- connections -----------------------------------------------------------------------

    @abstractmethod
    def writer(self) -> AbstractContextManager[Any]:
        """A read-write connection (callers hold the Dagster writer pool)."""

    @abstractmethod
    def reader(self) -> AbstractContextManager[Any]:
        """A connection for reading only."""

    @abstractmethod
    def exists(self) -> bool:
        """Whether the warehouse can hold published data yet (the DuckDB file exists)."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the warehouse is, for messages (a file path, or ``postgres://host:port/db``)."""

    @property
    @abstractmethod
    def database(self) -> str:
        """The database (catalog) the tables live in: first part of OpenLineage dataset names."""

    @property
    @abstractmethod
    def namespace(self) -> str:
        """The OpenLineage dataset namespace of this warehouse."""

    @contextmanager
    def transaction(self, connection: Any) -> Iterator[None]:
        """Everything inside commits together or not at all."""
        connection.execute("begin transaction")
        try:
            yield
        except BaseException:
            connection.execute("rollback")
            raise
        connection.execute("commit")

    # --- ddp's metadata tables (_ddp.audits, _ddp.published_versions) ------------------------

    insertion_order: ClassVar[str]
    """An expression ordering a metadata table's rows by insertion (ties of the timestamp)."""

    @abstractmethod
    def meta_table_ddl(self, table: str, columns: str) -> str:
        """``create table if not exists`` for a metadata table with these column definitions."""

    # --- copying and checksums --------------------------------------------------------------

    @abstractmethod
    def copy_table(
        self, connection: Any, source_schema: str, source_table: str, schema: str, table: str
    ) -> None:
        """Make ``schema.table`` a table with the rows of ``source_schema.source_table``.

        Runs inside the caller's transaction, so readers see the old rows or the new ones.
        """

    # --- versioned publish (contracts/wap.py) -----------------------------------------------

    def rename_table(self, connection: Any, schema: str, table: str, new_name: str) -> None:
        """Rename ``schema.table`` to ``schema.new_name``: no row is copied."""
        connection.execute(f"alter table {relation(schema, table)} rename to {quote(new_name)}")

    def drop_table(self, connection: Any, schema: str, table: str) -> None:
        connection.execute(f"drop table if exists {relation(schema, table)}")

    @abstractmethod
    def point_view(
        self, connection: Any, schema: str, name: str, target_schema: str, target_table: str
    ) -> None:
        """Make ``schema.name`` a view of ``target_schema.target_table`` (a version's table).

        Runs inside the caller's transaction: readers see the old target or the new one. A
        table left at ``schema.name`` by a publish before versioning is replaced by the view.
        """

    @abstractmethod
    def checksum(self, connection: Any, schema: str, table: str) -> tuple[int, str]:
        """Row count and an order-independent content checksum, computed in the database."""

    @abstractmethod
    def load_files(
        self, connection: Any, files: Sequence[Path], file_format: str, schema: str, table: str
    ) -> None:
        """Replace ``schema.table`` with the rows of landing files (csv, parquet, json lines)."""

    # --- Python models ----------------------------------------------------------------------

    @abstractmethod
    def python_session(self, connection: Any) -> AbstractContextManager[Any]:
        """The DuckDB connection a Python model computes in (lazy relations of its inputs)."""

    @abstractmethod
    def python_input(self, session: Any, connection: Any, schema: str, table: str) -> Any:
        """A declared input of a Python model as a DuckDB relation of ``session``."""

    @abstractmethod
    def write_result(
        self, session: Any, connection: Any, result: Any, schema: str, table: str
    ) -> None:
        """Write what a Python model returned to ``schema.table``, replacing it atomically."""

    # --- contract checks --------------------------------------------------------------------

    def bounded_memory(self, connection: Any) -> AbstractContextManager[None]:
        """Inside, ``connection``'s database works in a bounded amount of memory (the audit).

        The contract checks scan whole tables; an embedded database would otherwise keep what
        it read cached in the checking process. A server database manages its own memory, so
        by default this changes nothing.
        """
        return nullcontext()

    @abstractmethod
    def soda_data_source(self, connection: Any, name: str) -> tuple[Any, Any]:
        """A Soda data source over ``connection`` and a callable releasing it.

        The data source cannot write: the contract's ``sql`` rules run through it, and they
        are written by whoever can edit a contract (see :mod:`ddp_assets.contracts.sql_rules`).
        """

    @abstractmethod
    def read_only(self, connection: Any) -> AbstractContextManager[Connection]:
        """A session beside ``connection`` whose statements cannot write to the warehouse.

        Inside, only reads run (the failing-row samples of the contract checks); whatever a
        statement tries to change is refused by the database and rolled back at the end.
        """

    @abstractmethod
    def ibis_backend(self, connection: Any) -> Any:
        """An ibis backend over ``connection`` (pandera runs its checks as SQL through it)."""

    @abstractmethod
    def regex_mismatch(self, column: str, pattern: str) -> str:
        """A predicate true when ``column`` (SQL) does not match the regex literal ``pattern``."""

    def duplicate_rows(self, table_relation: str, keys: str, limit: int) -> str:
        """Rows whose ``keys`` occur more than once (a portable window query)."""
        return (
            f"select * from (select *, count(*) over (partition by {keys}) as duplicate_count "
            f"from {table_relation}) as duplicated where duplicate_count > 1 "
            f"order by {keys} limit {limit}"
        )
