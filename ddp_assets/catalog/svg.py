"""A small layered-DAG drawing in SVG (no JavaScript, no network: the catalog opens from disk)."""

from __future__ import annotations

import graphlib
from dataclasses import dataclass
from html import escape

NODE_W = 230
NODE_H = 34
GAP_X = 90
GAP_Y = 18
PAD = 16

COLOURS = {
    "focus": ("#1f4e79", "#ffffff"),
    "product": ("#dbe8f5", "#10253a"),
    "port": ("#d9f0dc", "#143d1b"),
    "table": ("#f1f1f1", "#222222"),
    "file": ("#fff3d6", "#4a3500"),
}


@dataclass(frozen=True)
class Node:
    id: str
    label: str
    kind: str = "table"
    href: str | None = None


def _layers(nodes: dict[str, Node], edges: list[tuple[str, str, str]]) -> list[list[str]]:
    parents: dict[str, set[str]] = {n: set() for n in nodes}
    for a, b, _ in edges:
        if a in nodes and b in nodes and a != b:
            parents[b].add(a)
    depth: dict[str, int] = {}
    try:
        order = list(graphlib.TopologicalSorter(parents).static_order())
    except graphlib.CycleError:
        order = sorted(nodes)
    for node in order:
        depth[node] = max((depth.get(p, 0) + 1 for p in parents[node]), default=0)
    layers: list[list[str]] = [[] for _ in range(max(depth.values(), default=0) + 1)]
    for node in sorted(nodes, key=lambda n: nodes[n].label):
        layers[depth[node]].append(node)
    return layers


def _truncate(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def dag_svg(nodes: list[Node], edges: list[tuple[str, str, str]], title: str) -> str:
    """An SVG of the graph, left to right; edge labels (e.g. port names) on the arrows."""
    by_id = {n.id: n for n in nodes}
    layers = _layers(by_id, edges)
    tallest = max((len(layer) for layer in layers), default=1)
    width = PAD * 2 + len(layers) * NODE_W + (len(layers) - 1) * GAP_X
    height = PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y + 20
    position: dict[str, tuple[float, float]] = {}
    for column, layer in enumerate(layers):
        offset = (tallest - len(layer)) * (NODE_H + GAP_Y) / 2
        for row, node in enumerate(layer):
            position[node] = (
                PAD + column * (NODE_W + GAP_X),
                PAD + 20 + offset + row * (NODE_H + GAP_Y),
            )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        'font-family="Helvetica, Arial, sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'fill="#667"/></marker></defs>',
        f'<text x="{PAD}" y="{PAD + 4}" font-weight="bold" fill="#333">{escape(title)}</text>',
    ]
    for a, b, label in edges:
        if a not in position or b not in position:
            continue
        x1, y1 = position[a]
        x2, y2 = position[b]
        start = (x1 + NODE_W, y1 + NODE_H / 2)
        end = (x2, y2 + NODE_H / 2)
        middle = (start[0] + end[0]) / 2
        parts.append(
            f'<path d="M {start[0]:.0f} {start[1]:.0f} C {middle:.0f} {start[1]:.0f}, '
            f'{middle:.0f} {end[1]:.0f}, {end[0]:.0f} {end[1]:.0f}" fill="none" stroke="#667" '
            'stroke-width="1.4" marker-end="url(#arrow)"/>'
        )
        if label:
            parts.append(
                f'<text x="{middle:.0f}" y="{(start[1] + end[1]) / 2 - 4:.0f}" '
                f'text-anchor="middle" fill="#445" font-size="11">{escape(label)}</text>'
            )
    for node_id, (x, y) in position.items():
        node = by_id[node_id]
        fill, ink = COLOURS.get(node.kind, COLOURS["table"])
        box = (
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{NODE_W}" height="{NODE_H}" rx="7" '
            f'fill="{fill}" stroke="#8899aa"/>'
            f'<text x="{x + NODE_W / 2:.0f}" y="{y + NODE_H / 2 + 4:.0f}" text-anchor="middle" '
            f'fill="{ink}">{escape(_truncate(node.label))}</text>'
        )
        if node.href:
            box = f'<a href="{escape(node.href)}">{box}</a>'
        parts.append(f"<g><title>{escape(node.label)}</title>{box}</g>")
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
