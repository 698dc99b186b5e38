"""``ddp import dbt`` and ``ddp contract infer``: bringing an existing dbt project in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import typer

from ddp_assets.cli.console import fail, print_json, say, say_err, styled, working
from ddp_assets.settings import ProjectPaths

app = typer.Typer(help="Bring existing projects in as data products.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@app.command("dbt")
def import_dbt_command(
    path: Annotated[Path, typer.Argument(help="The dbt project's folder (with dbt_project.yml).")],
    group_by: Annotated[
        str | None,
        typer.Option(
            "--group-by",
            help="Products from dbt groups, model folders or sources "
            "(default: groups when the project has any, else folders).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would be written; write nothing.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Write product folders from an existing dbt project, then report what was mapped.

    Example: ddp import dbt ../analytics --dry-run
    """
    from ddp_assets.onboard.importer import GroupBy, import_dbt

    if group_by not in (None, "group", "folder", "source"):
        fail(
            f"--group-by {group_by!r} is not one of group, folder, source", "e.g. --group-by folder"
        )
    paths = ProjectPaths.discover()
    with working(f"compiling {path} and describing its models"):
        report = import_dbt(paths, path, cast(GroupBy | None, group_by), dry_run=dry_run)
    if as_json:
        print_json(report.to_dict())
        return
    verb = "would write" if dry_run else "wrote"
    say(
        "[bold]dbt project '{}'[/bold] → {} product(s), by {}",
        report.project,
        len(report.products),
        report.group_by,
    )
    say("[bold]mapped[/bold]")
    for line in report.mapped:
        say("  {}", line)
    if report.not_mapped:
        say("[bold]not mapped[/bold]")
        for what, why in report.not_mapped:
            say("  {}: {}", styled(what, "yellow"), why)
    say("{} {} file(s), {} unchanged", verb, len(report.written), report.unchanged)
    for file in report.written:
        say("  {}", file)
    say("next: {}", report.next_command)


def contract_infer(
    product: Annotated[str, typer.Argument(help="Product id.")],
    port: Annotated[str | None, typer.Argument(help="Output port (default: every port).")] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Only report drift; exit 1 when there is any.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Write or refresh an output port's contract from its built relation and its dbt tests.

    Hand-written parts (descriptions, quality rules, comments) are kept.
    Example: ddp contract infer orders fct_orders --check
    """
    from ddp_assets.onboard.infer import infer_contracts

    paths = ProjectPaths.discover()
    results = infer_contracts(paths, product, port, write=not check)
    drift = any(r.changes for r in results)
    if as_json:
        print_json(
            {
                "product": product,
                "check": check,
                "drift": drift,
                "ports": [r.to_dict() for r in results],
            }
        )
    else:
        for result in results:
            if not result.changes:
                say("{}.{}: {} is up to date", product, result.port, result.contract)
                continue
            state = "drifted" if check else ("written" if result.created else "refreshed")
            say("[bold]{}.{}[/bold]: {} {}", product, result.port, result.contract, state)
            for change in result.changes:
                say("  {}", change)
        if drift and check:
            say_err("[red]contracts differ from the built relations[/red]: run without --check")
    if drift and check:
        raise typer.Exit(1)
