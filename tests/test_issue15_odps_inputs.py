"""ODPS export (issue 15): an output port's ``inputContracts`` name every contract the rows it
reads were checked against: an upstream product's output port, and the product's own landing
(file) or depot port contract. Validated against the official ODPS schemas (tests' fixtures)."""

from __future__ import annotations

from pathlib import Path

from jsonschema.protocols import Validator

from ddp_assets.export.odps import to_odps
from ddp_assets.spec.odcs import load_contract
from ddp_assets.spec.registry import Registry
from tests.test_export_odps import (  # noqa: F401 (fixtures)
    REGISTRY,
    _contract,
    _errors,
    _write,
    odps,
    project,
    validators,
)


def test_a_depot_ports_contract_is_an_input_contract_of_the_port_reading_it(
    validators: dict[str, Validator],  # noqa: F811
) -> None:
    product = REGISTRY.products["support_tickets"]
    raw = load_contract(product.folder / "contracts" / "raw_tickets.odcs.yaml")
    for version in ("v1.1.0", "v1.0.0"):
        document = to_odps(product, REGISTRY, api_version=version)
        assert _errors(validators[version], document) == []
        (port,) = document["outputPorts"]
        assert port["inputContracts"] == [{"id": raw.id, "version": raw.version}]


def test_a_landing_contract_is_an_input_contract_only_where_it_is_read(
    project: Registry,  # noqa: F811
    tmp_path: Path,
    odps: Validator,  # noqa: F811
) -> None:
    ledger = tmp_path / "ddp_assets" / "defs" / "finance" / "ledger"
    assert "inputContracts" not in to_odps(project.products["ledger"], project)["outputPorts"][0]
    _write(
        ledger / "contracts" / "raw_ledger.odcs.yaml",
        _contract("urn:test:raw_ledger", "1.2.0", "raw_ledger"),
    )
    registry = Registry.load(tmp_path / "ddp_assets" / "defs", tmp_path)
    document = to_odps(registry.products["ledger"], registry)
    assert _errors(odps, document) == []
    (entries,) = document["outputPorts"]
    assert entries["inputContracts"] == [{"id": "urn:test:raw_ledger", "version": "1.2.0"}]
    # scoring reads ledger's output port, not its landing files: only that contract
    scoring = to_odps(registry.products["scoring"], registry)
    contracts = {p["name"]: p.get("inputContracts") for p in scoring["outputPorts"]}
    assert contracts == {
        "mart": [{"id": "urn:test:entries", "version": "2.0.1"}],
        "accounts_clean": None,
    }
