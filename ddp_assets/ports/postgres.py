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
  view; an approval or a revocation after the script ran needs the script run again.

Values in conditions are composed with :mod:`psycopg.sql` (``Literal``, ``Identifier``),
never by string formatting, and were validated against the contract by ``ddp validate``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import LiteralString

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

OWNER_ROLE = "ddp_ports"
META_SCHEMA = "_ddp_ports"
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
