"""Plain-data descriptions of products, for ``ddp list``, ``ddp show``, ``--json`` and the catalog.

From the specs alone (no contract, no Dagster instance): the catalog's entries
(:mod:`ddp_assets.catalog.entries`) add the contract tables and the status to these.
"""

from __future__ import annotations

from typing import Any

from ddp_assets.spec.model import DepotInputPort, FileInputPort, ProductInputPort, TableInputPort
from ddp_assets.spec.registry import Product, Registry


def input_port_summary(product: Product) -> list[dict[str, Any]]:
    ports: list[dict[str, Any]] = []
    for port in product.spec.input_ports:
        entry: dict[str, Any] = {"name": port.name, "type": port.type}
        if isinstance(port, FileInputPort):
            entry.update(path=port.path, format=port.format)
        elif isinstance(port, TableInputPort):
            entry.update(table=port.table)
        elif isinstance(port, DepotInputPort):  # a depot and what of it, never a credential
            what = port.table or port.resource or port.files or "query"
            entry.update(depot=port.depot, path=f"depot {port.depot}: {what}", cursor=port.cursor)
        elif isinstance(port, ProductInputPort):
            entry.update(product=port.product)
            if port.contract:
                entry.update(contract=port.contract.model_dump())
        ports.append(entry)
    return ports


def output_port_summary(product: Product, registry: Registry) -> list[dict[str, Any]]:
    return [
        {
            "name": port.name,
            "type": port.type,
            "model": port.model,
            "relation": f"{product.id}.{port.model}",
            "contract": str((product.folder / port.contract).relative_to(registry.root)),
            "description": port.description,
        }
        for port in product.spec.output_ports
    ]


def summary(product: Product, registry: Registry) -> dict[str, Any]:
    """The fields ``ddp list`` shows."""
    spec = product.spec
    return {
        "id": spec.id,
        "name": spec.name,
        "domain": spec.domain,
        "owners": list(spec.owners),
        "version": spec.version,
        "status": spec.status,
        "tier": spec.tier,
        "input_ports": input_port_summary(product),
        "output_ports": output_port_summary(product, registry),
    }


def details(product: Product, registry: Registry) -> dict[str, Any]:
    """Everything ``ddp show`` shows: the summary plus models, SLOs, policies and neighbours."""
    spec = product.spec
    return {
        **summary(product, registry),
        "description": spec.description.model_dump(exclude_none=True),
        "tags": list(spec.tags),
        "spec_file": product.loaded.display_path,
        "models": {
            "sql": {
                name: str(path.relative_to(registry.root))
                for name, path in sorted(product.sql_models.items())
            },
            "python": [m.model_dump(exclude_none=True) for m in spec.python_models],
        },
        "slos": spec.slos.model_dump(exclude_none=True),
        "policies": spec.policies.model_dump(),
        "upstream": registry.upstream(spec.id),
        "downstream": registry.downstream(spec.id),
    }
