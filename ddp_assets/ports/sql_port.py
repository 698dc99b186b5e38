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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from ddp_assets.ports.policy import Consumer, PortError, policy_select, readable_ports, resolve
from ddp_assets.ports.serving import (
    LOCKED_DOWN,
    META,
    ServedPort,
    attach_waiting,
    served_ports,
    serving_path,
    write_meta,
)
from ddp_assets.ports.store import ports_dir
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.registry import Registry
from ddp_assets.warehouse import quote, relation


def sql_ports_dir(paths: ProjectPaths) -> Path:
    return ports_dir(paths) / "sql"


def sql_port_path(paths: ProjectPaths, consumer: str) -> Path:
    return sql_ports_dir(paths) / f"{consumer}.duckdb"


def build_sql_port(
    paths: ProjectPaths, registry: Registry, consumer: Consumer, salt: str
) -> list[ServedPort]:
    """Write the consumer's database from the serving snapshot and swap it in."""
    target = sql_port_path(paths, consumer.id)
    target.parent.mkdir(parents=True, exist_ok=True)
    building = target.with_name(f".{consumer.id}.{os.getpid()}.building.duckdb")
    building.unlink(missing_ok=True)
    built: list[ServedPort] = []
    now = datetime.now(UTC).isoformat(timespec="seconds")
    connection = duckdb.connect(str(building))
    try:
        attach_waiting(connection, serving_path(paths), "src")
        snapshot = served_ports(connection, "src")
        for product_id, ports in sorted(readable_ports(registry, consumer).items()):
            product = registry.products[product_id]
            for port in ports:
                served = snapshot.get((product_id, port))
                if served is None:
                    continue  # not published yet
                access = resolve(product, port, consumer)
                sql, params = policy_select(access, f"src.{relation(product_id, port)}", salt)
                connection.execute(f"create schema if not exists {quote(product_id)}")
                connection.execute(f"create table {relation(product_id, port)} as {sql}", params)
                row = connection.execute(
                    f"select count(*) from {relation(product_id, port)}"
                ).fetchone()
                assert row is not None
                built.append(
                    ServedPort(
                        product_id,
                        port,
                        served.model,
                        int(row[0]),
                        served.run_id,
                        served.published_at,
                        served.contract_id,
                        served.contract_version,
                        served.checksum,
                        now,
                    )
                )
        write_meta(connection, built)
        connection.execute("detach src")
    finally:
        connection.close()
    os.replace(building, target)
    return built


def remove_sql_port(paths: ProjectPaths, consumer: str) -> bool:
    path = sql_port_path(paths, consumer)
    if path.exists():
        path.unlink()
        return True
    return False


@contextmanager
def connect(paths: ProjectPaths, consumer: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """The consumer's SQL port, read-only and locked down."""
    path = sql_port_path(paths, consumer)
    if not path.exists():
        raise PortError(
            404,
            f"consumer '{consumer}' has no SQL port yet",
            "run 'ddp ports build' (after issuing the consumer a token)",
        )
    connection = duckdb.connect(str(path), read_only=True, config=LOCKED_DOWN)
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


def tables_read(query: str) -> list[tuple[str, str]]:
    """(schema, table) pairs a query names, for the audit log (PortError 400 if unparsable)."""
    try:
        statements = sqlglot.parse(query, read="duckdb")
    except ParseError as error:
        raise PortError(400, f"the query does not parse: {str(error).splitlines()[0]}") from None
    found: set[tuple[str, str]] = set()
    for statement in statements:
        if statement is None:
            continue
        for table in statement.find_all(exp.Table):
            if table.db and table.name:
                found.add((table.db, table.name))
    return sorted(found)


def run_query(
    paths: ProjectPaths, consumer: Consumer, query: str, max_rows: int = 10_000
) -> QueryResult:
    """Run a consumer's query in its locked-down SQL port."""
    ports = [t for t in tables_read(query) if t[0] != META]
    with connect(paths, consumer.id) as connection:
        try:
            cursor = connection.execute(query)
        except duckdb.Error as error:
            raise PortError(400, f"the query failed: {str(error).splitlines()[0]}") from None
        if cursor.description is None:
            return QueryResult([], [], False, ports)
        columns = [d[0] for d in cursor.description]
        rows = cursor.fetchmany(max_rows + 1)
    return QueryResult(columns, rows[:max_rows], len(rows) > max_rows, ports)
