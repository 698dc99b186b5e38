"""``pin: N`` on an input port that names no retained version of its upstream port.

A pin keeps a version of the upstream port from retention (``contracts/rollback.py``); a pin of
a version the upstream never published (``pin: 99``), or one retention dropped before the pin
was written, keeps nothing and reads nothing. ``ddp validate`` warns about it, at the pin's line,
with the upstream's retained versions as the hint. It needs the warehouse's version ledger: with
no warehouse yet (validate runs before any build), an unreadable one, or an upstream port that
was never built, nothing is reported.
"""

from __future__ import annotations

from typing import Any

from ddp_assets.spec.errors import SpecProblem
from ddp_assets.spec.model import ProductInputPort
from ddp_assets.spec.registry import Product, Registry


def _pins(registry: Registry) -> list[tuple[Product, int, ProductInputPort]]:
    """``(product, index, port)`` of every input port with a pin, whose upstream port exists."""
    found = []
    for product in registry.products.values():
        for index, port in enumerate(product.spec.input_ports):
            if not isinstance(port, ProductInputPort) or port.pin is None:
                continue
            upstream = registry.products.get(port.upstream_product)
            if upstream is not None and upstream.spec.output_port(port.upstream_port):
                found.append((product, index, port))
    return found


def _ledger(paths: Any, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], list[Any]] | None:
    """``(product, port)`` → its versions in the warehouse's ledger, or None when no ledger
    can be read."""
    from ddp_assets.contracts.wap import versions
    from ddp_assets.warehouse import warehouse_for

    try:
        warehouse = warehouse_for(paths)
        if not warehouse.exists():
            return None
        with warehouse.reader() as connection:
            return {(p, port): versions(connection, p, port) for p, port in sorted(wanted)}
    except Exception:  # a warning's input only: a busy, missing or unreachable warehouse
        return None


def pin_problems(registry: Registry, paths: Any) -> list[SpecProblem]:
    """A warning for each pin that names no retained version of its upstream port."""
    pinned = _pins(registry)
    if not pinned:
        return []
    ledger = _ledger(paths, {(p.upstream_product, p.upstream_port) for _, _, p in pinned})
    if ledger is None:
        return []
    problems = []
    for product, index, port in pinned:
        known = ledger.get((port.upstream_product, port.upstream_port)) or []
        if not known:
            continue  # never built here: nothing to compare with
        retained = sorted({int(v.version) for v in known if v.version and v.dropped_at is None})
        if port.pin in retained:
            continue
        dropped = any(v.version == port.pin for v in known)
        problems.append(
            SpecProblem(
                product.loaded.display_path,
                product.loaded.line_of("input_ports", index, "pin"),
                f"input_ports[{index}].pin",
                f"input port '{port.name}' pins version {port.pin} of {port.product}, which "
                + ("retention has dropped" if dropped else "it never published"),
                "retained versions of "
                + f"{port.product}: {', '.join(str(n) for n in retained) or 'none'}"
                + " (ddp show "
                + port.upstream_product
                + ")",
                severity="warning",
            )
        )
    return problems
