"""The sandbox of a contract's ``type: sql`` quality rules: one read-only query, or nothing.

An ODCS ``type: sql`` rule is SQL written by whoever can edit a contract, and ddp runs it in
the warehouse, on the writer's database (DuckDB allows one writer process): Soda executes a
``metric`` check's ``query`` as given, or folds its condition into its aggregation query, on
the data source ddp hands it, which was ``DuckDBDataSourceImpl.from_existing_cursor`` over a
cursor of the writer connection, able to do whatever the writer can. Unchecked, a rule
``DROP TABLE customers.customers`` deletes another product's published port, and
``COPY (select * from customers.customers) TO '/tmp/x.csv'`` exports its restricted columns.
Two layers keep a rule to what it is for, reading the port it checks:

1. **A parsed-statement allow-list** (:func:`sandboxed_query`, with sqlglot's parser, the
   one ddp's lineage uses). A rule is exactly one ``SELECT`` (or a set operation of selects):
   nothing after the first statement, no DDL, DML, ``COPY``, ``ATTACH``, ``PRAGMA``, ``SET``,
   ``INSTALL``/``LOAD``, ``CALL`` or anything sqlglot can only read as an opaque command,
   no ``SELECT ... INTO``, no ``FOR UPDATE``, no data-modifying CTE; no table function in
   ``FROM`` (``read_csv``, ``read_parquet``, ``glob``, ``query``, ``duckdb_tables()`` ...) other
   than ``range``/``generate_series``/``unnest``, and no function that reads files, the
   network, the environment, settings or the catalog, or that runs SQL given as a string
   (:data:`DENIED_FUNCTIONS`, :data:`DENIED_PREFIXES`). Every relation it reads is the port's
   own relation (the ``{object}``/``${table}`` placeholder) or the published relation of one of
   the product's declared input ports (``<product>.<model>``); a quoted file name used as a
   table (``from '/etc/passwd'``) is a relation like any other, and refused. The compiler
   (:func:`~ddp_assets.contracts.compiler.compile_contract`) runs this check, so ``ddp
   validate`` reports a refused rule with its file, line and field; Soda's runner
   (:mod:`ddp_assets.contracts.soda`) runs it again on the SQL it is about to execute, and a
   refused rule fails its check with the reason, without running.

   What runs is not the text of the contract but sqlglot's rendering of the statement it
   checked (without comments): a query the warehouse would read differently from sqlglot
   (a comment or a quote the two tokenize differently) cannot smuggle a second statement past
   the check, because that text is never executed.

2. **Read-only execution** (defence in depth, for whatever the first layer might miss).
   :meth:`~ddp_assets.warehouse.Warehouse.soda_data_source` hands Soda a session that cannot
   write, and the failing-row samples run in :meth:`~ddp_assets.warehouse.Warehouse.read_only`:

   - DuckDB: Soda gets a cursor (a second handle on the same database instance) inside
     ``BEGIN TRANSACTION READ ONLY``, rolled back afterwards: any write to the database fails
     ("transaction is launched in read-only mode"). A separate read-only connection or
     ``enable_external_access = false`` would also stop file access, but neither fits the
     single-writer design: DuckDB refuses a second connection to an open file with another
     configuration, a file already attached cannot be attached again by another instance, and
     ``enable_external_access``/``disabled_filesystems`` are global to the instance and can
     never be switched back on, which would break dbt and the landing loads that run in the
     same process afterwards (all three measured with DuckDB 2.0). File and network access is
     therefore stopped by the first layer alone on DuckDB.
   - PostgreSQL: Soda's own connection, and the session the samples run on, open with
     ``default_transaction_read_only=on`` (a transaction ended from inside does not leave the
     next one writable). A read-only transaction still allows ``COPY ... TO`` a server file;
     that needs a superuser or ``pg_write_server_files``, which the warehouse user should not
     have, and the first layer refuses ``COPY`` whatever the user may do.

Why this design and not a separate checking connection: the rules keep running inside Soda's
one aggregation query per contract (the bundling of ``select count(*) from {object} where C``
as ``count(case when C then 1 end)``, :func:`~ddp_assets.contracts.soda.count_expression`),
on the writer's database, with no second database to open and no data copied, so the checks
cost what they did; the parse is about a millisecond per rule, done when the contract is
compiled (cached with the plan) and once more per run.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlglot import exp

    from ddp_assets.spec.registry import Product, Registry

OWN_SCHEMA = "__ddp_port__"
"""At compile time, the schema of the relation the placeholder stands for (the staging
relation is only known at run time)."""

DENIED_FUNCTIONS = frozenset(
    {
        # DuckDB: files, the environment, settings, SQL run from a string, state changes
        "glob",
        "query",
        "query_table",
        "getenv",
        "current_setting",
        "getvariable",
        "which_secret",
        "sql_auto_complete",
        "sniff_csv",
        "checkpoint",
        "force_checkpoint",
        "nextval",
        "currval",
        "setval",
        "setseed",
        "load_extension",
        "install_extension",
        "summary",
        # PostgreSQL: settings, SQL run from a string, files, sessions
        "set_config",
        "ts_stat",
        "dblink",
        "lo_import",
        "lo_export",
        "lo_get",
        "lo_put",
        "lo_from_bytea",
        "txid_current",
    }
)
"""Function names a rule may not call (lowercase)."""

DENIED_PREFIXES = (
    "read_",  # read_csv, read_parquet, read_json, read_text, read_blob ...
    "duckdb_",  # duckdb_tables(), duckdb_settings(), duckdb_secrets() ...
    "pragma_",
    "parquet_",
    "iceberg_",
    "delta_",
    "ducklake_",
    "sqlite_",
    "postgres_",
    "mysql_",
    "json_execute",  # json_execute_serialized_sql
    "http",
    "s3_",
    "azure_",
    "pg_",  # pg_read_file, pg_ls_dir, pg_sleep, pg_terminate_backend ...
    "dblink_",
    "lo_",
)
"""Function name prefixes a rule may not call."""

_DENIED_PARTS = ("to_xml",)  # query_to_xml, table_to_xml, cursor_to_xml ... run SQL strings


# statements (and statement parts) that are not a read: refused wherever they appear
_STATEMENT_NAMES = (
    # DDL and session
    "Alter",
    "AlterSession",
    "Attach",
    "Cache",
    "Command",
    "Comment",
    "Commit",
    "Create",
    "Declare",
    "Describe",
    "Detach",
    "Drop",
    "Execute",
    "ExecuteSql",
    "Grant",
    "Install",
    "Kill",
    "Pragma",
    "Refresh",
    "Revoke",
    "Rollback",
    "Set",
    "Show",
    "Summarize",
    "SwapTable",
    "Transaction",
    "TruncateTable",
    "Uncache",
    "Undrop",
    "Use",
    "UserDefinedFunction",
    # DML
    "Copy",
    "Delete",
    "Export",
    "Insert",
    "LoadData",
    "Merge",
    "MultitableInserts",
    "ConditionalInsert",
    "Update",
    "Returning",
    "Put",
    "Get",
    # parts of a select that write or lock
    "Into",
    "Lock",
    "LockingStatement",
    "Analyze",
    # procedural blocks
    "Block",
    "IfBlock",
    "LoopBlock",
    "RepeatBlock",
    "WhileBlock",
    "StoredProcedure",
    "Semicolon",
    "EndStatement",
    "Heredoc",
)


@cache
def _classes(names: tuple[str, ...]) -> tuple[type[Any], ...]:
    """sqlglot's expression classes of these names (those this version of sqlglot has).

    sqlglot is imported on first use: it costs about 0.4 s, and a load whose plans come from
    the cache never parses a rule.
    """
    from sqlglot import exp

    return tuple(c for c in (getattr(exp, n, None) for n in names) if isinstance(c, type))


class RuleRefused(ValueError):
    """A rule's SQL is not one read-only query of the relations it may read."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class _Name:
    catalog: str
    schema: str
    table: str


def _part(identifier: Any) -> str:
    if identifier is None:
        return ""
    text = str(identifier.name)
    return text if identifier.args.get("quoted") else text.lower()


def _name_of(table: exp.Table) -> _Name:
    return _Name(_part(table.args.get("catalog")), _part(table.args.get("db")), _part(table.this))


def _relation_name(relation: str, dialect: str) -> _Name:
    """``"schema"."table"`` or ``schema.table`` as a :class:`_Name`."""
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        table = exp.to_table(relation, dialect=dialect)
    except SqlglotError as error:
        raise ValueError(f"not a relation name: {relation!r}") from error
    return _name_of(table)


def _shown(name: _Name) -> str:
    return ".".join(p for p in (name.catalog, name.schema, name.table) if p)


@contextmanager
def _quiet_sqlglot() -> Iterator[None]:
    """sqlglot logs a warning when it falls back to an opaque command; the refusal says it."""
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _visible_ctes(table: exp.Table) -> set[str]:
    from sqlglot import exp

    """The CTE names an unqualified ``table`` may refer to, by SQL's scoping rules.

    In the body of a query, every CTE of its ``WITH``; inside a CTE, only the ones defined
    before it (and itself, in a ``WITH RECURSIVE``). Any other name is a real relation.
    """
    names: set[str] = set()
    before: Any = None
    child: Any = table
    node = table.parent
    while node is not None:
        with_ = node.args.get("with_") or node.args.get("with")
        if isinstance(with_, exp.With):
            ctes = list(with_.expressions)
            if child is with_ and before is not None:
                index = next((i for i, c in enumerate(ctes) if c is before), len(ctes))
                ctes = ctes[: index + (1 if with_.args.get("recursive") else 0)]
            names.update(c.alias_or_name.lower() for c in ctes)
        before, child, node = child, node, node.parent
    return names


def _function_name(node: exp.Func) -> str:
    from sqlglot import exp

    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower()


def _denied(name: str) -> bool:
    return (
        name in DENIED_FUNCTIONS
        or name.startswith(DENIED_PREFIXES)
        or any(part in name for part in _DENIED_PARTS)
    )


def _kind(node: Any) -> str:
    from sqlglot import exp

    if isinstance(node, exp.Command):
        return str(node.this).upper() or "an opaque command"
    key = getattr(node, "key", "") or type(node).__name__
    return str(key).upper()


def sandboxed_query(
    query: str,
    own_relation: str,
    inputs: Collection[str] = (),
    dialect: str = "duckdb",
) -> str:
    """The one read-only ``SELECT`` in ``query`` as SQL to run, or :class:`RuleRefused`.

    ``query`` has its placeholders resolved to ``own_relation`` (SQL text, ``"schema"."t"``);
    ``inputs`` are the other relations it may read (``product.model``, the product's input
    ports). The answer is sqlglot's rendering of the checked statement in ``dialect``, without
    comments: what runs is exactly what was checked.
    """
    import sqlglot
    from sqlglot import exp

    text = query.strip()
    own = _relation_name(own_relation, dialect)
    allowed = {own, *(_relation_name(r, dialect) for r in inputs)}
    readable = ", ".join(sorted(_shown(n) for n in allowed if n != own))
    readable_hint = (
        f"read the port's own relation through {{object}}, or a declared input port ({readable})"
        if readable
        else "read the port's own relation through {object}; to read another product's "
        "port, declare it as an input port of this product"
    )
    try:
        with _quiet_sqlglot():
            parsed = sqlglot.parse(text, read=dialect)
    except Exception as error:  # sqlglot's ParseError/TokenError, or a parser limit
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise RuleRefused(
            f"the query cannot be parsed as one SQL query: {first}",
            "write a single SELECT, e.g. select count(*) from {object} where amount < 0",
        ) from None
    statements = [s for s in parsed if s is not None]
    if not statements:
        raise RuleRefused(
            "the query is empty",
            "write a single SELECT, e.g. select count(*) from {object} where amount < 0",
        )
    if len(statements) > 1:
        raise RuleRefused(
            f"the query has {len(statements)} statements; a rule is exactly one SELECT "
            f"(the second is {_kind(statements[1])})",
            "remove everything after the first statement (and the ';' before it)",
        )
    (statement,) = statements
    if not isinstance(statement, (exp.Select, *_classes(("SetOperation", "Union")))):
        raise RuleRefused(
            f"the query is not a SELECT (it reads as {_kind(statement)}); "
            "a rule may only run one SELECT",
            "a quality rule reads the port and returns a number: "
            "select count(*) from {object} where <the condition rows must not meet>",
        )
    statements_refused = _classes(_STATEMENT_NAMES)
    table_functions = _classes(("GenerateSeries", "Unnest"))
    for node in statement.walk():
        if isinstance(node, statements_refused):
            raise RuleRefused(
                f"the query contains {_kind(node)}; a rule may only read",
                "remove it: a quality rule is one SELECT that writes, locks and sets nothing",
            )
        if isinstance(node, exp.Func):
            name = _function_name(node)
            if _denied(name):
                raise RuleRefused(
                    f"the query calls {name}(), which reads files, the network, settings or "
                    "the catalog, or changes state; a rule may not",
                    readable_hint,
                )
    for table in statement.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            if isinstance(table.this, table_functions):
                continue
            shown = table.this.sql(dialect=dialect)[:80]
            raise RuleRefused(
                f"the query reads from the table function {shown}; a rule reads relations only",
                readable_hint,
            )
        name = _name_of(table)
        if not name.schema and not name.catalog and name.table.lower() in _visible_ctes(table):
            continue  # a CTE of the query itself
        if name.catalog:
            raise RuleRefused(
                f"the query reads {_shown(name)}, named with its database; "
                "a rule reads schema.table only",
                readable_hint,
            )
        if name not in allowed:
            raise RuleRefused(
                f"the query reads {_shown(name)}, which is neither the port's own relation nor "
                "a declared input port of the product",
                readable_hint,
            )
    return statement.sql(dialect=dialect, comments=False)


def input_relations(product: Product, registry: Registry) -> tuple[str, ...]:
    """The relations a product's contract rules may read besides their own port.

    The published relation ``<product>.<model>`` of each product input port, the table of each
    table input port and the raw table ``<product>.<name>`` of each file input port: what the
    product declared it reads. Ports whose upstream is unknown are left out (the registry
    reports them).
    """
    from ddp_assets.spec.model import (
        DepotInputPort,
        FileInputPort,
        ProductInputPort,
        TableInputPort,
    )

    relations: list[str] = []
    for port in product.spec.input_ports:
        if isinstance(port, ProductInputPort):
            upstream = registry.products.get(port.upstream_product)
            output = upstream.spec.output_port(port.upstream_port) if upstream else None
            if output is not None:
                relations.append(f"{port.upstream_product}.{output.model}")
        elif isinstance(port, TableInputPort):
            relations.append(port.table)
        elif isinstance(port, (FileInputPort, DepotInputPort)):
            relations.append(f"{product.id}.{port.name}")
    return tuple(relations)
