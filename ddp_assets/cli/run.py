"""``ddp demo``, ``ddp prepare``, ``ddp materialize``, ``ddp dev``: building and running."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ddp_assets.cli.console import (
    Table,
    allow_fast_exit,
    fail,
    out,
    print_json,
    say,
    say_err,
    styled,
    working,
)
from ddp_assets.cli.products import JsonFlag
from ddp_assets.dbt.load_cache import load_registry
from ddp_assets.settings import ProjectPaths

if TYPE_CHECKING:
    from ddp_assets.runtime.materialize import RunOutcome


def demo(
    scale: Annotated[
        int, typer.Option(min=100, max=100_000_000, help="Total landing rows to generate.")
    ] = 100_000,
    seed: Annotated[int, typer.Option(help="Same seed and scale, same files.")] = 42,
    days: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=3660,
            help="Write orders, order items and usage events as one file per day, for N days.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write the demo landing zone (deterministic) under $DDP_DATA_DIR/landing."""
    from ddp_assets.demo.generator import generate_landing_zone

    paths = ProjectPaths.discover()
    started = time.perf_counter()
    with working(f"generating {scale:,} landing rows into {paths.landing_dir} ..."):
        counts = generate_landing_zone(paths.landing_dir, scale=scale, seed=seed, days=days)
    table = Table("file", "rows", title=f"landing zone: {paths.landing_dir}")
    for name, rows in counts.items():
        table.add_row(name, f"{rows:,}")
    out.print(table)
    from ddp_assets.demo.helpdesk import HELPDESK_DB, ticket_count

    say(
        "and the helpdesk's database (depot helpdesk): {}, {:,} tickets",
        HELPDESK_DB,
        ticket_count(scale),
    )
    say(
        "[green]ok[/green]: {:,} rows in {:.1f}s",
        sum(counts.values()),
        time.perf_counter() - started,
    )


def prepare() -> None:
    """Write dbt properties from the product specs and parse the dbt project (if changed)."""
    from ddp_assets.dbt.project import prepare as prepare_dbt

    paths = ProjectPaths.discover()
    registry = load_registry(paths)
    with working("preparing the dbt project ..."):
        prepared = prepare_dbt(paths, registry)
    state = "parsed" if prepared.parsed else "up to date"
    say("[green]ok[/green]: dbt manifest {}: {}", state, prepared.project.manifest_path)


def materialize_command(
    products: Annotated[
        list[str] | None, typer.Argument(help="Product ids (all their assets).", show_default=False)
    ] = None,
    all_products: Annotated[bool, typer.Option("--all", help="Every product.")] = False,
    partition: Annotated[
        list[str] | None,
        typer.Option(
            "--partition",
            help="A partition of the partitioned products to build (repeatable).",
            show_default=False,
        ),
    ] = None,
    first: Annotated[
        str | None,
        typer.Option(
            "--from", help="Backfill: the first partition (included).", show_default=False
        ),
    ] = None,
    last: Annotated[
        str | None,
        typer.Option("--to", help="Backfill: the last partition (included).", show_default=False),
    ] = None,
    as_json: JsonFlag = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show Dagster and dbt logs.")
    ] = False,
) -> None:
    """Materialize products headlessly through the Dagster instance (runs show in the UI).

    A partitioned product builds the partitions its upstream has data for and it never built
    (else its latest), or those of --partition / --from..--to, in runs of at most its
    ``partitions.batch`` partitions."""
    if not products and not all_products:
        fail("name the products to materialize, or pass --all", "e.g. `ddp materialize orders`")
    if partition and (first or last):
        fail("--partition and --from/--to select partitions two ways", "pass one of them")
    from ddp_assets.runtime.instance import ensure_dagster_home
    from ddp_assets.runtime.materialize import PartitionSelection, materialize

    paths = ProjectPaths.discover()
    registry = load_registry(paths, cached=True)
    for product in products or []:
        registry.get(product)
    ensure_dagster_home(paths)
    started = time.perf_counter()
    captured = io.StringIO()
    redirect = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(captured)
    what = "all products" if all_products else ", ".join(products or [])
    with redirect, working(f"materializing {what} ..."):
        outcome = materialize(
            paths,
            None if all_products else products,
            log_level="DEBUG" if verbose else "CRITICAL",  # failures: printed once, below
            partitions=PartitionSelection(tuple(partition or ()), first, last),
        )
    elapsed = time.perf_counter() - started
    allow_fast_exit()  # the run, its warehouse connections and the lineage outbox are closed
    if as_json:
        print_json({**outcome.to_dict(), "seconds": round(elapsed, 2)})
    else:
        _print_outcome(outcome, elapsed)
    if not outcome.success:
        raise typer.Exit(1)


def _print_outcome(outcome: RunOutcome, elapsed: float) -> None:
    runs = outcome.runs or [outcome.run_id]
    title = f"run {runs[0]}" if len(runs) == 1 else f"{len(runs)} runs ({runs[0]} first)"
    table = Table("product", "asset", "status", "checks", title=title)
    for product in outcome.products:
        for asset in product.assets:
            name = asset.asset
            if asset.partitions:
                ends = {asset.partitions[0], asset.partitions[-1]}
                name += f" [{'..'.join(sorted(ends))}]"
            passed = sum(c.passed for c in asset.checks)
            failed = [c.name for c in asset.checks if not c.passed]
            checks = f"{passed}/{len(asset.checks)} passed" if asset.checks else ""
            if failed:
                checks += " — failed: " + ", ".join(failed)
            colour = {"materialized": "green", "failed": "red"}.get(asset.status, "yellow")
            table.add_row(product.product, name, styled(asset.status, colour), checks)
    out.print(table)
    for error in outcome.errors:
        located = ": error: " in error  # already "file:line: error: ..." (dbt/failures.py)
        say_err("{}" if located else "[red]error:[/red] {}", error)
    verdict = styled("succeeded", "green") if outcome.success else styled("failed", "red")
    say(
        "{} in {:.1f}s — see run {} in the Dagster UI (`ddp dev`)", verdict, elapsed, outcome.run_id
    )


def dev(
    host: Annotated[str, typer.Option(help="Interface the web UI listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the web UI.")] = 3000,
) -> None:
    """Serve the Dagster UI (webserver and daemon) for this project."""
    from ddp_assets.dbt.project import prepare as prepare_dbt
    from ddp_assets.runtime.instance import ensure_dagster_home

    paths = ProjectPaths.discover()
    registry = load_registry(paths)
    with working("preparing the dbt project ..."):
        prepare_dbt(paths, registry)
    ensure_dagster_home(paths)
    # `dg dev` is Dagster's current command (`dagster dev` is superseded and warns at every
    # start); given the workspace file it starts the same webserver and daemon.
    dg = Path(sys.executable).parent / "dg"
    command = [
        str(dg) if dg.exists() else "dg",
        "dev",
        "--workspace",
        str(paths.root / "workspace.yaml"),
        "--host",
        host,
        "--port",
        str(port),
    ]
    say_err("Dagster UI on http://{}:{} (DAGSTER_HOME={})", host, port, paths.dagster_home)
    # Started from $DAGSTER_HOME: Dagster warns when the working folder holds a dagster.yaml
    # that is not its instance's (the project's copy is the template of $DAGSTER_HOME's).
    # Dagster resolves a python_module's working_directory against the working folder (not
    # workspace.yaml's), so the project's root goes on PYTHONPATH and is named to the code
    # server, wherever $DAGSTER_HOME lives.
    os.chdir(paths.dagster_home)
    python_path = os.pathsep.join(p for p in (str(paths.root), os.environ.get("PYTHONPATH")) if p)
    env = {
        **os.environ,
        "DDP_DATA_DIR": str(paths.data_dir),
        "DDP_PROJECT_ROOT": str(paths.root),
        "PYTHONPATH": python_path,
    }
    os.execvpe(command[0], command, env)
