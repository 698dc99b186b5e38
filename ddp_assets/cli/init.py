"""``ddp init``: start a team's own ddp project (a thin layer over :mod:`ddp_assets.starter`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ddp_assets.cli.console import say
from ddp_assets.starter import init_project


def init(
    name: Annotated[str, typer.Argument(help="The project's name; also its folder (acme-data).")],
    demo: Annotated[
        bool, typer.Option("--demo", help="Add the seven demo products (landing data: ddp demo).")
    ] = False,
    directory: Annotated[
        Path | None,
        typer.Option("--directory", "-d", help="Folder to create (default: ./NAME)."),
    ] = None,
) -> None:
    """Write a new, empty ddp project that validates and builds at once (ddp is its dependency)."""
    target = (directory or Path(name)).resolve()
    result = init_project(target, name=name, demo=demo)
    say(
        "[green]created[/green] {} ({} files, package {})",
        result.root,
        len(result.files),
        result.package,
    )
    if result.demo_products:
        say("demo products: {}", ", ".join(result.demo_products))
    say("next: cd {} && python3.11 -m venv .venv && .venv/bin/pip install -e '.\\[dev]'", target)
    if result.demo_products:
        say("then: ddp demo --scale 10000 && ddp materialize --all && ddp dev")
    else:
        say("then: ddp new my_product --domain my_domain --owner you@example.com && ddp dev")
