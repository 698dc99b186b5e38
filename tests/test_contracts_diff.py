"""Change management: breaking-change detection on real change cases, and `ddp validate`/
`ddp contract diff` against a base checkout."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ddp_assets.contracts.diff import (
    RULES,
    Perspective,
    diff_contracts,
    needs_major_bump,
    type_change,
)
from ddp_assets.spec.odcs import Contract

ROOT = Path(__file__).resolve().parents[1]
ORDERS = ROOT / "ddp_assets" / "defs" / "sales" / "orders" / "contracts" / "orders.odcs.yaml"
ORDERS_REL = ORDERS.relative_to(ROOT)


def _orders() -> dict[str, Any]:
    return yaml.safe_load(ORDERS.read_text(encoding="utf-8"))


def _prop(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in document["schema"][0]["properties"] if p["name"] == name)


def _drop(name: str) -> Callable[[dict[str, Any]], None]:
    def change(d: dict[str, Any]) -> None:
        d["schema"][0]["properties"] = [
            p for p in d["schema"][0]["properties"] if p["name"] != name
        ]

    return change


def _set(name: str, **values: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: _prop(d, name).update(values)


def _rename(old: str, new: str) -> Callable[[dict[str, Any]], None]:
    return lambda d: _prop(d, old).update(name=new, physicalName=new)


def _valid(values: list[str]) -> Callable[[dict[str, Any]], None]:
    return lambda d: _prop(d, "status")["quality"][0]["arguments"].update(validValues=values)


def _add(d: dict[str, Any]) -> None:
    d["schema"][0]["properties"].append(
        {"name": "coupon", "logicalType": "string", "physicalType": "varchar"}
    )


def _describe(d: dict[str, Any]) -> None:
    _prop(d, "channel")["description"] = "Where the order was placed."


def _quality(d: dict[str, Any]) -> None:
    d["schema"][0]["quality"][0]["mustBeGreaterThan"] = 10


def _enum(values: list[str]) -> Callable[[dict[str, Any]], None]:
    """The ODCS v3.2.0 way: allowed values as the property's enum (the rule stays as it is)."""
    return lambda d: _prop(d, "status").update(enum=[{"value": v} for v in values])


def _unlimit(d: dict[str, Any]) -> None:
    _prop(d, "status")["quality"] = []


def _add_required(d: dict[str, Any]) -> None:
    _add(d)
    d["schema"][0]["properties"][-1]["required"] = True


def _add_object(d: dict[str, Any]) -> None:
    d["schema"].append({"name": "refunds", "properties": [{"name": "id"}]})


def _drop_object(d: dict[str, Any]) -> None:
    d["schema"] = []


ALL = ["placed", "shipped", "delivered", "cancelled", "returned"]

# (case, change, expected change kinds, breaking for the producer?, for the consumer?) — each
# a change a producer really makes; the table of docs/ports.md
CASES: list[tuple[str, Callable[[dict[str, Any]], None], set[str], bool, bool]] = [
    ("column removed", _drop("channel"), {"column_removed"}, True, False),
    ("column renamed", _rename("channel", "sales_channel"), {"column_renamed"}, True, True),
    ("column added", _add, {"column_added"}, False, False),
    ("required column added", _add_required, {"required_column_added"}, False, True),
    (
        "type narrowed bigint→integer",
        _set("line_count", physicalType="integer"),
        {"type_narrowed"},
        False,
        True,
    ),
    (
        "type narrowed decimal scale",
        _set("revenue", physicalType="decimal(14,0)"),
        {"type_narrowed"},
        False,
        True,
    ),
    (
        "type changed to unrelated",
        _set("ordered_at", physicalType="bigint"),
        {"type_changed"},
        True,
        True,
    ),
    (
        "type widened bigint→hugeint",
        _set("item_count", physicalType="hugeint"),
        {"type_widened"},
        True,
        False,
    ),
    (
        "type widened decimal",
        _set("revenue", physicalType="decimal(18,2)"),
        {"type_widened"},
        True,
        False,
    ),
    ("nullable → required", _set("country", required=True), {"made_required"}, False, True),
    ("required → nullable", _set("channel", required=False), {"made_nullable"}, True, False),
    ("unique added", _set("customer_id", unique=True), {"unique_added"}, False, True),
    ("unique dropped", _set("order_id", unique=False), {"unique_dropped"}, True, False),
    (
        "primary key changed",
        _set("order_id", primaryKey=False),
        {"primary_key_changed"},
        True,
        True,
    ),
    (
        "valid values reduced",
        _valid(["placed", "shipped", "delivered"]),
        {"valid_values_reduced"},
        False,
        True,
    ),
    (
        "valid values extended",
        _valid([*ALL, "lost"]),
        {"valid_values_extended"},
        True,
        False,
    ),
    ("enum (v3.2.0) narrows the rule", _enum(ALL[:3]), {"valid_values_reduced"}, False, True),
    ("enum (v3.2.0) equal to the rule", _enum(ALL), set(), False, False),
    (
        "valid values introduced",
        _set("channel", enum=[{"value": "web"}, {"value": "store"}]),
        {"valid_values_limited"},
        False,
        True,
    ),
    ("valid values no longer limited", _unlimit, {"valid_values_unlimited"}, True, False),
    ("column deprecated (v3.2.0)", _set("country", deprecated=True), {"deprecated"}, False, False),
    (
        "schema object deprecated (v3.2.0)",
        lambda d: d["schema"][0].update(deprecated=True),
        {"deprecated"},
        False,
        False,
    ),
    ("contract deprecated", lambda d: d.update(status="deprecated"), {"deprecated"}, False, False),
    ("schema object added", _add_object, {"object_added"}, False, True),
    ("schema object removed", _drop_object, {"object_removed"}, True, False),
    (
        "contract id changed",
        lambda d: d.update(id="urn:ddp:sales:orders:v2"),
        {"id_changed"},
        True,
        True,
    ),
    ("description changed", _describe, set(), False, False),
    ("quality threshold changed", _quality, {"quality_changed"}, False, False),
]


@pytest.mark.parametrize(
    ("change", "kinds", "producer", "consumer"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_breaking_change_classification(
    change: Callable[[dict[str, Any]], None], kinds: set[str], producer: bool, consumer: bool
) -> None:
    old = _orders()
    new = copy.deepcopy(old)
    change(new)
    expected: dict[Perspective, bool] = {"producer": producer, "consumer": consumer}
    for perspective, breaking in expected.items():
        changes = diff_contracts(
            Contract.model_validate(old), Contract.model_validate(new), perspective
        )
        assert {c.kind for c in changes} - {"quality_changed"} == kinds - {"quality_changed"}
        assert kinds <= {c.kind for c in changes}
        assert any(c.breaking for c in changes) == breaking, (perspective, changes)
        assert all(c.breaking == RULES[c.kind].breaking(perspective) for c in changes)
        assert all(c.perspective == perspective for c in changes)


def test_every_rule_has_a_case_and_a_row_in_the_docs() -> None:
    """docs/ports.md's table is RULES, row for row; every rule but port_removed has a case."""
    covered = set().union(*(c[2] for c in CASES))
    assert covered | {"port_removed"} == set(RULES)
    section = (
        (ROOT / "docs" / "ports.md")
        .read_text(encoding="utf-8")
        .split("## Breaking changes: producer and consumer perspectives", 1)[1]
    )
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells
    assert set(rows) == set(RULES)
    for kind, rule in RULES.items():
        _, change, producer, consumer, cli = rows[kind]
        assert change == rule.change and cli == rule.datacontract_cli, kind
        assert (producer == "**breaking**") == rule.producer, kind
        assert (consumer == "**breaking**") == rule.consumer, kind


def test_object_removed_is_breaking() -> None:
    old = _orders()
    new = copy.deepcopy(old)
    new["schema"][0]["name"] = new["schema"][0]["physicalName"] = "orders_v2"
    changes = diff_contracts(Contract.model_validate(old), Contract.model_validate(new))
    assert any(c.kind == "object_removed" and c.breaking for c in changes)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("integer", "bigint", "widened"),
        ("bigint", "int", "narrowed"),
        ("float", "double", "widened"),
        ("varchar(10)", "varchar(20)", "widened"),
        ("varchar", "varchar(20)", "narrowed"),
        ("date", "timestamp", "widened"),
        ("timestamp", "date", "changed"),
        ("integer", "decimal(12,2)", "widened"),
        ("bigint", "decimal(12,2)", "narrowed"),
        ("varchar", "text", None),
    ],
)
def test_type_changes(old: str, new: str, expected: str | None) -> None:
    assert type_change(old, new) == expected


def test_major_bump() -> None:
    assert needs_major_bump("1.0.0", "1.1.0")
    assert needs_major_bump("1.0.0", "1.0.0")
    assert not needs_major_bump("1.4.2", "2.0.0")


# -- the CLI against a base checkout (a folder: the tests never run git on the project) ----------


@pytest.fixture
def base_with_an_extra_column(tmp_path: Path) -> Path:
    """An 'older checkout' where orders' contract had one more column: removing it breaks."""
    base = tmp_path / "base"
    (base / ORDERS_REL).parent.mkdir(parents=True)
    old = _orders()
    old["schema"][0]["properties"].append(
        {"name": "legacy_code", "logicalType": "string", "physicalType": "varchar"}
    )
    (base / ORDERS_REL).write_text(yaml.safe_dump(old, sort_keys=False), encoding="utf-8")
    spec = ORDERS.parent.parent / "defs.yaml"
    shutil.copyfile(spec, base / spec.relative_to(ROOT))
    return base


def _ddp(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "ddp"), *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_contract_diff_lists_and_classifies(base_with_an_extra_column: Path) -> None:
    result = _ddp("contract", "diff", "--base", str(base_with_an_extra_column), "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    (port,) = report["ports"]
    assert (port["product"], port["port"]) == ("orders", "orders")
    assert port["breaking"] and port["major_bump_missing"]
    assert {c["kind"] for c in port["changes"]} == {"column_removed"}
    assert port["downstream"] == ["customer_360.orders"]

    text = _ddp("contract", "diff", "--base", str(base_with_an_extra_column))
    assert "BREAKING: orders.legacy_code: column removed" in text.stdout


def test_validate_fails_on_breaking_change_without_major_bump(
    base_with_an_extra_column: Path,
) -> None:
    result = _ddp("validate", "--json", env={"DDP_CONTRACT_BASE": str(base_with_an_extra_column)})
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    (problem,) = [p for p in report["problems"] if p["severity"] == "error"]
    assert problem["file"] == str(ORDERS_REL)
    assert problem["field"] == "version" and problem["line"] == 5
    assert "legacy_code" in problem["message"] and "customer_360.orders" in problem["message"]
    assert "2.0.0" in problem["hint"]


def test_major_bump_makes_the_breaking_change_valid(base_with_an_extra_column: Path) -> None:
    """The same change with the base at 0.9.0 → 1.0.0 is a major bump: validate passes."""
    old_path = base_with_an_extra_column / ORDERS_REL
    old = yaml.safe_load(old_path.read_text(encoding="utf-8"))
    old["version"] = "0.9.0"
    old_path.write_text(yaml.safe_dump(old, sort_keys=False), encoding="utf-8")
    result = _ddp("validate", "--json", env={"DDP_CONTRACT_BASE": str(base_with_an_extra_column)})
    assert result.returncode == 0, result.stdout + result.stderr


# -- the consumer's perspective: an input port's contract -----------------------------------------

RAW_SUPPLIERS = (
    ROOT / "ddp_assets/defs/supply_chain/inventory/contracts/raw_suppliers.odcs.yaml"
).relative_to(ROOT)


@pytest.fixture
def base_before_a_required_supplier_column(tmp_path: Path) -> Path:
    """An 'older checkout' where the landing contract of inventory's file input port
    raw_suppliers did not have lead_time_days, and inventory had one more output port: today's
    contract requires a column the files landing so far did not need to carry."""
    base = tmp_path / "base"
    (base / RAW_SUPPLIERS).parent.mkdir(parents=True)
    old = yaml.safe_load((ROOT / RAW_SUPPLIERS).read_text(encoding="utf-8"))
    old["schema"][0]["properties"] = [
        p for p in old["schema"][0]["properties"] if p["name"] != "lead_time_days"
    ]
    (base / RAW_SUPPLIERS).write_text(yaml.safe_dump(old, sort_keys=False), encoding="utf-8")
    spec_path = RAW_SUPPLIERS.parent.parent / "defs.yaml"
    spec = yaml.safe_load((ROOT / spec_path).read_text(encoding="utf-8"))
    spec["attributes"]["output_ports"].append(
        {"name": "warehouses", "type": "table", "model": "warehouses", "contract": "c.yaml"}
    )
    (base / spec_path).write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return base


def test_consumer_perspective_reads_the_input_contracts(
    base_before_a_required_supplier_column: Path,
) -> None:
    base = str(base_before_a_required_supplier_column)
    result = _ddp("contract", "diff", "--perspective", "consumer", "--base", base, "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["perspective"] == "consumer"
    (port,) = report["ports"]
    assert (port["product"], port["port"], port["perspective"]) == (
        "inventory",
        "raw_suppliers",
        "consumer",
    )
    assert port["contract_file"] == str(RAW_SUPPLIERS)
    assert port["breaking"] and port["major_bump_missing"]
    (change,) = port["changes"]
    assert (change["kind"], change["column"], change["breaking"]) == (
        "required_column_added",
        "lead_time_days",
        True,
    )

    # the producer's perspective reads the output ports: the one removed since the base breaks
    result = _ddp("contract", "diff", "--base", base, "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["perspective"] == "producer"
    (port,) = report["ports"]
    assert (port["port"], port["changes"][0]["kind"], port["breaking"]) == (
        "warehouses",
        "port_removed",
        True,
    )

    # validate checks both: the input contract's missing major bump is an error at its version
    result = _ddp("validate", "--json", env={"DDP_CONTRACT_BASE": base})
    assert result.returncode == 1, result.stdout + result.stderr
    problems = json.loads(result.stdout)["problems"]
    (error,) = [p for p in problems if p["severity"] == "error"]
    assert error["file"] == str(RAW_SUPPLIERS) and error["field"] == "version"
    assert "consumer perspective" in error["message"]
    assert "lead_time_days" in error["message"] and "2.0.0" in error["hint"]
    # an output port nobody reads, removed: a warning
    assert any(
        p["severity"] == "warning" and "'warehouses' was removed" in p["message"] for p in problems
    )
