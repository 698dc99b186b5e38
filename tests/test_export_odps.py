"""Tests of the ODPS v1.0.0 export, against the official Open Data Product Standard schema."""

from __future__ import annotations

import copy
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing import Registry as SchemaRegistry
from referencing import Resource
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT201909

from ddp_assets.export import to_odps, write_odps
from ddp_assets.spec.errors import SpecErrors
from ddp_assets.spec.odcs import load_contract
from ddp_assets.spec.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
DEFS = ROOT / "ddp_assets" / "defs"
ODPS_DIR = ROOT.parent / "shared" / "spec" / "odps"
ODPS_SCHEMA = ODPS_DIR / "odps-json-schema-v1.0.0.json"
ODPS_URI = "urn:bitol:odps:schema:v1.0.0"
MISSING_SPEC = f"the official ODPS schema is not at {ODPS_SCHEMA} (../shared/spec/odps)"

REGISTRY = Registry.load(DEFS, ROOT)


def _no_network(uri: str) -> Resource:
    raise NoSuchResource(ref=uri)


@pytest.fixture(scope="module")
def odps() -> Validator:
    """A validator for the official ODPS schema; every $ref resolves locally, or fails."""
    if not ODPS_SCHEMA.is_file():
        pytest.skip(MISSING_SPEC)
    schema = json.loads(ODPS_SCHEMA.read_text(encoding="utf-8"))
    cls = validator_for(schema)
    cls.check_schema(schema)
    resource = Resource.from_contents(schema, default_specification=DRAFT201909)
    registry: SchemaRegistry[Any] = SchemaRegistry(retrieve=_no_network).with_resource(
        ODPS_URI, resource
    )
    return cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)


def _errors(validator: Validator, document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def _example_paths() -> list[Path]:
    return sorted((ODPS_DIR / "examples").glob("*.odps.yaml"))


def _examples() -> list[Any]:
    examples = _example_paths()
    if not examples:
        return [pytest.param(None, marks=pytest.mark.skip(reason=MISSING_SPEC), id="missing")]
    return [pytest.param(path, id=path.name) for path in examples]


# -- every real product --------------------------------------------------------------------


def test_the_real_registry_has_products() -> None:
    assert REGISTRY.products, "no products found under ddp_assets/defs"


@pytest.mark.parametrize("product_id", sorted(REGISTRY.products))
def test_every_product_exports_a_valid_odps_descriptor(product_id: str, odps: Validator) -> None:
    product = REGISTRY.products[product_id]
    own_errors = [p for p in REGISTRY.errors if p.file == product.loaded.display_path]
    if own_errors:
        pytest.skip(f"product '{product_id}' does not validate: {own_errors[0].format()}")
    document = to_odps(product, REGISTRY)
    assert _errors(odps, document) == []
    spec = product.spec
    assert document["apiVersion"] == "v1.0.0"
    assert document["kind"] == "DataProduct"
    assert (document["id"], document["name"], document["version"]) == (
        spec.id,
        spec.name,
        spec.version,
    )
    assert document["domain"] == spec.domain
    assert document["description"]["purpose"] == spec.description.purpose
    assert [p["name"] for p in document["outputPorts"]] == [p.name for p in spec.output_ports]
    for port, exported in zip(spec.output_ports, document["outputPorts"], strict=True):
        contract = load_contract(product.contract_path(port.name))
        assert (exported["contractId"], exported["version"]) == (contract.id, contract.version)
    json.dumps(document)  # plain data only


# -- the orders product --------------------------------------------------------------------


@pytest.fixture(scope="module")
def orders() -> dict[str, Any]:
    if "orders" not in REGISTRY.products:
        pytest.skip("the orders product is not in ddp_assets/defs")
    return to_odps(REGISTRY.products["orders"], REGISTRY)


def test_orders_identity(orders: dict[str, Any]) -> None:
    assert orders["apiVersion"] == "v1.0.0"
    assert orders["kind"] == "DataProduct"
    assert orders["id"] == "orders"
    assert orders["name"] == "Orders"
    assert orders["version"] == "1.0.0"
    assert orders["status"] == "active"
    assert orders["domain"] == "sales"
    assert "tenant" not in orders
    assert orders["tags"] == ["fact"]
    assert orders["description"]["limitations"].startswith("Revenue excludes tax")


def test_orders_input_port_refers_to_the_customers_contract(orders: dict[str, Any]) -> None:
    assert orders["inputPorts"] == [
        {
            "name": "customers",
            "version": "1.0.0",
            "contractId": "urn:ddp:sales:customers:customers",
            "customProperties": [
                {
                    "property": "product",
                    "value": "customers.customers",
                    "description": "The upstream output port, as product.port.",
                },
                {
                    "property": "contractVersionRange",
                    "value": ">=1.0.0,<2.0.0",
                    "description": "The upstream contract versions this port accepts.",
                },
            ],
        }
    ]


def test_orders_output_ports_carry_their_contracts(orders: dict[str, Any]) -> None:
    ports = {p["name"]: p for p in orders["outputPorts"]}
    assert list(ports) == ["orders", "order_lines"]
    assert ports["orders"]["contractId"] == "urn:ddp:sales:orders:orders"
    assert ports["order_lines"]["contractId"] == "urn:ddp:sales:orders:order_lines"
    assert {p["version"] for p in ports.values()} == {"1.0.0"}
    assert {p["type"] for p in ports.values()} == {"table"}
    assert ports["orders"]["description"] == "One row per order with its revenue."
    # orders.sql joins the customers port; order_lines.sql does not.
    assert ports["orders"]["inputContracts"] == [
        {"id": "urn:ddp:sales:customers:customers", "version": "1.0.0"}
    ]
    assert "inputContracts" not in ports["order_lines"]
    custom = {c["property"]: c["value"] for c in ports["orders"]["customProperties"]}
    assert custom == {"model": "orders", "relation": "orders.orders"}


def test_orders_team_and_custom_properties(orders: dict[str, Any]) -> None:
    assert orders["team"] == {
        "name": "sales-analytics",
        "members": [{"username": "orders-data@example.com", "role": "owner"}],
    }
    custom = {c["property"]: c["value"] for c in orders["customProperties"]}
    assert custom["tier"] == "gold"
    assert custom["refresh"] == "on_upstream_change"
    assert custom["freshnessMaxAge"] == "6h"
    assert custom["classification"] == "internal"
    assert "schedule" not in custom
    assert [s["name"] for s in custom["sourceInputs"]] == ["raw_orders", "raw_order_items"]


def test_tenant_is_only_set_when_given(odps: Validator) -> None:
    product = next(iter(REGISTRY.products.values()))
    document = to_odps(product, REGISTRY, tenant="ShopCorp")
    assert document["tenant"] == "ShopCorp"
    assert _errors(odps, document) == []


def test_write_odps_to_a_folder_or_a_file(tmp_path: Path) -> None:
    product = next(iter(REGISTRY.products.values()))
    written = write_odps(product, REGISTRY, tmp_path / "out")
    assert written == tmp_path / "out" / f"{product.id}.odps.yaml"
    text = written.read_text(encoding="utf-8")
    assert text.startswith("# Open Data Product Standard v1.0.0")
    assert yaml.safe_load(text) == to_odps(product, REGISTRY)
    named = write_odps(product, REGISTRY, tmp_path / "descriptor.yaml")
    assert named == tmp_path / "descriptor.yaml"
    assert yaml.safe_load(named.read_text(encoding="utf-8")) == to_odps(product, REGISTRY)


# -- a product using every spec feature ----------------------------------------------------


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _contract(contract_id: str, version: str, name: str) -> str:
    return (
        f"apiVersion: v3.1.0\nkind: DataContract\nid: {contract_id}\nversion: {version}\n"
        f"status: active\nschema:\n  - name: {name}\n    physicalName: {name}\n"
    )


@pytest.fixture
def project(tmp_path: Path) -> Registry:
    """Two products: 'ledger' (files) and 'scoring' (product + table ports, python model)."""
    defs = tmp_path / "ddp_assets" / "defs"
    ledger = defs / "finance" / "ledger"
    _write(
        ledger / "defs.yaml",
        """\
type: ddp_assets.components.DataProduct
attributes:
  id: ledger
  name: Ledger
  domain: finance
  version: 2.1.0
  owners: [team:finance]
  description: {purpose: The general ledger.}
  input_ports:
    - {name: raw_ledger, type: file, path: ledger/*.csv, format: csv}
  output_ports:
    - {name: entries, model: entries, contract: contracts/entries.odcs.yaml}
""",
    )
    _write(ledger / "models" / "entries.sql", "select * from {{ source('ledger', 'raw_ledger') }}")
    _write(
        ledger / "contracts" / "entries.odcs.yaml",
        _contract("urn:test:entries", "2.0.1", "entries"),
    )
    scoring = defs / "finance" / "scoring"
    _write(
        scoring / "defs.yaml",
        """\
type: ddp_assets.components.DataProduct
attributes:
  id: scoring
  name: Scoring
  domain: finance
  version: 0.3.0
  status: draft
  tier: silver
  owners: [ana@example.com, team:risk, bo@example.com, team:audit]
  description:
    purpose: Credit scores.
  input_ports:
    - name: entries
      type: product
      product: ledger.entries
      description: Ledger entries to score.
    - {name: accounts, type: table, table: erp.accounts}
  python_models:
    - {name: scores, entrypoint: score.py:run, inputs: [entries]}
  output_ports:
    - {name: mart, type: view, model: mart, contract: contracts/mart.odcs.yaml}
    - {name: accounts_clean, model: accounts_clean, contract: contracts/accounts.odcs.yaml}
  slos:
    refresh: manual
    freshness: {deadline: "07:00", timezone: Europe/Oslo}
  policies:
    classification: restricted
    grants:
      - {to: role:risk, ports: [mart]}
""",
    )
    _write(scoring / "score.py", "def run(entries):\n    return entries\n")
    _write(
        scoring / "models" / "mart.sql",
        "select * from {{ ref('scores') }} join {{ ref('accounts_clean') }} using (account_id)",
    )
    _write(
        scoring / "models" / "accounts_clean.sql",
        "select * from {{ source('scoring', 'accounts') }}",
    )
    _write(scoring / "contracts" / "mart.odcs.yaml", _contract("urn:test:mart", "0.3.0", "mart"))
    _write(
        scoring / "contracts" / "accounts.odcs.yaml",
        _contract("urn:test:accounts", "1.0.0", "accounts_clean"),
    )
    registry = Registry.load(defs, tmp_path)
    assert registry.errors == []
    return registry


def test_every_spec_feature_is_exported(project: Registry, odps: Validator) -> None:
    document = to_odps(project.products["scoring"], project)
    assert _errors(odps, document) == []
    assert document["status"] == "draft"
    assert "tags" not in document
    assert document["inputPorts"] == [
        {
            "name": "entries",
            "version": "2.0.1",
            "contractId": "urn:test:entries",
            "customProperties": [
                {
                    "property": "product",
                    "value": "ledger.entries",
                    "description": "The upstream output port, as product.port.",
                },
                {
                    "property": "description",
                    "value": "Ledger entries to score.",
                    "description": "What the port is used for.",
                },
            ],
        }
    ]
    mart, accounts = document["outputPorts"]
    assert (mart["name"], mart["type"], mart["contractId"]) == ("mart", "view", "urn:test:mart")
    assert "description" not in mart
    # mart reads the python model 'scores', which reads the 'entries' port.
    assert mart["inputContracts"] == [{"id": "urn:test:entries", "version": "2.0.1"}]
    assert (accounts["type"], accounts["version"]) == ("table", "1.0.0")
    assert "inputContracts" not in accounts
    assert document["team"] == {
        "name": "risk",
        "members": [
            {"username": "ana@example.com", "role": "owner"},
            {"username": "bo@example.com", "role": "owner"},
        ],
        "customProperties": [
            {
                "property": "additionalTeams",
                "value": ["audit"],
                "description": "Further teams that own the product.",
            }
        ],
    }
    custom = {c["property"]: c["value"] for c in document["customProperties"]}
    assert custom == {
        "tier": "silver",
        "refresh": "manual",
        "freshnessDeadline": "07:00",
        "freshnessTimezone": "Europe/Oslo",
        "classification": "restricted",
        "grants": [{"to": "role:risk", "ports": ["mart"]}],
        "sourceInputs": [{"name": "accounts", "type": "table", "table": "erp.accounts"}],
    }
    upstream = to_odps(project.products["ledger"], project)
    assert _errors(odps, upstream) == []
    assert "inputPorts" not in upstream
    assert upstream["team"] == {"name": "finance"}


def test_unknown_upstream_port_is_reported(project: Registry, tmp_path: Path) -> None:
    spec = tmp_path / "ddp_assets" / "defs" / "finance" / "scoring" / "defs.yaml"
    spec.write_text(
        spec.read_text(encoding="utf-8").replace("ledger.entries", "ledger.entriez"),
        encoding="utf-8",
    )
    broken = Registry.load(tmp_path / "ddp_assets" / "defs", tmp_path)
    with pytest.raises(SpecErrors, match=r"ledger\.entriez"):
        to_odps(broken.products["scoring"], broken)


# -- the validator itself ------------------------------------------------------------------


@pytest.mark.parametrize("path", _examples())
def test_official_examples_validate(path: Path, odps: Validator) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert _errors(odps, document) == []


@pytest.mark.parametrize(
    ("where", "field"),
    [((), "id"), ((), "status"), ((), "apiVersion"), (("outputPorts", 0), "version")],
)
def test_a_missing_required_field_does_not_validate(
    where: tuple[str | int, ...], field: str, odps: Validator
) -> None:
    examples = _example_paths()
    if not examples:
        pytest.skip(MISSING_SPEC)
    document = yaml.safe_load(examples[0].read_text(encoding="utf-8"))
    assert _errors(odps, document) == []
    broken = copy.deepcopy(document)
    node = broken
    for key in where:
        node = node[key]
    del node[field]
    assert any(f"'{field}' is a required property" in e for e in _errors(odps, broken))


def test_exported_documents_break_like_any_other(odps: Validator) -> None:
    product = next(iter(REGISTRY.products.values()))
    document = to_odps(product, REGISTRY)
    without_status = {k: v for k, v in document.items() if k != "status"}
    assert _errors(odps, without_status)
    with_unknown_key = {**document, "owner": "somebody"}
    assert _errors(odps, with_unknown_key)
    bad_port = copy.deepcopy(document)
    del bad_port["outputPorts"][0]["version"]
    assert _errors(odps, bad_port)


def test_validation_never_reaches_the_network(
    odps: Validator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def urlopen(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"tried to fetch {args}")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    remote = {"$ref": "https://example.com/not-fetched.json"}
    with pytest.raises(Unresolvable):
        odps.evolve(schema=remote).validate({})
