"""``ddp catalog``: search the products; ``ddp catalog build OUTDIR``: the static web catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ddp_assets.cli.console import Table, fail, out, print_json, say
from ddp_assets.cli.products import JsonFlag
from ddp_assets.dbt.load_cache import load_registry
from ddp_assets.settings import ProjectPaths


def catalog(
    words: Annotated[
        list[str] | None,
        typer.Argument(
            help="Search text (matches ids, names, descriptions, tags, owners, ports and column "
            "names), or 'build OUTDIR' to write the static web catalog.",
            show_default=False,
        ),
    ] = None,
    domain: Annotated[str | None, typer.Option(help="Only products of this domain.")] = None,
    owner: Annotated[str | None, typer.Option(help="Only products with this owner.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only products with this tag.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Search the data product catalog (or `ddp catalog build OUTDIR` for the web catalog)."""
    from ddp_assets.catalog.entries import catalog_entries
    from ddp_assets.catalog.search import search

    words = list(words or [])
    if words and words[0] == "build":
        if len(words) != 2:
            fail("`ddp catalog build` needs one output folder", "e.g. `ddp catalog build site/`")
        build(Path(words[1]))
        return
    paths = ProjectPaths.discover()
    registry = load_registry(paths)
    hits = search(catalog_entries(registry), " ".join(words), domain=domain, owner=owner, tag=tag)
    if as_json:
        print_json([h.to_dict() for h in hits])
        return
    if not hits:
        say("no product matches")
        raise typer.Exit(1)
    table = Table("product", "domain", "owners", "tags", "matched", "purpose")
    for hit in hits:
        row = hit.to_dict()
        table.add_row(
            row["id"],
            row["domain"],
            "\n".join(row["owners"]),
            ", ".join(row["tags"]),
            "\n".join(row["matches"]),
            row["purpose"] or "",
        )
    out.print(table)


def build(outdir: Path) -> None:
    """Write the static catalog (index, one page per product, lineage images) to OUTDIR."""
    from ddp_assets.catalog.entries import catalog_entries
    from ddp_assets.catalog.site import build_site
    from ddp_assets.catalog.status import instance_if_any, product_status
    from ddp_assets.lineage.run import static_graph
    from ddp_assets.ports import access

    paths = ProjectPaths.discover()
    registry = load_registry(paths)
    instance = instance_if_any(paths)
    graph = static_graph(paths, registry, instance=instance)
    statuses = {
        pid: product_status(instance, product) if instance else None
        for pid, product in registry.products.items()
    }
    entries = catalog_entries(registry)
    from ddp_assets.contracts.rollback import read_version_histories

    histories = read_version_histories(paths, [e["id"] for e in entries], registry) or {}
    for entry in entries:  # each port's versions: contract, audit, publishes and rollbacks
        entry["versions"] = histories.get(entry["id"], {})
    for entry in entries:  # the grants store's approved grants, beside the spec's
        entry["access_grants"] = access.catalog_grants(paths, entry["id"])
    written = build_site(outdir, entries, graph, statuses)
    index = (outdir / "index.html").resolve()
    say("[green]ok[/green]: wrote {} files; open {}", len(written), index.as_uri())
