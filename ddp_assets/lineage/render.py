"""Lineage as text: Mermaid flowcharts (product-to-product and table-level)."""

from __future__ import annotations

import re

from ddp_assets.lineage.graph import LineageGraph

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def _id(prefix: str, name: str) -> str:
    return f"{prefix}_{_UNSAFE.sub('_', name)}"


def _label(text: str) -> str:
    return text.replace('"', "'")


def to_mermaid(graph: LineageGraph, product: str | None = None, *, tables: bool = True) -> str:
    """A Mermaid ``flowchart LR``: products and their ports, then tables grouped by product."""
    edges = graph.product_edges if product is None else graph.neighbourhood(product)
    products = sorted(
        {e.upstream for e in edges}
        | {e.downstream for e in edges}
        | ({product} if product else set())
    )
    if product is None:
        products = sorted({a.product for a in graph.assets.values()} | set(products))
    lines = ["flowchart LR"]
    lines.append("  %% products (edges: output port read by the downstream product)")
    for pid in products:
        lines.append(f'  {_id("p", pid)}(["{_label(pid)}"])')
    for edge in edges:
        lines.append(
            f'  {_id("p", edge.upstream)} -->|"{_label(edge.port)}"| {_id("p", edge.downstream)}'
        )
    if tables:
        lines.append("  %% tables")
        assets = [a for a in graph.assets.values() if product is None or a.product == product]
        shown: set[str] = set()
        for owner in sorted({a.product for a in assets}):
            lines.append(f'  subgraph {_id("g", owner)}["{_label(owner)} tables"]')
            for asset in sorted((a for a in assets if a.product == owner), key=lambda a: a.key):
                node = _id("t", asset.output.name)
                shape = (
                    f'[["{_label(asset.output.name)}"]]'
                    if asset.port
                    else f'["{_label(asset.output.name)}"]'
                )
                lines.append(f"    {node}{shape}")
                shown.add(asset.output.name)
            lines.append("  end")
        for source, target in graph.table_edges(product):
            if source not in shown:
                lines.append(f'  {_id("t", source)}["{_label(source)}"]')
                shown.add(source)
            lines.append(f"  {_id('t', source)} --> {_id('t', target)}")
    return "\n".join(lines) + "\n"
