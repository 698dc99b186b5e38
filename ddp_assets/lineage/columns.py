"""Column lineage from SQL: which source columns each output column is computed from.

The SQL is parsed with sqlglot (in the warehouse's dialect: DuckDB, or Postgres), qualified
against the known schemas of the tables it reads, and every output column is traced back to the
tables it comes from with ``sqlglot.lineage``. Anything sqlglot cannot follow yields no lineage
for that column, never an error: lineage must not break a run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlglot import exp, parse_one
from sqlglot.errors import SqlglotError
from sqlglot.lineage import Node, lineage
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import build_scope

log = logging.getLogger(__name__)

DIALECT = "duckdb"

TableName = tuple[str, str, str]  # (database, schema, table)
Schemas = Mapping[TableName, Mapping[str, str]]  # table → column → type


@dataclass(frozen=True)
class SourceColumn:
    table: TableName
    column: str
    subtype: str  # IDENTITY | TRANSFORMATION | AGGREGATION (OpenLineage DIRECT subtypes)


def _nested(schemas: Schemas) -> dict[str, object]:
    nested: dict[str, Any] = {}
    for (database, schema, table), columns in schemas.items():
        nested.setdefault(database, {}).setdefault(schema, {})[table] = dict(columns)
    return nested


def _qualified(sql: str, schemas: Schemas, dialect: str = DIALECT) -> Any:
    try:
        expression = parse_one(sql, dialect=dialect)
        return qualify(
            expression,
            schema=_nested(schemas),
            dialect=dialect,
            validate_qualify_columns=False,
            identify=False,
        )
    except SqlglotError as error:
        log.debug("sqlglot cannot qualify the SQL: %s", error)
        return None
    except Exception as error:  # sqlglot raises plain errors on some unsupported syntax
        log.debug("sqlglot failed on the SQL: %s", error)
        return None


def output_columns(sql: str, schemas: Schemas, dialect: str = DIALECT) -> list[str]:
    """The columns the query returns (``*`` expanded from the known schemas)."""
    expression = _qualified(sql, schemas, dialect)
    if not isinstance(expression, exp.Query):
        return []
    return [name for name in expression.named_selects if name and name != "*"]


def _subtype(path: list[Node]) -> str:
    kinds = "IDENTITY"
    for node in path:
        expression = node.expression
        inner = expression.this if isinstance(expression, exp.Alias) else expression
        if isinstance(inner, exp.Column) or isinstance(expression, exp.Table):
            continue
        if inner.find(exp.AggFunc) is not None:
            return "AGGREGATION"
        kinds = "TRANSFORMATION"
    return kinds


def _leaves(node: Node, path: list[Node]) -> list[tuple[Node, list[Node]]]:
    if not node.downstream:
        return [(node, path)]
    found: list[tuple[Node, list[Node]]] = []
    for child in node.downstream:
        found.extend(_leaves(child, [*path, child]))
    return found


def column_lineage(
    sql: str, schemas: Schemas, dialect: str = DIALECT
) -> dict[str, list[SourceColumn]]:
    """Output column → the source table columns it is computed from (directly)."""
    expression = _qualified(sql, schemas, dialect)
    if not isinstance(expression, exp.Query):
        return {}
    scope = build_scope(expression)
    result: dict[str, list[SourceColumn]] = {}
    for name in expression.named_selects:
        if not name or name == "*":
            continue
        try:
            root = lineage(
                name,
                expression,
                schema=_nested(schemas),
                dialect=dialect,
                scope=scope,
                copy=False,
            )
        except Exception as error:  # sqlglot cannot follow every construct
            log.debug("no column lineage for %s: %s", name, error)
            continue
        sources: dict[tuple[TableName, str], SourceColumn] = {}
        for leaf, path in _leaves(root, [root]):
            table = leaf.expression
            if not isinstance(table, exp.Table):
                continue
            key = (table.catalog, table.db, table.name)
            column = leaf.name.rsplit(".", 1)[-1]
            if not all(key) or not column:
                continue
            found = SourceColumn(key, column, _subtype(path[:-1]))
            previous = sources.get((key, column))
            if previous is None or previous.subtype == "IDENTITY":
                sources[(key, column)] = found
        result[name] = sorted(sources.values(), key=lambda s: (s.table, s.column))
    return result
