"""The second compiler of the policy: PostgreSQL roles, views and grants.

For a PostgreSQL warehouse, each output port ``<product>.<model>`` gets a view
``"<product>__ports"."<port>"`` and the product's grants (the spec's, then the approved access
requests' of the grants store, :mod:`ddp_assets.ports.access`) become:

- a role per grantee, named exactly as in the spec (``"role:analyst"``, ``"emea-sales"``);
  consumers are made members of their roles (:func:`consumer_statements`);
- ``ddp_ports``, a NOLOGIN role that owns the views and alone may read the published tables;
- the rows in the view's ``WHERE``, one branch per grant:
  ``pg_has_role(current_user, <grantee>, 'MEMBER') AND <conditions>``. A view reads its
  relations with its owner's privileges but ``current_user`` stays the consumer, so the rows a
  consumer sees are the OR of its grants' conditions, as in DuckDB. The view is a
  ``security_barrier``: a consumer's own functions never see the rows the branches filter out.
  Not row-level security on the published relation: since versioned publish it is a view
  (``<product>.<model>`` over the version's table, re-pointed at each publish), which RLS cannot
  cover; the filter in the port's view stays bound across publishes;
- masked columns in the view: ``CASE WHEN <the consumer is cleared> THEN col::text ELSE
  <salted SHA-256 hex | '[redacted]'> END``. The salt sits in a table only ``ddp_ports`` reads,
  so reading the view's definition does not give it away. Classified columns are ``text`` in
  the view for every consumer (a CASE has one type);
- ``GRANT SELECT`` on the view to the grantees of grants covering the port; nothing on the table;
- an approved request's expiry in its branches (``now() < until``): it stops on time in the
  view.

:func:`apply_ports` runs the script on the warehouse itself, in one transaction under an
advisory lock (two applies never interleave): ``ddp ports build`` and the ``ddp_ports_refresh``
sensor after each publish apply every port; an approval, a revocation and an expiry re-apply the
affected product's (:mod:`ddp_assets.ports.access`). A product whose apply failed is kept in the
ports' store (``postgres_pending``) and the next apply of any kind retries it.

Values in conditions are composed with :mod:`psycopg.sql` (``Literal``, ``Identifier``),
never by string formatting, and were validated against the contract by ``ddp validate``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, LiteralString

import psycopg
from psycopg import sql

from ddp_assets.ports.access import store_grants_until
from ddp_assets.ports.policy import (
    CLEAR_CLASSIFICATIONS,
    REDACTED,
    Consumer,
    PortColumn,
    coerce,
    grant_covers,
    port_columns,
)
from ddp_assets.spec.model import Grant, RowCondition
from ddp_assets.spec.registry import Product, Registry

if TYPE_CHECKING:
    from ddp_assets.ports.store import Store
    from ddp_assets.settings import ProjectPaths

OWNER_ROLE = "ddp_ports"
META_SCHEMA = "_ddp_ports"
# pg_advisory_xact_lock's key for an apply (any 64-bit number; 'ddpports' in ASCII)
APPLY_LOCK = 0x6464_7070_6F72_7473
PENDING_DDL = (
    "create table if not exists postgres_pending "
    "(product text primary key, error text not null, at text not null)"
)
MAX_IDENTIFIER = 63
_OPS: dict[str, LiteralString] = {
    "eq": "=",
    "ne": "<>",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
}


def view_schema(product: str) -> str:
    return f"{product}__ports"


def _role(name: str) -> sql.Identifier:
    if len(name.encode()) > MAX_IDENTIFIER:
        raise ValueError(f"'{name}' is longer than PostgreSQL's {MAX_IDENTIFIER}-byte role names")
    return sql.Identifier(name)


def _member(grantee: str) -> sql.Composed:
    return sql.SQL("pg_has_role(current_user, {}, 'MEMBER')").format(sql.Literal(grantee))


def _holds(grant: Grant, until: str | None) -> sql.Composed:
    """The consumer holds ``grant`` (a member of its grantee, before its expiry if it has one:
    an approved request's grant stops on time in the view, without re-running the script)."""
    if until is None:
        return _member(grant.to)
    return sql.SQL("({} and now() < {}::timestamptz)").format(_member(grant.to), sql.Literal(until))


def _condition(condition: RowCondition, column: PortColumn) -> sql.Composed:
    name = sql.Identifier(condition.column)
    if condition.op == "is_null":
        return sql.SQL("{} is null").format(name)
    if condition.op == "not_null":
        return sql.SQL("{} is not null").format(name)
    if condition.op in ("in", "not_in"):
        values = condition.value if isinstance(condition.value, list) else [condition.value]
        listed = sql.SQL(", ").join(sql.Literal(coerce(v, column)) for v in values)
        negate = sql.SQL("not ") if condition.op == "not_in" else sql.SQL("")
        return sql.SQL("{} {}in ({})").format(name, negate, listed)
    return sql.SQL("{} {} {}").format(
        name, sql.SQL(_OPS[condition.op]), sql.Literal(coerce(condition.value, column))
    )


def _grant_predicate(
    grant: Grant, columns: dict[str, PortColumn], until: str | None = None
) -> sql.Composed:
    parts = [_holds(grant, until)]
    parts += [_condition(c, columns[c.column]) for c in grant.rows]
    return sql.SQL("({})").format(sql.SQL(" and ").join(parts))


def _cleared(grants: list[tuple[Grant, str | None]], classification: str) -> sql.Composable:
    cleared = [
        _holds(g, until)
        for g, until in grants
        if "*" in g.cleared_for or classification in {c.lower() for c in g.cleared_for}
    ]
    return sql.SQL(" or ").join(cleared) if cleared else sql.SQL("false")


def _select_item(
    column: PortColumn, grants: list[tuple[Grant, str | None]], strategy: str
) -> sql.Composed:
    name = sql.Identifier(column.name)
    level = column.classification
    if level is None or level in CLEAR_CLASSIFICATIONS:
        return sql.SQL("{}").format(name)
    if strategy == "redact":
        masked: sql.Composable = sql.SQL("case when {} is null then null else {} end").format(
            name, sql.Literal(REDACTED)
        )
    else:
        masked = sql.SQL(
            "encode(sha256(convert_to((select value from {}.mask_salt) || {}::text, 'UTF8')), "
            "'hex')"
        ).format(sql.Identifier(META_SCHEMA), name)
    return sql.SQL("case when {} then {}::text else {} end as {}").format(
        _cleared(grants, level), name, masked, name
    )


@dataclass(frozen=True)
class PostgresPort:
    product: str
    port: str
    table: tuple[str, str]
    view: tuple[str, str]
    grantees: list[str]


def compile_port(
    product: Product, port: str, table: tuple[str, str] | None = None
) -> tuple[PostgresPort, list[sql.Composed]]:
    """Statements that publish one port through its view (re-runnable)."""
    output = product.spec.output_port(port)
    assert output is not None
    schema, name = table or (product.id, output.model)
    base = sql.Identifier(schema, name)
    columns, _ = port_columns(product, port)
    by_name = {c.name: c for c in columns}
    # the spec's grants, then the approved access requests' (the grants store, with expiry);
    # a stored grant filtering on a column the port lost is left out (ddp validate warns)
    held: list[tuple[Grant, str | None]] = [(g, None) for g in product.spec.policies.grants]
    held += [
        (g, until)
        for g, until in store_grants_until(product)
        if all(c.column in by_name for c in g.rows)
    ]
    grants = [(g, until) for g, until in held if grant_covers(g, port)]
    masking = product.spec.policies.masking
    view = (view_schema(product.id), port)
    target = sql.Identifier(*view)
    statements: list[sql.Composed] = [
        sql.SQL("revoke all on {} from public").format(base),
        sql.SQL("grant select on {} to {}").format(base, sql.Identifier(OWNER_ROLE)),
        # row-level security of earlier ddp versions on a published table: its policies go,
        # and RLS with them (enabled without a policy, it would hide every row from the view)
        sql.SQL(
            "do $$ declare p record; begin for p in select policyname from pg_policies "
            "where schemaname = {} and tablename = {} and policyname like 'ddp_grant_%' loop "
            "execute format('drop policy %I on %I.%I', p.policyname, {}, {}); end loop; "
            "if exists (select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = {} and c.relname = {} and c.relkind in ('r', 'p') "
            "and c.relrowsecurity) then execute format('alter table %I.%I disable row level "
            "security', {}, {}); end if; end $$"
        ).format(*(sql.Literal(v) for v in (schema, name) * 4)),
    ]
    rows = [_grant_predicate(g, by_name, until) for g, until in grants]
    where = sql.SQL(" or ").join(rows) if rows else sql.SQL("false")
    items = sql.SQL(", ").join(
        _select_item(c, grants, masking.get(c.classification or "", "hash")) for c in columns
    )
    statements += [
        sql.SQL("create schema if not exists {}").format(sql.Identifier(view[0])),
        sql.SQL("drop view if exists {}").format(target),
        sql.SQL("create view {} with (security_barrier) as select {} from {} where {}").format(
            target, items, base, where
        ),
        sql.SQL("alter view {} owner to {}").format(target, sql.Identifier(OWNER_ROLE)),
        sql.SQL("revoke all on {} from public").format(target),
    ]
    grantees = sorted({g.to for g, _ in grants})
    for grantee in grantees:
        statements += [
            sql.SQL("grant usage on schema {} to {}").format(
                sql.Identifier(view[0]), _role(grantee)
            ),
            sql.SQL("grant select on {} to {}").format(target, _role(grantee)),
        ]
    return PostgresPort(product.id, port, (schema, name), view, grantees), statements


def setup_statements(grantees: Iterable[str], salt: str) -> list[sql.Composed]:
    """The owner role, the salt table and a NOLOGIN role per grantee (re-runnable)."""
    statements: list[sql.Composed] = []
    for role in sorted({OWNER_ROLE, *grantees}):
        statements += setup_role(role)
    meta = sql.Identifier(META_SCHEMA)
    statements += [
        sql.SQL("create schema if not exists {}").format(meta),
        sql.SQL("revoke all on schema {} from public").format(meta),
        sql.SQL("create table if not exists {}.mask_salt (value text not null)").format(meta),
        sql.SQL("delete from {}.mask_salt").format(meta),
        sql.SQL("insert into {}.mask_salt values ({})").format(meta, sql.Literal(salt)),
        sql.SQL("revoke all on {}.mask_salt from public").format(meta),
        sql.SQL("grant usage on schema {} to {}").format(meta, sql.Identifier(OWNER_ROLE)),
        sql.SQL("grant select on {}.mask_salt to {}").format(meta, sql.Identifier(OWNER_ROLE)),
    ]
    return statements


def consumer_statements(consumers: Iterable[Consumer]) -> list[sql.Composed]:
    """A role per consumer (NOLOGIN: how it logs in is the deployment's), in its roles."""
    statements: list[sql.Composed] = []
    for consumer in consumers:
        statements += setup_role(consumer.id)
        for role in consumer.roles:
            statements += setup_role(f"role:{role}")
            statements.append(
                sql.SQL("grant {} to {}").format(_role(f"role:{role}"), _role(consumer.id))
            )
    return statements


def setup_role(name: str) -> list[sql.Composed]:
    _role(name)  # a name PostgreSQL can hold
    return [
        sql.SQL(
            "do $$ begin if not exists (select from pg_roles where rolname = {}) then "
            "execute format('create role %I nologin', {}); end if; end $$"
        ).format(sql.Literal(name), sql.Literal(name))
    ]


def compile_registry(
    registry: Registry, salt: str, tables: dict[tuple[str, str], tuple[str, str]] | None = None
) -> list[sql.Composed]:
    """Every port of every product (``tables``: (product, port) → its published table)."""
    ports = []
    for product in registry.products.values():
        for output in product.spec.output_ports:
            key = (product.id, output.name)
            if tables is not None and key not in tables:
                continue
            ports.append(compile_port(product, output.name, (tables or {}).get(key)))
    grantees = {g for port, _ in ports for g in port.grantees}
    return [*setup_statements(grantees, salt), *(s for _, stmts in ports for s in stmts)]


class ApplyError(RuntimeError):
    """Applying the ports' script to the PostgreSQL warehouse failed; the message names the
    products, the warehouse and the statement that failed."""

    hint = "the decision stays recorded; the next apply retries it ('ddp ports build')"


@dataclass
class ApplyReport:
    """What one apply did: the products and ports whose views it (re)built, the statements."""

    products: list[str] = field(default_factory=list)
    ports: list[tuple[str, str]] = field(default_factory=list)
    statements: int = 0


def published_tables(
    connection: Any, registry: Registry, products: Iterable[str] | None = None
) -> dict[tuple[str, str], tuple[str, str]]:
    """(product, port) → ``<product>.<model>`` for the ports published in the warehouse (a
    port not published yet gets no view: its relation does not exist)."""
    wanted = None if products is None else set(products)
    candidates = {
        (product.id, output.name): (product.id, output.model)
        for product in registry.products.values()
        if wanted is None or product.id in wanted
        for output in product.spec.output_ports
    }
    if not candidates:
        return {}
    rows = connection.execute(
        "select n.nspname, c.relname from pg_catalog.pg_class c "
        "join pg_catalog.pg_namespace n on n.oid = c.relnamespace "
        "where c.relkind in ('r', 'p', 'v', 'm') and n.nspname = any(%s)",
        [sorted({schema for schema, _ in candidates.values()})],
    ).fetchall()
    present = {(str(schema), str(name)) for schema, name in rows}
    return {key: table for key, table in candidates.items() if table in present}


def _pending(store: Store) -> set[str]:
    store.execute(PENDING_DDL)
    return {str(product) for (product,) in store.execute("select product from postgres_pending")}


def apply_ports(
    paths: ProjectPaths,
    registry: Registry,
    store: Store,
    products: Iterable[str] | None = None,
) -> ApplyReport | None:
    """Run the compiled script on the project's PostgreSQL warehouse (``None`` on DuckDB).

    ``products``: only those products' ports (an access decision), plus any product an
    earlier apply failed for; ``None``: every product. One transaction under
    ``pg_advisory_xact_lock``: a concurrent apply waits, a failure changes nothing in the
    warehouse and raises :class:`ApplyError`, and the products stay pending for the next apply.
    """
    from ddp_assets.ports.serving import mask_salt
    from ddp_assets.ports.tokens import active_consumers
    from ddp_assets.warehouse import warehouse_for
    from ddp_assets.warehouse.base import WarehouseUnavailable
    from ddp_assets.warehouse.postgres import PostgresWarehouse

    warehouse = warehouse_for(paths)
    if not isinstance(warehouse, PostgresWarehouse):
        return None
    pending = _pending(store)
    selected = (
        sorted(registry.products)
        if products is None
        else sorted({*products, *pending} & set(registry.products))
    )
    report = ApplyReport(products=selected)
    if products is not None and not selected:
        return report
    consumers = active_consumers(store)
    salt = mask_salt(paths)
    current: sql.Composable = sql.SQL("connect")
    try:
        with warehouse.writer() as session, session.raw.transaction():
            raw = session.raw
            current = sql.SQL("select pg_advisory_xact_lock({})").format(sql.Literal(APPLY_LOCK))
            raw.execute(current)
            tables = published_tables(raw, registry, selected)
            ports = [
                compile_port(registry.products[product], port, table)
                for (product, port), table in sorted(tables.items())
            ]
            grantees = {g for port, _ in ports for g in port.grantees}
            statements = [
                *setup_statements(grantees, salt),
                *consumer_statements(consumers),
                *(s for _, stmts in ports for s in stmts),
            ]
            for statement in statements:
                current = statement
                raw.execute(statement)
            report.ports = sorted(tables)
            report.statements = len(statements)
    except (psycopg.Error, WarehouseUnavailable, ValueError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        failed = current.as_string(None) if isinstance(current, sql.Composed) else "connect"
        if "mask_salt values" in failed:  # never the salt in a message
            failed = f"insert into {META_SCHEMA}.mask_salt (the masking salt)"
        message = (
            f"applying the PostgreSQL ports of {', '.join(selected) or 'no product'} to "
            f"{warehouse.location} failed: {reason} (at: {failed[:160]})"
        )
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for product in selected:
            store.execute(
                "insert into postgres_pending (product, error, at) values (?, ?, ?) "
                "on conflict (product) do update set error = excluded.error, at = excluded.at",
                (product, message[:500], now),
            )
        raise ApplyError(message) from None
    if selected:
        marks = ", ".join("?" for _ in selected)
        store.execute(f"delete from postgres_pending where product in ({marks})", tuple(selected))
    return report


def pending_products(store: Store) -> list[str]:
    """Products whose last apply failed (the next apply retries them)."""
    return sorted(_pending(store))
