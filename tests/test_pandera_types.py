"""Column types of ODCS contracts through the pandera layer and the dbt column compiler.

Every schema object of the standard's official examples compiles, its types either map to a
dtype check or come back as a located warning, and an empty DuckDB table created with the very
types a contract declares passes its pandera schema (so the mapping agrees with what DuckDB and
ibis make of each type). Real DuckDB, real pandera; no mocks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
import yaml
from sqlglot import exp

from ddp_assets.automation.landing import contract_violation
from ddp_assets.contracts.column_types import ColumnType, UncheckedType, column_type
from ddp_assets.contracts.compiler import (
    ContractPlan,
    QualityRule,
    ShapeColumn,
    Threshold,
    compile_contract,
)
from ddp_assets.contracts.pandera_checks import (
    expected_type,
    pandera_result,
    pandera_schema,
    validate_table,
)
from ddp_assets.spec.model import FileInputPort
from ddp_assets.spec.odcs import load_contract
from ddp_assets.warehouse.config import data_type_for

EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "spec" / "odcs" / "examples"


def _objects() -> list[tuple[Path, int, str]]:
    found = []
    for path in sorted(EXAMPLES.glob("*.odcs.yaml")):
        for index, obj in enumerate(load_contract(path).schema_):
            if obj.properties:
                found.append((path, index, obj.name))
    return found


OBJECTS = _objects()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _empty_table(connection: duckdb.DuckDBPyConnection, plan: ContractPlan) -> list[str]:
    """``s.t`` with a column of each declared type DuckDB can create; the names left out."""
    connection.execute("create schema if not exists s")
    made, left_out = [], []
    for column in plan.columns:
        try:
            connection.execute(f"select null::{column.data_type}")
        except duckdb.Error:
            left_out.append(column.name)
            continue
        made.append(f"{_quote(column.name)} {column.data_type}")
    connection.execute("create or replace table s.t (" + ", ".join(made) + ")")
    return left_out


def test_the_official_examples_are_all_here() -> None:
    assert len(OBJECTS) >= 5, OBJECTS


@pytest.mark.parametrize(
    ("path", "index", "name"), OBJECTS, ids=[f"{p.stem}:{n}" for p, _, n in OBJECTS]
)
def test_every_official_schema_object_compiles_through_pandera_and_dbt(
    path: Path, index: int, name: str
) -> None:
    plan = compile_contract(path, name)
    warned = {w.field: w for w in plan.warnings}
    for p, column in enumerate(plan.columns):
        kind = column_type(column.data_type)
        if isinstance(kind, UncheckedType):
            warning = warned[f"schema[{index}].properties[{p}].physicalType"]
            assert warning.severity == "warning" and warning.line and warning.hint
        else:
            assert isinstance(kind, ColumnType)
        # the dbt column compiler: the type in each adapter's dialect, one DuckDB can read
        for adapter in ("duckdb", "postgres"):
            translated = data_type_for(column.data_type, adapter)
            assert isinstance(exp.DataType.build(translated, dialect=adapter), exp.DataType)
    pandera_schema(plan)  # builds without a table
    with duckdb.connect() as connection:
        assert _empty_table(connection, plan) == []
        result = validate_table(connection, plan, "s", "t")
    assert result.passed, result.messages


# The types the issue names, and the other common spellings: family and width, or a warning.
TYPES: dict[str, tuple[str, int | None] | None] = {
    "varchar": ("string", None),
    "varchar(100)": ("string", None),
    "VARCHAR(18)": ("string", None),
    "character varying(20)": ("string", None),
    "char(2)": ("string", None),
    "text": ("string", None),
    "string": ("string", None),
    "uuid": ("string", None),
    "json": ("string", None),
    "tinyint": ("integer", 8),
    "int2": ("integer", 16),
    "smallint": ("integer", 16),
    "int": ("integer", 32),
    "int4": ("integer", 32),
    "integer": ("integer", 32),
    "int8": ("integer", 64),
    "bigint": ("integer", 64),
    "long": ("integer", 64),
    "hugeint": ("integer", 128),
    "ubigint": ("integer", 64),
    "float": ("float", 32),
    "real": ("float", 32),
    "float4": ("float", 32),
    "double": ("float", 64),
    "float8": ("float", 64),
    "double precision": ("float", 64),
    "float(3,2)": ("float", None),
    "decimal": ("decimal", None),
    "decimal(10,2)": ("decimal", None),
    "numeric(5)": ("decimal", None),
    "boolean": ("boolean", None),
    "bool": ("boolean", None),
    "date": ("date", None),
    "timestamp": ("timestamp", None),
    "datetime": ("timestamp", None),
    "timestamp_ns": ("timestamp", None),
    "timestamptz": ("timestamp", None),
    "timestamp with time zone": ("timestamp", None),
    "time": ("time", None),
    "blob": ("binary", None),
    "bytea": ("binary", None),
    "varchar[]": None,
    "integer[]": None,
    "array<string>": None,
    "array": None,
    "object": None,
    "struct(a integer, b varchar)": None,
    "map(varchar, integer)": None,
    "interval": None,
    "varchar(": None,
    "no such type": None,
}


@pytest.mark.parametrize("text", sorted(TYPES))
def test_a_type_maps_to_its_family_or_is_left_unchecked(text: str) -> None:
    kind = column_type(text)
    expected = TYPES[text]
    if expected is None:
        assert isinstance(kind, UncheckedType), kind
        assert kind.reason and kind.hint
        return
    assert isinstance(kind, ColumnType), kind
    assert (kind.family, kind.bits) == expected
    if text in ("timestamptz", "timestamp with time zone"):
        assert kind.timezone
    if text == "decimal(10,2)":
        assert (kind.precision, kind.scale) == (10, 2)
    if text == "numeric(5)":
        assert (kind.precision, kind.scale) == (5, 0)


@pytest.mark.parametrize(
    ("text", "duckdb_bits", "postgres_bits"),
    [("tinyint", 8, 16), ("usmallint", 16, 32), ("uinteger", 32, 64), ("bigint", 64, 64)],
)
def test_on_postgresql_a_type_is_the_one_the_warehouse_was_given(
    text: str, duckdb_bits: int, postgres_bits: int
) -> None:
    on_duckdb, on_postgres = expected_type(text), expected_type(text, "postgres")
    assert isinstance(on_duckdb, ColumnType) and isinstance(on_postgres, ColumnType)
    assert (on_duckdb.bits, on_postgres.bits) == (duckdb_bits, postgres_bits)
    assert not on_postgres.unsigned
    hugeint = expected_type("hugeint", "postgres")
    assert isinstance(hugeint, ColumnType) and (hugeint.family, hugeint.precision) == (
        "decimal",
        38,
    )


def _contract(tmp_path: Path, properties: list[dict[str, Any]], name: str = "t") -> Path:
    document = {
        "apiVersion": "v3.1.0",
        "kind": "DataContract",
        "id": "urn:test:types",
        "version": "1.0.0",
        "status": "active",
        "schema": [{"name": name, "physicalType": "table", "properties": properties}],
    }
    path = tmp_path / f"{name}.odcs.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def test_every_type_compiles_and_an_empty_table_of_those_types_passes(tmp_path: Path) -> None:
    properties = [
        {"name": f"c{i}", "physicalType": text, "required": i % 2 == 0}
        for i, text in enumerate(sorted(TYPES))
    ]
    plan = compile_contract(_contract(tmp_path, properties), "t", tmp_path)
    warned = {w.field: w for w in plan.warnings}
    for p, text in enumerate(sorted(TYPES)):
        field = f"schema[0].properties[{p}].physicalType"
        if TYPES[text] is None:
            warning = warned[field]
            assert warning.line and warning.hint and f"c{p}" in warning.message
            assert warning.file.endswith("t.odcs.yaml")
        else:
            assert field not in warned, warned[field]
    for adapter in ("duckdb", "postgres"):
        assert all(isinstance(data_type_for(c.data_type, adapter), str) for c in plan.columns)
    with duckdb.connect() as connection:
        left_out = _empty_table(connection, plan)
        # the names of columns DuckDB cannot create are still checked: they are missing
        result = validate_table(connection, plan, "s", "t")
        assert not result.passed
        assert {m.split(":")[0] for m in result.messages} == set(left_out), result.messages
        plan_made = ContractPlan(
            plan.contract_id,
            plan.contract_version,
            plan.object_name,
            plan.file,
            tuple(c for c in plan.columns if c.name not in left_out),
            plan.rules,
        )
        assert validate_table(connection, plan_made, "s", "t").passed
    # only spellings DuckDB has no type for (float(p,s) is MySQL's) are left out
    refused = {sorted(TYPES)[int(name[1:])] for name in left_out}
    assert refused == {"array", "array<string>", "object", "float(3,2)", "no such type", "varchar("}


def test_a_landing_contract_with_varchar_n_validates_a_real_file(tmp_path: Path) -> None:
    path = _contract(
        tmp_path,
        [
            {"name": "customer_id", "physicalType": "bigint", "required": True, "unique": True},
            {
                "name": "email",
                "physicalType": "varchar(100)",
                "required": True,
                "quality": [
                    {
                        "metric": "invalidValues",
                        "arguments": {"pattern": "^[^@]+@[^@]+$"},
                        "mustBe": 0,
                        "severity": "error",
                    }
                ],
            },
            {"name": "country", "physicalType": "varchar(2)"},
            {"name": "signup_date", "physicalType": "date"},
        ],
        name="customers",
    )
    plan = compile_contract(path, "customers", tmp_path)
    assert not [w for w in plan.warnings if "physicalType" in w.field]
    port = FileInputPort(name="customers", type="file", path="customers/*.csv", format="csv")
    good = tmp_path / "good.csv"
    good.write_text(
        "customer_id,email,country,signup_date\n"
        "1,ada@example.com,GB,2024-01-02\n2,alan@example.com,GB,2024-01-03\n",
        encoding="utf-8",
    )
    assert contract_violation(good, port, plan) is None
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "customer_id,email,country,signup_date\n1,not-an-email,GB,2024-01-02\n",
        encoding="utf-8",
    )
    reason = contract_violation(bad, port, plan)
    assert reason is not None and "email" in reason and "str_contains" in reason


def test_a_wrong_type_is_a_failed_check_naming_the_column(tmp_path: Path) -> None:
    path = _contract(
        tmp_path,
        [
            {"name": "id", "physicalType": "uuid", "required": True},
            {"name": "amount", "physicalType": "decimal(10,2)"},
            {"name": "tags", "physicalType": "varchar[]"},
            {"name": "attributes", "logicalType": "object"},
        ],
    )
    plan = compile_contract(path, "t", tmp_path)
    assert [c.data_type for c in plan.columns][-1] == "json"
    with duckdb.connect() as connection:
        connection.execute(
            "create schema s; create table s.t as select uuid() as id, "
            "1.5::decimal(10,2) as amount, ['a'] as tags, {'size': 3} as attributes"
        )
        assert validate_table(connection, plan, "s", "t").passed
        connection.execute(
            "create or replace table s.t as select 'x' as id, 1.5::double as amount, 1 as tags, "
            """'{"size": 3}'::json as attributes"""
        )
        result = validate_table(connection, plan, "s", "t")
    assert not result.passed
    assert result.error_counts == {"WRONG_DATATYPE": 1}
    (message,) = result.messages
    assert message.startswith("amount: ") and "decimal(10,2)" in message and "float64" in message
    assert result.sample == [
        {"column": "amount", "check": "dtype('decimal(10,2)')", "failure_case": "float64"}
    ]


def _plan_with_pattern(pattern: str) -> ContractPlan:
    """A plan built directly (not compiled): the compiler refuses such a pattern, so this is
    how a check that fails inside the warehouse is forced."""
    rule = QualityRule(
        "val_invalid_values",
        "invalidValues",
        "val",
        Threshold("mustBe", 0),
        "error",
        pattern=pattern,
    )
    return ContractPlan(
        "urn:test:forced",
        "1.0.0",
        "t",
        "forced.odcs.yaml",
        (ShapeColumn("val", "varchar", False, False, False),),
        (rule,),
    )


def test_an_error_inside_the_validation_is_a_failed_check_with_its_message() -> None:
    with duckdb.connect() as connection:
        connection.execute("set TimeZone = 'America/Los_Angeles'")  # ibis sets UTC
        connection.execute("create schema s; create table s.t as select 'abc' as val")
        # a look-behind: Python's re reads it, DuckDB's RE2 refuses it when the check runs
        result = validate_table(connection, _plan_with_pattern("(?<=a)b"), "s", "t")
        assert not result.passed and result.error_counts == {"CHECK_ERROR": 1}
        assert result.messages[0].startswith("val: str_contains(") and "perl" in result.messages[0]
        # no table at all: the validation cannot start
        missing = validate_table(connection, _plan_with_pattern("^a"), "s", "nowhere")
        # and the connection's own settings survive both
        (zone,) = connection.execute("select current_setting('TimeZone')").fetchone() or ("",)
    assert not missing.passed
    (message,) = missing.messages
    assert "could not be checked on s.nowhere" in message and "nowhere" in message.split(": ", 2)[2]
    check = pandera_result(missing, _plan_with_pattern("^a"), dg.AssetKey(["p", "t"]))
    assert check.passed is False and "could not be checked" in (check.description or "")
    assert zone == "America/Los_Angeles"


POSTGRES_TYPES = [
    "varchar(100)",
    "text",
    "uuid",
    "json",
    "tinyint",
    "int2",
    "integer",
    "bigint",
    "hugeint",
    "usmallint",
    "double",
    "float",
    "decimal(10,2)",
    "boolean",
    "date",
    "timestamp",
    "timestamptz",
    "time",
    "blob",
]


def test_on_postgresql_the_tables_dbt_would_create_pass(postgres_server: Any) -> None:
    """Each type as the dbt column compiler gives it to PostgreSQL, then read back through ibis's
    PostgreSQL backend: the family check agrees with what the warehouse made of it."""

    warehouse = postgres_server.warehouse("pandera_types")
    plan = ContractPlan(
        "urn:test:pg",
        "1.0.0",
        "t",
        "pg.odcs.yaml",
        tuple(
            ShapeColumn(f"c{i}", text, i % 2 == 0, False, False)
            for i, text in enumerate(POSTGRES_TYPES)
        ),
        (),
    )
    columns = ", ".join(
        f"c{i} {data_type_for(text, 'postgres')}" for i, text in enumerate(POSTGRES_TYPES)
    )
    with warehouse.writer() as connection:
        connection.execute("drop schema if exists s cascade")
        connection.execute("create schema s")
        connection.execute(f"create table s.t ({columns})")
        empty = validate_table(connection, plan, "s", "t")
        connection.execute(
            "insert into s.t (c0, c2, c4, c6, c8, c10, c12, c14, c16, c18) values ('a', "
            "gen_random_uuid(), 1, 2, 3, 1.5, 1.25, current_date, now(), '\\x00')"
        )
        one_row = validate_table(connection, plan, "s", "t")
        connection.execute("alter table s.t alter column c10 type integer")
        wrong = validate_table(connection, plan, "s", "t")
        missing = validate_table(connection, plan, "s", "nowhere")
        (count,) = connection.execute("select count(*) from s.t").fetchone() or (None,)
    assert not missing.passed and "could not be checked on s.nowhere" in missing.summary()
    assert count == 1  # the session is still usable after the failed validation
    assert empty.passed, empty.messages
    assert one_row.passed, one_row.messages
    assert not wrong.passed and wrong.messages[0].startswith("c10: dtype('double')")
