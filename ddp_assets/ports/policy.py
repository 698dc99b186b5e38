"""The policy engine: what a consumer may read of an output port, and the SQL that reads it.

:func:`resolve` turns a product's ``policies`` (grants, row filters, clearances, masking) and
the port's ODCS contract (columns, types, ``classification``) into a :class:`PortAccess` for
one consumer: the columns it sees (each in clear or masked) and the rows it sees (an OR of the
matching grants' AND-ed conditions). Every port reads through it, so REST, SQL and file ports
give the same answer. :func:`policy_select` compiles a :class:`PortAccess` into a DuckDB
``select`` with parameters; :mod:`ddp_assets.ports.postgres` compiles the same access into
PostgreSQL views and grants.

Row conditions are data (column, operator, value), never SQL text: column names are matched
against the contract and quoted, values are coerced to the column's type and bound as
parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ddp_assets.spec.errors import SpecErrors, SpecProblem, did_you_mean
from ddp_assets.spec.grants import coerce_value
from ddp_assets.spec.model import (
    LIST_OPS,
    NO_VALUE_OPS,
    Grant,
    MaskStrategy,
    RowCondition,
)
from ddp_assets.spec.odcs import load_contract
from ddp_assets.spec.registry import Product, Registry
from ddp_assets.warehouse import quote

CLEAR_CLASSIFICATIONS = ("public", "internal")
REDACTED = "[redacted]"


class PortError(Exception):
    """A request a port refuses: ``status`` is the HTTP status (400, 403, 404)."""

    def __init__(self, status: int, message: str, hint: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class Consumer:
    """Who reads: an id (the one its API tokens were issued to) and its roles."""

    id: str
    roles: tuple[str, ...] = ()

    @property
    def principals(self) -> frozenset[str]:
        """The names a grant's ``to`` may use for this consumer."""
        return frozenset({self.id, *(f"role:{role}" for role in self.roles)})


@dataclass(frozen=True)
class PortColumn:
    """A column as one consumer sees it: in clear, or masked by 'hash' or 'redact'."""

    name: str
    type: str
    classification: str | None = None
    mask: MaskStrategy | None = None
    description: str | None = None

    @property
    def output_type(self) -> str:
        return "varchar" if self.mask else self.type

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.output_type,
            "classification": self.classification,
            "masked": self.mask,
            "description": self.description,
        }


@dataclass(frozen=True)
class PortAccess:
    """What a consumer reads of a port: columns (masked or not) and rows (None: all)."""

    product: str
    port: str
    model: str
    consumer: Consumer
    columns: tuple[PortColumn, ...]
    row_filter: tuple[tuple[RowCondition, ...], ...] | None
    primary_key: tuple[str, ...] = ()
    grants: tuple[int, ...] = field(default=())

    def column(self, name: str) -> PortColumn | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


# -- from the contract -------------------------------------------------------------------


def port_columns(product: Product, port: str) -> tuple[list[PortColumn], tuple[str, ...]]:
    """The port's columns (name, type, classification) and primary key, from its contract."""
    output = product.spec.output_port(port)
    assert output is not None
    contract = load_contract(product.folder / output.contract)
    obj = contract.object_for(output.model)
    if obj is None:
        raise SpecErrors(
            [
                SpecProblem(
                    output.contract,
                    None,
                    "schema",
                    f"the contract describes no schema object '{output.model}'",
                    "name the schema object after the port's model",
                )
            ]
        )
    columns = [
        PortColumn(
            p.column,
            p.data_type,
            (p.classification or "").strip().lower() or None,
            description=p.description,
        )
        for p in obj.properties
    ]
    keys = tuple(p.column for p in obj.properties if p.primary_key)
    return columns, keys


def grant_covers(grant: Grant, port: str) -> bool:
    return "*" in grant.ports or port in grant.ports


def product_grants(product: Product) -> list[Grant]:
    """The spec's grants, then the unexpired grants of approved access requests (the grants
    store, :mod:`ddp_assets.ports.access`): every port reads through this."""
    from ddp_assets.ports.access import store_grants

    return [*product.spec.policies.grants, *store_grants(product)]


def resolve(product: Product, port: str, consumer: Consumer) -> PortAccess:
    """What ``consumer`` may read of ``product.port``; :class:`PortError` 403/404 otherwise."""
    spec = product.spec
    output = spec.output_port(port)
    if output is None:
        raise PortError(
            404,
            f"product '{product.id}' has no output port '{port}'",
            did_you_mean(port, [p.name for p in spec.output_ports])
            or f"its output ports: {', '.join(p.name for p in spec.output_ports)}",
        )
    matching = [
        (index, grant)
        for index, grant in enumerate(product_grants(product))
        if grant.to in consumer.principals and grant_covers(grant, port)
    ]
    if not matching:
        raise PortError(
            403,
            f"consumer '{consumer.id}' is not granted port '{product.id}.{port}'",
            f"ask for access: ddp access request {product.id} {port} --consumer {consumer.id} "
            "--purpose '...' (or POST /access/requests); owners: " + ", ".join(spec.owners),
        )
    cleared = {c.lower() for _, grant in matching for c in grant.cleared_for}
    columns, keys = port_columns(product, port)
    masked = []
    for column in columns:
        level = column.classification
        mask: MaskStrategy | None = None
        if level not in (None, *CLEAR_CLASSIFICATIONS, *cleared) and "*" not in cleared:
            mask = spec.policies.masking.get(level or "", "hash")
        masked.append(PortColumn(column.name, column.type, level, mask, column.description))
    if any(not grant.rows for _, grant in matching):
        row_filter = None
    else:
        row_filter = tuple(tuple(grant.rows) for _, grant in matching)
    return PortAccess(
        product.id,
        port,
        output.model,
        consumer,
        tuple(masked),
        row_filter,
        keys,
        tuple(index for index, _ in matching),
    )


def readable_ports(registry: Registry, consumer: Consumer) -> dict[str, list[str]]:
    """Product → the ports ``consumer`` is granted (products with none are left out)."""
    found: dict[str, list[str]] = {}
    for product in registry.products.values():
        grants = product_grants(product)
        for output in product.spec.output_ports:
            if any(g.to in consumer.principals and grant_covers(g, output.name) for g in grants):
                found.setdefault(product.id, []).append(output.name)
    return found


# -- values ------------------------------------------------------------------------------


def coerce(value: Any, column: PortColumn) -> Any:
    """``value`` as the column's Python type; ValueError with a readable message otherwise."""
    return coerce_value(value, column.name, column.type, column.output_type)


# -- the DuckDB compiler -----------------------------------------------------------------

_OPS = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def condition_sql(
    condition: RowCondition, column: PortColumn, target: str | None = None
) -> tuple[str, list[Any]]:
    """One condition as SQL with ``?`` parameters (``target``: the expression to test)."""
    expression = target or quote(column.name)
    if condition.op in NO_VALUE_OPS:
        return f"{expression} is {'' if condition.op == 'is_null' else 'not '}null", []
    if condition.op in LIST_OPS:
        values = condition.value if isinstance(condition.value, list) else [condition.value]
        params = [coerce(v, column) for v in values]
        marks = ", ".join("?" for _ in params)
        negate = "not " if condition.op == "not_in" else ""
        return f"{expression} {negate}in ({marks})", params
    return f"{expression} {_OPS[condition.op]} ?", [coerce(condition.value, column)]


def conditions_sql(
    conditions: Sequence[RowCondition], columns: dict[str, PortColumn]
) -> tuple[str, list[Any]]:
    """AND of conditions (names must be in ``columns``; KeyError otherwise)."""
    parts, params = [], []
    for condition in conditions:
        sql, values = condition_sql(condition, columns[condition.column])
        parts.append(sql)
        params.extend(values)
    return (" and ".join(parts) or "true"), params


def column_sql(column: PortColumn) -> tuple[str, list[Any]]:
    """The select expression of a column as the consumer sees it (the salt is a parameter)."""
    name = quote(column.name)
    if column.mask == "hash":
        # Salted so that common values (emails, names) cannot be found by hashing guesses;
        # the same salt everywhere keeps hashed columns joinable across ports.
        return f"sha256(? || cast({name} as varchar)) as {name}", ["__salt__"]
    if column.mask == "redact":
        return f"case when {name} is null then null else '{REDACTED}' end as {name}", []
    return name, []


def policy_select(access: PortAccess, source: str, salt: str) -> tuple[str, list[Any]]:
    """``select`` of the port as the consumer sees it, from ``source`` (a quoted relation).

    Row filters test the raw columns (a policy may filter on a column the consumer sees
    masked); everything a request adds is applied outside, to this query's output.
    """
    raw = {c.name: PortColumn(c.name, c.type, c.classification) for c in access.columns}
    expressions, params = [], []
    for column in access.columns:
        sql, values = column_sql(column)
        expressions.append(sql)
        params.extend(salt if v == "__salt__" else v for v in values)
    sql = f"select {', '.join(expressions)} from {source}"
    if access.row_filter is not None:
        branches = []
        for conditions in access.row_filter:
            branch, values = conditions_sql(conditions, raw)
            branches.append(f"({branch})")
            params.extend(values)
        sql += f" where {' or '.join(branches)}"
    return sql, params
