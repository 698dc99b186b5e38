"""The PostgreSQL compiler of the policy, on a throwaway server: views, grants and row filters.

The demo ``customers`` product's policy is compiled onto a table of our own (not the warehouse
target), and each consumer, as its own PostgreSQL role, must read exactly what the DuckDB
compiler gives it from the same rows: same rows, same masked values.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
from psycopg import sql

from ddp_assets.ports.policy import Consumer, resolve
from ddp_assets.ports.postgres import compile_port, consumer_statements, setup_statements
from ddp_assets.spec.registry import Registry

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SALT = "pg-test-salt"
COLUMNS = (
    "customer_id bigint, first_name varchar, last_name varchar, email varchar, "
    "country varchar, segment varchar, signup_date date, updated_at timestamp"
)
ROWS: list[tuple[Any, ...]] = [
    (1, "Ann", "Lee", "ann@example.com", "DE", "smb", date(2024, 1, 2), datetime(2024, 5, 1, 8)),
    (2, "Bob", "Ray", "bob@example.com", "US", "consumer", date(2023, 3, 4), datetime(2024, 5, 2)),
    (3, "Cy", None, "cy@example.com", "FR", "enterprise", date(2022, 6, 7), datetime(2024, 5, 3)),
    (4, "Di", "O'Neil", "di@example.com", "JP", "smb", date(2021, 8, 9), datetime(2024, 5, 4)),
]
CONSUMERS = {
    "emea-sales": Consumer("emea-sales"),
    "pg-analyst": Consumer("pg-analyst", ("analyst",)),
    "pg-crm": Consumer("pg-crm", ("crm",)),
    "pg-nobody": Consumer("pg-nobody"),
}


@pytest.fixture(scope="module")
def connection(postgres_server: Any) -> Any:
    registry = Registry.load(ROOT / "ddp_assets" / "defs", ROOT)
    product = registry.products["customers"]
    dsn = postgres_server.create_database("ports_policy")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create schema customers")
        conn.execute(f"create table customers.customers ({COLUMNS})")
        with conn.cursor() as cursor:
            cursor.executemany(
                "insert into customers.customers values (%s, %s, %s, %s, %s, %s, %s, %s)", ROWS
            )
        port, statements = compile_port(product, "customers")
        for statement in [
            *setup_statements(port.grantees, SALT),
            *consumer_statements(CONSUMERS.values()),
            *statements,
            *statements,  # re-runnable
        ]:
            conn.execute(statement)
        yield conn, product


def duckdb_answer(product: Any, consumer: Consumer) -> list[tuple[Any, ...]]:
    from ddp_assets.ports.policy import policy_select

    con = duckdb.connect()
    con.execute(f"create table people ({COLUMNS})")
    con.executemany("insert into people values (?, ?, ?, ?, ?, ?, ?, ?)", ROWS)
    access = resolve(product, "customers", consumer)
    query, params = policy_select(access, "people", SALT)
    return sorted(con.execute(query, params).fetchall())


def as_role(conn: Any, role: str, query: sql.Composable) -> list[tuple[Any, ...]]:
    conn.execute(sql.SQL("set role {}").format(sql.Identifier(role)))
    try:
        return sorted(conn.execute(query).fetchall())
    finally:
        conn.execute("reset role")


VIEW = sql.SQL("select * from customers__ports.customers")


@pytest.mark.parametrize("consumer", ["emea-sales", "pg-analyst", "pg-crm"])
def test_postgres_gives_the_duckdb_answer(connection: Any, consumer: str) -> None:
    conn, product = connection
    postgres = as_role(conn, consumer, VIEW)
    assert postgres == duckdb_answer(product, CONSUMERS[consumer])
    assert postgres, "the consumer sees some rows"


def test_row_filter_and_masking_hold_in_postgres(connection: Any) -> None:
    conn, _ = connection
    emea = as_role(conn, "emea-sales", VIEW)
    assert sorted(r[4] for r in emea) == ["DE", "FR"]
    assert all(len(r[3]) == 64 and "@" not in r[3] for r in emea)
    clear = as_role(conn, "pg-crm", VIEW)
    assert [r[3] for r in clear] == [r[3] for r in sorted(ROWS)]


def test_consumers_cannot_go_around_the_view(connection: Any) -> None:
    conn, _ = connection
    for role, query in (
        ("pg-nobody", VIEW),
        ("emea-sales", sql.SQL("select * from customers.customers")),
        ("emea-sales", sql.SQL("select * from _ddp_ports.mask_salt")),
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            as_role(conn, role, query)


def test_every_demo_policy_compiles_and_runs(postgres_server: Any) -> None:
    """The whole script (``ddp ports postgres``) over tables shaped like every demo port."""
    from ddp_assets.ports.policy import port_columns
    from ddp_assets.ports.postgres import compile_registry

    registry = Registry.load(ROOT / "ddp_assets" / "defs", ROOT)
    dsn = postgres_server.create_database("ports_all")
    with psycopg.connect(dsn, autocommit=True) as conn:
        for product in registry.products.values():
            conn.execute(sql.SQL("create schema {}").format(sql.Identifier(product.id)))
            for output in product.spec.output_ports:
                columns, _ = port_columns(product, output.name)
                conn.execute(
                    sql.SQL("create table {} ({})").format(
                        sql.Identifier(product.id, output.model),
                        sql.SQL(", ").join(
                            sql.SQL("{} {}").format(sql.Identifier(c.name), pg_type(c.type))
                            for c in columns
                        ),
                    )
                )
        statements = compile_registry(registry, SALT)
        with conn.transaction():
            for statement in statements:
                conn.execute(statement)
        views = conn.execute(
            "select count(*) from information_schema.views where table_schema like '%\\_\\_ports'"
        ).fetchone()
        ports = sum(len(p.spec.output_ports) for p in registry.products.values())
        assert views == (ports,)
        conn.execute(sql.SQL("set role {}").format(sql.Identifier("role:product-analyst")))
        assert conn.execute("select count(*) from usage_events__ports.events").fetchone() == (0,)
        conn.execute("reset role")


def pg_type(duckdb_type: str) -> sql.SQL:
    """The demo contracts' DuckDB types in PostgreSQL (only 'double' is spelt differently)."""
    known = {"double": "double precision", "varchar": "varchar", "bigint": "bigint"}
    known |= {"integer": "integer", "boolean": "boolean", "date": "date"}
    known |= {"timestamp": "timestamp"}
    if duckdb_type in known:
        return sql.SQL(known[duckdb_type])  # type: ignore[arg-type]
    assert duckdb_type.startswith("decimal("), duckdb_type
    return sql.SQL("numeric") + sql.SQL(duckdb_type.removeprefix("decimal"))  # type: ignore[arg-type]
