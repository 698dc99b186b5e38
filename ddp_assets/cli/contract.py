"""``ddp contract diff`` and ``ddp contract test``: change management and checks on demand."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from ddp_assets.cli.console import Table, fail, out, print_json, say, say_err, styled
from ddp_assets.cli.contract_export import export
from ddp_assets.dbt.load_cache import load_registry
from ddp_assets.settings import ProjectPaths

app = typer.Typer(
    help="Data contracts: changes between versions, checks on published data.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
app.command("export")(export)


class Perspective(StrEnum):
    producer = "producer"
    consumer = "consumer"


@app.command("diff")
def diff(
    base: Annotated[
        str,
        typer.Option(
            "--base", help="Git ref (or a folder with an older checkout) to compare with."
        ),
    ] = "HEAD",
    perspective: Annotated[
        Perspective,
        typer.Option(
            "--perspective",
            help="producer: the output ports' contracts, breaking when a consumer of the old "
            "contract can fail; consumer: the input ports' contracts, breaking when data that "
            "passed the old contract can fail. Rules: docs/ports.md.",
        ),
    ] = Perspective.producer,
    as_json: JsonFlag = False,
) -> None:
    """List contract changes since BASE, each classified breaking or compatible from one
    perspective (producer: output ports; consumer: input ports).

    Exit 1 when a breaking change comes without a major version bump.
    """
    from ddp_assets.contracts.diff import base_available, project_changes

    paths = ProjectPaths.discover()
    registry = load_registry(paths)
    if not base_available(paths.root, base):
        fail(f"'{base}' is neither a git ref of this project nor a folder", "e.g. --base main")
    diffs = project_changes(registry, base, perspective.value)
    unbumped = [d for d in diffs if d.unbumped or any(c.kind == "port_removed" for c in d.changes)]
    if as_json:
        print_json(
            {
                "base": base,
                "perspective": perspective.value,
                "ports": [d.to_dict() for d in diffs],
                "ok": not unbumped,
            }
        )
    else:
        if not diffs:
            say("no contract changes since {} ({} perspective)", base, perspective.value)
        for d in diffs:
            versions = f"{d.old_version} → {d.new_version}" if d.old_version else "removed"
            say("[bold]{}.{}[/bold] ({}) {}", d.product, d.port, d.contract_file, versions)
            for change in d.changes:
                style = "red" if change.breaking else "green"
                say("  {}", styled(change.format(), style))
            if d.breaking and d.perspective == "producer":
                say("  affected downstream: {}", ", ".join(d.downstream) or "none")
            elif d.breaking:
                say("  data that passed the old contract of this input port may now be rejected")
            if d in unbumped:
                say_err("  [red]breaking change without a major version bump[/red]")
    if unbumped:
        raise typer.Exit(1)


@app.command("test")
def test(
    product: Annotated[str, typer.Argument(help="Product id.")],
    as_json: JsonFlag = False,
) -> None:
    """Run a product's contract checks against its published data; exit 1 on an error."""
    from ddp_assets.contracts.testing import run_contract_tests

    paths = ProjectPaths.discover()
    registry = load_registry(paths)
    results = run_contract_tests(registry.get(product), paths, registry)
    ok = all(t.passed for t in results)
    if as_json:
        print_json({"product": product, "passed": ok, "ports": [t.to_dict() for t in results]})
    else:
        for port in results:
            table = Table(
                "check",
                "severity",
                "observed",
                "threshold",
                "result",
                title=f"{port.relation} — {port.contract}",
            )
            for r in port.results:
                verdict = styled("passed", "green") if r.passed else styled("FAILED", "red")
                table.add_row(r.check_name, r.severity, str(r.observed), r.threshold, verdict)
            out.print(table)
            for r in port.results:
                if not r.passed:
                    say("[red]{}[/red]: {}", r.check_name, r.error or r.summary())
                    for row in r.sample[:5]:
                        say("    {}", row)
    if not ok:
        raise typer.Exit(1)
