"""``ddp contract infer``: an output port's contract from its built relation and its dbt tests,
keeping what people wrote; ``--check`` reports drift (on the imported dbt_shop fixture)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.test_import_dbt import Project, _fresh_project


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = _fresh_project(tmp_path_factory.mktemp("infer"))
    project.import_json()
    run = project.ddp("materialize", "--all")
    assert run.returncode == 0, run.stdout + run.stderr
    return project


def _contract(project: Project) -> Path:
    return project.root / "acme/defs/shop/orders/contracts/fct_orders.odcs.yaml"


def test_an_imported_contract_has_no_drift(built: Project) -> None:
    result = built.ddp("contract", "infer", "orders", "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fct_orders.odcs.yaml is up to date" in result.stdout


def test_drift_is_reported_then_refreshed_keeping_hand_written_parts(built: Project) -> None:
    path = _contract(built)
    original = path.read_text()
    edited = (
        original.replace("physicalType: decimal(16,2)", "physicalType: decimal(10,2)")
        .replace(
            "      - name: payment_label\n"
            "        logicalType: string\n"
            "        physicalType: varchar\n",
            "",
        )
        .replace(
            "      - name: region\n",
            "      - name: region  # written by hand\n"
            "        description: The customer's sales region.\n"
            "        quality:\n"
            "          - metric: nullValues\n"
            "            mustBeLessThan: 3\n",
        )
    )
    assert edited.count("written by hand") == 1 and "payment_label" not in edited
    path.write_text(edited)
    check = built.ddp("contract", "infer", "orders", "fct_orders", "--check", "--json")
    assert check.returncode == 1, check.stdout + check.stderr
    changes = json.loads(check.stdout)["ports"][0]["changes"]
    assert "column 'amount': physicalType decimal(10,2) → decimal(16,2)" in changes
    assert "column 'payment_label' added (varchar)" in changes
    assert path.read_text() == edited  # --check writes nothing

    refresh = built.ddp("contract", "infer", "orders", "fct_orders")
    assert refresh.returncode == 0, refresh.stdout + refresh.stderr
    text = path.read_text()
    assert "# written by hand" in text  # comments kept
    contract = yaml.safe_load(text)
    columns = {p["name"]: p for p in contract["schema"][0]["properties"]}
    assert columns["amount"]["physicalType"] == "decimal(16,2)"
    assert columns["payment_label"]["physicalType"] == "varchar"
    assert columns["region"]["description"] == "The customer's sales region."
    assert columns["region"]["quality"] == [{"metric": "nullValues", "mustBeLessThan": 3}]
    assert [e["value"] for e in columns["status"]["enum"]]  # from accepted_values (v3.2.0)
    again = built.ddp("contract", "infer", "orders", "--check")
    assert again.returncode == 0, again.stdout + again.stderr
    valid = built.ddp("validate")
    assert valid.returncode == 0, valid.stdout + valid.stderr


def test_a_missing_contract_is_written_from_the_relation(built: Project) -> None:
    path = built.root / "acme/defs/shop/web_analytics/contracts/customer_engagement.odcs.yaml"
    before = yaml.safe_load(path.read_text())
    path.unlink()
    result = built.ddp("contract", "infer", "web_analytics", "customer_engagement")
    assert result.returncode == 0, result.stdout + result.stderr
    written = yaml.safe_load(path.read_text())
    types = [(p["name"], p["physicalType"]) for p in written["schema"][0]["properties"]]
    assert types == [(p["name"], p["physicalType"]) for p in before["schema"][0]["properties"]]
    assert ("total_events", "hugeint") in types
    key = written["schema"][0]["properties"][0]
    assert key["required"] and key["unique"]  # the model's not_null/unique tests


def test_unknown_ports_and_unbuilt_models_are_located_errors(tmp_path: Path) -> None:
    project = _fresh_project(tmp_path)
    project.import_json()
    unknown = project.ddp("contract", "infer", "orders", "fct_order")
    assert unknown.returncode == 1
    assert "has no output port 'fct_order'" in unknown.stderr + unknown.stdout
    assert "did you mean 'fct_orders'?" in unknown.stderr + unknown.stdout
    unbuilt = project.ddp("contract", "infer", "orders")
    output = unbuilt.stderr + unbuilt.stdout
    assert unbuilt.returncode == 1
    assert "is not built in the warehouse" in output and "ddp materialize orders" in output
    assert "Traceback" not in output
