"""``ddp export``: product descriptors in open standards."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
import yaml

from ddp_assets.cli.console import say
from ddp_assets.dbt.load_cache import load_registry
from ddp_assets.settings import ProjectPaths

app = typer.Typer(help="Export product descriptors in open standards.", no_args_is_help=True)


class OdpsVersion(StrEnum):
    """The ODPS versions ddp writes."""

    v1_1_0 = "1.1.0"
    v1_0_0 = "1.0.0"


@app.command("odps")
def odps(
    product: Annotated[str, typer.Argument(help="Product id.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    odps_version: Annotated[
        OdpsVersion,
        typer.Option("--odps-version", help="ODPS version of the descriptor."),
    ] = OdpsVersion.v1_1_0,
    tenant: Annotated[
        str | None,
        typer.Option("--tenant", help="Organization identifier (ODPS 'tenant')."),
    ] = None,
) -> None:
    """Write an Open Data Product Standard (ODPS v1.1.0, or v1.0.0) descriptor of a product."""
    from ddp_assets.export.odps import to_odps

    paths = ProjectPaths.discover()
    registry = load_registry(paths)
    document = to_odps(
        registry.get(product), registry, tenant=tenant, api_version=odps_version.value
    )
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        say("[green]wrote[/green] {}", output)
