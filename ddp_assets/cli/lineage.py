"""``ddp lineage``: product-to-product and table-level lineage; ``ddp lineage flush``."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from ddp_assets.cli.console import Table, echo, fail, out, print_json, say, say_err
from ddp_assets.dbt.load_cache import load_registry
from ddp_assets.settings import ProjectPaths


class LineageFormat(StrEnum):
    text = "text"
    json = "json"
    mermaid = "mermaid"


def lineage(
    product: Annotated[
        str | None,
        typer.Argument(
            help="A product id (default: every product), or 'flush' to deliver the OpenLineage "
            "events kept on disk.",
            show_default=False,
        ),
    ] = None,
    output_format: Annotated[
        LineageFormat, typer.Option("--format", "-f", help="text, json or mermaid.")
    ] = LineageFormat.text,
) -> None:
    """Print lineage: which products feed which, and table by table (with column lineage)."""
    if product == "flush":
        flush()
        return
    import dagster as dg

    from ddp_assets.lineage.render import to_mermaid
    from ddp_assets.lineage.run import static_graph
    from ddp_assets.runtime.instance import ensure_dagster_home

    paths = ProjectPaths.discover()
    registry = load_registry(paths)
    if product is not None:
        registry.get(product)
    instance = None
    if (paths.dagster_home / "dagster.yaml").exists():
        ensure_dagster_home(paths)
        instance = dg.DagsterInstance.get()
    graph = static_graph(paths, registry, instance=instance)
    if output_format is LineageFormat.json:
        print_json(graph.to_dict(product))
        return
    if output_format is LineageFormat.mermaid:
        echo(to_mermaid(graph, product))
        return
    table = Table("upstream product", "port", "downstream product", title="products")
    for edge in graph.product_edges if product is None else graph.neighbourhood(product):
        table.add_row(edge.upstream, edge.port, edge.downstream)
    out.print(table)
    table = Table("reads", "writes", title="tables")
    for source, target in graph.table_edges(product):
        table.add_row(source, target)
    out.print(table)


def flush() -> None:
    """Deliver the OpenLineage events kept on disk (in order, each once)."""
    from ddp_assets.lineage.emit import flush as flush_events

    paths = ProjectPaths.discover()
    result = flush_events(paths.dagster_home)
    if result.error:
        say_err("[yellow]{} delivered, {} still pending[/yellow]", result.delivered, result.pending)
        fail(
            f"delivery stopped: {result.error}",
            "check the OpenLineage transport (openlineage.yml, OPENLINEAGE__* or OPENLINEAGE_URL) "
            "and run `ddp lineage flush` again",
        )
    say("[green]ok[/green]: {} event(s) delivered, nothing pending", result.delivered)
