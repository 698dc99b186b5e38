"""ODCS contracts: reading, JSON-Schema conformance, compilation and the Soda quality layer.

Quality rules run for real: Soda v4 on DuckDB, on a crafted table whose every count is known.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from ddp_assets.contracts.compiler import OPERATORS, compile_contract
from ddp_assets.contracts.soda import SAMPLE_LIMIT, RuleResult, run_quality
from ddp_assets.spec.errors import SpecErrors
from ddp_assets.spec.odcs import (
    load_contract,
    load_contract_file,
    schema_problems,
    unsupported_parts,
)

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONTRACTS = sorted((ROOT / "ddp_assets" / "defs").rglob("*.odcs.yaml"))


# -- reading and conformance -------------------------------------------------------------------


@pytest.mark.parametrize("path", DEMO_CONTRACTS, ids=lambda p: p.name)
def test_demo_contracts_conform_to_the_official_schema(path: Path, shared_spec: Path) -> None:
    assert schema_problems(path, ROOT, shared_spec / "odcs") == []
    assert unsupported_parts(load_contract_file(path, ROOT)) == []


def test_official_examples_load_and_report_what_is_not_enforced(shared_spec: Path) -> None:
    examples = sorted((shared_spec / "odcs" / "examples").glob("*.yaml"))
    assert len(examples) >= 5
    warned: dict[str, list[str]] = {}
    for path in examples:
        problems = schema_problems(path, None, shared_spec / "odcs")
        if path.name == "column-completeness.odcs.yaml":
            # says apiVersion v3.0.2 but writes the v3.1.0 `metric` for v3.0.2's `rule`: its own
            # version's schema (the one it is checked against) rejects it, and says which one
            (problem,) = problems
            assert "'rule' is a required property" in problem.message
            assert "ODCS v3.0.2 schema (odcs-json-schema-v3.0.2.json)" in problem.message
            continue
        assert problems == [], path.name
        loaded = load_contract_file(path)
        assert loaded.contract.id, path.name
        warnings = unsupported_parts(loaded)
        assert all(w.severity == "warning" and w.line for w in warnings)
        warned[path.name] = [w.field for w in warnings]
    assert "slaProperties" in warned["database-table-sla.odcs.yaml"]
    assert {"servers", "slaProperties", "price", "schema[0].relationships"} <= set(
        warned["full-example.odcs.yaml"]
    )
    # every example schema object with properties compiles; warnings ride along with the plan
    full = shared_spec / "odcs" / "examples" / "full-example.odcs.yaml"
    plan = compile_contract(full, "tbl")
    assert {r.metric for r in plan.rules} >= {"nullValues", "rowCount"}
    assert any(w.field == "servers" for w in plan.warnings)
    assert any(
        w.field == "schema[1]" and "not the port's model" in w.message for w in plan.warnings
    )


def _write(tmp_path: Path, text: str, name: str = "c.odcs.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


CONTRACT = """\
apiVersion: {api}
kind: DataContract
id: urn:test:t
version: 1.0.0
status: active
schema:
  - name: t
    physicalType: table
    properties:
      - name: id
        logicalType: integer
        physicalType: bigint
        required: true
"""


@pytest.mark.parametrize("api", ["v3.0.0", "v3.0.2", "v3.1.0", "v3.2.0"])
def test_supported_api_versions(tmp_path: Path, api: str, shared_spec: Path) -> None:
    path = _write(tmp_path, CONTRACT.format(api=api))
    assert load_contract(path).api_version == api
    assert schema_problems(path, None, shared_spec / "odcs") == []


def test_unsupported_api_version_names_file_line_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path, CONTRACT.format(api="v2.2.2"))
    with pytest.raises(SpecErrors) as raised:
        load_contract(path, tmp_path)
    (problem,) = raised.value.problems
    assert (problem.file, problem.line, problem.field) == ("c.odcs.yaml", 1, "apiVersion")
    assert "v3.1.0" in problem.message


def test_schema_violation_names_file_line_and_field(tmp_path: Path, shared_spec: Path) -> None:
    text = CONTRACT.format(api="v3.1.0") + "        unique: maybe\n"
    path = _write(tmp_path, text)
    problems = schema_problems(path, tmp_path, shared_spec / "odcs")
    assert problems, "a non-boolean 'unique' must not conform"
    assert problems[0].line == 14
    assert problems[0].field == "schema[0].properties[0].unique"
    assert problems[0].hint


# -- the compiler --------------------------------------------------------------------------------


def _rule_contract(tmp_path: Path, rule: dict[str, Any], column: str | None) -> Path:
    document: dict[str, Any] = yaml.safe_load(CONTRACT.format(api="v3.1.0"))
    obj = document["schema"][0]
    obj["properties"] = [
        {"name": "id", "physicalType": "bigint", "required": True},
        {"name": "grp", "physicalType": "bigint"},
        {"name": "val", "physicalType": "varchar"},
    ]
    if column is None:
        obj["quality"] = [rule]
    else:
        next(p for p in obj["properties"] if p["name"] == column)["quality"] = [rule]
    path = tmp_path / "rule.odcs.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def test_compile_errors_name_the_rule(tmp_path: Path) -> None:
    path = _rule_contract(tmp_path, {"metric": "nullValues", "mustBe": "zero"}, "val")
    with pytest.raises(SpecErrors) as raised:
        compile_contract(path, "t", tmp_path)
    (problem,) = raised.value.problems
    assert problem.field == "schema[0].properties[2].quality[0].mustBe"
    assert problem.line is not None and "a number" in problem.message
    path = _rule_contract(tmp_path, {"metric": "invalidValues", "mustBe": 0}, "val")
    with pytest.raises(SpecErrors, match=r"validValues or arguments\.pattern"):
        compile_contract(path, "t", tmp_path)


def test_unknown_and_text_rules_are_warnings_not_dropped(tmp_path: Path) -> None:
    path = _rule_contract(tmp_path, {"metric": "freshness", "mustBe": 0}, None)
    plan = compile_contract(path, "t", tmp_path)
    assert plan.rules == ()
    assert [w.severity for w in plan.warnings] == ["warning"]
    assert "freshness" in plan.warnings[0].message and plan.warnings[0].line


def test_demo_contracts_compile(project_paths) -> None:
    assert (
        sum(
            len(compile_contract(p, load_contract(p).schema_[0].name).rules) for p in DEMO_CONTRACTS
        )
        > 30
    )
    for path in DEMO_CONTRACTS:
        contract = load_contract(path)
        plan = compile_contract(path, contract.schema_[0].name, project_paths.root)
        assert plan.columns, path
        assert len({r.check_name for r in plan.rules}) == len(plan.rules)


# -- the Soda layer: every metric and operator, passing and failing -------------------------------

ROWS = 250
# id 0..249 unique; grp = id % 50 (each value 5 times); val: null for id%10=0, 'n/a' for
# id%10=1, 'x9' for id%10=2, else 'a'. So 25 nulls, 25 'n/a', 25 'x9'.
TABLE_SQL = f"""
create schema if not exists s;
create or replace table s.t as
select id, id % 50 as grp,
       case id % 10 when 0 then null when 1 then 'n/a' when 2 then 'x9' else 'a' end as val
from range({ROWS}) r(id)
"""


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(str(tmp_path_factory.mktemp("soda") / "w.duckdb"))
    connection.execute(TABLE_SQL)
    return connection


def _run(
    connection: duckdb.DuckDBPyConnection, tmp_path: Path, rule: dict[str, Any], column: str | None
) -> RuleResult:
    plan = compile_contract(_rule_contract(tmp_path, rule, column), "t", tmp_path)
    (result,) = run_quality(connection, plan, "s", "t")
    return result


OPERATOR_CASES = [
    # (operator, passing value, failing value) on rowCount = 250
    ("mustBe", 250, 249),
    ("mustNotBe", 249, 250),
    ("mustBeGreaterThan", 249, 250),
    ("mustBeGreaterOrEqualTo", 250, 251),
    ("mustBeLessThan", 251, 250),
    ("mustBeLessOrEqualTo", 250, 249),
    ("mustBeBetween", [250, 300], [251, 300]),
    ("mustNotBeBetween", [251, 300], [200, 250]),
]


def test_every_odcs_operator_is_covered() -> None:
    spelled = {op for op, _, _ in OPERATOR_CASES}
    assert spelled == {op for op in OPERATORS if "Than" not in op or "OrEqual" not in op} | {
        "mustBeGreaterThan",
        "mustBeLessThan",
    }


@pytest.mark.parametrize(("operator", "passing", "failing"), OPERATOR_CASES)
def test_row_count_with_every_operator(
    crafted: duckdb.DuckDBPyConnection, tmp_path: Path, operator: str, passing: Any, failing: Any
) -> None:
    good = _run(crafted, tmp_path, {"metric": "rowCount", operator: passing}, None)
    assert good.passed and good.observed == ROWS
    bad = _run(
        crafted, tmp_path, {"metric": "rowCount", operator: failing, "severity": "error"}, None
    )
    assert not bad.passed and bad.observed == ROWS and bad.blocking_failure
    assert bad.sample == []  # a row count has no failing rows


METRIC_CASES = [
    # (id, column, rule without operator, observed, predicate on a failing sample row)
    ("null", "val", {"metric": "nullValues"}, 25, lambda r: r["val"] is None),
    (
        "missing",
        "val",
        {"metric": "missingValues", "arguments": {"missingValues": ["n/a"]}},
        50,
        lambda r: r["val"] in (None, "n/a"),
    ),
    (
        "invalid-values",
        "val",
        {"metric": "invalidValues", "arguments": {"validValues": ["a", "n/a"]}},
        25,
        lambda r: r["val"] == "x9",
    ),
    (
        "invalid-pattern",
        "val",
        {"metric": "invalidValues", "arguments": {"pattern": "^[a-z/]+$"}},
        25,
        lambda r: r["val"] == "x9",
    ),
    ("duplicate-column", "grp", {"metric": "duplicateValues"}, None, lambda r: True),
    (
        "duplicate-columns",
        None,
        {"metric": "duplicateValues", "arguments": {"properties": ["grp", "val"]}},
        None,
        lambda r: True,
    ),
    (
        "sql",
        None,
        {"type": "sql", "query": "select count(*) from {object} where id >= 200"},
        50,
        lambda r: r["id"] >= 200,
    ),
    (
        "sql-column",
        "val",
        {"type": "sql", "query": "SELECT COUNT(*) FROM ${table} WHERE ${column} = 'x9'"},
        25,
        lambda r: r["val"] == "x9",
    ),
]


@pytest.mark.parametrize(
    ("column", "rule", "observed", "failing"),
    [case[1:] for case in METRIC_CASES],
    ids=[case[0] for case in METRIC_CASES],
)
def test_every_metric_passes_and_fails(
    crafted: duckdb.DuckDBPyConnection,
    tmp_path: Path,
    column: str | None,
    rule: dict[str, Any],
    observed: int | None,
    failing: Any,
) -> None:
    bad = _run(crafted, tmp_path, {**rule, "mustBe": 0, "severity": "error"}, column)
    assert not bad.passed, bad
    assert bad.error is None
    assert bad.observed is not None and bad.observed > 0
    if observed is not None:
        assert bad.observed == observed
    assert 0 < len(bad.sample) <= SAMPLE_LIMIT
    assert all(failing(row) for row in bad.sample)
    assert bad.threshold == "= 0" and bad.severity == "error" and bad.blocking_failure
    good = _run(crafted, tmp_path, {**rule, "mustBeLessOrEqualTo": bad.observed}, column)
    assert good.passed and good.observed == bad.observed and good.sample == []
    warn = _run(crafted, tmp_path, {**rule, "mustBe": 0, "severity": "warning"}, column)
    assert not warn.passed and not warn.blocking_failure


def test_duplicates_pass_on_a_unique_column(
    crafted: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    result = _run(crafted, tmp_path, {"metric": "duplicateValues", "mustBe": 0}, "id")
    assert result.passed and result.observed == 0


def test_percent_unit(crafted: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    rule = {"metric": "nullValues", "unit": "percent"}
    assert _run(crafted, tmp_path, {**rule, "mustBeLessOrEqualTo": 10}, "val").passed
    bad = _run(crafted, tmp_path, {**rule, "mustBeLessThan": 10}, "val")
    assert not bad.passed and bad.observed == pytest.approx(10.0)
    assert bad.threshold == "< 10 %"


def test_sample_is_at_most_100_rows(crafted: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    bad = _run(
        crafted,
        tmp_path,
        {"type": "sql", "query": "select count(*) from {object} where id >= 0", "mustBe": 0},
        None,
    )
    assert bad.observed == ROWS and len(bad.sample) == SAMPLE_LIMIT


def test_broken_sql_rule_fails_with_the_error(
    crafted: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    bad = _run(
        crafted,
        tmp_path,
        {"type": "sql", "query": "select count(*) from {object} where nope > 0", "mustBe": 0},
        None,
    )
    assert not bad.passed and bad.error


def test_quality_runs_inside_duckdb(crafted: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """The metrics are pushed down: the whole crafted table is never fetched into Python."""
    plan = compile_contract(
        _rule_contract(tmp_path, {"metric": "nullValues", "mustBe": 25}, "val"), "t", tmp_path
    )
    crafted.execute("create or replace table s.big as select * from s.t, range(400) r(k)")
    (result,) = run_quality(crafted, plan, "s", "big")
    assert result.observed == 25 * 400 and not result.passed
    assert len(result.sample) == SAMPLE_LIMIT


# -- the pandera layer ---------------------------------------------------------------------------


def _pandera_plan(tmp_path: Path):
    document: dict[str, Any] = yaml.safe_load(CONTRACT.format(api="v3.1.0"))
    document["schema"][0]["properties"] = [
        {"name": "id", "physicalType": "bigint", "required": True, "unique": True},
        {
            "name": "band",
            "physicalType": "varchar",
            "required": True,
            "quality": [
                {
                    "metric": "invalidValues",
                    "arguments": {"validValues": ["high", "low"]},
                    "mustBe": 0,
                    "severity": "error",
                }
            ],
        },
        {"name": "score", "physicalType": "double"},
    ]
    path = tmp_path / "pandera.odcs.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return compile_contract(path, "t", tmp_path)


PANDERA_CASES = {
    "valid": ("select i as id, 'high' as band, i / 10.0 as score from range(500) r(i)", None),
    "null-in-required": (
        "select i as id, case when i = 3 then null else 'low' end as band, 0.5::double as score "
        "from range(500) r(i)",
        "band",
    ),
    "duplicate-in-unique": (
        "select i % 400 as id, 'low' as band, 0.5::double as score from range(500) r(i)",
        "id",
    ),
    "invalid-value": (
        "select i as id, case when i % 7 = 0 then 'medium' else 'low' end as band, "
        "0.5::double as score from range(500) r(i)",
        "band",
    ),
    "wrong-type": ("select i as id, 'low' as band, 'x' as score from range(500) r(i)", "score"),
    "missing-column": ("select i as id, 'low' as band from range(500) r(i)", "score"),
}


@pytest.mark.parametrize("case", sorted(PANDERA_CASES))
def test_pandera_schema_runs_its_data_checks_in_duckdb(tmp_path: Path, case: str) -> None:
    from ddp_assets.contracts.pandera_checks import validate_table

    query, column = PANDERA_CASES[case]
    plan = _pandera_plan(tmp_path)
    with duckdb.connect(str(tmp_path / "p.duckdb")) as connection:
        connection.execute(f"create schema s; create table s.t as {query}")
        result = validate_table(connection, plan, "s", "t")
    if column is None:
        assert result.passed, result.messages
        return
    assert not result.passed
    assert any(f"{column}" in m for m in result.messages), result.messages
    assert 0 < len(result.sample) <= SAMPLE_LIMIT


def test_conformance_uses_the_schema_the_standard_ships(tmp_path: Path) -> None:
    """Without a schema folder, contracts are checked against open-data-contract-standard's own
    schema.json (a dependency), and the message names it; nothing is read beside the project."""
    from ddp_assets.standards import odcs_schema

    source = ROOT / "ddp_assets/defs/sales/customers/contracts/customers.odcs.yaml"
    good = tmp_path / "good.odcs.yaml"
    good.write_text(source.read_text())
    assert schema_problems(good, tmp_path) == []
    bad = tmp_path / "bad.odcs.yaml"
    bad.write_text(source.read_text().replace("\nstatus: ", "\nstatus: [1, 2]\nx_status: ", 1))
    problems = schema_problems(bad, tmp_path)
    assert problems and all(p.severity == "error" for p in problems)
    assert odcs_schema().source.startswith("open-data-contract-standard 3.")
    assert odcs_schema().source in problems[0].message


def test_a_missing_schema_is_an_error_not_a_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ddp_assets.standards as standards

    def unavailable(*_: Any) -> Any:
        raise standards.SchemaUnavailable("the ODCS JSON Schema is unavailable: gone", "reinstall")

    monkeypatch.setattr(standards, "odcs_schema", unavailable)
    source = ROOT / "ddp_assets/defs/sales/customers/contracts/customers.odcs.yaml"
    path = tmp_path / "c.odcs.yaml"
    path.write_text(source.read_text())
    (problem,) = schema_problems(path, tmp_path)
    assert problem.severity == "error" and "unavailable" in problem.message
    assert problem.hint == "reinstall"
