"""What a consumer's SQL query may do before it runs, and what bounds it while it runs.

A query through ``ddp ports sql`` is checked with DuckDB's own parser (``json_serialize_sql``):
the same parser that then runs it, so no trick of quoting, comments or dialect can make the
checker see a different query from the one that executes. From the parse tree:

- only ``SELECT`` queries (with ``DESCRIBE``, ``SUMMARIZE`` and ``SHOW``, which DuckDB parses
  as selects) pass: ``USE``, ``SET``, ``PRAGMA``, ``CALL``, ``ATTACH``, DDL and writes are
  refused before they reach the database (``USE orders`` would otherwise let an unqualified
  name read a port the audit could not attribute);
- every table it names is matched against the ports the consumer's database holds, so the
  audit names each port read; a table function that reads a relation by name
  (``query_table('orders.order_lines')``, ``query('...')``) is refused, as is any table
  function not on a short list (``range``, ``generate_series``, ``unnest``, the catalog
  functions);
- functions and system views that show the server's settings or files
  (``current_setting``, ``duckdb_settings()``, ``duckdb_databases``, ``pragma_database_list``)
  are refused, and any server path left in a result or an error is replaced by
  ``[server path]``;
- a query longer than :data:`MAX_QUERY_CHARS` or nested deeper than :data:`MAX_DEPTH`
  brackets is refused with its line and column, before any parser recurses over it.

While it runs, a query is bounded by :class:`QueryLimits`: DuckDB's ``memory_limit`` (with no
temporary directory, so nothing spills to disk) and a wall-clock limit enforced by
``connection.interrupt()`` from a timer thread.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from ddp_assets.ports.policy import PortError

TIMEOUT_ENV = "DDP_SQL_TIMEOUT_SECONDS"
MEMORY_ENV = "DDP_SQL_MEMORY_LIMIT"
DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_MEMORY_LIMIT = "1GB"
MAX_QUERY_CHARS = 100_000
MAX_DEPTH = 100
REDACTED_PATH = "[server path]"

_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)\s*$", re.IGNORECASE)

ALLOWED_TABLE_FUNCTIONS = frozenset(
    {
        "range",
        "generate_series",
        "unnest",
        "repeat",
        "repeat_row",
        "json_each",
        "json_tree",
        "duckdb_tables",
        "duckdb_columns",
        "duckdb_schemas",
        "duckdb_views",
        "duckdb_types",
        "duckdb_functions",
        "duckdb_keywords",
        "duckdb_constraints",
        "duckdb_indexes",
        "duckdb_sequences",
        "duckdb_dependencies",
        "pragma_table_info",
        "pragma_show",
        "pragma_version",
        "test_all_types",
    }
)
RELATION_BY_NAME = frozenset({"query", "query_table"})
SERVER_INFO = frozenset(
    {
        # functions, table functions and system views that show settings, paths or files
        "current_setting",
        "getenv",
        "which_secret",
        "duckdb_settings",
        "duckdb_databases",
        "duckdb_extensions",
        "duckdb_temporary_files",
        "duckdb_secrets",
        "duckdb_secret_types",
        "duckdb_logs",
        "duckdb_log_contexts",
        "duckdb_external_file_cache",
        "duckdb_memory",
        "duckdb_prepared_statements",
        "pragma_database_list",
        "pragma_database_size",
        "pragma_user_agent",
        "pg_settings",
    }
)
_FILE_READER = re.compile(
    r"^(read_\w+|\w+_scan|glob|sniff_csv|parquet_\w+|iceberg_\w+|delta_\w+|sqlite_\w+)$"
)


@dataclass(frozen=True)
class QueryLimits:
    """Per-query bounds of the SQL port (``DDP_SQL_TIMEOUT_SECONDS``, ``DDP_SQL_MEMORY_LIMIT``)."""

    seconds: float = DEFAULT_TIMEOUT_SECONDS
    memory: str = DEFAULT_MEMORY_LIMIT

    @classmethod
    def from_env(cls) -> QueryLimits:
        seconds_text = os.environ.get(TIMEOUT_ENV, "").strip()
        memory = os.environ.get(MEMORY_ENV, "").strip() or DEFAULT_MEMORY_LIMIT
        seconds = DEFAULT_TIMEOUT_SECONDS
        if seconds_text:
            try:
                seconds = float(seconds_text)
            except ValueError:
                seconds = -1.0
            if not 0 < seconds <= 86_400:
                raise PortError(
                    500,
                    f"{TIMEOUT_ENV}={seconds_text!r} is not a number of seconds",
                    f"set it to a number from 0.1 to 86400, e.g. {DEFAULT_TIMEOUT_SECONDS:g}",
                )
        if not _SIZE.match(memory):
            raise PortError(
                500,
                f"{MEMORY_ENV}={memory!r} is not a memory size",
                f"set it to a size such as 512MB or 2GB (default {DEFAULT_MEMORY_LIMIT})",
            )
        return cls(seconds, memory.replace(" ", ""))


class QueryRefused(PortError):
    """A query refused or aborted, with the ports it named (for the audit log)."""

    def __init__(
        self,
        status: int,
        message: str,
        hint: str | None = None,
        ports: Iterable[tuple[str, str]] = (),
    ):
        super().__init__(status, message, hint)
        self.ports = sorted(set(ports))


def _location(query: str, offset: int) -> str:
    line = query.count("\n", 0, offset) + 1
    column = offset - (query.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def check_shape(query: str) -> None:
    """Refuse a query that is too long or too deeply nested, before anything parses it.

    Brackets are counted on the raw text (inside strings too): conservative, and nothing can
    hide a bracket from it.
    """
    if len(query) > MAX_QUERY_CHARS:
        raise QueryRefused(
            400,
            f"the query is {len(query)} characters long; the SQL port takes at most "
            f"{MAX_QUERY_CHARS}",
            "split it into smaller queries",
        )
    if "\x00" in query:
        raise QueryRefused(
            400, f"the query holds a NUL byte at {_location(query, query.index(chr(0)))}"
        )
    depth = 0
    for offset, char in enumerate(query):
        if char in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise QueryRefused(
                    400,
                    f"the query nests brackets more than {MAX_DEPTH} deep "
                    f"(at {_location(query, offset)})",
                    "flatten it: use a CTE (with ... as) instead of deeply nested expressions",
                )
        elif char in ")]}":
            depth = max(depth - 1, 0)


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _name(text: Any) -> str:
    return str(text or "").strip('"').lower()


def parse_tree(connection: duckdb.DuckDBPyConnection, query: str) -> dict[str, Any]:
    """DuckDB's parse of ``query`` as JSON; :class:`QueryRefused` if it is not a select."""
    row = connection.execute("select json_serialize_sql(?)", [query]).fetchone()
    assert row is not None
    try:
        tree = json.loads(row[0])
    except RecursionError:
        raise QueryRefused(
            400,
            "the query is nested too deeply to check",
            "flatten it: use a CTE (with ... as) instead of deeply nested expressions",
        ) from None
    if not tree.get("error"):
        return tree
    message = str(tree.get("error_message") or "unknown error").splitlines()[0]
    if "only select" in message.lower():
        raise QueryRefused(
            400,
            "the SQL port runs only SELECT queries (DESCRIBE, SUMMARIZE and SHOW too)",
            "USE, SET, PRAGMA, CALL, ATTACH, COPY, EXPLAIN, DDL and writes are refused; "
            "name tables as <product>.<port>",
        )
    position = tree.get("position")
    where = ""
    if isinstance(position, (int, str)) and str(position).isdigit():
        where = f" (at {_location(query, min(int(position), len(query)))})"
    raise QueryRefused(400, f"the query does not parse{where}: {message}")


def _string_arguments(function: dict[str, Any]) -> list[str]:
    """The string constants a function is called with (a table named by a string)."""
    found = []
    for argument in function.get("arguments") or function.get("children") or []:
        expression = argument.get("expression", argument) if isinstance(argument, dict) else None
        literal = expression.get("literal") if isinstance(expression, dict) else None
        if isinstance(literal, dict) and isinstance(literal.get("text"), str):
            found.append(literal["text"])
        elif isinstance(expression, dict) and isinstance(expression.get("value"), dict):
            text = expression["value"].get("value")
            if isinstance(text, str):
                found.append(text)
    return found


def ports_read(tree: dict[str, Any], held: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """The ports (product, port) a parsed query reads; :class:`QueryRefused` if it reads any
    relation the audit could not attribute, a file, or the server's settings.

    A refusal names the ports the query did name (so the denied audit rows do too),
    including one named by a string in ``query_table('<product>.<port>')``.
    """
    nodes = list(_nodes(tree))
    ctes = {
        _name(entry.get("key"))
        for node in nodes
        if isinstance(node.get("cte_map"), dict)
        for entry in node["cte_map"].get("map", [])
        if isinstance(entry, dict)
    }
    tables: list[tuple[str, str, str]] = []  # schema, table (folded), table as written
    table_functions: list[tuple[str, list[str]]] = []
    functions: list[str] = []
    for node in nodes:
        kind = node.get("type")
        if kind == "BASE_TABLE" or (kind == "SHOW_REF" and node.get("table_name")):
            written = str(node.get("table_name") or "")
            tables.append((_name(node.get("schema_name")), _name(written), written))
        elif kind == "TABLE_FUNCTION" and isinstance(node.get("function"), dict):
            function = node["function"]
            table_functions.append(
                (_name(function.get("function_name")), _string_arguments(function))
            )
        if node.get("class") == "FUNCTION":
            functions.append(_name(node.get("function_name")))
    found = {(schema or "main", table) for schema, table, _ in tables} & held
    for name, arguments in table_functions:
        for text in arguments if name in RELATION_BY_NAME else []:
            schema, _, table = text.strip().rpartition(".")
            if (_name(schema) or "main", _name(table)) in held:
                found.add((_name(schema) or "main", _name(table)))

    def refuse(message: str, hint: str | None = None) -> QueryRefused:
        return QueryRefused(400, message, hint, found)

    for name, _ in table_functions:
        if name in RELATION_BY_NAME:
            raise refuse(
                f"table function '{name}' reads a relation named by a string: the SQL port "
                "runs only queries whose tables it can see (and audit)",
                "name the table in FROM instead, e.g. select * from orders.order_lines",
            )
        if _FILE_READER.match(name):
            raise refuse(
                f"table function '{name}': file system operations are disabled in a SQL port",
                "query the port's tables, <product>.<port>",
            )
        if name not in ALLOWED_TABLE_FUNCTIONS and name not in SERVER_INFO:
            raise refuse(
                f"table function '{name}' is not allowed in a SQL port",
                "allowed: " + ", ".join(sorted(ALLOWED_TABLE_FUNCTIONS)),
            )
    for name in functions:
        if name in SERVER_INFO:
            raise refuse(
                f"'{name}' shows the server's settings and is not available in a SQL port",
                "information_schema and duckdb_tables() describe your ports",
            )
    for schema, table, written in tables:
        if (schema or "main", table) in held or (not schema and table in ctes):
            continue
        if table in SERVER_INFO:
            raise refuse(
                f"'{written}' shows the server's settings and is not available in a SQL port",
                "information_schema and duckdb_tables() describe your ports",
            )
        if not schema and re.search(r"[/\\:.~]", table):
            raise refuse(
                f"no table '{written}' in this SQL port (file system operations are disabled)",
                "name the port's tables as <product>.<port>",
            )
    return sorted(found)


def server_paths(connection: duckdb.DuckDBPyConnection, *known: Path) -> list[str]:
    """Paths of this machine a consumer must not see: ``known`` ones and DuckDB's own
    directory settings (read as the server, before the consumer's query)."""
    rows = connection.execute(
        "select value from duckdb_settings() where value like '/%' or value like '~%'"
    ).fetchall()
    found = {str(p) for p in known} | {str(p.resolve()) for p in known}
    found |= {str(r[0]) for r in rows if r[0]}
    home = str(Path.home())
    if len(home) > 1:
        found.add(home)
    return sorted((p.rstrip("/") for p in found if len(p.rstrip("/")) > 1), key=len, reverse=True)


def redact(value: Any, paths: list[str], depth: int = 0) -> Any:
    """``value`` with every server path in its strings (nested too) replaced."""
    if isinstance(value, str):
        for path in paths:
            if path in value:
                value = value.replace(path, REDACTED_PATH)
        return value
    if depth > 20:
        return value
    if isinstance(value, tuple):
        return tuple(redact(v, paths, depth + 1) for v in value)
    if isinstance(value, list):
        return [redact(v, paths, depth + 1) for v in value]
    if isinstance(value, dict):
        return {k: redact(v, paths, depth + 1) for k, v in value.items()}
    return value
