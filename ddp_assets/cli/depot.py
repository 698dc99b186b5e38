"""``ddp depot list|test NAME``: the project's depots (``depots/<name>.yaml``), checked.

Credentials never reach the terminal: a depot holds only secret references, the connection
targets shown are OpenLineage namespaces (no user, no password), and every error is redacted.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ddp_assets.cli.console import Table, fail, out, print_json, print_problems, say
from ddp_assets.settings import ProjectPaths

app = typer.Typer(
    help="Depots: connections to source systems, and their checks.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@app.command("list")
def list_depots(as_json: JsonFlag = False) -> None:
    """Show every depot of the project: kind, where it connects, the file it is declared in."""
    from ddp_assets.depots.connect import source_namespace
    from ddp_assets.depots.secrets import redact

    paths = ProjectPaths.discover()
    from ddp_assets.depots.loader import load_depots

    found = load_depots(paths)
    rows = [
        {
            "name": depot.name,
            "kind": depot.kind,
            "target": redact(source_namespace(depot, paths)),
            "file": depot.display_path,
            "description": redact(depot.depot.description or ""),
        }
        for depot in found.depots.values()
    ]
    if as_json:
        print_json({"depots": rows, "problems": [p.to_dict() for p in found.problems]})
    else:
        if rows:
            table = Table("depot", "kind", "target", "file", "description", title="depots")
            for row in rows:
                table.add_row(
                    row["name"], row["kind"], row["target"], row["file"], row["description"]
                )
            out.print(table)
        elif not found.problems:
            say("no depots: declare one in {}", str(paths.depots_dir / "<name>.yaml"))
        print_problems(found.problems)
    if found.problems:
        raise typer.Exit(1)


@app.command("test")
def test_depot(
    name: Annotated[str, typer.Argument(help="The depot's name (its file's stem).")],
    as_json: JsonFlag = False,
) -> None:
    """Resolve the depot's secrets and connect to it once; exit 1 with a located error."""
    from ddp_assets.depots.connect import check_connection
    from ddp_assets.depots.loader import load_depots
    from ddp_assets.spec.errors import did_you_mean

    paths = ProjectPaths.discover()
    found = load_depots(paths)
    depot = found.get(name)
    if depot is None:
        own = [p for p in found.problems if p.file.endswith((f"{name}.yaml", f"{name}.yml"))]
        if own:
            print_problems(own)
            raise typer.Exit(1)
        fail(
            f"no depot '{name}' in {paths.depots_dir}",
            did_you_mean(name, found.depots)
            or f"known depots: {', '.join(found.depots) or 'none'}",
        )
    result = check_connection(depot, paths)  # a DepotError is printed by the entry point
    if as_json:
        print_json(
            {
                "depot": result.name,
                "kind": result.kind,
                "target": result.target,
                "ok": True,
                "detail": result.detail,
            }
        )
    else:
        say(
            "[green]ok[/green] {} ({}): connected to {}, {}",
            result.name,
            result.kind,
            result.target,
            result.detail,
        )


@app.command("schema")
def schema() -> None:
    """Print the JSON Schema of a depot file (for editors and CI): credentials are references."""
    import json

    from pydantic import TypeAdapter

    from ddp_assets.depots.model import Depot

    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ddp depot (depots/<name>.yaml)",
        **TypeAdapter(Depot).json_schema(mode="validation"),
    }
    typer.echo(json.dumps(document, indent=2))
