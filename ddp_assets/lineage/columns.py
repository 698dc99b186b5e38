"""Column lineage from SQL: which source columns each output column is computed from.

The SQL is parsed with sqlglot (in the warehouse's dialect: DuckDB, or Postgres), qualified
against the known schemas of the tables it reads, and every output column is traced back to the
tables it comes from with ``sqlglot.lineage``. Anything sqlglot cannot follow yields no lineage
for that column, never an error: lineage must not break a run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlglot import exp, parse_one
from sqlglot.errors import SqlglotError
from sqlglot.lineage import Node, lineage
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import build_scope
from sqlglot.schema import MappingSchema

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
    """The columns the query returns (``*`` expanded from the known schemas).

    Memoized with the column lineage (same key, its own prefix): qualifying the SQL is the
    expensive part, and the answer only changes with the SQL and the input schemas. The column
    lineage of the same SQL records it too, so asking both qualifies once.
    """
    key = "columns:" + _memo_key(sql, schemas, dialect)
    _USED.add(key)
    found = _MEMO.get(key)
    if found is None:
        found = _MEMO[key] = _named(_qualified(sql, schemas, dialect))
    return list(found)


def _named(expression: Any) -> dict[str, list[SourceColumn]]:
    """The output column names of a qualified query, as a memo entry (no sources)."""
    if not isinstance(expression, exp.Query):
        return {}
    return {name: [] for name in expression.named_selects if name and name != "*"}


_RANK = {"IDENTITY": 0, "TRANSFORMATION": 1, "AGGREGATION": 2}


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


# Column lineage depends only on the SQL and the schemas it is qualified against, and sqlglot
# takes most of a run's lineage emission to compute it (docs/performance.md): results are kept
# by a digest of both, in memory and, inside `remembered(path)`, in a JSON file between runs.
_MEMO: dict[str, dict[str, list[SourceColumn]]] = {}
_USED: set[str] = set()


_MEMO_VERSION = 2  # raise when what is computed changes: the memo file outlives the code


def _memo_key(sql: str, schemas: Schemas, dialect: str) -> str:
    digest = hashlib.sha256(f"{_MEMO_VERSION}\n{dialect}\n{sql}".encode())
    for table in sorted(schemas):
        digest.update(json.dumps([table, sorted(schemas[table].items())]).encode())
    return digest.hexdigest()


def column_lineage(
    sql: str, schemas: Schemas, dialect: str = DIALECT
) -> dict[str, list[SourceColumn]]:
    """Output column → the source table columns it is computed from (directly)."""
    key = _memo_key(sql, schemas, dialect)
    _USED.add(key)
    found = _MEMO.get(key)
    if found is None:
        expression = _qualified(sql, schemas, dialect)
        # the output columns come with the qualified query: output_columns need not qualify it
        _MEMO.setdefault("columns:" + key, _named(expression))
        found = _MEMO[key] = _column_lineage(expression, schemas, dialect)
    return {name: list(sources) for name, sources in found.items()}


@contextmanager
def remembered(path: Path) -> Iterator[None]:
    """Column lineage computed by earlier runs is read from ``path``; what this block used is
    written back (so the file holds the current models only). Best effort: lineage never breaks
    a run, so an unreadable or unwritable file only means computing again."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        for key, columns in stored.items():
            _MEMO.setdefault(
                key,
                {
                    name: [SourceColumn((t[0], t[1], t[2]), c, k) for t, c, k in sources]
                    for name, sources in columns.items()
                },
            )
    except (OSError, ValueError, TypeError, IndexError):
        pass
    _USED.clear()
    try:
        yield
    finally:
        document = {
            key: {
                name: [[list(s.table), s.column, s.subtype] for s in sources]
                for name, sources in _MEMO[key].items()
            }
            for key in sorted(_USED)
            if key in _MEMO
        }
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(document), encoding="utf-8")
            temporary.replace(path)
        except OSError:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)


def _column_lineage(
    expression: Any, schemas: Schemas, dialect: str
) -> dict[str, list[SourceColumn]]:
    if not isinstance(expression, exp.Query):
        return {}
    scope = build_scope(expression)
    # the schema once per query (sqlglot normalizes a plain dict again on every call), and
    # every column in one walk: sqlglot then shares the work the columns have in common
    schema = MappingSchema(_nested(schemas), dialect=dialect)
    names = [name for name in expression.named_selects if name and name != "*"]
    try:
        roots = lineage(None, expression, schema=schema, dialect=dialect, scope=scope, copy=False)
        assert isinstance(roots, dict)
    except Exception as error:  # one column sqlglot cannot follow: ask column by column
        log.debug("no column lineage in one walk: %s", error)
        roots = {}
        for name in names:
            try:
                root = lineage(
                    name, expression, schema=schema, dialect=dialect, scope=scope, copy=False
                )
            except Exception as column_error:  # sqlglot cannot follow every construct
                log.debug("no column lineage for %s: %s", name, column_error)
                continue
            assert isinstance(root, Node)
            roots[name] = root
    result: dict[str, list[SourceColumn]] = {}
    for name in names:
        root = roots.get(name)
        if root is None:
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
            # a column reached by several paths takes the most transforming one: sqlglot's
            # order of the paths follows set iteration, which changes between processes
            if previous is None or _RANK[found.subtype] > _RANK[previous.subtype]:
                sources[(key, column)] = found
        result[name] = sorted(sources.values(), key=lambda s: (s.table, s.column))
    return result
