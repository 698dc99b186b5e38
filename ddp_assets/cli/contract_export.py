"""``ddp contract export``: an output port's ODCS contract as ddp hands it out, with servers."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
import yaml

from ddp_assets.cli.console import fail, say
from ddp_assets.dbt.load_cache import load_registry
from ddp_assets.settings import ProjectPaths


class ContractFormat(StrEnum):
    """The formats ``ddp contract export`` writes."""

    yaml = "yaml"
    json = "json"


def export(
    product: Annotated[str, typer.Argument(help="Product id.")],
    port: Annotated[str, typer.Argument(help="Output port of the product.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    fmt: Annotated[
        ContractFormat, typer.Option("--format", help="yaml (default) or json.")
    ] = ContractFormat.yaml,
) -> None:
    """Write an output port's ODCS contract with its servers (no credentials).

    The `servers` block says where the port is published in the active warehouse target
    (DDP_DBT_TARGET): the DuckDB file, or the PostgreSQL host, port and database, and the
    product's schema. Tools that test a contract against its data (datacontract-cli's
    `test`) read it as is.
    """
    from ddp_assets.contracts.servers import exported_contract
    from ddp_assets.warehouse import WarehouseConfigError

    paths = ProjectPaths.discover()
    registry = load_registry(paths)
    try:
        document = exported_contract(paths, registry.get(product), port)
    except WarehouseConfigError as error:
        fail(str(error), "see docs/warehouse-targets.md")
    if fmt is ContractFormat.json:
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    else:
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        fail(f"cannot write {output}: {error.strerror or error}", "choose another --output")
    say("[green]wrote[/green] {}", output)
