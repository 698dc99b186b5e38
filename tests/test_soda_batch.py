"""Several contracts in one Soda session, and the memory bound of the contract checks.

Real Soda v4 on a real DuckDB file: ``run_quality_many`` must answer, item by item and in order,
exactly what ``run_quality`` answers for each item alone (passing, failing with samples, and
erroring rules); the DuckDB settings the checks change are put back afterwards, also when a
check raises.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from ddp_assets.contracts.compiler import ContractPlan, compile_contract
from ddp_assets.contracts.soda import (
    SAMPLE_LIMIT,
    count_expression,
    run_quality,
    run_quality_many,
    soda_contract,
)
from ddp_assets.warehouse import duckdb as duckdb_warehouse
from ddp_assets.warehouse.duckdb import bounded_memory

ROWS = 300
# id 0..299 unique; grp = id % 60 (each value 5 times); val: null for id % 10 = 0, 'x9' for
# id % 10 = 2, else 'a'; amount = id - 10 (ten negative amounts).
TABLES_SQL = f"""
create schema if not exists s;
create or replace table s.good as select id, 'a' as val from range({ROWS}) r(id);
create or replace table s.bad as
select id, id % 60 as grp,
       case id % 10 when 0 then null when 2 then 'x9' else 'a' end as val,
       id - 10 as amount
from range({ROWS}) r(id);
"""

# (passed, observed) of each rule of the contract on s.bad, by check name
FAILING_VERDICTS = {
    "bad_row_count": (True, ROWS),
    "bad_sql": (False, 10),
    "bad_duplicate_values": (False, ROWS - 60),
    "grp_duplicate_values": (False, ROWS - 60),
    "val_null_values": (False, 30),
    "val_invalid_values": (False, 30),
}


def _plan(tmp_path: Path, name: str, table: str, columns: dict[str, list[dict[str, Any]]]) -> Any:
    """The compiled plan of an ODCS contract for ``table`` with these rules per column
    (``""``: rules on the table)."""
    document: dict[str, Any] = {
        "apiVersion": "v3.1.0",
        "kind": "DataContract",
        "id": f"urn:test:{name}",
        "version": "1.0.0",
        "status": "active",
        "schema": [{"name": table, "physicalType": "table", "properties": []}],
    }
    obj = document["schema"][0]
    for column, rules in columns.items():
        if column == "":
            obj["quality"] = rules
        else:
            obj["properties"].append(
                {"name": column, "physicalType": "varchar", **({"quality": rules} if rules else {})}
            )
    path = tmp_path / f"{name}.odcs.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return compile_contract(path, table, tmp_path)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(str(tmp_path_factory.mktemp("batch") / "w.duckdb"))
    connection.execute(TABLES_SQL)
    return connection


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[ContractPlan, str, str]]:
    folder = tmp_path_factory.mktemp("contracts")
    passing = _plan(
        folder,
        "passing",
        "good",
        {
            "": [{"metric": "rowCount", "mustBe": ROWS}],
            "id": [{"metric": "duplicateValues", "mustBe": 0}],
            "val": [{"metric": "nullValues", "mustBe": 0}],
        },
    )
    failing = _plan(
        folder,
        "failing",
        "bad",
        {
            "": [
                {"metric": "rowCount", "mustBeGreaterThan": 0},
                {
                    "type": "sql",
                    "query": "select count(*) from {object} where amount < 0",
                    "mustBe": 0,
                },
                {"metric": "duplicateValues", "arguments": {"properties": ["grp"]}, "mustBe": 0},
            ],
            "id": [],
            "grp": [{"metric": "duplicateValues", "mustBe": 0, "severity": "warning"}],
            "val": [
                {"metric": "nullValues", "mustBe": 0},
                {"metric": "invalidValues", "arguments": {"validValues": ["a"]}, "mustBe": 0},
            ],
            "amount": [],
        },
    )
    # a contract with rules that error beside rules that still evaluate: no such column (the
    # query cannot be planned), and a cast that fails on the data (only while it runs)
    broken = _plan(
        folder,
        "broken",
        "bad",
        {
            "": [
                {
                    "type": "sql",
                    "query": "select count(*) from {object} where nope > 0",
                    "mustBe": 0,
                },
                {"metric": "rowCount", "mustBe": ROWS},
                {
                    "type": "sql",
                    "query": "select count(*) from {object} where cast(val as integer) > 0",
                    "mustBe": 0,
                },
                {
                    "type": "sql",
                    "query": "select count(*) from {object} where amount < 0",
                    "mustBe": 10,
                },
            ],
            "val": [{"metric": "nullValues", "mustBeLessOrEqualTo": 30}],
        },
    )
    no_rules = _plan(folder, "empty", "good", {"val": []})
    assert passing.rules and failing.rules and broken.rules and not no_rules.rules
    return [
        (passing, "s", "good"),
        (failing, "s", "bad"),
        (no_rules, "s", "good"),
        (broken, "s", "bad"),
        (passing, "s", "missing_table"),
        (failing, "s", "bad"),  # the same contract twice is two items
    ]


def test_one_session_answers_what_each_call_answers(
    warehouse: duckdb.DuckDBPyConnection, items: list[tuple[ContractPlan, str, str]]
) -> None:
    together = run_quality_many(warehouse, items)
    alone = [run_quality(warehouse, *item) for item in items]
    assert together == alone
    assert [[r.check_name for r in results] for results in together] == [
        [rule.check_name for rule in plan.rules] for plan, _, _ in items
    ]

    passing, failing, no_rules, broken, missing, again = together
    assert all(r.passed and r.error is None and r.sample == [] for r in passing)
    assert passing[0].observed == ROWS and passing[0].rows_tested == ROWS
    assert no_rules == []
    assert again == failing

    by_name = {r.check_name: r for r in failing}
    assert by_name["bad_row_count"].passed
    verdicts = {name: (r.passed, r.observed) for name, r in by_name.items()}
    assert verdicts == FAILING_VERDICTS
    for result in failing:
        assert result.error is None
        if not result.passed:
            assert 0 < len(result.sample) <= SAMPLE_LIMIT
    assert all(row["amount"] < 0 for row in by_name["bad_sql"].sample)
    assert all(row["val"] is None for row in by_name["val_null_values"].sample)
    assert not by_name["grp_duplicate_values"].blocking_failure  # a warning

    errored, row_count, cast, negative, nulls = broken
    assert not errored.passed and errored.error and "nope" in errored.error
    assert not cast.passed and cast.error and "Conversion Error" in cast.error
    for result in (row_count, negative, nulls):
        assert result.passed and result.error is None
    assert negative.observed == 10 and isinstance(negative.observed, int)

    assert all(not r.passed and r.error for r in missing)  # its own error, nobody else's


def test_the_checks_run_with_bounded_memory_and_restore_the_settings(
    warehouse: duckdb.DuckDBPyConnection, items: list[tuple[ContractPlan, str, str]]
) -> None:
    def settings() -> list[tuple[Any, ...]]:
        return warehouse.execute(
            "select name, value from duckdb_settings() order by name"
        ).fetchall()

    before = settings()
    run_quality_many(warehouse, items)
    assert settings() == before

    # A limit set on purpose (not DuckDB's default) comes back as DuckDB prints it: DuckDB
    # shows no exact byte count to restore (see warehouse/duckdb.py::_restore).
    limit = "select current_setting('memory_limit')"
    warehouse.execute("set memory_limit = '3GB'")
    explicit = warehouse.execute(limit).fetchone()
    try:
        run_quality_many(warehouse, items[:2])
        assert warehouse.execute(limit).fetchone() == explicit
    finally:
        warehouse.execute("reset memory_limit")
    assert settings() == before


def test_bounded_memory_restores_when_the_block_raises(
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    (default,) = warehouse.execute("select current_setting('memory_limit')").fetchone() or ("",)
    cap = duckdb_warehouse.AUDIT_SETTINGS["memory_limit"]
    with pytest.raises(duckdb.BinderException), bounded_memory(warehouse):
        (inside,) = warehouse.execute("select current_setting('memory_limit')").fetchone() or ("",)
        assert inside.replace(" ", "").replace(".0", "") == cap
        # a check that fails inside a transaction leaves it aborted: restoring still works
        warehouse.execute("begin transaction")
        warehouse.execute("select nope from s.bad")
    warehouse.execute("rollback")
    assert warehouse.execute("select current_setting('memory_limit')").fetchone() == (default,)


def test_run_quality_many_restores_when_a_check_raises(
    warehouse: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """A rule whose failing-row sample cannot be queried raises out of the checks."""
    # The count runs (299 rows), so the rule fails; its sample query, ``select * from ...``
    # with the same HAVING, is not valid SQL.
    query = "select count(*) from {object} where id > 0 having count(*) > 0"
    plan = _plan(
        tmp_path, "odd", "good", {"": [{"type": "sql", "query": query, "mustBe": 0}], "val": []}
    )
    before = warehouse.execute("select name, value from duckdb_settings() order by name").fetchall()
    with pytest.raises(duckdb.Error):
        run_quality_many(warehouse, [(plan, "s", "good")])
    after = warehouse.execute("select name, value from duckdb_settings() order by name").fetchall()
    assert after == before


def test_the_bound_spills_instead_of_failing(tmp_path: Path) -> None:
    """A distinct count larger than the bound still gets its answer (DuckDB spills to disk)."""
    connection = duckdb.connect(str(tmp_path / "big.duckdb"))
    connection.execute("create schema s")
    rows = 4_000_000
    connection.execute(
        f"create table s.big as select id, id::varchar || 'x' as v from range({rows}) r(id)"
    )
    plan = _plan(tmp_path, "big", "big", {"v": [{"metric": "duplicateValues", "mustBe": 0}]})
    (result,) = run_quality(connection, plan, "s", "big")
    assert result.passed and result.error is None and result.observed == 0
    assert result.rows_tested == rows


T = '"s"."t"'


@pytest.mark.parametrize(
    ("query", "expression"),
    [
        (f"select count(*) from {T}", "count(*)"),
        (f"SELECT COUNT( * ) FROM {T} WHERE a < 0;", "count(case when (a < 0) then 1 end)"),
        (
            f"select count(*) from {T}\nwhere a < 0\n   or (b is null) <> (c = 0)\n",
            "count(case when (a < 0\n   or (b is null) <> (c = 0)) then 1 end)",
        ),
        # left as queries: another table, a subquery, grouping, the table named in the condition
        ('select count(*) from "s"."u" where a < 0', None),
        (f"select count(*) from {T} where a < (select max(a) from {T})", None),
        (f"select count(*) from {T} where a in (select a from x)", None),
        (f"select count(*) from {T} group by a", None),
        (f"select count(*) from {T} where t.a < 0", None),
        (f'select count(*) from {T} where "t"."a" < 0', None),
        (f"select count(*) from {T} where total < 0", "count(case when (total < 0) then 1 end)"),
        (f"select count(*) from {T} where a < 0 -- comment", None),
        (f"select count(*) from {T} where a < 0; drop table x", None),
        (f"select count(distinct a) from {T}", None),
        (f"select count(*) from {T} as x where x.a < 0", None),
    ],
)
def test_count_queries_become_soda_expressions(query: str, expression: str | None) -> None:
    assert count_expression(query, T, "t") == expression


def test_soda_document_lists_only_columns_with_checks(
    items: list[tuple[ContractPlan, str, str]],
) -> None:
    plan = items[1][0]
    document = soda_contract(plan, "ddp/w/s/bad", '"s"."bad"')
    assert [c["name"] for c in document["columns"]] == ["grp", "val"]
    metrics = [c["metric"] for c in document["checks"] if "metric" in c]
    assert metrics and all("expression" in m and "query" not in m for m in metrics)
    unbundled = soda_contract(plan, "ddp/w/s/bad", '"s"."bad"', bundle=False)
    assert all("query" in c["metric"] for c in unbundled["checks"] if "metric" in c)


def test_one_session_on_postgresql(
    postgres_server: Any, items: list[tuple[ContractPlan, str, str]]
) -> None:
    """The same items on PostgreSQL (Soda's own connection there): the same verdicts, an
    error in one contract's aggregation query isolated to its rule."""

    warehouse = postgres_server.warehouse("soda_batch")
    with warehouse.writer() as connection:
        connection.execute("drop schema if exists s cascade")
        postgres_tables = TABLES_SQL.replace("create or replace table", "create table").replace(
            f"range({ROWS}) r(id)", f"generate_series(0, {ROWS - 1}) as r(id)"
        )
        for statement in postgres_tables.split(";"):
            if statement.strip():
                connection.execute(statement)
        together = run_quality_many(connection, items)
        alone = [run_quality(connection, *item) for item in items]
    assert together == alone
    passing, failing, no_rules, broken, missing, again = together
    assert all(r.passed and r.error is None for r in passing) and no_rules == []
    assert again == failing
    assert {r.check_name: (r.passed, r.observed) for r in failing} == FAILING_VERDICTS
    assert all(0 < len(r.sample) <= SAMPLE_LIMIT for r in failing if not r.passed)
    errored, row_count, cast, negative, nulls = broken
    assert errored.error and cast.error and not errored.passed and not cast.passed
    for result in (row_count, negative, nulls):
        assert result.passed and result.error is None
    assert all(not r.passed and r.error for r in missing)


def test_pandera_runs_bounded_and_restores_the_settings(
    warehouse: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    from ddp_assets.contracts.pandera_checks import validate_table

    rule = {"metric": "invalidValues", "arguments": {"validValues": ["a"]}, "mustBe": 0}
    rule["severity"] = "error"
    plan = _plan(tmp_path, "pandera", "bad", {"val": [rule]})
    before = warehouse.execute("select name, value from duckdb_settings() order by name").fetchall()
    result = validate_table(warehouse, plan, "s", "bad")
    assert not result.passed and 0 < len(result.sample) <= SAMPLE_LIMIT
    after = warehouse.execute("select name, value from duckdb_settings() order by name").fetchall()
    assert after == before


@pytest.mark.parametrize("user_setting", [None, "true"])
def test_soda_is_imported_with_its_telemetry_off_unless_the_user_wants_it(
    user_setting: str | None,
) -> None:
    """Soda reads its telemetry setting once, at import: off through ddp's import, the user's
    own setting kept, and no variable left behind in ddp's environment."""
    script = (
        "import os, sys\n"
        "from ddp_assets.contracts.soda import import_soda\n"
        "import_soda()\n"
        "from soda_core.telemetry.soda_telemetry import SodaTelemetry\n"
        "print(bool(SodaTelemetry()._SodaTelemetry__send),"
        " os.environ.get('SODA_CORE_TELEMETRY_ENABLED'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "SODA_CORE_TELEMETRY_ENABLED"}
    if user_setting is not None:
        env["SODA_CORE_TELEMETRY_ENABLED"] = user_setting
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    enabled, variable = done.stdout.split()
    assert enabled == ("True" if user_setting == "true" else "False")
    assert variable == (user_setting or "None")
