"""``ddp spec``: the product spec format itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ddp_assets.cli.console import say

app = typer.Typer(help="The data product spec format.", no_args_is_help=True)


@app.command("schema")
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """Print the JSON Schema of a product's defs.yaml (for editors and CI)."""
    from ddp_assets.spec.schema import spec_json_schema

    text = json.dumps(spec_json_schema(), indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        say("[green]wrote[/green] {}", output)
