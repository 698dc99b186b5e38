"""``ddp audit [PRODUCT]``: who read which port, when, how many rows, allowed or denied."""

from __future__ import annotations

from typing import Annotated

import typer

from ddp_assets.cli.console import Table, out, print_json, styled
from ddp_assets.settings import ProjectPaths

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def audit(
    product: Annotated[str | None, typer.Argument(help="One product (default: all).")] = None,
    consumer: Annotated[str | None, typer.Option(help="Only this consumer's accesses.")] = None,
    denied: Annotated[bool, typer.Option("--denied", help="Only refused accesses.")] = False,
    access: Annotated[
        bool, typer.Option("--access", help="Only access-request steps (ddp access).")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="How many, newest first.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """The access log of the ports (the products' control port), newest first."""
    from ddp_assets.dbt.load_cache import load_registry
    from ddp_assets.ports.audit import read
    from ddp_assets.ports.store import Store

    paths = ProjectPaths.discover()
    if product is not None:
        load_registry(paths).get(product)  # an unknown product is an error with a hint
    records = read(Store.open(paths), product, consumer=consumer, denied_only=denied, limit=limit)
    if access:
        from ddp_assets.ports.access import audit_events

        records = audit_events(Store.open(paths), product, consumer=consumer, limit=limit)
        records = [r for r in records if not denied or not r.allowed]
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    table = Table("at", "consumer", "port", "channel", "action", "rows", "outcome", "reason")
    for r in records:
        port = f"{r.product}.{r.port}" if r.port else (r.product or "-")
        outcome = styled("allowed", "green") if r.allowed else styled(f"denied {r.status}", "red")
        table.add_row(
            r.at,
            r.consumer or "(anonymous)",
            port,
            r.channel,
            r.action,
            "" if r.rows is None else str(r.rows),
            outcome,
            r.reason or "",
        )
    out.print(table)
