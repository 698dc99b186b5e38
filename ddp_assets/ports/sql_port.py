"""The SQL port: one consumer-facing DuckDB database per consumer.

A database that merely ATTACHed the warehouse would let a consumer read staging schemas and
other products. Instead, ``ddp ports build`` writes ``$DDP_DATA_DIR/ports/sql/<consumer>.duckdb``
holding only the ports the consumer is granted, one schema per product, each table already
passed through the consumer's policy (masked columns hashed or redacted, rows filtered). The
file holds nothing the consumer may not see, whoever opens it; ``ddp ports sql`` opens it
read-only, with external access disabled and the configuration locked, so a query cannot read
files, attach other databases, load extensions or change settings either.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from ddp_assets.ports.policy import (
    Consumer,
    PortAccess,
    PortError,
    policy_select,
    readable_ports,
    resolve,
)
from ddp_assets.ports.serving import (
    LOCKED_DOWN,
    META,
    ServedPort,
    attach_waiting,
    partial_view,
    served_ports,
    serving_path,
    view_checksum,
    write_meta,
)
from ddp_assets.ports.sql_guard import (
    MEMORY_ENV,
    TIMEOUT_ENV,
    QueryLimits,
    QueryRefused,
    check_shape,
    parse_tree,
    ports_read,
    redact,
    server_paths,
)
from ddp_assets.ports.store import ports_dir
from ddp_assets.ports.versions import (
    ServedMove,
    ServedVersion,
    columns_of,
    read_versions,
    version_access,
    write_versions,
)
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.registry import Registry
from ddp_assets.warehouse import quote, relation
from ddp_assets.warehouse.duckdb import connect_new
from ddp_assets.warehouse.permissions import private_dir, private_file


def sql_ports_dir(paths: ProjectPaths) -> Path:
    return ports_dir(paths) / "sql"


def sql_port_path(paths: ProjectPaths, consumer: str) -> Path:
    return sql_ports_dir(paths) / f"{consumer}.duckdb"


def build_sql_port(
    paths: ProjectPaths, registry: Registry, consumer: Consumer, salt: str
) -> list[ServedPort]:
    """Write the consumer's database from the serving snapshot and swap it in.

    The file (and the folder it is built in) is readable by its owner only, or the
    ``DDP_DATA_GROUP``: it holds the consumer's rows. ``_ddp.ports`` counts the rows the
    consumer holds, and for a masked or row-filtered port the checksum is of those rows.
    """
    target = sql_port_path(paths, consumer.id)
    private_dir(target.parent.parent)
    private_dir(target.parent)
    building = target.with_name(f".{consumer.id}.{os.getpid()}.building.duckdb")
    building.unlink(missing_ok=True)
    built: list[ServedPort] = []
    now = datetime.now(UTC).isoformat(timespec="seconds")
    connection = connect_new(building)  # in ddp's DuckDB storage version
    private_file(building)
    try:
        attach_waiting(connection, serving_path(paths), "src")
        snapshot = served_ports(connection, "src")
        history, history_moves = read_versions(connection, "src")
        kept: list[ServedVersion] = []  # the versions this consumer can read, as it sees them
        kept_moves: list[ServedMove] = []
        for product_id, ports in sorted(readable_ports(registry, consumer).items()):
            product = registry.products[product_id]
            for port in ports:
                served = snapshot.get((product_id, port))
                if served is None:
                    continue  # not published yet
                access = resolve(product, port, consumer)
                table = relation(product_id, port)
                sql, params = policy_select(access, f"src.{table}", salt)
                connection.execute(f"create schema if not exists {quote(product_id)}")
                connection.execute(f"create table {table} as {sql}", params)
                rows, checksum = view_checksum(connection, f"select * from {table}", [])
                if not partial_view(access):
                    checksum = served.checksum
                built.append(replace(served, rows=rows, checksum=checksum, snapshot_at=now))
                kept += _versions(connection, access, history.get((product_id, port), []), salt)
                kept_moves += history_moves.get((product_id, port), [])
        write_meta(connection, built)
        write_versions(connection, kept, kept_moves)
        connection.execute("detach src")
    finally:
        connection.close()
    os.replace(building, target)
    private_file(target)
    return built


def _versions(
    connection: duckdb.DuckDBPyConnection,
    access: PortAccess,
    versions: list[ServedVersion],
    salt: str,
) -> list[ServedVersion]:
    """Each retained version of a granted port beside it, ``<product>.<port>__v<N>``, through
    the same policy as the published one; the versions as the consumer sees them."""
    partial = partial_view(access)
    kept = []
    for version in versions:
        if version.stored_as is None:  # dropped: listed, unless its count tells too much
            if access.row_filter is None:
                kept.append(replace(version, checksum="" if partial else version.checksum))
            continue
        table = relation(access.product, version.stored_as)
        if not version.published:
            source = f"src.{table}"
            try:
                seen = version_access(access, columns_of(connection, source))
            except PortError:
                continue  # the row filter cannot apply to it: not readable in the SQL port
            sql, params = policy_select(seen, source, salt)
            connection.execute(f"create table {table} as {sql}", params)
        rows, checksum = view_checksum(connection, f"select * from {table}", [])
        kept.append(replace(version, rows=rows, checksum=checksum if partial else version.checksum))
    return kept


def remove_sql_port(paths: ProjectPaths, consumer: str) -> bool:
    path = sql_port_path(paths, consumer)
    if path.exists():
        path.unlink()
        return True
    return False


@contextmanager
def connect(
    paths: ProjectPaths, consumer: str, limits: QueryLimits | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """The consumer's SQL port, read-only, locked down and bounded by ``limits``."""
    path = sql_port_path(paths, consumer)
    if not path.exists():
        raise PortError(
            404,
            f"consumer '{consumer}' has no SQL port yet",
            "run 'ddp ports build' (after issuing the consumer a token)",
        )
    limits = limits or QueryLimits.from_env()
    # No temporary directory: a query bigger than the memory limit fails instead of spilling
    # to the server's disk.
    config = {**LOCKED_DOWN, "memory_limit": limits.memory, "temp_directory": ""}
    connection = duckdb.connect(str(path), read_only=True, config=config)
    try:
        yield connection
    finally:
        connection.close()


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool
    ports: list[tuple[str, str]]  # (product, port) the query read


def _held(connection: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], tuple[str, str]]:
    """Each relation of the SQL port (folded) → the port it holds: a port's published table,
    and its retained versions ``<port>__v<N>``."""
    rows = connection.execute(f"select product, port from {relation(META, 'ports')}").fetchall()
    held = {(str(p).lower(), str(q).lower()): (str(p), str(q)) for p, q in rows}
    versions, _ = read_versions(connection)
    for (product, port), listed in versions.items():
        for version in listed:
            if version.stored_as is not None:
                held[(product.lower(), version.stored_as.lower())] = (product, port)
    return held


def run_query(
    paths: ProjectPaths,
    consumer: Consumer,
    query: str,
    max_rows: int = 10_000,
    limits: QueryLimits | None = None,
) -> QueryResult:
    """Run a consumer's query in its locked-down SQL port, checked and bounded.

    :class:`QueryRefused` (a :class:`PortError` naming the ports the query read) when it is
    refused (400), runs past the time limit (408) or the memory limit (413), or fails (400).
    """
    limits = limits or QueryLimits.from_env()
    check_shape(query)
    with connect(paths, consumer.id, limits) as connection:
        held = _held(connection)
        read = ports_read(parse_tree(connection, query), set(held))
        ports = sorted({held.get(name, name) for name in read})
        hidden = server_paths(
            connection, sql_port_path(paths, consumer.id), paths.data_dir, paths.root
        )
        fired = threading.Event()

        def interrupt() -> None:
            fired.set()
            connection.interrupt()

        timer = threading.Timer(limits.seconds, interrupt)
        timer.daemon = True
        timer.start()
        try:
            cursor = connection.execute(query)
            if cursor.description is None:
                return QueryResult([], [], False, ports)
            columns = [str(redact(d[0], hidden)) for d in cursor.description]
            rows = cursor.fetchmany(max_rows + 1)
        except duckdb.InterruptException:
            if not fired.is_set():  # interrupted by the caller (Ctrl-C), not the time limit
                raise QueryRefused(400, "the query was interrupted", None, ports) from None
            raise QueryRefused(
                408,
                f"aborted: the query ran past the SQL port's time limit ({limits.seconds:g} s)",
                f"narrow it (filters, limit); the limit is {TIMEOUT_ENV}",
                ports,
            ) from None
        except duckdb.OutOfMemoryException:
            raise QueryRefused(
                413,
                f"aborted: the query needed more than the SQL port's memory limit "
                f"({limits.memory})",
                f"narrow it (filters, fewer columns, limit); the limit is {MEMORY_ENV}",
                ports,
            ) from None
        except duckdb.Error as error:
            message = redact(str(error).splitlines()[0], hidden)
            raise QueryRefused(400, f"the query failed: {message}", None, ports) from None
        finally:
            timer.cancel()
    rows = [redact(row, hidden) for row in rows[: max_rows + 1]]
    return QueryResult(columns, rows[:max_rows], len(rows) > max_rows, ports)
