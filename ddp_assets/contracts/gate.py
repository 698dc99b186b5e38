"""Input-port contracts: before a product's model reads another product's port, check it.

A product declares, per input port, the contract it expects (``contract: {id, version}``).
Before a model that reads such a port runs, :func:`blocked_inputs` checks the upstream port:

- it has been published, under a contract with the expected id and a version in the range
  (the version recorded with the published data, not only the one in the upstream's code);
- its latest audit passed (an audit that failed holds the port back, and its readers too).

Each problem names the reading product and port, the upstream product and port, the contract
and the failing check, so the run log says exactly what to fix and where.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dagster as dg

from ddp_assets.contracts.compiler import compile_contract
from ddp_assets.contracts.sql_rules import input_relations
from ddp_assets.contracts.validation import requirement_problem
from ddp_assets.contracts.wap import PublishedVersion, latest_audit, published_version
from ddp_assets.naming import POINTERS_TABLE, PROD, current_env, meta_schema
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.errors import SpecErrors
from ddp_assets.spec.model import ProductInputPort
from ddp_assets.spec.registry import Registry
from ddp_assets.warehouse import Connection, relation, relation_exists, warehouse_for


@dataclass(frozen=True)
class BlockedInput:
    product: str
    input_port: str
    upstream_product: str
    upstream_port: str
    contract: str
    reason: str

    def message(self) -> str:
        return (
            f"product '{self.product}' blocked: input port '{self.input_port}' reads "
            f"{self.upstream_product}.{self.upstream_port} (contract {self.contract}): "
            f"{self.reason}"
        )


def input_port_for(
    registry: Registry, product_id: str, upstream_product: str, upstream_model: str
) -> ProductInputPort | None:
    """The input port of ``product_id`` through which it reads ``upstream_product``'s model."""
    product = registry.products.get(product_id)
    upstream = registry.products.get(upstream_product)
    if product is None or upstream is None:
        return None
    for port in product.spec.input_ports:
        if isinstance(port, ProductInputPort) and port.upstream_product == upstream_product:
            output = upstream.spec.output_port(port.upstream_port)
            if output is not None and output.model == upstream_model:
                return port
    return None


def blocked_inputs(
    connection: Connection,
    registry: Registry,
    reads: Iterable[tuple[str, ProductInputPort]],
) -> list[BlockedInput]:
    """Problems with the upstream ports read through ``reads`` ((product id, input port))."""
    blocked: list[BlockedInput] = []
    for product_id, port in sorted(set(reads), key=lambda r: (r[0], r[1].name)):
        upstream = registry.products[port.upstream_product]
        output = upstream.spec.output_port(port.upstream_port)
        assert output is not None
        try:
            # the compiled plan is memoized (and cached with the definitions): no YAML read here
            declared = compile_contract(
                upstream.folder / output.contract,
                output.model,
                registry.root,
                inputs=input_relations(upstream, registry),
            )
            declared_label = f"{declared.contract_id} {declared.contract_version}"
        except SpecErrors:
            declared_label = str(output.contract)

        def block(
            reason: str,
            contract: str = declared_label,
            product_id: str = product_id,
            port: ProductInputPort = port,
        ) -> None:
            blocked.append(
                BlockedInput(
                    product_id,
                    port.name,
                    port.upstream_product,
                    port.upstream_port,
                    contract,
                    reason,
                )
            )

        version = published_version(connection, port.upstream_product, port.upstream_port)
        pointed = version is None and (
            version := pointed_version(connection, port.upstream_product, port.upstream_port)
        )
        if version is None:
            block("it has never been published; materialize the upstream product first")
            continue
        label = f"{version.contract_id} {version.contract_version}"
        if port.contract is not None:
            reason = requirement_problem(
                port.contract, version.contract_id, version.contract_version
            )
            if reason:
                block(f"the published version {reason}", label)
                continue
        # a version an environment reads from its base passed its audit there to be published
        audit = (
            None if pointed else latest_audit(connection, port.upstream_product, port.upstream_port)
        )
        if audit is not None and not audit.passed:
            block(
                f"its latest audit failed (run {audit.run_id[:8]}, contract "
                f"{audit.contract_id} {audit.contract_version}): failing check(s) "
                + ", ".join(audit.failed_checks)
                + "; the published version is older than the upstream's last build",
                f"{audit.contract_id} {audit.contract_version}",
            )
    return blocked


def pointed_version(connection: Connection, product: str, port: str) -> PublishedVersion | None:
    """In an environment other than prod, the base's version of a port its view reads when the
    environment did not publish the port itself (``ddp env create`` recorded it); else None."""
    meta = meta_schema()
    if current_env() == PROD or not relation_exists(connection, meta, POINTERS_TABLE):
        return None
    row = connection.execute(
        "select base_relation, rows_at_create, checksum_at_create, contract_id, "
        f"contract_version, base_version from {relation(meta, POINTERS_TABLE)} "
        "where product = ? and port = ?",
        [product, port],
    ).fetchone()
    if row is None or row[3] is None:
        return None
    return PublishedVersion(
        product,
        port,
        str(row[0]),
        int(row[1] or 0),
        str(row[2] or ""),
        str(row[3]),
        str(row[4]),
        "",
        "",
        row[5],
    )


def check_input_ports(
    context: dg.AssetExecutionContext,
    registry: Registry,
    paths: ProjectPaths,
    keys: Iterable[dg.AssetKey],
) -> list[BlockedInput]:
    """The input ports that block the selected assets of a step; each is logged as an error.

    An asset reads an upstream port when it depends on the port's publish asset
    ``[upstream product, model]``; only those reads are checked, so a step that builds a
    product's staging models before its upstream is published in the same run is not blocked.
    """
    reads: list[tuple[str, ProductInputPort]] = []
    deps = context.assets_def.asset_deps
    for key in keys:
        product = key.path[0]
        for dep in deps.get(key, ()):
            if len(dep.path) == 2 and dep.path[0] != product:
                port = input_port_for(registry, product, dep.path[0], dep.path[1])
                if port is not None:
                    reads.append((product, port))
    if not reads:
        return []
    with warehouse_for(paths).writer() as connection:
        blocked = blocked_inputs(connection, registry, reads)
    for item in blocked:
        context.log.error(item.message())
    return blocked
