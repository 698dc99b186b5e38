"""Contract SQL runs sandboxed: a ``type: sql`` rule is one read-only SELECT, or nothing.

Issue 14: ``query: "DROP TABLE customers.customers"`` in the orders contract deleted another
product's published port, and ``COPY (select * from customers.customers) TO '/tmp/x.csv'``
exported it. Here a corpus of hostile rules is refused by the compiler (``ddp validate``) with
file, line and field; the same rules, forced past the compiler into a plan, fail their check at
run time without running; and, one layer down, DuckDB itself refuses to write or export through
the cursor the checks run on. Real sqlglot, Soda and DuckDB throughout.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ddp_assets.contracts.compiler import ContractPlan, QualityRule, compile_contract
from ddp_assets.contracts.soda import (
    _counted,
    count_expression,
    rule_queries,
    run_quality,
    run_quality_many,
    soda_contract,
)
from ddp_assets.contracts.sql_rules import RuleRefused, sandboxed_query
from ddp_assets.spec.errors import SpecErrors
from ddp_assets.spec.odcs import load_contract
from ddp_assets.warehouse import relation
from ddp_assets.warehouse.duckdb import DuckDBWarehouse, ReadOnlyCursor

ROOT = Path(__file__).resolve().parents[1]
DEFS = ROOT / "ddp_assets" / "defs"

CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: urn:test:orders
version: 1.0.0
status: active
schema:
  - name: orders
    physicalType: table
    properties:
      - name: order_id
        physicalType: bigint
        required: true
      - name: customer_id
        physicalType: bigint
        quality:
          - type: sql
            query: {column_query}
            mustBe: 0
    quality:
      - metric: rowCount
        mustBeGreaterThan: 0
      - type: sql
        query: {table_query}
        mustBe: 0
"""
COLUMN_QUERY_LINE = 17  # the line of `query:` under customer_id
TABLE_QUERY_LINE = 23  # the line of `query:` in the schema object's quality
FINE = "select count(*) from {object} where order_id < 0"

# (name, query): every one must be refused before it can run
HOSTILE: list[tuple[str, str]] = [
    ("drop", "DROP TABLE customers.customers"),
    ("delete", "delete from {object}"),
    ("update", "update customers.customers set email = null"),
    ("insert", "insert into customers.customers select * from customers.customers"),
    ("create", "create table stolen as select * from customers.customers"),
    ("create or replace view", "create or replace view customers.customers as select 1 as x"),
    ("alter", "alter table customers.customers rename to gone"),
    ("copy to", "COPY (select * from customers.customers) TO '/tmp/x.csv'"),
    ("copy from", "copy customers.customers from '/tmp/x.csv'"),
    ("attach", "attach '/tmp/evil.duckdb' as evil"),
    ("detach", "detach evil"),
    ("pragma", "pragma database_list"),
    ("set", "set enable_external_access = true"),
    ("reset", "reset memory_limit"),
    ("install", "install httpfs"),
    ("load", "load httpfs"),
    ("call", "call pragma_version()"),
    ("checkpoint", "checkpoint"),
    ("export", "export database '/tmp/dump'"),
    ("explain analyze", "explain analyze select count(*) from {object}"),
    ("read_csv", "select count(*) from read_csv('/etc/passwd')"),
    ("read_parquet url", "select count(*) from read_parquet('https://example.com/x.parquet')"),
    ("read_json", "select count(*) from read_json('/etc/x.json')"),
    ("read_text", "select count(*) from read_text('/etc/passwd')"),
    ("glob", "select count(*) from glob('/etc/*')"),
    ("file as a table", "select count(*) from '/etc/passwd'"),
    ("quoted file as a table", 'select count(*) from "customers.csv"'),
    ("file in a subquery", "select count(*) from {object} where order_id in (from 'x.csv')"),
    ("read_text as a scalar", "select count(*) from {object} where length(read_text('/x')) > 0"),
    ("query()", "select count(*) from query('drop table customers.customers')"),
    ("getenv", "select count(*) from {object} where getenv('HOME') is not null"),
    ("current_setting", "select count(*) from {object} where current_setting('threads') > 0"),
    ("duckdb_tables", "select count(*) from duckdb_tables()"),
    ("duckdb_secrets", "select count(*) from duckdb_secrets()"),
    ("nextval", "select count(*) from {object} where nextval('seq') > 0"),
    ("pg_read_file", "select count(*) from {object} where pg_read_file('/etc/passwd') <> ''"),
    ("query_to_xml", "select count(*) from query_to_xml('select * from customers.customers')"),
    ("undeclared product", "select count(*) from customers.customers"),
    (
        "undeclared product in a subquery",
        "select count(*) from {object} where customer_id not in "
        "(select customer_id from customers.customers)",
    ),
    ("unqualified table", "select count(*) from orders"),
    ("another schema", "select count(*) from main.orders"),
    ("with a database", "select count(*) from warehouse.customers.customers"),
    ("two statements", "select count(*) from {object}; drop table customers.customers"),
    (
        "a comment hiding a second statement",
        "select count(*) from {object} -- just a count\n; drop table customers.customers",
    ),
    ("a second select", "select count(*) from {object}; select count(*) from {object}"),
    (
        "a CTE that writes",
        "with gone as (delete from customers.customers returning *) select count(*) from gone",
    ),
    (
        "a CTE named like a table it reads",
        "with customers as (select * from customers) select count(*) from customers",
    ),
    ("select into", "select count(*) into kept from {object}"),
    ("for update", "select count(*) from {object} for update"),
    ("transaction", "commit"),
    ("values", "values (0)"),
    ("not sql", "count the rows please"),
]


def _contract(tmp_path: Path, table_query: str, column_query: str = FINE) -> Path:
    def scalar(query: str) -> str:  # a YAML double-quoted scalar, on one line
        return '"' + query.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    path = tmp_path / "orders.odcs.yaml"
    path.write_text(
        CONTRACT.format(table_query=scalar(table_query), column_query=scalar(column_query)),
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(("name", "query"), HOSTILE, ids=[name for name, _ in HOSTILE])
def test_hostile_rules_are_located_compile_errors(tmp_path: Path, name: str, query: str) -> None:
    path = _contract(tmp_path, query)
    assert path.read_text().splitlines()[TABLE_QUERY_LINE - 1].strip().startswith("query:")
    with pytest.raises(SpecErrors) as raised:
        compile_contract(path, "orders", tmp_path)
    (problem,) = raised.value.problems
    assert problem.file == "orders.odcs.yaml"
    assert problem.line == TABLE_QUERY_LINE
    assert problem.field == "schema[0].quality[1].query"
    assert problem.severity == "error"
    assert problem.message.startswith("not run: ") and problem.hint
    assert "Traceback" not in problem.format()


def test_a_hostile_column_rule_names_its_property(tmp_path: Path) -> None:
    path = _contract(tmp_path, FINE, column_query="DROP TABLE customers.customers")
    with pytest.raises(SpecErrors) as raised:
        compile_contract(path, "orders", tmp_path)
    (problem,) = raised.value.problems
    assert (problem.line, problem.field) == (
        COLUMN_QUERY_LINE,
        "schema[0].properties[1].quality[0].query",
    )
    assert "DROP" in problem.message


def test_reading_an_input_port_needs_it_declared(tmp_path: Path) -> None:
    reads = (
        "select count(*) from {object} where customer_id not in "
        "(select customer_id from customers.customers)"
    )
    path = _contract(tmp_path, reads)
    with pytest.raises(SpecErrors, match="neither the port's own relation nor a declared input"):
        compile_contract(path, "orders", tmp_path)
    plan = compile_contract(path, "orders", tmp_path, inputs=["customers.customers"])
    assert plan.inputs == ("customers.customers",)
    assert [r.metric for r in plan.rules] == ["rowCount", "sql", "sql"]
    # declaring one product does not open the others; the hint names what may be read
    other = _contract(tmp_path, "select count(*) from {object} where 0 < (select 1 from a.b)")
    with pytest.raises(SpecErrors) as raised:
        compile_contract(other, "orders", tmp_path, inputs=["customers.customers"])
    (problem,) = raised.value.problems
    assert "a.b" in problem.message and "customers.customers" in (problem.hint or "")


LEGIT = [
    "select count(*) from {object} where order_id < 0",
    "SELECT COUNT(*) FROM ${table} WHERE {column} IS NULL",
    "select count(distinct customer_id) from {object}",
    "select count(*) from {object} where order_id > (select max(order_id) from {object})",
    "with late as (select * from {object} where order_id > 10) select count(*) from late",
    "with customers as (select * from {object}) select count(*) from customers",
    "select count(*) from {object} /* a comment; with a semicolon */ where order_id < 0",
    "select count(*) from {object} as o, unnest([1, 2]) as u(x) where o.order_id = u.x",
    "select count(*) from range(3)",
    "select count(*) from {object} where cast(order_id as varchar) like '%;%'",
    "select count(*) from {object} where order_id < 0;",
]


@pytest.mark.parametrize("query", LEGIT)
def test_ordinary_rules_compile(tmp_path: Path, query: str) -> None:
    plan = compile_contract(_contract(tmp_path, query), "orders", tmp_path)
    assert [r.query for r in plan.rules if r.check_name == "orders_sql"] == [query]


def _demo_sql_rules() -> Iterator[tuple[str, ContractPlan]]:
    for path in sorted(DEFS.rglob("*.odcs.yaml")):
        model = load_contract(path).schema_[0].name
        plan = compile_contract(path, model, ROOT)
        if any(r.metric == "sql" for r in plan.rules):
            yield str(path.relative_to(DEFS)), plan


def test_demo_rules_still_pass_and_still_bundle() -> None:
    """Every ``type: sql`` rule of the demo contracts passes the sandbox, and each one Soda got
    as a count expression before (the contract's text) is still one (the sandboxed SQL)."""
    plans = list(_demo_sql_rules())
    assert len(plans) >= 8
    bundled = 0
    for _, plan in plans:
        own = relation("stg_x", plan.object_name)
        queries = rule_queries(plan, own)
        for rule in (r for r in plan.rules if r.metric == "sql"):
            safe = queries[rule.check_name]
            assert isinstance(safe, str), (plan.file, rule.check_name, safe)
            before = count_expression(rule.sql_for(own) or "", own, plan.object_name)
            after = count_expression(safe, own, plan.object_name)
            assert (before is None) == (after is None), (rule.sql_for(own), safe)
            bundled += after is not None
    assert bundled >= 20


def test_sandboxed_sql_has_no_comment_and_one_statement() -> None:
    own = '"s"."t"'
    safe = sandboxed_query('select count(*) from "s"."t" /* x */ where a < 0 -- y\n', own)
    assert safe == 'SELECT COUNT(*) FROM "s"."t" WHERE a < 0'
    with pytest.raises(RuleRefused):
        sandboxed_query('select count(*) from "s"."t" where a < 0; drop table "s"."t"', own)


def test_invalid_regex_pattern_is_a_located_error(tmp_path: Path) -> None:
    for pattern, reason in (("[A-Z", "unterminated"), ("^(?=A)[A-Z]{2}$", "perl operator")):
        text = CONTRACT.format(table_query=f'"{FINE}"', column_query="COLUMN").replace(
            "          - type: sql\n            query: COLUMN\n",
            f"          - metric: invalidValues\n            arguments:\n"
            f"              pattern: '{pattern}'\n",
        )
        path = tmp_path / "pattern.odcs.yaml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(SpecErrors) as raised:
            compile_contract(path, "orders", tmp_path)
        (problem,) = raised.value.problems
        assert problem.field == "schema[0].properties[1].quality[0].arguments.pattern"
        assert problem.line == text.splitlines().index(f"              pattern: '{pattern}'") + 1
        assert reason in problem.message and "regular expression" in problem.message


def test_validate_reports_a_hostile_rule_with_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``ddp validate`` runs (contract_problems) on two demo products, one contract edited."""
    from ddp_assets.contracts.validation import contract_problems
    from ddp_assets.spec.registry import Registry

    for product in ("orders", "customers"):
        shutil.copytree(DEFS / "sales" / product, tmp_path / "defs" / "sales" / product)
    contract = tmp_path / "defs" / "sales" / "orders" / "contracts" / "orders.odcs.yaml"
    lines = contract.read_text(encoding="utf-8").splitlines(keepends=True)
    at = lines.index("    quality:\n") + 1
    lines[at:at] = [
        "      - type: sql\n",
        "        query: DROP TABLE customers.customers\n",
        "        mustBe: 0\n",
    ]
    contract.write_text("".join(lines), encoding="utf-8")
    monkeypatch.setenv("DDP_CONTRACT_BASE", "")
    registry = Registry.load(tmp_path / "defs", tmp_path)
    assert not registry.errors
    errors = [p for p in contract_problems(registry) if p.severity == "error"]
    (problem,) = errors
    assert problem.file == "defs/sales/orders/contracts/orders.odcs.yaml"
    assert problem.line == at + 2
    assert problem.field == "schema[0].quality[0].query" and "DROP" in problem.message


# --- run time: what a rule that reached the executor can do -----------------------------------


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    connection.execute(
        """
        create schema customers;
        create table customers.customers as
          select id as customer_id, 'user' || id || '@example.com' as email from range(50) r(id);
        create schema stg;
        create table stg.orders as
          select id as order_id, id % 50 as customer_id from range(200) r(id);
        create sequence customers.seq;
        """
    )
    try:
        yield connection
    finally:
        connection.close()


def _published(connection: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    """The published port's checksum and rows, and the tables and sequence value beside it."""
    rows = connection.execute("select * from customers.customers order by customer_id")
    return (
        DuckDBWarehouse(Path(":memory:")).checksum(connection, "customers", "customers"),
        rows.fetchall(),
        connection.execute(
            "select table_schema, table_name from information_schema.tables order by all"
        ).fetchall(),
        connection.execute("select start_value, last_value from duckdb_sequences()").fetchall(),
    )


def _forced(plan: ContractPlan, queries: list[str]) -> ContractPlan:
    """``plan`` with hostile sql rules added past the compiler (a stale cache, a plan built
    in code): what the run-time check is for."""
    template = next(r for r in plan.rules if r.metric == "sql")
    extra = [
        dataclasses.replace(template, check_name=f"hostile_{i}", query=q, severity="warning")
        for i, q in enumerate(queries)
    ]
    return dataclasses.replace(plan, rules=(*plan.rules, *extra))


def test_hostile_rules_never_run(tmp_path: Path, warehouse: duckdb.DuckDBPyConnection) -> None:
    target = tmp_path / "exported.csv"
    hostile = [
        "DROP TABLE customers.customers",
        f"COPY (select * from customers.customers) TO '{target}'",
        "select count(*) from {object}; drop table customers.customers",
        "select count(*) from {object} -- x\n; drop table customers.customers",
        "select count(*) from customers.customers where email like '%@%'",
        f"select count(*) from read_csv('{target}')",
        f"attach '{tmp_path / 'evil.duckdb'}' as evil",
    ]
    plan = _forced(compile_contract(_contract(tmp_path, FINE), "orders", tmp_path), hostile)
    before = _published(warehouse)
    (results,) = run_quality_many(warehouse, [(plan, "stg", "orders")])
    by_name = {r.check_name: r for r in results}
    for index in range(len(hostile)):
        result = by_name[f"hostile_{index}"]
        assert not result.passed and result.error and "refused" in result.error
        assert result.blocking_failure  # a check that did not run blocks, even as a warning
        assert result.observed is None and result.sample == []
    # the contract's own rules still ran, bundled into Soda's aggregation query
    for name in ("orders_row_count", "orders_sql", "customer_id_sql"):
        assert by_name[name].passed and by_name[name].error is None, by_name[name]
    assert _counted(plan, "stg", "orders") == {"orders_sql", "customer_id_sql"}
    document = soda_contract(plan, "ddp/w/stg/orders", relation("stg", "orders"))
    assert "hostile" not in str(document) and "DROP" not in str(document).upper()
    assert _published(warehouse) == before
    assert not target.exists() and not (tmp_path / "evil.duckdb").exists()


HOSTILE_STATEMENTS = [
    "drop table customers.customers",
    "delete from customers.customers",
    "update customers.customers set email = 'x'",
    "insert into customers.customers values (999, 'x')",
    "create table customers.copied as select * from customers.customers",
    "create or replace table customers.customers as select 1 as customer_id",
    "alter table customers.customers rename to gone",
    "copy (select * from customers.customers) to '{target}'",
    "copy customers.customers to '{target}'",
    "export database '{folder}'",
    "attach '{folder}/evil.duckdb' as evil",
    "select count(*) from customers.customers; drop table customers.customers",
    "select 1; copy customers.customers to '{target}'",
    "select nextval('customers.seq')",
    "set memory_limit = '1MiB'",
    "pragma enable_profiling",
    "call pragma_version()",
    "checkpoint",
    "commit",
    "rollback; drop table customers.customers",
]


@pytest.mark.parametrize("statement", HOSTILE_STATEMENTS)
def test_the_check_cursor_cannot_write_or_export(
    tmp_path: Path, warehouse: duckdb.DuckDBPyConnection, statement: str
) -> None:
    """Layer 2: SQL that never went through the sandbox, straight on the cursor Soda and the
    samples use. DuckDB refuses it; the published table stays byte-identical, no file appears."""
    target, folder = tmp_path / "x.csv", tmp_path / "dump"
    sql = statement.format(target=target, folder=folder)
    before = _published(warehouse)
    cursor = ReadOnlyCursor(warehouse)
    try:
        with pytest.raises(duckdb.Error):
            cursor.execute(sql).fetchall()
        # still usable, still read-only
        assert cursor.execute("select count(*) from stg.orders").fetchone() == (200,)
        with pytest.raises(duckdb.Error):
            cursor.execute("delete from stg.orders").fetchall()
    finally:
        cursor.close()
    assert _published(warehouse) == before
    assert warehouse.execute("select count(*) from stg.orders").fetchone() == (200,)
    assert not target.exists() and not folder.exists()
    assert warehouse.execute("select current_setting('memory_limit')").fetchone() != ("1.0 MiB",)


def test_soda_data_source_cannot_write(
    tmp_path: Path, warehouse: duckdb.DuckDBPyConnection
) -> None:
    """Soda's own connection (what it runs a rule's query on) refuses writes too."""
    from ddp_assets.contracts.soda import import_soda

    import_soda()
    before = _published(warehouse)
    data_source, release = DuckDBWarehouse(Path(":memory:")).soda_data_source(warehouse, "ddp")
    try:
        for sql in (
            "drop table customers.customers",
            f"copy customers.customers to '{tmp_path / 'x.csv'}'",
        ):
            with pytest.raises(duckdb.Error):
                data_source.execute_query(sql)
        result = data_source.execute_query("select count(*) from customers.customers")
        assert result.rows == [(50,)]
    finally:
        release()
    assert _published(warehouse) == before and not (tmp_path / "x.csv").exists()


def test_a_rule_soda_cannot_evaluate_blocks_even_as_a_warning(
    tmp_path: Path, warehouse: duckdb.DuckDBPyConnection
) -> None:
    """An invalid regex forced past the compiler fails the contract's aggregation query: the
    port must not be published as if its checks had passed, whatever the rules' severity."""
    plan = compile_contract(_contract(tmp_path, FINE), "orders", tmp_path)
    broken: QualityRule = dataclasses.replace(
        next(r for r in plan.rules if r.metric == "rowCount"),
        check_name="customer_id_format",
        metric="invalidValues",
        column="customer_id",
        pattern="(?=x)",
        severity="warning",
    )
    warned = dataclasses.replace(
        plan,
        rules=tuple(dataclasses.replace(r, severity="warning") for r in (*plan.rules, broken)),
    )
    results = run_quality(warehouse, warned, "stg", "orders")
    errored = [r for r in results if r.error is not None]
    assert errored and all(not r.passed and r.blocking_failure for r in errored)
    assert any(r.blocking_failure for r in results)


def test_postgres_check_sessions_cannot_write(postgres_server: Any, tmp_path: Path) -> None:
    """On PostgreSQL, the samples' session and Soda's own connection are read-only."""
    from ddp_assets.contracts.soda import import_soda

    warehouse = postgres_server.warehouse("sql_sandbox")
    writes = [
        "drop table customers.customers",
        "delete from customers.customers",
        "update customers.customers set email = 'x'",
        "create table customers.copied as select * from customers.customers",
        "select nextval('customers.seq')",
        "with gone as (delete from customers.customers returning *) select count(*) from gone",
    ]
    import_soda()
    with warehouse.writer() as connection:
        connection.execute("drop schema if exists customers cascade")
        connection.execute("create schema customers")
        connection.execute(
            "create table customers.customers as select id as customer_id, "
            "'user' || id || '@example.com' as email from generate_series(0, 49) as r(id)"
        )
        connection.execute("create sequence customers.seq")

        def published() -> tuple[Any, ...]:
            rows = connection.execute("select * from customers.customers order by 1").fetchall()
            sequence = connection.execute("select last_value from customers.seq").fetchall()
            return warehouse.checksum(connection, "customers", "customers"), rows, sequence

        before = published()
        for sql in writes:
            with warehouse.read_only(connection) as reading, pytest.raises(Exception) as raised:
                reading.execute(sql)
            assert "read-only transaction" in str(raised.value), sql
        data_source, release = warehouse.soda_data_source(connection, "ddp")
        try:
            for sql in writes:
                with pytest.raises(Exception, match="read-only transaction"):
                    data_source.execute_query(sql)
            result = data_source.execute_query("select count(*) from customers.customers")
            assert [tuple(row) for row in result.rows] == [(50,)]
        finally:
            release()
        assert published() == before
