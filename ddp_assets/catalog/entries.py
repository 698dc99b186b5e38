"""One catalog entry per product: everything a consumer needs to find and judge it."""

from __future__ import annotations

from typing import Any

from ddp_assets.catalog.describe import details
from ddp_assets.settings import catalog_url
from ddp_assets.spec.errors import SpecErrors
from ddp_assets.spec.odcs import load_contract
from ddp_assets.spec.registry import Product, Registry


def contract_tables(product: Product, registry: Registry) -> list[dict[str, Any]]:
    """Per output port: its contract id/version and columns with their rules."""
    tables: list[dict[str, Any]] = []
    for port in product.spec.output_ports:
        entry: dict[str, Any] = {
            "port": port.name,
            "model": port.model,
            "relation": f"{product.id}.{port.model}",
            "type": port.type,
            "description": port.description,
            "contract_file": str((product.folder / port.contract).relative_to(registry.root)),
            "contract_id": None,
            "contract_version": None,
            "columns": [],
            "rules": [],
        }
        try:
            contract = load_contract(product.contract_path(port.name), registry.root)
        except SpecErrors as errors:
            entry["error"] = errors.problems[0].message if errors.problems else "invalid contract"
            tables.append(entry)
            continue
        entry["contract_id"] = contract.id
        entry["contract_version"] = contract.version
        obj = contract.object_for(port.model)
        if obj is not None:
            for prop in obj.properties:
                rules = []
                if prop.required:
                    rules.append("required")
                if prop.unique:
                    rules.append("unique")
                if prop.primary_key:
                    rules.append("primary key")
                rules.extend(_rule(q) for q in prop.quality)
                entry["columns"].append(
                    {
                        "name": prop.column,
                        "type": prop.data_type,
                        "description": prop.description,
                        "classification": prop.classification,
                        "rules": rules,
                    }
                )
            entry["rules"] = [_rule(q) for q in obj.quality]
        tables.append(entry)
    return tables


def _rule(quality: dict[str, Any]) -> str:
    name = quality.get("metric") or quality.get("rule") or quality.get("type") or "rule"
    bounds = [
        f"{key} {value}"
        for key, value in quality.items()
        if key.startswith("mustBe") or key in ("mustNotBe",)
    ]
    arguments = quality.get("arguments")
    text = str(name)
    if arguments:
        text += f" {arguments}"
    if bounds:
        text += " (" + ", ".join(bounds) + ")"
    return text


def catalog_entry(product: Product, registry: Registry) -> dict[str, Any]:
    entry = details(product, registry)
    entry["contracts"] = contract_tables(product, registry)
    entry["columns"] = sorted({c["name"] for table in entry["contracts"] for c in table["columns"]})
    return entry


def catalog_entries(registry: Registry) -> list[dict[str, Any]]:
    return [catalog_entry(registry.products[pid], registry) for pid in sorted(registry.products)]


def show_details(product: Product, registry: Registry, instance: Any = None) -> dict[str, Any]:
    """:func:`details` plus the contract tables, the last materialization, the check status
    (from the Dagster instance, when there is one) and the catalog page."""
    from ddp_assets.catalog.status import product_status  # here: it imports Dagster

    info = details(product, registry)
    info["contracts"] = contract_tables(product, registry)
    info["status"] = product_status(instance, product) if instance is not None else None
    info["catalog_url"] = catalog_url(product.id)
    return info
