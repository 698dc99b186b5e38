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

from ddp_assets.contracts.diff import diff_contracts, needs_major_bump, type_change
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


# (case, change, expected change kinds, breaking?) — each a change a producer really makes
CASES: list[tuple[str, Callable[[dict[str, Any]], None], set[str], bool]] = [
    ("column removed", _drop("channel"), {"column_removed"}, True),
    ("column renamed", _rename("channel", "sales_channel"), {"column_renamed"}, True),
    (
        "type narrowed bigint→integer",
        _set("line_count", physicalType="integer"),
        {"type_narrowed"},
        True,
    ),
    (
        "type narrowed decimal scale",
        _set("revenue", physicalType="decimal(14,0)"),
        {"type_narrowed"},
        True,
    ),
    (
        "type changed to unrelated",
        _set("ordered_at", physicalType="bigint"),
        {"type_changed"},
        True,
    ),
    (
        "type widened integer→bigint",
        _set("item_count", physicalType="hugeint"),
        {"type_widened"},
        False,
    ),
    (
        "type widened decimal",
        _set("revenue", physicalType="decimal(18,2)"),
        {"type_widened"},
        False,
    ),
    ("nullable → required", _set("country", required=True), {"made_required"}, True),
    ("required → nullable", _set("channel", required=False), {"made_nullable"}, False),
    (
        "valid values reduced",
        _valid(["placed", "shipped", "delivered"]),
        {"valid_values_reduced"},
        True,
    ),
    (
        "valid values extended",
        _valid(["placed", "shipped", "delivered", "cancelled", "returned", "lost"]),
        {"valid_values_extended"},
        False,
    ),
    ("unique dropped", _set("order_id", unique=False), {"unique_dropped"}, True),
    ("primary key changed", _set("order_id", primaryKey=False), {"primary_key_changed"}, True),
    ("column added", _add, {"column_added"}, False),
    ("description changed", _describe, set(), False),
    ("quality threshold changed", _quality, {"quality_changed"}, False),
]


@pytest.mark.parametrize(
    ("change", "kinds", "breaking"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_breaking_change_classification(
    change: Callable[[dict[str, Any]], None], kinds: set[str], breaking: bool
) -> None:
    old = _orders()
    new = copy.deepcopy(old)
    change(new)
    changes = diff_contracts(Contract.model_validate(old), Contract.model_validate(new))
    assert {c.kind for c in changes} >= kinds
    assert any(c.breaking for c in changes) == breaking, [c.format() for c in changes]


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
