"""``ddp status``: each product's health scorecard."""

from __future__ import annotations

from typing import Annotated

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
    cards = scorecards(instance(paths), definitions(paths), registry, products)
    if as_json:
        print_json([card.to_dict() for card in cards])
        return
    table = Table(
        "product", "state", "freshness", "last run", "checks passed", "open alerts", "why"
    )
    for card in cards:
        colour = STATE_COLOURS.get(card.state, "white")
        freshness = ", ".join(f"{f.port}: {f.state}" for f in card.freshness)
        rate = card.contract_pass_rate
        table.add_row(
            card.product,
            styled(card.state, colour),
            freshness,
            card.last_run["status"] if card.last_run else "-",
            "-" if rate is None else f"{rate:.0%} of {card.checks_evaluated}",
            str(len(card.open_alerts)),
            "; ".join(card.reasons),
        )
    out.print(table)
