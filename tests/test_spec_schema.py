"""Tests of the JSON Schema of a product ``defs.yaml`` (for editors)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from ruamel.yaml import YAML

from ddp_assets.spec.errors import SpecErrors
from ddp_assets.spec.loader import COMPONENT_TYPE, find_spec_files, load_spec
from ddp_assets.spec.schema import SCHEMA_ID, spec_json_schema

ROOT = Path(__file__).resolve().parents[1]
DEFS = ROOT / "ddp_assets" / "defs"

MINIMAL: dict[str, Any] = {
    "type": COMPONENT_TYPE,
    "attributes": {
        "id": "things",
        "name": "Things",
        "domain": "ops",
        "version": "0.1.0",
        "owners": ["team:ops"],
        "description": {"purpose": "Things we track."},
        "input_ports": [
            {"name": "raw_things", "type": "file", "path": "things/*.csv", "format": "csv"}
        ],
        "output_ports": [
            {"name": "things", "model": "things", "contract": "contracts/things.odcs.yaml"}
        ],
    },
}


def _read(path: Path) -> Any:
    """Parse YAML as the spec loader does (YAML 1.2), into plain Python values."""
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


def _errors(document: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(spec_json_schema())
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def _loader_accepts(document: Any, tmp_path: Path) -> bool:
    path = tmp_path / "defs.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    try:
        load_spec(path, tmp_path)
    except SpecErrors:
        return False
    return True


def _with(change: dict[str, Any] | None = None, **attributes: Any) -> dict[str, Any]:
    """MINIMAL with top-level keys replaced by ``change`` and attributes by ``attributes``."""
    document = copy.deepcopy(MINIMAL)
    document.update(change or {})
    document["attributes"].update(attributes)
    return document


def _without(key: str) -> dict[str, Any]:
    document = copy.deepcopy(MINIMAL)
    del document["attributes"][key]
    return document


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = spec_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID
    assert schema["title"]
    assert schema["description"]
    assert schema["properties"]["type"] == {
        "const": COMPONENT_TYPE,
        "description": schema["properties"]["type"]["description"],
    }
    json.dumps(schema)  # plain JSON, ready to be written to a file for editors


def test_schema_is_a_fresh_copy_each_time() -> None:
    schema = spec_json_schema()
    schema["$defs"].clear()
    assert spec_json_schema()["$defs"]


@pytest.mark.parametrize(
    "path", find_spec_files(DEFS), ids=lambda p: str(p.parent.relative_to(DEFS))
)
def test_every_real_product_file_validates(path: Path) -> None:
    assert not any(part.startswith("_") for part in path.relative_to(DEFS).parts)
    try:
        load_spec(path, ROOT)
    except SpecErrors as errors:  # a product being written; the schema need not accept it
        pytest.skip(f"not a valid product yet: {errors.problems[0].format()}")
    assert _errors(_read(path)) == []


def test_real_product_files_exist() -> None:
    assert find_spec_files(DEFS), "no product defs.yaml found under ddp_assets/defs"


def test_platform_component_files_are_not_products() -> None:
    for path in DEFS.rglob("defs.yaml"):
        if any(part.startswith("_") for part in path.relative_to(DEFS).parts):
            assert _errors(_read(path)), f"{path} is not a product and must not validate"


VALID = {
    "minimal": MINIMAL,
    "freshness deadline": _with(
        slos={"refresh": "manual", "freshness": {"deadline": "06:30", "timezone": "Europe/Oslo"}}
    ),
    "schedule": _with(slos={"refresh": "schedule", "schedule": "0 5 * * *"}),
    "product input port": _with(
        input_ports=[
            {
                "name": "customers",
                "type": "product",
                "product": "customers.customers",
                "contract": {"id": "urn:x", "version": ">=1.0.0"},
            }
        ]
    ),
    "table input port and python model": _with(
        input_ports=[{"name": "ledger", "type": "table", "table": "erp.ledger"}],
        python_models=[{"name": "scores", "entrypoint": "score.py:run", "inputs": ["ledger"]}],
        policies={"classification": "restricted", "grants": [{"to": "role:finance"}]},
    ),
    "dagster component keys": _with({"requirements": {"env": ["X"]}}),
}

# name → (where the schema reports the problem, the document)
INVALID: dict[str, tuple[str, dict[str, Any]]] = {
    "unknown attribute": ("attributes", _with(owner=["team:ops"])),
    "unknown nested key": (
        "attributes/description",
        _with(description={"purpose": "x", "purpse": "y"}),
    ),
    "unknown top-level key": ("(root)", _with({"attributs": {}})),
    "bad status enum": ("attributes/status", _with(status="live")),
    "bad tier enum": ("attributes/tier", _with(tier="platinum")),
    "bad input port type": (
        "attributes/input_ports/0",
        _with(input_ports=[{"name": "raw", "type": "stream", "path": "x", "format": "csv"}]),
    ),
    "bad file format": (
        "attributes/input_ports/0",
        _with(input_ports=[{"name": "raw", "type": "file", "path": "x", "format": "xlsx"}]),
    ),
    "missing id": ("attributes", _without("id")),
    "missing output ports": ("attributes", _without("output_ports")),
    "no output ports": ("attributes/output_ports", _with(output_ports=[])),
    "no owners": ("attributes/owners", _with(owners=[])),
    "bad owner": ("attributes/owners/0", _with(owners=["somebody"])),
    "bad id": ("attributes/id", _with(id="Things")),
    "bad version": ("attributes/version", _with(version="1.0")),
    "wrong component type": ("type", _with({"type": "ddp_assets.components.DbtProducts"})),
    "missing attributes": ("(root)", {"type": COMPONENT_TYPE}),
    "freshness with both": (
        "attributes/slos/freshness",
        _with(slos={"freshness": {"max_age": "6h", "deadline": "06:00"}}),
    ),
    "freshness with neither": (
        "attributes/slos/freshness",
        _with(slos={"freshness": {"timezone": "UTC"}}),
    ),
    "bad max_age": ("attributes/slos/freshness", _with(slos={"freshness": {"max_age": "6 hours"}})),
    "zero max_age": ("attributes/slos/freshness", _with(slos={"freshness": {"max_age": "0m"}})),
    "absolute landing path": (
        "attributes/input_ports/0",
        _with(input_ports=[{"name": "raw", "type": "file", "path": "/etc/x", "format": "csv"}]),
    ),
    "landing path out of the zone": (
        "attributes/input_ports/0",
        _with(input_ports=[{"name": "raw", "type": "file", "path": "a/../../x", "format": "csv"}]),
    ),
    "bad deadline": ("attributes/slos/freshness", _with(slos={"freshness": {"deadline": "25:00"}})),
    "schedule refresh without schedule": ("attributes/slos", _with(slos={"refresh": "schedule"})),
    "schedule without schedule refresh": (
        "attributes/slos/schedule",
        _with(slos={"schedule": "0 5 * * *"}),
    ),
}


@pytest.mark.parametrize("name", list(VALID))
def test_valid_documents_validate_and_load(name: str, tmp_path: Path) -> None:
    assert _errors(VALID[name]) == []
    assert _loader_accepts(VALID[name], tmp_path), "the spec loader disagrees with the schema"


@pytest.mark.parametrize("name", list(INVALID))
def test_broken_documents_do_not_validate(name: str, tmp_path: Path) -> None:
    where, document = INVALID[name]
    errors = _errors(document)
    assert errors, f"{name}: the schema accepted a broken document"
    assert any(error.startswith(f"{where}:") for error in errors), errors
    assert not _loader_accepts(document, tmp_path), "the spec loader disagrees with the schema"
