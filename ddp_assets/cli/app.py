"""The ``ddp`` command line: a thin layer over the Python API (each command in its module)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Annotated

import click
import typer

from ddp_assets.cli import (
    access,
    audit,
    catalog,
    ci,
    contract,
    depot,
    env,
    export,
    init,
    lineage,
    mcp,
    onboard,
    ports,
    products,
    run,
    serve,
    spec,
    status,
    token,
    versions,
)
from ddp_assets.cli.console import (
    err,
    leave,
    print_click_error,
    print_problems,
    print_unexpected,
)
from ddp_assets.spec.errors import SpecErrors

app = typer.Typer(
    name="ddp",
    help="ddp — build, govern and serve data products on Dagster and dbt.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(
    environment: Annotated[
        str | None,
        typer.Option(
            "--env",
            metavar="NAME",
            help="Work in environment NAME (default: $DDP_ENV, else prod): its own schemas "
            "(NAME__<product>), ledger and Dagster instance; see `ddp env`.",
        ),
    ] = None,
) -> None:
    """Options of every command: the environment it works in."""
    if environment is not None:
        os.environ["DDP_ENV"] = environment.strip()  # naming.ENV_VAR (naming imports Dagster)
    if os.environ.get("DDP_ENV"):
        from ddp_assets.settings import environment as checked

        checked()  # a bad name fails here, located, before any work


app.command("init")(init.init)
app.command("validate")(products.validate)
app.command("list")(products.list_products)
app.command("show")(products.show)
app.command("new")(products.new)
app.command("demo")(run.demo)
app.command("prepare")(run.prepare)
app.command("materialize")(run.materialize_command)
app.command("dev")(run.dev)
app.command("status")(status.status)
app.add_typer(export.app, name="export")
app.add_typer(spec.app, name="spec")
app.add_typer(contract.app, name="contract")
contract.app.command("infer")(onboard.contract_infer)
app.add_typer(onboard.app, name="import")
app.command("lineage")(lineage.lineage)
app.command("catalog")(catalog.catalog)
app.command("serve")(serve.serve)
app.add_typer(token.app, name="token")
app.add_typer(ports.app, name="ports")
app.command("audit")(audit.audit)
app.command("versions")(versions.versions_command)
app.command("rollback")(versions.rollback_command)
app.add_typer(access.app, name="access")
app.command("mcp")(mcp.mcp)
app.add_typer(depot.app, name="depot")
app.command("ci")(ci.ci)
app.add_typer(env.app, name="env")
app.command("promote")(env.promote)


def main(args: Sequence[str] | None = None) -> None:
    """Entry point: spec problems and unexpected errors are reported without a traceback.

    ``args``: the command line after ``ddp`` (default: ``sys.argv[1:]``). Messages are shown
    as plain text, never read as markup (console.py), so an error cannot fail again here.
    """
    try:
        # Without standalone mode click returns the exit code of typer.Exit instead of exiting.
        result = app(args=None if args is None else list(args), standalone_mode=False)
        leave(result if isinstance(result, int) else 0)
    except SpecErrors as errors:
        print_problems(errors.problems)
        leave(1)
    except click.exceptions.Exit as exit_:
        leave(exit_.exit_code)
    except (click.ClickException, typer.TyperException) as error:  # a usage error
        print_click_error(error)
        leave(error.exit_code)
    except (click.exceptions.Abort, typer.Abort):
        err.print("aborted")
        leave(130)
    except KeyboardInterrupt:
        err.print("interrupted")
        leave(130)
    except Exception as error:  # the last line of defence: never show users a traceback
        if os.environ.get("DDP_DEBUG"):
            raise
        cause = _spec_errors_in(error)  # e.g. dbt's parse, inside Dagster's definitions build
        if cause is not None:
            print_problems(cause.problems)
            leave(1)
        print_unexpected(error)
        leave(1)


def _spec_errors_in(error: BaseException) -> SpecErrors | None:
    """The spec problems another exception wraps (its cause chain), shown as ddp validate does."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, SpecErrors):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
