"""A consumer's read of a port: column selection, typed filters, ordering and a page.

Everything a request names is checked against the columns the consumer sees (the port's
:class:`~ddp_assets.ports.policy.PortAccess`) before any SQL is written: unknown columns,
unknown operators and values of the wrong type are :class:`PortError` 400 with a message
naming the part at fault. Names are quoted from the contract's own spelling, values are bound
as parameters, and everything applies to the output of the policy's query, so a request can
neither reach a masked column's raw values nor rows the policy filtered out. Filtering or
sorting on a masked column is refused: comparisons would reveal what the mask hides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, get_args

import duckdb
from pydantic import ValidationError

from ddp_assets.ports.policy import (
    PortAccess,
    PortColumn,
    PortError,
    condition_sql,
    policy_select,
)
from ddp_assets.spec.errors import did_you_mean
from ddp_assets.spec.model import LIST_OPS, NO_VALUE_OPS, FilterOp, RowCondition
from ddp_assets.warehouse import quote

MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000_000
MAX_FILTERS = 20
MAX_PARAM_LENGTH = 1000
OPERATORS: tuple[str, ...] = get_args(FilterOp)
FILTER_SYNTAX = (
    "write filter=<column>:<op>:<value>, e.g. filter=country:eq:DE, filter=country:in:DE,FR "
    f"or filter=email:is_null; operators: {', '.join(OPERATORS)}"
)


@dataclass(frozen=True)
class ReadRequest:
    """What a consumer asked for, already checked against the port."""

    columns: tuple[PortColumn, ...]
    filters: tuple[RowCondition, ...] = ()
    order: tuple[tuple[str, bool], ...] = ()  # (column, descending)
    limit: int = 100
    offset: int = 0


@dataclass
class Page:
    columns: list[PortColumn]
    rows: list[tuple[Any, ...]]
    limit: int
    offset: int
    next_offset: int | None
    filters: list[dict[str, Any]] = field(default_factory=list)


def _column(access: PortAccess, name: str, what: str) -> PortColumn:
    """The column named exactly ``name`` (no trimming, no case folding: names are data)."""
    column = access.column(name)
    if column is None:
        shown = name if len(name) <= 80 else name[:80] + "..."
        raise PortError(
            400,
            f"{what}: port '{access.product}.{access.port}' has no column {shown!r}",
            did_you_mean(name, access.names) or f"its columns: {', '.join(access.names)}",
        )
    return column


def _unmasked(column: PortColumn, what: str) -> PortColumn:
    if column.mask:
        raise PortError(
            400,
            f"{what}: column '{column.name}' is masked ({column.mask}) for you and cannot be "
            "filtered or sorted on",
            "ask the product's owners for clearance (cleared_for in the port's grant)",
        )
    return column


def _check_length(text: str, what: str) -> None:
    if len(text) > MAX_PARAM_LENGTH or "\x00" in text:
        raise PortError(400, f"{what} is too long or holds a NUL byte")


def parse_columns(access: PortAccess, text: str | None) -> tuple[PortColumn, ...]:
    if text is None or text == "":
        return access.columns
    _check_length(text, "columns")
    chosen: list[PortColumn] = []
    for name in text.split(","):
        column = _column(access, name, "columns")
        if column not in chosen:
            chosen.append(column)
    return tuple(chosen)


def parse_filter(access: PortAccess, text: str) -> RowCondition:
    _check_length(text, "filter")
    parts = text.split(":", 2)
    if len(parts) < 2:
        raise PortError(400, f"filter {text[:80]!r} is not <column>:<op>:<value>", FILTER_SYNTAX)
    name, op = parts[0], parts[1].strip().lower()
    column = _unmasked(_column(access, name, "filter"), "filter")
    if op not in OPERATORS:
        raise PortError(
            400,
            f"filter on '{column.name}': unknown operator {op[:40]!r}",
            did_you_mean(op, OPERATORS) or f"operators: {', '.join(OPERATORS)}",
        )
    value: Any = None
    if op in NO_VALUE_OPS:
        if len(parts) == 3 and parts[2] != "":
            raise PortError(400, f"filter on '{column.name}': '{op}' takes no value", FILTER_SYNTAX)
    elif len(parts) < 3:
        raise PortError(400, f"filter on '{column.name}': '{op}' needs a value", FILTER_SYNTAX)
    elif op in LIST_OPS:
        value = parts[2].split(",")
    else:
        value = parts[2]
    try:
        condition = RowCondition(column=column.name, op=op, value=value)  # type: ignore[arg-type]
        condition_sql(condition, column)  # coerces every value to the column's type
    except ValidationError as error:
        message = error.errors(include_url=False)[0]
        context = message.get("ctx") or {}
        raise PortError(
            400,
            f"filter on '{column.name}': {context.get('message', message['msg'])}",
            FILTER_SYNTAX,
        ) from None
    except ValueError as error:
        raise PortError(400, f"filter on '{column.name}': {error}") from None
    return condition


def parse_order(access: PortAccess, text: str | None) -> tuple[tuple[str, bool], ...]:
    if text is None or text == "":
        return ()
    _check_length(text, "order")
    order: list[tuple[str, bool]] = []
    for item in text.split(","):
        descending = item.startswith("-")
        column = _unmasked(_column(access, item.removeprefix("-"), "order"), "order")
        order.append((column.name, descending))
    return tuple(order)


def parse_request(
    access: PortAccess,
    *,
    columns: str | None = None,
    filters: Sequence[str] = (),
    order: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> ReadRequest:
    if not 1 <= limit <= MAX_LIMIT:
        raise PortError(400, f"limit {limit} is out of range", f"use 1 to {MAX_LIMIT}")
    if not 0 <= offset <= MAX_OFFSET:
        raise PortError(400, f"offset {offset} is out of range", f"use 0 to {MAX_OFFSET}")
    if len(filters) > MAX_FILTERS:
        raise PortError(400, f"{len(filters)} filters; at most {MAX_FILTERS} are allowed")
    return ReadRequest(
        parse_columns(access, columns),
        tuple(parse_filter(access, f) for f in filters),
        parse_order(access, order),
        limit,
        offset,
    )


def read_sql(
    access: PortAccess, request: ReadRequest, source: str, salt: str
) -> tuple[str, list[Any]]:
    """The page's query: the request applied to the output of the policy's query."""
    inner, params = policy_select(access, source, salt)
    selected = ", ".join(quote(c.name) for c in request.columns)
    sql = f"select {selected} from ({inner}) as port"
    if request.filters:
        by_name = {c.name: c for c in access.columns}
        parts = []
        for condition in request.filters:
            part, values = condition_sql(condition, by_name[condition.column])
            parts.append(part)
            params.extend(values)
        sql += " where " + " and ".join(parts)
    order = [f"{quote(name)}{' desc' if desc else ''} nulls last" for name, desc in request.order]
    # A stable order makes pages add up: the request's, then the primary key, then all columns.
    order += [quote(k) for k in access.primary_key if access.column(k)]
    order += [str(i) for i in range(1, len(request.columns) + 1)]
    sql += f" order by {', '.join(order)} limit ? offset ?"
    params.extend([request.limit + 1, request.offset])
    return sql, params


def read_page(
    cursor: duckdb.DuckDBPyConnection,
    access: PortAccess,
    request: ReadRequest,
    source: str,
    salt: str,
) -> Page:
    sql, params = read_sql(access, request, source, salt)
    rows = cursor.execute(sql, params).fetchall()
    more = len(rows) > request.limit
    return Page(
        list(request.columns),
        rows[: request.limit],
        request.limit,
        request.offset,
        request.offset + request.limit if more else None,
        [{"column": f.column, "op": f.op, "value": f.value} for f in request.filters],
    )
