"""A PostgreSQL warehouse: the ``postgres`` output of the dbt profile (dbt-postgres).

ddp connects with psycopg 3, with the settings dbt uses (host, port, user, password, dbname,
sslmode from the profile, i.e. the ``DDP_PG_*`` variables). Connections are in autocommit;
whatever must be atomic (a publish, a load) runs in an explicit transaction, so a failed or
killed step leaves the previous rows in place (PostgreSQL rolls back what was not committed).

Rows move between PostgreSQL and DuckDB as CSV streamed through ``COPY``: landing files are read
by an in-memory DuckDB (the same readers and type inference as the embedded warehouse) and
copied in with ``COPY ... FROM STDIN``; a Python model's inputs are copied out to an in-memory
DuckDB with ``COPY ... TO STDOUT`` and its result copied back. No row is converted by Python:
psycopg passes CSV bytes through. DuckDB's ``postgres`` extension would do the same with less
code, but it is downloaded at first use, and ddp must work offline.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import psycopg

from ddp_assets.warehouse.base import Warehouse, WarehouseUnavailable, quote, relation
from ddp_assets.warehouse.duckdb import file_reader

COPY_CHUNK = 1 << 20

# DuckDB column types → PostgreSQL column types (format_type spelling, so they compare equal
# to what the catalog reports). Nested types (STRUCT, LIST, MAP, ...) become jsonb.
_PG_TYPES = {
    "BOOLEAN": "boolean",
    "TINYINT": "smallint",
    "SMALLINT": "smallint",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "HUGEINT": "numeric(38,0)",
    "UTINYINT": "smallint",
    "USMALLINT": "integer",
    "UINTEGER": "bigint",
    "UBIGINT": "numeric(20,0)",
    "UHUGEINT": "numeric(39,0)",
    "FLOAT": "real",
    "DOUBLE": "double precision",
    "VARCHAR": "text",
    "DATE": "date",
    "TIME": "time without time zone",
    "TIMESTAMP": "timestamp without time zone",
    "TIMESTAMP_S": "timestamp without time zone",
    "TIMESTAMP_MS": "timestamp without time zone",
    "TIMESTAMP_NS": "timestamp without time zone",
    "TIMESTAMP WITH TIME ZONE": "timestamp with time zone",
    "INTERVAL": "interval",
    "UUID": "uuid",
    "BLOB": "bytea",
    "JSON": "jsonb",
}

# PostgreSQL column types (format_type spelling) → DuckDB types; anything else is read as text.
_DUCKDB_TYPES = {
    "boolean": "BOOLEAN",
    "smallint": "SMALLINT",
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "real": "FLOAT",
    "double precision": "DOUBLE",
    "text": "VARCHAR",
    "date": "DATE",
    "time without time zone": "TIME",
    "timestamp without time zone": "TIMESTAMP",
    "timestamp with time zone": "TIMESTAMPTZ",
    "interval": "INTERVAL",
    "uuid": "UUID",
    "numeric": "DOUBLE",
}

_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")
_NUMERIC = re.compile(r"^numeric\((\d+),(\d+)\)$")


def pg_type(duckdb_type: str) -> str:
    """The PostgreSQL type holding a DuckDB column type."""
    text = duckdb_type.upper()
    match = _DECIMAL.match(text)
    if match:
        return f"numeric({match[1]},{match[2]})"
    return _PG_TYPES.get(text, "jsonb")


def duckdb_type(postgres_type: str) -> str:
    """The DuckDB type holding a PostgreSQL column type (format_type spelling)."""
    match = _NUMERIC.match(postgres_type)
    if match:
        precision, scale = int(match[1]), int(match[2])
        return f"DECIMAL({precision},{scale})" if precision <= 38 else "DOUBLE"
    if postgres_type.startswith(("character varying", "character(", "character")):
        return "VARCHAR"
    if postgres_type.startswith("timestamp(") and "with time zone" in postgres_type:
        return "TIMESTAMPTZ"
    if postgres_type.startswith("timestamp("):
        return "TIMESTAMP"
    return _DUCKDB_TYPES.get(postgres_type, "VARCHAR")


class PostgresConnection:
    """A psycopg connection speaking ddp's parameter style (``?``), in autocommit.

    ddp writes its few parameterized statements once for both warehouses with ``?``; psycopg
    wants ``%s``. Only statements with parameters are rewritten, and ddp's own parameterized
    SQL has no ``?`` or ``%`` other than placeholders (user SQL never comes with parameters).
    """

    def __init__(self, raw: psycopg.Connection[Any], warehouse: PostgresWarehouse) -> None:
        self.raw = raw
        self.warehouse = warehouse

    def execute(self, query: str, parameters: Sequence[Any] | None = None) -> Any:
        if parameters is None:
            return self.raw.execute(query.encode())
        converted = query.replace("%", "%%").replace("?", "%s")
        return self.raw.execute(converted.encode(), list(parameters))

    def cursor(self) -> psycopg.Cursor[Any]:
        return self.raw.cursor()


@dataclass(frozen=True)
class PostgresSettings:
    """Connection settings, from the dbt output (``profiles.yml``)."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    sslmode: str | None = None

    @classmethod
    def from_target(cls, target: dict[str, Any]) -> PostgresSettings:
        return cls(
            host=str(target.get("host") or "localhost"),
            port=int(target.get("port") or 5432),
            user=str(target.get("user") or "postgres"),
            password=str(target.get("password") or ""),
            dbname=str(target.get("dbname") or target.get("database") or "postgres"),
            sslmode=str(target["sslmode"]) if target.get("sslmode") else None,
        )

    def connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": self.dbname,
        }
        if self.password:
            kwargs["password"] = self.password
        if self.sslmode:
            kwargs["sslmode"] = self.sslmode
        return kwargs


class PostgresWarehouse(Warehouse):
    """A PostgreSQL database: dbt-postgres writes the models, ddp the rest over psycopg."""

    kind = "postgres"
    sql_dialect = "postgres"
    insertion_order = "seq"

    def __init__(self, settings: PostgresSettings) -> None:
        self.settings = settings

    # --- connections -----------------------------------------------------------------------

    def _connect(self, read_only: bool = False) -> psycopg.Connection[Any]:
        kwargs = self.settings.connect_kwargs()
        if read_only:
            kwargs["options"] = "-c default_transaction_read_only=on"
        try:
            return psycopg.connect(autocommit=True, **kwargs)
        except psycopg.OperationalError as error:
            reason = (str(error).strip().splitlines() or ["unknown error"])[0].rstrip(".")
            raise WarehouseUnavailable(
                f"cannot connect to the PostgreSQL warehouse {self.location}: {reason}. "
                "Hint: check DDP_PG_HOST, DDP_PG_PORT, DDP_PG_USER, DDP_PG_PASSWORD and "
                "DDP_PG_DBNAME (docs/warehouse-targets.md)"
            ) from None

    @contextmanager
    def _session(self, read_only: bool) -> Iterator[PostgresConnection]:
        raw = self._connect(read_only)
        try:
            yield PostgresConnection(raw, self)
        finally:
            raw.close()

    def writer(self) -> AbstractContextManager[PostgresConnection]:
        return self._session(read_only=False)

    def reader(self) -> AbstractContextManager[PostgresConnection]:
        return self._session(read_only=True)

    def exists(self) -> bool:
        return True

    @property
    def location(self) -> str:
        s = self.settings
        return f"postgres://{s.user}@{s.host}:{s.port}/{s.dbname}"

    @property
    def database(self) -> str:
        return self.settings.dbname

    @property
    def namespace(self) -> str:
        # OpenLineage naming: postgres://{host}:{port}, the database is the name's first part
        return f"postgres://{self.settings.host}:{self.settings.port}"

    @contextmanager
    def transaction(self, connection: Any) -> Iterator[None]:
        with connection.raw.transaction():
            yield

    # --- metadata tables --------------------------------------------------------------------

    def meta_table_ddl(self, table: str, columns: str) -> str:
        # PostgreSQL has no rowid: an identity column orders rows with the same timestamp
        return (
            f"create table if not exists {table} "
            f"({columns}, seq bigint generated always as identity)"
        )

    # --- copying ----------------------------------------------------------------------------

    def _columns(self, connection: Any, schema: str, table: str) -> list[tuple[str, str]]:
        """(name, type) of a table or view, types spelled by ``format_type`` (with typmods)."""
        rows = connection.execute(
            "select a.attname, format_type(a.atttypid, a.atttypmod) "
            "from pg_catalog.pg_attribute a "
            "join pg_catalog.pg_class c on c.oid = a.attrelid "
            "join pg_catalog.pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = ? and c.relname = ? and a.attnum > 0 and not a.attisdropped "
            "order by a.attnum",
            [schema, table],
        ).fetchall()
        return [(str(name), str(kind)) for name, kind in rows]

    def _relkind(self, connection: Any, schema: str, table: str) -> str | None:
        row = connection.execute(
            "select c.relkind from pg_catalog.pg_class c "
            "join pg_catalog.pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = ? and c.relname = ?",
            [schema, table],
        ).fetchone()
        return str(row[0]) if row else None

    def _prepare_target(
        self, connection: Any, schema: str, table: str, columns: list[tuple[str, str]]
    ) -> None:
        """An empty ``schema.table`` with ``columns``, inside the caller's transaction.

        When the table already has exactly these columns it is truncated rather than dropped:
        PostgreSQL binds views to tables, and other products' dbt views read the published
        tables and raw tables. Only a change of columns drops the table (and, with CASCADE,
        the views over it, which their own dbt models recreate on their next build).
        """
        target = relation(schema, table)
        connection.execute(f"create schema if not exists {quote(schema)}")
        kind = self._relkind(connection, schema, table)
        if kind in ("r", "p") and self._columns(connection, schema, table) == columns:
            connection.execute(f"truncate table {target}")
            return
        if kind in ("r", "p"):
            connection.execute(f"drop table {target} cascade")
        elif kind == "v":
            connection.execute(f"drop view {target} cascade")
        elif kind == "m":
            connection.execute(f"drop materialized view {target} cascade")
        definition = ", ".join(f"{quote(name)} {kind}" for name, kind in columns)
        connection.execute(f"create table {target} ({definition})")

    def copy_table(
        self, connection: Any, source_schema: str, source_table: str, schema: str, table: str
    ) -> None:
        columns = self._columns(connection, source_schema, source_table)
        if not columns:
            raise LookupError(f"{source_schema}.{source_table} does not exist")
        self._prepare_target(connection, schema, table, columns)
        names = ", ".join(quote(name) for name, _ in columns)
        connection.execute(
            f"insert into {relation(schema, table)} ({names}) "
            f"select {names} from {relation(source_schema, source_table)}"
        )

    def rename_table(self, connection: Any, schema: str, table: str, new_name: str) -> None:
        # index names are unique per schema: the renamed table's indexes (a dbt ``indexes``
        # config, a primary key) get names of their own, so the next build can reuse its names
        super().rename_table(connection, schema, table, new_name)
        indexes = connection.execute(
            "select indexname from pg_catalog.pg_indexes where schemaname = ? and tablename = ? "
            "order by indexname",
            [schema, new_name],
        ).fetchall()
        for number, (index,) in enumerate(indexes, start=1):
            connection.execute(
                f"alter index {relation(schema, str(index))} rename to "
                f"{quote(f'{new_name}__i{number}'[:63])}"
            )

    def point_view(
        self, connection: Any, schema: str, name: str, target_schema: str, target_table: str
    ) -> None:
        # PostgreSQL binds views to relations: other products' views over schema.name stay
        # bound to this view, which ``create or replace`` keeps while the columns it had stay
        # first and unchanged. Another shape (or a table published by a copy before versioning)
        # drops it with its dependent views, which their own dbt models recreate on their next
        # build, as a changed table did before.
        target = relation(schema, name)
        columns = self._columns(connection, target_schema, target_table)
        kind = self._relkind(connection, schema, name)
        if kind == "v":
            current = self._columns(connection, schema, name)
            if columns[: len(current)] != current:
                connection.execute(f"drop view {target} cascade")
        elif kind in ("r", "p"):
            connection.execute(f"drop table {target} cascade")
        elif kind == "m":
            connection.execute(f"drop materialized view {target} cascade")
        connection.execute(f"create schema if not exists {quote(schema)}")
        connection.execute(
            f"create or replace view {target} as "
            f"select * from {relation(target_schema, target_table)}"
        )

    def checksum(self, connection: Any, schema: str, table: str) -> tuple[int, str]:
        # the sum of 60 bits of each row's md5: independent of row order, computed in PostgreSQL
        row = connection.execute(
            "select count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)"
            f"::bigint::numeric), 0) from {relation(schema, table)} as t"
        ).fetchone()
        assert row is not None
        return int(row[0]), hashlib.sha256(str(row[1]).encode()).hexdigest()[:32]

    def _copy_from_duckdb(
        self, duck: duckdb.DuckDBPyConnection, source: str, connection: Any, schema: str, table: str
    ) -> None:
        """Replace ``schema.table`` with the rows of the DuckDB relation ``source`` (SQL)."""
        described = duck.execute(f"describe select * from {source}").fetchall()
        columns = [(str(row[0]), pg_type(str(row[1]))) for row in described]
        select = ", ".join(
            f"to_json({quote(name)}) as {quote(name)}"
            if kind == "jsonb" and str(row[1]).upper() != "JSON"
            else quote(name)
            for (name, kind), row in zip(columns, described, strict=True)
        )
        with tempfile.TemporaryDirectory(prefix="ddp-pg-copy-") as folder:
            path = Path(folder) / "rows.csv"
            literal = "'" + str(path).replace("'", "''") + "'"
            duck.execute(
                f"copy (select {select} from {source}) to {literal} (format csv, header false)"
            )
            names = ", ".join(quote(name) for name, _ in columns)
            with self.transaction(connection):
                self._prepare_target(connection, schema, table, columns)
                with (
                    connection.cursor() as cursor,
                    cursor.copy(
                        f"copy {relation(schema, table)} ({names}) from stdin (format csv)".encode()
                    ) as copy,
                    path.open("rb") as rows,
                ):
                    while chunk := rows.read(COPY_CHUNK):
                        copy.write(chunk)

    def load_files(
        self, connection: Any, files: Sequence[Path], file_format: str, schema: str, table: str
    ) -> None:
        # DuckDB reads and types the files exactly as in the embedded warehouse
        with duckdb.connect() as duck:
            self._copy_from_duckdb(duck, file_reader(files, file_format), connection, schema, table)

    # --- Python models ----------------------------------------------------------------------

    @contextmanager
    def _python_session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        duck = duckdb.connect()
        try:
            yield duck
        finally:
            duck.close()

    def python_session(self, connection: Any) -> AbstractContextManager[Any]:
        return self._python_session()

    def python_input(self, session: Any, connection: Any, schema: str, table: str) -> Any:
        """The input copied into the model's in-memory DuckDB, under the same name."""
        target = relation(schema, table)
        loaded = session.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchone()
        if not (loaded and loaded[0]):
            columns = self._columns(connection, schema, table)
            if not columns:
                raise LookupError(f"{schema}.{table} does not exist in {self.location}")
            types = ", ".join(
                f"{_sql_string(name)}: {_sql_string(duckdb_type(kind))}" for name, kind in columns
            )
            with tempfile.TemporaryDirectory(prefix="ddp-pg-copy-") as folder:
                path = Path(folder) / "rows.csv"
                with (
                    connection.cursor() as cursor,
                    cursor.copy(
                        f"copy (select * from {target}) to stdout (format csv)".encode()
                    ) as copy,
                    path.open("wb") as rows,
                ):
                    for chunk in copy:
                        rows.write(chunk)
                session.execute(f"create schema if not exists {quote(schema)}")
                session.execute(
                    f"create table {target} as select * from read_csv("
                    f"{_sql_string(str(path))}, header = false, columns = {{{types}}}, "
                    "allow_quoted_nulls = false, auto_detect = false)"
                )
        return session.table(target)

    def write_result(
        self, session: Any, connection: Any, result: Any, schema: str, table: str
    ) -> None:
        view = "__ddp_python_result"
        if isinstance(result, duckdb.DuckDBPyRelation):
            result.create_view(view, replace=True)
        else:
            session.register(view, result)
        self._copy_from_duckdb(session, view, connection, schema, table)

    # --- contract checks --------------------------------------------------------------------

    def soda_data_source(self, connection: Any, name: str) -> tuple[Any, Any]:
        from soda_postgres.common.data_sources.postgres_data_source import (
            PostgresDataSourceImpl,
            PostgresDataSourceModel,
        )

        s = self.settings
        properties: dict[str, Any] = {
            "host": s.host,
            "port": s.port,
            "database": s.dbname,
            "user": s.user,
            "password": s.password,
        }
        if s.sslmode:
            properties["sslmode"] = s.sslmode
        # every transaction of Soda's connection is read-only: the contracts' sql rules run
        # there (psycopg gets the extra property as a connection keyword)
        properties["options"] = "-c default_transaction_read_only=on"
        model = PostgresDataSourceModel.model_validate({"name": name, "connection": properties})
        # Soda opens a connection of its own (it may commit, roll back or close what it holds)
        data_source = PostgresDataSourceImpl(data_source_model=model)
        return data_source, data_source.close_connection

    @contextmanager
    def read_only(self, connection: Any) -> Iterator[PostgresConnection]:
        # a connection of its own with default_transaction_read_only (what reader() opens):
        # a transaction ended from inside does not leave the next one writable, and the
        # writer's connection is not touched; the staging tables are committed already
        with self._session(read_only=True) as session:
            yield session

    def ibis_backend(self, connection: Any) -> Any:
        import ibis

        return ibis.postgres.from_connection(connection.raw)

    def regex_mismatch(self, column: str, pattern: str) -> str:
        return f"not (cast({column} as text) ~ {pattern})"


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
