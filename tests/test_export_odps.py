"""Tests of the ODPS export (v1.1.0, the default, and v1.0.0), against the official Open Data
Product Standard schemas: unchanged copies in tests/fixtures/odps (see its README)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
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
from typer.testing import CliRunner

from ddp_assets.export import to_odps, write_odps
from ddp_assets.spec.errors import SpecErrors
from ddp_assets.spec.odcs import load_contract
from ddp_assets.spec.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
DEFS = ROOT / "ddp_assets" / "defs"
FIXTURES = ROOT / "tests" / "fixtures" / "odps"
STANDARDS = ROOT / "ddp_assets" / "standards"
SHARED_ODPS = ROOT.parent / "shared" / "spec" / "odps"
ODPS_DIR = SHARED_ODPS  # the official examples (v1.0.0)
VERSIONS = ("v1.1.0", "v1.0.0")
MISSING_SPEC = f"the official ODPS examples are not in {SHARED_ODPS / 'examples'} (../shared)"

REGISTRY = Registry.load(DEFS, ROOT)


def _no_network(uri: str) -> Resource:
    raise NoSuchResource(ref=uri)


def _validator(version: str) -> Validator:
    """A validator for the official ODPS schema of ``version``; every $ref resolves locally."""
    schema = json.loads((FIXTURES / f"odps-json-schema-{version}.json").read_text("utf-8"))
    cls = validator_for(schema)
    cls.check_schema(schema)
    resource = Resource.from_contents(schema, default_specification=DRAFT201909)
    registry: SchemaRegistry[Any] = SchemaRegistry(retrieve=_no_network).with_resource(
        f"urn:bitol:odps:schema:{version}", resource
    )
    return cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def validators() -> dict[str, Validator]:
    return {version: _validator(version) for version in VERSIONS}


@pytest.fixture(scope="module")
def odps(validators: dict[str, Validator]) -> Validator:
    """The v1.1.0 validator (the default version)."""
    return validators["v1.1.0"]


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


def _custom(node: dict[str, Any]) -> dict[str, Any]:
    return {c["property"]: c["value"] for c in node.get("customProperties", [])}


# -- the schemas themselves ----------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_the_packaged_schemas_are_the_official_fixtures(version: str) -> None:
    name = f"odps-json-schema-{version}.json"
    fixture = (FIXTURES / name).read_bytes()
    assert (STANDARDS / name).read_bytes() == fixture
    schema = json.loads(fixture)
    assert version in schema["properties"]["apiVersion"]["enum"]
    if version == "v1.0.0" and (SHARED_ODPS / name).is_file():
        assert (SHARED_ODPS / name).read_bytes() == fixture


def test_the_v1_1_0_fixture_is_the_whole_official_file() -> None:
    text = (FIXTURES / "odps-json-schema-v1.1.0.json").read_text(encoding="utf-8")
    assert len(text) == 23_700  # as stored at the source commit named in the README
    assert "0362bb118cb27c6c11e3a633fde479609de211bd" in (FIXTURES / "README.md").read_text()
    schema = json.loads(text)
    assert schema["properties"]["apiVersion"]["default"] == "v1.1.0"
    assert schema["$defs"]["InputPort"]["required"] == ["name"]


# -- every real product --------------------------------------------------------------------


def test_the_real_registry_has_products() -> None:
    assert REGISTRY.products, "no products found under ddp_assets/defs"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("product_id", sorted(REGISTRY.products))
def test_every_product_exports_a_valid_odps_descriptor(
    product_id: str, version: str, validators: dict[str, Validator]
) -> None:
    product = REGISTRY.products[product_id]
    own_errors = [p for p in REGISTRY.errors if p.file == product.loaded.display_path]
    if own_errors:
        pytest.skip(f"product '{product_id}' does not validate: {own_errors[0].format()}")
    document = to_odps(product, REGISTRY, api_version=version)
    assert _errors(validators[version], document) == []
    assert _errors(validators["v1.1.0"], document) == []  # which accepts v1.0.0 ones too
    spec = product.spec
    assert document["apiVersion"] == version
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
        access = {a["port"]: a for a in _custom(exported)["access"]}
        assert sorted(access) == ["file", "rest", "sql"]
        assert access["sql"]["table"] == f"{spec.id}.{port.name}"
    emails = [o for o in spec.owners if "@" in o]
    assert [s["url"] for s in document.get("support", [])] == [f"mailto:{e}" for e in emails]
    assert {m["content"] for m in document["managementPorts"]} == {
        "discoverability",
        "dictionary",
        "observability",
        "control",
    }
    json.dumps(document)  # plain data only


def test_a_version_ddp_does_not_write_is_refused() -> None:
    product = next(iter(REGISTRY.products.values()))
    with pytest.raises(SpecErrors, match=r"ddp writes ODPS 1\.1\.0, 1\.0\.0, not '0\.9\.0'"):
        to_odps(product, REGISTRY, api_version="0.9.0")
    assert to_odps(product, REGISTRY, api_version="1.0.0")["apiVersion"] == "v1.0.0"


# -- the orders product --------------------------------------------------------------------


@pytest.fixture(scope="module")
def orders() -> dict[str, Any]:
    if "orders" not in REGISTRY.products:
        pytest.skip("the orders product is not in ddp_assets/defs")
    return to_odps(REGISTRY.products["orders"], REGISTRY)


def test_orders_identity(orders: dict[str, Any]) -> None:
    assert orders["apiVersion"] == "v1.1.0"
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
    custom = _custom(ports["orders"])
    assert (custom["model"], custom["relation"]) == ("orders", "orders.orders")
    access = {a["port"]: a for a in custom["access"]}
    assert access["rest"]["endpoint"] == "GET /products/orders/ports/orders/rows"
    assert access["sql"]["command"] == 'ddp ports sql "select * from orders.orders"'
    assert access["file"]["command"] == "ddp ports export orders orders --format parquet"
    assert access["file"]["endpoint"] == "GET /products/orders/ports/orders/file?format=parquet"


def test_orders_grants_keep_their_row_filters(orders: dict[str, Any]) -> None:
    spec = REGISTRY.products["orders"].spec
    filtered = [g for g in spec.policies.grants if g.rows]
    assert filtered, "the orders demo spec has a row-filtered grant"
    grants = {g["to"]: g for g in _custom(orders)["grants"]}
    for grant in spec.policies.grants:
        exported = grants[grant.to]
        assert exported["ports"] == list(grant.ports)
        if not grant.rows:
            assert "rows" not in exported
    assert grants["emea-sales"]["rows"] == [
        {"column": "country", "op": "in", "value": ["DE", "FR", "GB", "NL", "ES", "IT"]}
    ]


def test_orders_management_ports_and_support(orders: dict[str, Any]) -> None:
    ports = {p["name"]: p for p in orders["managementPorts"]}
    assert ports["rest-product"]["content"] == "discoverability"
    assert ports["rest-product"]["type"] == "rest"
    assert _custom(ports["rest-product"]) == {"path": "/products/orders", "command": "ddp serve"}
    assert _custom(ports["rest-slo"])["path"] == "/products/orders/ports/{port}/slo"
    assert _custom(ports["rest-contract"])["path"] == "/products/orders/ports/{port}/contract"
    assert _custom(ports["audit"]) == {"command": "ddp audit orders"}
    assert orders["support"] == [
        {
            "channel": "orders-data@example.com",
            "url": "mailto:orders-data@example.com",
            "tool": "email",
            "scope": "issues",
            "description": "Product owner.",
        }
    ]


def _git_created(spec_file: Path) -> str | None:
    found = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%aI", "--", spec_file.name],
        cwd=spec_file.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    dates = found.stdout.split() if found.returncode == 0 else []
    return dates[-1] if dates else None


def test_product_created_ts_comes_from_git_history(orders: dict[str, Any]) -> None:
    from datetime import UTC, datetime

    added = _git_created(REGISTRY.products["orders"].loaded.path)
    if added is None:
        assert "productCreatedTs" not in orders  # never invented
        return
    when = datetime.fromisoformat(added).astimezone(UTC)
    assert orders["productCreatedTs"] == when.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_contracted_file_input_ports_are_input_ports(validators: dict[str, Validator]) -> None:
    if "inventory" not in REGISTRY.products:
        pytest.skip("the inventory product is not in ddp_assets/defs")
    product = REGISTRY.products["inventory"]
    landing = load_contract(product.folder / "contracts" / "raw_suppliers.odcs.yaml")
    for version in VERSIONS:
        document = to_odps(product, REGISTRY, api_version=version)
        assert _errors(validators[version], document) == []
        ports = {p["name"]: p for p in document["inputPorts"]}
        assert list(ports) == ["raw_suppliers"]
        port = ports["raw_suppliers"]
        assert (port["contractId"], port["version"]) == (landing.id, landing.version)
        custom = _custom(port)
        assert (custom["type"], custom["path"], custom["format"]) == (
            "file",
            "inventory/suppliers*.csv",
            "csv",
        )
        assert custom["contract"].endswith("inventory/contracts/raw_suppliers.odcs.yaml")
        sources = [s["name"] for s in _custom(document)["sourceInputs"]]
        assert "raw_suppliers" not in sources
        assert "raw_products" in sources


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


@pytest.mark.parametrize("version", VERSIONS)
def test_tenant_is_only_set_when_given(version: str, validators: dict[str, Validator]) -> None:
    product = next(iter(REGISTRY.products.values()))
    document = to_odps(product, REGISTRY, tenant="ShopCorp", api_version=version)
    assert document["tenant"] == "ShopCorp"
    assert _errors(validators[version], document) == []


def test_cli_writes_the_version_and_tenant_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, validators: dict[str, Validator]
) -> None:
    import typer

    from ddp_assets.cli.export import app as export_app

    app = typer.Typer()  # as `ddp` mounts it: `ddp export odps ...`
    app.add_typer(export_app, name="export")
    monkeypatch.setenv("DDP_PROJECT_ROOT", str(ROOT))
    runner = CliRunner()
    default = runner.invoke(app, ["export", "odps", "orders"])
    assert default.exit_code == 0, default.output
    document = yaml.safe_load(default.stdout)
    assert document["apiVersion"] == "v1.1.0" and "tenant" not in document
    out = tmp_path / "orders.odps.yaml"
    older_args = ["export", "odps", "orders", "--odps-version", "1.0.0", "--tenant", "ShopCorp"]
    older = runner.invoke(app, [*older_args, "-o", str(out)])
    assert older.exit_code == 0, older.output
    written = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert (written["apiVersion"], written["tenant"]) == ("v1.0.0", "ShopCorp")
    assert _errors(validators["v1.0.0"], written) == []
    wrong = runner.invoke(app, ["export", "odps", "orders", "--odps-version", "0.9.0"])
    assert wrong.exit_code != 0
    assert "0.9.0" in wrong.output


def test_write_odps_to_a_folder_or_a_file(tmp_path: Path) -> None:
    product = next(iter(REGISTRY.products.values()))
    written = write_odps(product, REGISTRY, tmp_path / "out")
    assert written == tmp_path / "out" / f"{product.id}.odps.yaml"
    text = written.read_text(encoding="utf-8")
    assert text.startswith("# Open Data Product Standard v1.1.0")
    assert yaml.safe_load(text) == to_odps(product, REGISTRY)
    older = write_odps(product, REGISTRY, tmp_path / "old.yaml", api_version="1.0.0")
    assert older.read_text(encoding="utf-8").startswith("# Open Data Product Standard v1.0.0")
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


def test_landing_contracts_row_filters_and_creation_date(
    project: Registry, tmp_path: Path, validators: dict[str, Validator]
) -> None:
    assert "productCreatedTs" not in to_odps(project.products["ledger"], project)  # no git
    ledger = tmp_path / "ddp_assets" / "defs" / "finance" / "ledger"
    _write(
        ledger / "contracts" / "raw_ledger.odcs.yaml",
        _contract("urn:test:raw_ledger", "1.2.0", "raw_ledger"),
    )
    spec = tmp_path / "ddp_assets" / "defs" / "finance" / "scoring" / "defs.yaml"
    spec.write_text(
        spec.read_text(encoding="utf-8").replace(
            "- {to: role:risk, ports: [mart]}",
            "- {to: role:risk, ports: [mart]}\n"
            "      - to: nordics\n"
            "        cleared_for: [restricted]\n"
            "        rows:\n"
            "          - {column: country, op: in, value: [NO, SE]}\n"
            "          - {column: closed_at, op: is_null}",
        ),
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "GIT_AUTHOR_DATE": "2026-01-02T03:04:05+02:00",
        "GIT_COMMITTER_DATE": "2026-01-02T03:04:05+02:00",
    }
    git = ["git", "-c", "user.name=ddp", "-c", "user.email=ddp@example.com"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "products"]):
        subprocess.run([*git, *command], cwd=tmp_path, env=env, check=True)
    registry = Registry.load(tmp_path / "ddp_assets" / "defs", tmp_path)
    for version in VERSIONS:
        document = to_odps(registry.products["ledger"], registry, api_version=version)
        assert _errors(validators[version], document) == []
        assert document["productCreatedTs"] == "2026-01-02T01:04:05Z"
        (port,) = document["inputPorts"]
        assert (port["name"], port["contractId"], port["version"]) == (
            "raw_ledger",
            "urn:test:raw_ledger",
            "1.2.0",
        )
        assert _custom(port)["contract"] == (
            "ddp_assets/defs/finance/ledger/contracts/raw_ledger.odcs.yaml"
        )
        assert "sourceInputs" not in _custom(document)
        scoring = to_odps(registry.products["scoring"], registry, api_version=version)
        assert _errors(validators[version], scoring) == []
        assert _custom(scoring)["grants"] == [
            {"to": "role:risk", "ports": ["mart"]},
            {
                "to": "nordics",
                "ports": ["*"],
                "rows": [
                    {"column": "country", "op": "in", "value": ["NO", "SE"]},
                    {"column": "closed_at", "op": "is_null"},
                ],
                "clearedFor": ["restricted"],
            },
        ]
        assert [s["url"] for s in scoring["support"]] == [
            "mailto:ana@example.com",
            "mailto:bo@example.com",
        ]


def test_a_deprecated_product_is_flagged_in_v1_1_0(
    project: Registry, tmp_path: Path, validators: dict[str, Validator]
) -> None:
    spec = tmp_path / "ddp_assets" / "defs" / "finance" / "scoring" / "defs.yaml"
    spec.write_text(
        spec.read_text(encoding="utf-8").replace("status: draft", "status: deprecated"),
        encoding="utf-8",
    )
    registry = Registry.load(tmp_path / "ddp_assets" / "defs", tmp_path)
    current = to_odps(registry.products["scoring"], registry)
    assert (current["status"], current["deprecated"]) == ("deprecated", True)
    assert _errors(validators["v1.1.0"], current) == []
    older = to_odps(registry.products["scoring"], registry, api_version="v1.0.0")
    assert older["status"] == "deprecated" and "deprecated" not in older  # no such field
    assert _errors(validators["v1.0.0"], older) == []
    assert "deprecated" not in to_odps(project.products["scoring"], project)


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


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", _examples())
def test_official_examples_validate(
    path: Path, version: str, validators: dict[str, Validator]
) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert _errors(validators[version], document) == []


def test_the_official_v1_1_0_example_validates_only_as_v1_1_0(
    validators: dict[str, Validator],
) -> None:
    path = FIXTURES / "deprecated-data-product.odps.yaml"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert _errors(validators["v1.1.0"], document) == []
    errors = _errors(validators["v1.0.0"], document)
    assert any("'v1.1.0' is not one of" in e for e in errors)
    assert any("'deprecated' was unexpected" in e for e in errors)


@pytest.mark.parametrize(
    ("version", "where", "field"),
    [
        ("v1.0.0", (), "id"),
        ("v1.0.0", (), "status"),
        ("v1.0.0", (), "apiVersion"),
        ("v1.0.0", ("outputPorts", 0), "version"),
        ("v1.1.0", (), "id"),
        ("v1.1.0", (), "apiVersion"),
        ("v1.1.0", ("outputPorts", 0), "name"),
        ("v1.1.0", ("support", 0), "url"),
        ("v1.1.0", ("managementPorts", 0), "content"),
    ],
)
def test_a_missing_required_field_does_not_validate(
    version: str, where: tuple[str | int, ...], field: str, validators: dict[str, Validator]
) -> None:
    examples = _example_paths()
    if not examples:
        pytest.skip(MISSING_SPEC)
    validator = validators[version]
    document = yaml.safe_load(examples[0].read_text(encoding="utf-8"))
    assert _errors(validator, document) == []
    broken = copy.deepcopy(document)
    node = broken
    for key in where:
        node = node[key]
    del node[field]
    assert any(f"'{field}' is a required property" in e for e in _errors(validator, broken))


def test_exported_documents_break_like_any_other(validators: dict[str, Validator]) -> None:
    product = next(iter(REGISTRY.products.values()))
    older = to_odps(product, REGISTRY, api_version="v1.0.0")
    without_status = {k: v for k, v in older.items() if k != "status"}
    assert _errors(validators["v1.0.0"], without_status)
    bad_port = copy.deepcopy(older)
    del bad_port["outputPorts"][0]["version"]
    assert _errors(validators["v1.0.0"], bad_port)
    document = to_odps(product, REGISTRY)
    for validator in validators.values():
        assert _errors(validator, {**document, "owner": "somebody"})
    assert _errors(validators["v1.1.0"], {**document, "apiVersion": "v2.0.0"})
    no_content = copy.deepcopy(document)
    del no_content["managementPorts"][0]["content"]
    assert _errors(validators["v1.1.0"], no_content)


def test_validation_never_reaches_the_network(
    odps: Validator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def urlopen(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"tried to fetch {args}")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    remote = {"$ref": "https://example.com/not-fetched.json"}
    with pytest.raises(Unresolvable):
        odps.evolve(schema=remote).validate({})
