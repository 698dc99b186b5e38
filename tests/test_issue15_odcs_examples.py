"""Every schema object of the standard's official ODCS examples through ddp's pandera layer.

``tests/fixtures/odcs_examples`` is the whole ``docs/examples`` folder of the ODCS repository
(18 contracts, 82 schema objects; ``../shared/spec`` holds 5 of them, see
``test_pandera_types.py``). Each object compiles (or is refused with a located message), each
declared type either maps to a dtype check or comes back as a located warning, the dbt column
compiler translates each type for DuckDB and PostgreSQL, and a real DuckDB table with those
columns is validated by pandera as a result, never an exception. Real DuckDB, real pandera.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import yaml
from sqlglot import exp

from ddp_assets.contracts.column_types import ColumnType, UncheckedType, column_type
from ddp_assets.contracts.compiler import compile_contract
from ddp_assets.contracts.pandera_checks import pandera_schema, validate_table
from ddp_assets.spec.errors import SpecErrors
from ddp_assets.spec.odcs import load_contract
from ddp_assets.warehouse.config import data_type_for

EXAMPLES = Path(__file__).parent / "fixtures" / "odcs_examples"
# The one example whose SQL rule reads the object by its bare name, not through {object}:
# ddp's rule sandbox refuses it with a located message (the rule is not run).
REFUSED = {("column-accuracy.odcs.yaml", "Air_Quality")}


def _objects() -> list[tuple[Path, int, str]]:
    found = []
    for path in sorted(EXAMPLES.rglob("*.odcs.yaml")):
        for index, obj in enumerate(load_contract(path).schema_ or []):
            if obj.properties:
                found.append((path, index, obj.name))
    return found


OBJECTS = _objects()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def test_all_82_schema_objects_of_the_examples_are_here() -> None:
    assert len(list(EXAMPLES.rglob("*.odcs.yaml"))) == 18
    assert len(OBJECTS) == 82


@pytest.mark.parametrize(
    ("path", "index", "name"), OBJECTS, ids=[f"{p.stem}:{n}" for p, _, n in OBJECTS]
)
def test_an_official_schema_object_runs_through_pandera_without_a_crash(
    path: Path, index: int, name: str
) -> None:
    if (path.name, name) in REFUSED:
        with pytest.raises(SpecErrors) as refused:
            compile_contract(path, name)
        (problem,) = refused.value.problems
        assert problem.line and problem.hint and ".quality[" in problem.field
        return
    plan = compile_contract(path, name)
    warned = {w.field: w for w in plan.warnings}
    columns = []
    for p, column in enumerate(plan.columns):
        kind = column_type(column.data_type)
        if isinstance(kind, UncheckedType):
            warning = warned[f"schema[{index}].properties[{p}].physicalType"]
            assert warning.severity == "warning" and warning.line and warning.hint
        else:
            assert isinstance(kind, ColumnType)
            # a mapped type is one the dbt column compiler gives each adapter in its dialect
            for adapter in ("duckdb", "postgres"):
                translated = data_type_for(column.data_type, adapter)
                assert isinstance(exp.DataType.build(translated, dialect=adapter), exp.DataType)
        try:
            duckdb.sql(f"select null::{column.data_type}")
            declared = column.data_type
        except duckdb.Error:
            # a type DuckDB has no name for (serial, xml, a domain such as 'phone') is
            # left unchecked (asserted above): the column is made as text
            assert isinstance(kind, UncheckedType), column.data_type
            declared = "varchar"
        columns.append(f"{_quote(column.name)} {declared}")
    pandera_schema(plan)
    with duckdb.connect() as connection:
        connection.execute("create schema s")
        connection.execute("create table s.t (" + ", ".join(columns) + ")")
        result = validate_table(connection, plan, "s", "t")
    assert result.passed, result.messages


def test_ddp_validate_warns_of_each_unchecked_type_of_a_landing_contract(tmp_path: Path) -> None:
    """Types of the official examples in a landing contract: `ddp validate` (a real process)
    passes, with one located warning per type pandera cannot check and none for the others."""
    import json
    import os

    from tests.test_cli import copy_project, ddp

    project = copy_project(tmp_path / "project")
    types = {"order_id": "serial", "customer_id": "varchar(100)", "note": "xml", "id": "uuid"}
    contract = {
        "apiVersion": "v3.2.0",
        "kind": "DataContract",
        "id": "urn:test:raw_orders",
        "version": "1.0.0",
        "status": "active",
        "schema": [
            {
                "name": "raw_orders",
                "physicalType": "table",
                "properties": [
                    {"name": n, "logicalType": "string", "physicalType": t}
                    for n, t in types.items()
                ],
            }
        ],
    }
    path = project / "ddp_assets/defs/sales/orders/contracts/raw_orders.odcs.yaml"
    path.write_text(yaml.safe_dump(contract, sort_keys=False), encoding="utf-8")
    env = {**os.environ, "DDP_PROJECT_ROOT": str(project)}
    result = ddp("validate", "--no-dbt", "--json", env=env, cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["valid"] is True
    warned = [p for p in report["problems"] if p["file"].endswith("raw_orders.odcs.yaml")]
    assert {p["field"] for p in warned} == {
        "schema[0].properties[0].physicalType",  # serial
        "schema[0].properties[2].physicalType",  # xml
    }
    assert all(p["severity"] == "warning" and p["line"] and p["hint"] for p in warned)
