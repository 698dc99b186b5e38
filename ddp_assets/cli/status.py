"""``ddp status``: each product's health scorecard."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ddp_assets.cli.console import Table, out, print_json, styled
from ddp_assets.cli.products import JsonFlag
from ddp_assets.dbt.load_cache import load_registry
from ddp_assets.settings import ProjectPaths

STATE_COLOURS = {"healthy": "green", "degraded": "yellow", "failing": "red", "unknown": "dim"}


def status(
    product: Annotated[str | None, typer.Argument(help="One product (default: all).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Health scorecard: freshness vs SLO, last run, check pass rate, open alerts, overall state."""
    from ddp_assets.automation.health import scorecards
    from ddp_assets.runtime.instance import definitions, instance

    paths = ProjectPaths.discover()
    registry = load_registry(paths)
    products = [registry.get(product).id] if product else sorted(registry.products)
    from ddp_assets.catalog.partitions import partition_status

    run_instance = instance(paths)
    cards = scorecards(run_instance, definitions(paths), registry, products)
    published = _published(paths, registry, products)
    parts = {p: partition_status(run_instance, registry.get(p)) for p in products}
    if as_json:
        print_json(
            [
                {
                    **card.to_dict(),
                    "published": published[card.product],
                    "partitions": parts[card.product],
                }
                for card in cards
            ]
        )
        return
    partitioned = any(parts.values())
    table = Table(
        "product", "state", "freshness", "published", "last run", "checks passed", "open alerts",
        *(["partitions"] if partitioned else []), "why",
    )  # fmt: skip
    for card in cards:
        colour = STATE_COLOURS.get(card.state, "white")
        freshness = ", ".join(f"{f.port}: {f.state}" for f in card.freshness)
        rate = card.contract_pass_rate
        table.add_row(
            card.product,
            styled(card.state, colour),
            freshness,
            ", ".join(
                f"{port} v{v['version']} ({v['contract_version']})"
                for port, v in published[card.product].items()
                if v is not None
            )
            or "-",
            card.last_run["status"] if card.last_run else "-",
            "-" if rate is None else f"{rate:.0%} of {card.checks_evaluated}",
            str(len(card.open_alerts)),
            *([_partitions_cell(parts[card.product])] if partitioned else []),
            "; ".join(card.reasons),
        )
    out.print(table)


def _partitions_cell(found: dict[str, Any] | None) -> str:
    """'30/31, latest 2026-01-30 (5.2h old), 1 missing: 2026-01-12' or '-'."""
    if found is None:
        return "-"
    text = f"{found['published']}/{found['partitions']}"
    if found.get("latest"):
        age = found.get("latest_age_hours")
        text += f", latest {found['latest']}" + (f" ({age}h old)" if age is not None else "")
    if found["missing_count"]:
        shown = ", ".join(found["missing"][:3])
        more = "..." if found["missing_count"] > 3 else ""
        text += f", {found['missing_count']} missing: {shown}{more}"
    return text


def _published(paths: ProjectPaths, registry: Any, products: list[str]) -> dict[str, Any]:
    """Product → port → the version consumers read now (number, product version, contract
    version, when published) or None; every port None without a warehouse."""
    from ddp_assets.contracts.wap import published_version
    from ddp_assets.warehouse import warehouse_for

    found: dict[str, Any] = {
        p: {o.name: None for o in registry.get(p).spec.output_ports} for p in products
    }
    warehouse = warehouse_for(paths)
    if not warehouse.exists():
        return found
    with warehouse.reader() as connection:
        for product, ports in found.items():
            for port in ports:
                version = published_version(connection, product, port)
                if version is not None:
                    ports[port] = {
                        "version": version.version,
                        "product_version": version.product_version,
                        "contract_version": version.contract_version,
                        "published_at": version.published_at,
                    }
    return found
