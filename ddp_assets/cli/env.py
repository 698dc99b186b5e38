"""``ddp env create|list|drop|promote``: environments beside prod in the same warehouse
(docs/architecture.md, "Environments"); ``ddp --env NAME <command>`` works in one."""

from __future__ import annotations

from typing import Annotated

import typer

from ddp_assets.cli.console import Table, out, print_json, say, say_err
from ddp_assets.settings import ProjectPaths

app = typer.Typer(
    help="Environments: build and preview beside prod, reading prod's unchanged products with "
    "zero copies.",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
Name = Annotated[str, typer.Argument(help="The environment, e.g. 'dev' or 'pr_42'.")]


@app.command("create")
def create(
    name: Name,
    base: Annotated[
        str, typer.Option("--from", help="The environment it reads unchanged products from.")
    ] = "prod",
    as_json: JsonFlag = False,
) -> None:
    """Create NAME: a view per output port over BASE's published version (no row copied)."""
    from ddp_assets.environments import create as create_env

    env = create_env(ProjectPaths.discover(), name, base)
    if as_json:
        print_json(env.to_dict())
        return
    say(
        "created environment [bold]{}[/bold] on '{}': {} port(s) read from '{}' through views "
        "(zero copies)",
        env.name,
        env.based_on,
        len(env.pointers),
        env.based_on,
    )
    for missing in env.missing:
        say_err("  {}: never published in '{}'; build it in the environment", missing, base)
    say_err("work in it with `ddp --env {} ...` (or DDP_ENV={})", env.name, env.name)


@app.command("list")
def list_envs(as_json: JsonFlag = False) -> None:
    """The environments: name, created, based on, the products built in it."""
    from ddp_assets.environments import list_environments

    found = list_environments(ProjectPaths.discover())
    if as_json:
        print_json([e.to_dict() for e in found])
        return
    if not found:
        say_err("no environment but prod (create one with `ddp env create NAME`)")
        return
    table = Table("name", "created", "based on", "ports read", "built")
    for e in found:
        table.add_row(
            e.name, e.created_at, e.based_on, str(len(e.pointers)), ", ".join(e.built) or "-"
        )
    out.print(table)


@app.command("drop")
def drop(name: Name, as_json: JsonFlag = False) -> None:
    """Drop NAME: its schemas and its Dagster instance folder (never prod)."""
    from ddp_assets.environments import drop as drop_env

    dropped = drop_env(ProjectPaths.discover(), name)
    if as_json:
        print_json({"name": dropped.name, "schemas": dropped.schemas, "instance": dropped.instance})
        return
    say(
        "dropped environment [bold]{}[/bold]: {} schema(s){}",
        dropped.name,
        len(dropped.schemas),
        f" and {dropped.instance}" if dropped.instance else "",
    )


@app.command("promote")
def promote(
    name: Name,
    target: Annotated[str, typer.Option("--to", help="The environment to publish into.")] = "prod",
    as_json: JsonFlag = False,
) -> None:
    """Publish the ports NAME built and audited into TARGET as their next versions, all in one
    transaction (a partitioned port: the partitions NAME built); refused, with nothing
    published, when a version NAME read changed in TARGET since `ddp env create`."""
    from ddp_assets.environments import promote as promote_env

    done = promote_env(ProjectPaths.discover(), name, target)
    if as_json:
        print_json([p.__dict__ for p in done])
        return
    for p in done:
        say(
            "{}.{}: v{} published in '{}' ({} rows{})",
            p.product,
            p.port,
            p.version,
            target,
            p.rows,
            f"; partitions {', '.join(p.partitions)}" if p.partitions else "",
        )
    say_err("promoted {} port(s) of '{}' into '{}'", len(done), name, target)
