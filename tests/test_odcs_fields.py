"""ODCS v3.2.0 fields ddp acts on: a property's ``enum`` is an accepted-values check (Soda and
pandera, run for real on DuckDB); ``semanticType``, ``synonyms`` and ``deprecated`` are read and
kept, and ``deprecated`` is reported by ``ddp contract diff``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from ddp_assets.contracts.compiler import compile_contract
from ddp_assets.contracts.pandera_checks import validate_table
from ddp_assets.contracts.soda import run_quality
from ddp_assets.spec.errors import SpecErrors
from ddp_assets.spec.odcs import WRITTEN_API_VERSION, load_contract, schema_problems


def _contract(tmp_path: Path, band: dict[str, Any]) -> Path:
    document = {
        "apiVersion": WRITTEN_API_VERSION,
        "kind": "DataContract",
        "id": "urn:test:t",
        "version": "1.0.0",
        "status": "active",
        "schema": [
            {
                "name": "t",
                "physicalType": "table",
                "synonyms": [{"synonym": "risk table"}],
                "properties": [
                    {
                        "name": "id",
                        "logicalType": "integer",
                        "physicalType": "bigint",
                        "required": True,
                    },
                    {"name": "band", "logicalType": "string", "physicalType": "varchar", **band},
                    {
                        "name": "score",
                        "logicalType": "number",
                        "physicalType": "double",
                        "semanticType": "measure",
                    },
                ],
            }
        ],
    }
    path = tmp_path / "t.odcs.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


ENUM = {
    "enum": [
        {"value": "high", "label": "High risk"},
        {"value": "low", "description": "Unlikely to churn"},
    ],
    "deprecated": True,
    "synonyms": [{"synonym": "risk_band", "source": "crm"}],
}


def test_v3_2_fields_conform_and_are_read(tmp_path: Path) -> None:
    path = _contract(tmp_path, ENUM)
    assert schema_problems(path, tmp_path) == []
    obj = load_contract(path).schema_[0]
    band, score = obj.properties[1], obj.properties[2]
    assert band.enum_values == ("high", "low")
    assert band.deprecated and band.synonyms[0]["synonym"] == "risk_band"
    assert score.semantic_type == "measure" and score.enum_values is None
    assert obj.synonyms == [{"synonym": "risk table"}]


def test_an_enum_compiles_to_a_blocking_accepted_values_check(tmp_path: Path) -> None:
    path = _contract(tmp_path, ENUM)
    plan = compile_contract(path, "t", tmp_path)
    (rule,) = plan.rules
    assert (rule.check_name, rule.metric, rule.column) == ("band_enum", "invalidValues", "band")
    assert rule.valid_values == ("high", "low") and rule.blocking
    assert (rule.threshold.operator, rule.threshold.value) == ("mustBe", 0)
    lines = path.read_text().splitlines()
    assert rule.line is not None and lines[rule.line - 1].strip() == "enum:"


def test_an_enum_next_to_a_valid_values_rule_gets_its_own_check_name(tmp_path: Path) -> None:
    rule = {"metric": "invalidValues", "name": "band_enum", "arguments": {"validValues": ["a"]}}
    plan = compile_contract(_contract(tmp_path, {**ENUM, "quality": [rule]}), "t", tmp_path)
    assert [r.check_name for r in plan.rules] == ["band_enum", "band_enum_2"]


@pytest.fixture
def bands(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    connection.execute(
        "create schema s; create table s.t as select id::bigint as id, band::varchar as band, "
        "score::double as score from (values (1, 'high', 0.9), (2, 'low', 0.1), "
        "(3, null, 0.5), (4, 'medium', 0.4), (5, 'medium', 0.3)) v(id, band, score)"
    )
    return connection


def test_soda_fails_the_rows_outside_the_enum(
    tmp_path: Path, bands: duckdb.DuckDBPyConnection
) -> None:
    plan = compile_contract(_contract(tmp_path, ENUM), "t", tmp_path)
    (result,) = run_quality(bands, plan, "s", "t")
    assert not result.passed and result.blocking_failure
    assert result.observed == 2  # the two 'medium' rows; the null is not invalid
    assert {row["band"] for row in result.sample} == {"medium"}
    bands.execute("delete from s.t where band = 'medium'")
    (result,) = run_quality(bands, plan, "s", "t")
    assert result.passed and result.observed == 0


def test_pandera_checks_the_enum_too(tmp_path: Path, bands: duckdb.DuckDBPyConnection) -> None:
    plan = compile_contract(_contract(tmp_path, ENUM), "t", tmp_path)
    result = validate_table(bands, plan, "s", "t")
    assert not result.passed
    assert any("band" in m for m in result.messages), result.messages
    bands.execute("delete from s.t where band = 'medium'")
    assert validate_table(bands, plan, "s", "t").passed


def test_an_enum_of_plain_values_is_refused_with_its_line(tmp_path: Path) -> None:
    path = _contract(tmp_path, {"enum": ["high", "low"]})
    problems = schema_problems(path, tmp_path)
    assert problems and all("ODCS v3.2.0 schema" in p.message for p in problems)
    with pytest.raises(SpecErrors) as raised:
        load_contract(path, tmp_path)
    assert raised.value.problems[0].field.startswith("schema[0].properties[1].enum")
    assert raised.value.problems[0].line
