"""Contract checks for ``ddp validate``: conformance, compilation and input-port requirements.

- every output port's contract conforms to the official ODCS JSON Schema of its apiVersion;
- it compiles (quality rules with a usable operator and arguments); parts ddp does not
  enforce are warnings with their file and line;
- a breaking change since the base (``DDP_CONTRACT_BASE``: a git ref, default ``HEAD``, or a
  folder with an older checkout; empty to skip) comes with a new major version;
- every input port that names the contract it expects (``contract: {id, version}``) gets a
  compatible one from its upstream port: the same id, a version in the range.
"""

from __future__ import annotations

import os

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from ddp_assets.contracts.compiler import compile_contract
from ddp_assets.contracts.diff import breaking_change_problems
from ddp_assets.contracts.sql_rules import input_relations
from ddp_assets.spec.errors import SpecErrors, SpecProblem, unique_problems
from ddp_assets.spec.model import ContractRequirement, FileInputPort, ProductInputPort
from ddp_assets.spec.odcs import load_contract, schema_problems
from ddp_assets.spec.registry import Product, Registry


def version_matches(version: str, wanted: str) -> bool:
    """Whether a contract version satisfies a range such as ``>=1.0.0,<2.0.0`` (``*``: any)."""
    if wanted.strip() in ("", "*"):
        return True
    return Version(version) in SpecifierSet(wanted.replace(" ", ""))


def requirement_problem(
    requirement: ContractRequirement, contract_id: str, contract_version: str
) -> str | None:
    """Why an upstream contract does not satisfy a requirement, or None when it does."""
    if requirement.id != contract_id:
        return f"expects contract '{requirement.id}', but the upstream port has '{contract_id}'"
    try:
        if not version_matches(contract_version, requirement.version):
            return (
                f"expects {requirement.id} version '{requirement.version}', "
                f"but the upstream port has version {contract_version}"
            )
    except (InvalidSpecifier, InvalidVersion) as error:
        return f"cannot compare version '{contract_version}' with '{requirement.version}': {error}"
    return None


def contract_problems(registry: Registry, base: str | None = None) -> list[SpecProblem]:
    """Every contract problem and warning across the registry's products; breaking changes
    since ``base`` (None: ``DDP_CONTRACT_BASE``, default ``HEAD``; ``""``: not checked)."""
    problems: list[SpecProblem] = []
    for product in registry.products.values():
        for port in product.spec.output_ports:
            path = product.folder / port.contract
            if not path.is_file():
                continue  # reported by the registry
            try:
                problems.extend(schema_problems(path, registry.root))
                plan = compile_contract(
                    path, port.model, registry.root, inputs=input_relations(product, registry)
                )
                problems.extend(plan.warnings)
            except SpecErrors as errors:
                problems.extend(errors.problems)
        for file_port in product.spec.input_ports:
            if not isinstance(file_port, FileInputPort):
                continue
            path = product.folder / "contracts" / f"{file_port.name}.odcs.yaml"
            if path.is_file():  # the optional landing contract of a file input port
                try:
                    problems.extend(schema_problems(path, registry.root))
                    problems.extend(compile_contract(path, file_port.name, registry.root).warnings)
                except SpecErrors as errors:
                    problems.extend(errors.problems)
        problems.extend(_input_problems(product, registry))
    # change management: breaking changes since the base need a major version bump
    if base is None:
        base = os.environ.get("DDP_CONTRACT_BASE", "HEAD")
    if base:
        problems.extend(breaking_change_problems(registry, base))
    return unique_problems(problems)


def _input_problems(product: Product, registry: Registry) -> list[SpecProblem]:
    problems = []
    for index, port in enumerate(product.spec.input_ports):
        if not isinstance(port, ProductInputPort) or port.contract is None:
            continue
        upstream = registry.products.get(port.upstream_product)
        output = upstream.spec.output_port(port.upstream_port) if upstream else None
        if upstream is None or output is None:
            continue  # reported by the registry
        try:
            contract = load_contract(upstream.folder / output.contract, registry.root)
        except SpecErrors:
            continue  # reported with the upstream product
        reason = requirement_problem(port.contract, contract.id, contract.version)
        if reason:
            problems.append(
                SpecProblem(
                    product.loaded.display_path,
                    product.loaded.line_of("input_ports", index, "contract"),
                    f"input_ports[{index}].contract",
                    f"input port '{port.name}' ({port.product}) {reason}",
                    "agree on the contract with the upstream owners, or widen the version range",
                )
            )
    return problems
