"""Connections to the embedded DuckDB warehouse.

DuckDB allows one writer process at a time: every asset that writes runs in the
:data:`~ddp_assets.metadata.WRITER_POOL` Dagster pool and opens the file through
:func:`writer`; everything else opens it read-only through :func:`reader`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb


def quote(identifier: str) -> str:
    """A DuckDB identifier, quoted."""
    return '"' + identifier.replace('"', '""') + '"'


def relation(schema: str, table: str) -> str:
    return f"{quote(schema)}.{quote(table)}"


LOCK_WAIT_SECONDS = 120.0


def _connect_waiting(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open the file, waiting (bounded) while another process briefly holds its lock.

    The ``duckdb_writer`` pool serializes ddp's own writers; this covers the moments it cannot
    see: a process that has not yet released the file after its step, or a user's DuckDB shell.
    """
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    delay = 0.05
    while True:
        try:
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


def table_columns(
    connection: duckdb.DuckDBPyConnection, schema: str, table: str
) -> list[tuple[str, str]]:
    """(column, type) pairs of a table, from the catalog (no data is read)."""
    rows = connection.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [schema, table],
    ).fetchall()
    return [(str(name), str(kind)) for name, kind in rows]
