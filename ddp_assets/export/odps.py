"""Product specs → Open Data Product Standard (ODPS) descriptors, v1.1.0 (default) or v1.0.0.

A descriptor lets catalogs and marketplaces that speak ODPS list ddp products. Everything in it
comes from the product's spec, its ODCS contracts, the contracts of the products it consumes,
its SQL (which output port reads which input port) and the git history of its spec file (when
it was created); nothing is made up. Where ODPS has no field for something ddp knows (tier,
SLOs, access policies and their row filters, landing-zone inputs), it goes into
``customProperties``.

Input ports with an ODCS contract become ``inputPorts``: those consuming another product's
output port and landing-zone files with a landing contract (``contracts/<port>.odcs.yaml``).
ODPS v1.0.0 requires ``version`` and ``contractId`` on every input port, so the others
(uncontracted files, warehouse tables) are listed in the ``sourceInputs`` custom property in
both versions. An output port's ``inputContracts`` are the contracts of the input ports its
model reads (directly or through the product's other models): upstream output ports' and the
product's own landing and depot port contracts. The REST, SQL and file ports of
:mod:`ddp_assets.ports` are described on each output port (``access``) and, for the REST API and
the audit log, as ``managementPorts``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ddp_assets.spec.errors import SpecErrors, SpecProblem, relative
from ddp_assets.spec.model import (
    DepotInputPort,
    FileInputPort,
    Grant,
    OutputPort,
    ProductInputPort,
    ProductSpec,
    TableInputPort,
)
from ddp_assets.spec.odcs import Contract, load_contract
from ddp_assets.spec.registry import Product, Registry
from ddp_assets.standards import SchemaUnavailable, odps_schema

ODPS_API_VERSION = "v1.1.0"
ODPS_API_VERSIONS = ("v1.1.0", "v1.0.0")
ODPS_FILE_SUFFIX = ".odps.yaml"

# ddp status → ODPS status (ODPS suggests proposed, draft, active, deprecated, retired).
STATUS: dict[str, str] = {"draft": "draft", "active": "active", "deprecated": "deprecated"}


def odps_api_version(version: str) -> str:
    """'1.1.0' or 'v1.1.0' → 'v1.1.0'; a :class:`ValueError` naming the versions ddp writes."""
    wanted = version if version.startswith("v") else f"v{version}"
    if wanted not in ODPS_API_VERSIONS:
        known = ", ".join(v.removeprefix("v") for v in ODPS_API_VERSIONS)
        raise ValueError(f"ddp writes ODPS {known}, not '{version}'")
    return wanted


def to_odps(
    product: Product,
    registry: Registry,
    *,
    tenant: str | None = None,
    api_version: str = ODPS_API_VERSION,
) -> dict[str, Any]:
    """The ODPS descriptor of one product, as plain data ready for YAML or JSON.

    ``api_version`` is 'v1.1.0' (default) or 'v1.0.0'; the descriptor is validated against
    that version's official schema. ``registry`` resolves the contracts of upstream products'
    output ports. ``tenant`` (the organization) is not part of a ddp spec; pass it to have it
    in the descriptor. Raises :class:`SpecErrors` if a contract cannot be read, an upstream
    port is unknown or the version is not one ddp writes.
    """
    spec = product.spec
    try:
        version = odps_api_version(api_version)
    except ValueError as error:
        raise SpecErrors(
            [
                SpecProblem(
                    relative(product.loaded.path, registry.root),
                    None,
                    "(odps)",
                    str(error),
                    "use --odps-version 1.1.0 (the default) or 1.0.0",
                )
            ]
        ) from None
    document: dict[str, Any] = {
        "apiVersion": version,
        "kind": "DataProduct",
        "id": spec.id,
        "name": spec.name,
        "version": spec.version,
        "status": STATUS[spec.status],
        "domain": spec.domain,
    }
    if version != "v1.0.0" and spec.status == "deprecated":
        document["deprecated"] = True
    if tenant:
        document["tenant"] = tenant
    document["description"] = _compact(
        {
            "purpose": spec.description.purpose,
            "limitations": spec.description.limitations,
            "usage": spec.description.usage,
        }
    )
    if spec.tags:
        document["tags"] = list(spec.tags)
    input_ports: list[dict[str, Any]] = []
    for port in spec.input_ports:
        if isinstance(port, ProductInputPort):
            input_ports.append(_input_port(port, registry, product))
        elif isinstance(port, FileInputPort | DepotInputPort):
            if (checked := _port_contract(product, port)) is None:
                continue
            if isinstance(port, FileInputPort):
                input_ports.append(_file_input_port(port, checked, registry))
            else:
                input_ports.append(_depot_input_port(port, checked, registry))
    if input_ports:
        document["inputPorts"] = input_ports
    reads = _input_ports_read(product, registry)
    document["outputPorts"] = [
        _output_port(port, product, registry, reads.get(port.model, set()))
        for port in spec.output_ports
    ]
    document["managementPorts"] = _management_ports(spec)
    support = _support(spec.owners)
    if support:
        document["support"] = support
    document["team"] = _team(spec.owners)
    created = _created(product.loaded.path)
    if created is not None:
        document["productCreatedTs"] = created
    custom = _product_properties(product)
    if custom:
        document["customProperties"] = custom
    _check(document, product, registry, version)
    return document


def _check(document: dict[str, Any], product: Product, registry: Registry, version: str) -> None:
    """Refuse to hand out a descriptor the official ODPS schema of ``version`` rejects (the
    schemas ship in ddp's distribution: :mod:`ddp_assets.standards`)."""
    from jsonschema import Draft201909Validator

    shown = relative(product.loaded.path, registry.root)
    try:
        standard = odps_schema(version)
    except SchemaUnavailable as error:
        raise SpecErrors([SpecProblem(shown, None, "(odps)", str(error), error.hint)]) from None
    validator = Draft201909Validator(
        standard.schema, format_checker=Draft201909Validator.FORMAT_CHECKER
    )
    problems = [
        SpecProblem(
            shown,
            None,
            ".".join(map(str, error.path)) or "(descriptor)",
            f"the ODPS descriptor does not conform to {standard.source}: {error.message}",
            "this is a bug in ddp's ODPS export: please report it with the product spec",
        )
        for error in validator.iter_errors(document)
    ]
    if problems:
        raise SpecErrors(problems)


def write_odps(
    product: Product,
    registry: Registry,
    out: Path,
    *,
    tenant: str | None = None,
    api_version: str = ODPS_API_VERSION,
) -> Path:
    """Write the product's ODPS descriptor as YAML and return the file written.

    ``out`` is the file to write when it ends in ``.yaml``/``.yml``, otherwise a folder that
    receives ``<product id>.odps.yaml`` (created if needed).
    """
    path = out if out.suffix in (".yaml", ".yml") else out / f"{product.id}{ODPS_FILE_SUFFIX}"
    document = to_odps(product, registry, tenant=tenant, api_version=api_version)
    header = (
        f"# Open Data Product Standard {document['apiVersion']} descriptor of product "
        f"'{product.id}'.\n"
        f"# Generated by ddp from {relative(product.loaded.path, registry.root)}; do not edit.\n"
    )
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + body, encoding="utf-8")
    return path


# -- parts ---------------------------------------------------------------------------------


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    """The entries whose value is set (ODPS fields are never null)."""
    return {k: v for k, v in values.items() if v is not None}


def _property(name: str, value: Any, description: str) -> dict[str, Any]:
    return {"property": name, "value": value, "description": description}


def _contract(product: Product, port: OutputPort, registry: Registry) -> Contract:
    return load_contract(product.folder / port.contract, registry.root)


def _upstream_contract(port: ProductInputPort, registry: Registry, product: Product) -> Contract:
    upstream = registry.products.get(port.upstream_product)
    output = upstream.spec.output_port(port.upstream_port) if upstream is not None else None
    if upstream is None or output is None:
        raise SpecErrors(
            [
                SpecProblem(
                    product.loaded.display_path,
                    None,
                    f"input_ports.{port.name}",
                    f"cannot export to ODPS: no output port '{port.product}' in the project",
                    "run `ddp validate` and fix the reported problems first",
                )
            ]
        )
    return _contract(upstream, output, registry)


def _input_port(port: ProductInputPort, registry: Registry, product: Product) -> dict[str, Any]:
    contract = _upstream_contract(port, registry, product)
    custom = [_property("product", port.product, "The upstream output port, as product.port.")]
    if port.contract is not None:
        custom.append(
            _property(
                "contractVersionRange",
                port.contract.version,
                "The upstream contract versions this port accepts.",
            )
        )
    if port.description:
        custom.append(_property("description", port.description, "What the port is used for."))
    return {
        "name": port.name,
        "version": contract.version,
        "contractId": contract.id,
        "customProperties": custom,
    }


def _port_contract(product: Product, port: FileInputPort | DepotInputPort) -> Path | None:
    """The optional contract of a file or depot input port (``contracts/<port>.odcs.yaml``):
    what the files landed or the rows loaded are checked against."""
    path = product.folder / "contracts" / f"{port.name}.odcs.yaml"
    return path if path.is_file() else None


def _file_input_port(port: FileInputPort, path: Path, registry: Registry) -> dict[str, Any]:
    custom = [
        _property("type", "file", "Landing-zone files, checked against the contract on landing."),
        _property("path", port.path, "Glob relative to the landing zone."),
        _property("format", port.format, "File format: csv, parquet or json."),
    ]
    return _contracted_input_port(port, path, registry, custom, "The landing contract (ODCS)")


def _depot_input_port(port: DepotInputPort, path: Path, registry: Registry) -> dict[str, Any]:
    what = port.table or port.query or port.resource or port.files
    custom = [
        _property("type", "depot", "Loaded by dlt from a depot (docs/depots.md)."),
        _property("depot", port.depot, "The depot: depots/<depot>.yaml (no credentials here)."),
        _property("source", what, "The table, query, API resource or file glob loaded."),
    ]
    if port.cursor:
        custom.append(_property("cursor", port.cursor, "Incremental cursor column."))
    return _contracted_input_port(port, path, registry, custom, "The input contract (ODCS)")


def _contracted_input_port(
    port: FileInputPort | DepotInputPort,
    path: Path,
    registry: Registry,
    custom: list[dict[str, Any]],
    contract_label: str,
) -> dict[str, Any]:
    """An ODPS input port of a file or depot port with its own contract (``path``)."""
    contract = load_contract(path, registry.root)
    custom.append(
        _property(
            "contract",
            relative(path, registry.root),
            f"{contract_label} the rows are checked against.",
        )
    )
    if port.description:
        custom.append(_property("description", port.description, "What the port is used for."))
    return {
        "name": port.name,
        "version": contract.version,
        "contractId": contract.id,
        "customProperties": custom,
    }


def _output_port(
    port: OutputPort, product: Product, registry: Registry, reads: set[str]
) -> dict[str, Any]:
    contract = _contract(product, port, registry)
    document: dict[str, Any] = {"name": port.name}
    if port.description:
        document["description"] = port.description
    document.update(type=port.type, version=contract.version, contractId=contract.id)
    input_contracts = []
    for input_port in product.spec.input_ports:
        if input_port.name not in reads:
            continue
        if isinstance(input_port, ProductInputPort):
            upstream = _upstream_contract(input_port, registry, product)
            input_contracts.append({"id": upstream.id, "version": upstream.version})
            continue
        # a landing or depot port's own contract: what the rows it reads were checked against
        path = (
            _port_contract(product, input_port)
            if isinstance(input_port, FileInputPort | DepotInputPort)
            else None
        )
        if path is not None:
            checked = load_contract(path, registry.root)
            input_contracts.append({"id": checked.id, "version": checked.version})
    if input_contracts:
        document["inputContracts"] = input_contracts
    document["customProperties"] = [
        _property("model", port.model, "The dbt or Python model behind the port."),
        _property(
            "relation",
            f"{product.spec.id}.{port.model}",
            "The warehouse relation (schema.table) consumers read.",
        ),
        _property(
            "access",
            _access(product.spec.id, port.name),
            "How a consumer with a grant reads the port: ddp's REST, SQL and file ports "
            "(docs/ports.md); every read is masked, row-filtered and audited.",
        ),
    ]
    return document


def _access(product_id: str, port: str) -> list[dict[str, str]]:
    """The REST, SQL and file ports of one output port (docs/ports.md)."""
    rest = f"/products/{product_id}/ports/{port}"
    return [
        {
            "port": "rest",
            "endpoint": f"GET {rest}/rows",
            "command": "ddp serve",
            "description": "Pages of rows as JSON (columns, filter, order, limit, offset), "
            "with a bearer token from `ddp token issue`.",
        },
        {
            "port": "sql",
            "table": f"{product_id}.{port}",
            "command": f'ddp ports sql "select * from {product_id}.{port}"',
            "description": "A read-only DuckDB database per consumer, built by "
            "`ddp ports build`; PostgreSQL views with `ddp ports postgres`.",
        },
        {
            "port": "file",
            "endpoint": f"GET {rest}/file?format=parquet",
            "command": f"ddp ports export {product_id} {port} --format parquet",
            "description": "The whole port as Parquet or CSV, with its ODCS contract beside it.",
        },
    ]


def _management_ports(spec: ProductSpec) -> list[dict[str, Any]]:
    """ddp's REST API (discoverability, dictionary, observability) and audit log (control)."""
    base = f"/products/{spec.id}"

    def rest(name: str, content: str, path: str, description: str) -> dict[str, Any]:
        return {
            "name": name,
            "content": content,
            "type": "rest",
            "description": f"{description} (ddp REST port, `ddp serve`; OpenAPI at /openapi.json).",
            "customProperties": [
                _property("path", path, "Path on the ddp REST server."),
                _property("command", "ddp serve", "Starts the REST server."),
            ],
        }

    return [
        rest(
            "rest-product",
            "discoverability",
            base,
            "The product, its output ports and which ones the caller may read",
        ),
        rest(
            "rest-contract",
            "dictionary",
            f"{base}/ports/{{port}}/contract",
            "An output port's ODCS contract as JSON; `.../schema` gives the caller's columns",
        ),
        rest(
            "rest-slo",
            "observability",
            f"{base}/ports/{{port}}/slo",
            "An output port's freshness against its SLO (pass, warn, fail) and open alerts",
        ),
        {
            "name": "audit",
            "content": "control",
            "type": "cli",
            "description": "The audit log of every read through the REST, SQL and file ports "
            "(consumer, port, channel, rows, allowed or denied).",
            "customProperties": [
                _property("command", f"ddp audit {spec.id}", "Lists the product's audit log.")
            ],
        },
    ]


def _support(owners: Iterable[str]) -> list[dict[str, Any]]:
    """The owners' email addresses, as ODPS support channels."""
    return [
        {
            "channel": email,
            "url": f"mailto:{email}",
            "tool": "email",
            "scope": "issues",
            "description": "Product owner.",
        }
        for email in owners
        if not email.startswith("team:")
    ]


def _created(spec_file: Path) -> str | None:
    """When the spec file was first committed (git, in UTC), or None without that history."""
    try:
        found = subprocess.run(
            ["git", "log", "--diff-filter=A", "--format=%aI", "--", spec_file.name],
            cwd=spec_file.parent,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    dates = found.stdout.split() if found.returncode == 0 else []
    if not dates:
        return None
    try:
        when = datetime.fromisoformat(dates[-1])  # the oldest: the first time it was added
    except ValueError:
        return None
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _team(owners: Iterable[str]) -> dict[str, Any]:
    """Owners → an ODPS team: the first 'team:' owner names it, emails are its owner members."""
    teams = [o.removeprefix("team:") for o in owners if o.startswith("team:")]
    emails = [o for o in owners if not o.startswith("team:")]
    team: dict[str, Any] = {}
    if teams:
        team["name"] = teams[0]
    if emails:
        team["members"] = [{"username": email, "role": "owner"} for email in emails]
    if len(teams) > 1:
        team["customProperties"] = [
            _property("additionalTeams", teams[1:], "Further teams that own the product.")
        ]
    return team


def _product_properties(product: Product) -> list[dict[str, Any]]:
    """ddp fields with no ODPS counterpart."""
    spec = product.spec
    slos = spec.slos
    custom = [
        _property("tier", spec.tier, "ddp tier: bronze, silver or gold."),
        _property(
            "refresh",
            slos.refresh,
            "How the product is refreshed: schedule, on_upstream_change or manual.",
        ),
    ]
    if slos.schedule:
        custom.append(_property("schedule", slos.schedule, "Refresh schedule (cron)."))
        custom.append(_property("scheduleTimezone", slos.timezone, "Time zone of the schedule."))
    freshness = slos.freshness
    if freshness is not None and freshness.max_age is not None:
        custom.append(
            _property("freshnessMaxAge", freshness.max_age, "Maximum age of the output ports.")
        )
    if freshness is not None and freshness.deadline is not None:
        custom.append(
            _property(
                "freshnessDeadline",
                freshness.deadline,
                "Time of day (HH:MM) by which today's data is in the output ports.",
            )
        )
        custom.append(
            _property("freshnessTimezone", freshness.timezone, "Time zone of the deadline.")
        )
    custom.append(
        _property(
            "classification",
            spec.policies.classification,
            "Data classification: public, internal, confidential or restricted.",
        )
    )
    if spec.policies.grants:
        custom.append(
            _property(
                "grants",
                [_grant(grant) for grant in spec.policies.grants],
                "Who may read which output ports ('*' is every port), which rows (every "
                "condition holds; none: every row) and which classified columns in clear.",
            )
        )
    sources = [
        port.model_dump(exclude_none=True)
        for port in spec.input_ports
        if isinstance(port, TableInputPort)
        or (
            isinstance(port, FileInputPort | DepotInputPort)
            and _port_contract(product, port) is None
        )
    ]
    if sources:
        custom.append(
            _property(
                "sourceInputs",
                sources,
                "Input ports without a data contract (landing-zone files, warehouse tables, "
                "depots).",
            )
        )
    return custom


def _grant(grant: Grant) -> dict[str, Any]:
    document: dict[str, Any] = {"to": grant.to, "ports": list(grant.ports)}
    if grant.rows:
        document["rows"] = [row.model_dump(exclude_none=True) for row in grant.rows]
    if grant.cleared_for:
        document["clearedFor"] = list(grant.cleared_for)
    return document


def _input_ports_read(product: Product, registry: Registry) -> dict[str, set[str]]:
    """Model → the input ports it reads, directly or through the product's other models."""
    spec = product.spec
    port_names = {p.name for p in spec.input_ports}
    port_of_upstream = {
        p.product: p.name for p in spec.input_ports if isinstance(p, ProductInputPort)
    }
    model_of_file = {path: name for name, path in product.sql_models.items()}
    depends: dict[str, set[str]] = {name: set() for name in product.model_names}
    for ref in product.references():
        model = model_of_file.get(ref.file)
        if model is None:
            continue
        if ref.kind == "source":
            if ref.source == spec.id:
                depends[model].add(ref.name)  # an input port's raw table or a python model
            continue
        if ref.name in depends:
            depends[model].add(ref.name)
            continue
        owner = registry.model_owner.get(ref.name)
        upstream = registry.products.get(owner) if owner else None
        port = upstream.output_models.get(ref.name) if upstream else None
        if port is not None and f"{owner}.{port}" in port_of_upstream:
            depends[model].add(port_of_upstream[f"{owner}.{port}"])
    for python_model in spec.python_models:
        depends[python_model.name].update(python_model.inputs)

    resolved: dict[str, set[str]] = {}

    def reads(model: str, seen: frozenset[str]) -> set[str]:
        if model in resolved:
            return resolved[model]
        found: set[str] = set()
        for name in depends.get(model, set()):
            if name in port_names:
                found.add(name)
            if name in depends and name not in seen:
                found |= reads(name, seen | {name})
        resolved[model] = found
        return found

    return {model: reads(model, frozenset({model})) for model in depends}
