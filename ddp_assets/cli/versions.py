"""``ddp versions PRODUCT [PORT]`` and ``ddp rollback PRODUCT``: a product's published versions,
and a pointer move back (or forward) to one of them (``ddp_assets/contracts/rollback.py``)."""

from __future__ import annotations

import getpass
from typing import Annotated, Any

import typer

from ddp_assets.cli.console import Table, fail, out, print_json, say, say_err, styled
from ddp_assets.settings import ProjectPaths

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a container)
        return "unknown"


def _short(run_id: str) -> str:
    return run_id[:8] if run_id else "-"


def versions_command(
    product: Annotated[str, typer.Argument(help="Product id.")],
    port: Annotated[str | None, typer.Argument(help="One output port (default: all).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List a product's versions (each run that published its ports) or one port's versions,
    which one consumers read now, and the history of publishes and rollbacks."""
    from ddp_assets.contracts.rollback import product_versions, who_pins
    from ddp_assets.contracts.wap import moves, published_version, versions
    from ddp_assets.dbt.load_cache import load_registry
    from ddp_assets.warehouse import warehouse_for

    paths = ProjectPaths.discover()
    registry = load_registry(paths)
    found = registry.get(product)
    names = [p.name for p in found.spec.output_ports]
    if port is not None and port not in names:
        fail(f"product '{product}' has no output port '{port}'", f"its ports: {', '.join(names)}")
    warehouse = warehouse_for(paths)
    if not warehouse.exists():
        fail(f"no warehouse at {warehouse.location}", f"run 'ddp materialize {product}' first")
    with warehouse.reader() as connection:
        pins = {n: who_pins(connection, registry, product, n) for n in names}
        current = {n: published_version(connection, product, n) for n in names}
        reading = {n: v.version if v else None for n, v in current.items()}
        history = moves(connection, product, port)
        if port is not None:
            listed: list[Any] = versions(connection, product, port)
        else:
            listed = product_versions(connection, product)
    if as_json:
        data: dict[str, Any] = {
            "product": product,
            "published": {n: v for n, v in reading.items() if port in (None, n)},
            "moves": [m.to_dict() for m in history],
        }
        if port is not None:
            data["port"] = port
            data["versions"] = [
                {
                    **v.to_dict(),
                    "published": v.version == reading[port],
                    "pinned_by": pins[port].get(int(v.version or 0), []),
                }
                for v in listed
            ]
        else:
            data["product_versions"] = [pv.to_dict(reading) for pv in listed]
        print_json(data)
        return
    if not listed:
        say("{} has no published version yet", product if port is None else f"{product}.{port}")
        return
    if port is not None:
        table = Table(
            "version", "product version", "rows", "checksum", "contract", "run", "published at",
            "state", title=f"{product}.{port}",
        )  # fmt: skip
        for v in listed:
            state = (
                styled("published", "green")
                if v.version == reading[port]
                else styled("dropped", "dim")
                if v.dropped_at
                else styled("retained")
            )
            pinned = pins[port].get(int(v.version or 0), [])
            if pinned:
                state += f" (pinned by {', '.join(pinned)})"
            table.add_row(
                f"v{v.version}",
                str(v.product_version),
                str(v.rows),
                v.checksum[:12],
                f"{v.contract_id} {v.contract_version}",
                _short(v.run_id),
                v.published_at,
                state,
            )
    else:
        table = Table("product version", "run", "published at", "ports", "state", title=product)
        for pv in listed:
            ports = ", ".join(
                f"{name} v{v.version}" + ("" if name in pv.created else " (kept)")
                for name, v in sorted(pv.state.items())
            )
            info = pv.to_dict(reading)
            state = (
                styled("published", "green")
                if info["current"]
                else "retained"
                if info["retained"]
                else styled("dropped", "dim")
            )
            table.add_row(str(pv.number), _short(pv.run_id), pv.published_at, ports, state)
    out.print(table)
    moved = [m for m in history if m.action != "publish"]
    if moved:
        table = Table("at", "port", "move", "by", "reason", title="rollbacks")
        for m in moved:
            table.add_row(
                m.moved_at,
                m.port,
                f"v{m.previous_version} → v{m.version}",
                m.actor,
                m.reason or "",
            )
        out.print(table)


def rollback_command(
    product: Annotated[str, typer.Argument(help="Product id.")],
    to: Annotated[
        int | None,
        typer.Option(
            "--to",
            min=1,
            help="The product version to go to (with --port: the port's version), back or "
            "forward; see 'ddp versions'.",
        ),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option("--steps", min=1, help="How many versions back (default 1)."),
    ] = None,
    port: Annotated[str | None, typer.Option("--port", help="Move one output port only.")] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Roll back even where it breaks consumers' contracts."),
    ] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the ledger).")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Point a product's published ports (or one) at a retained version: no data is copied,
    consumers see the old version or the new at once, and it is undone by rolling forward.
    The move is audited, reported to Dagster as a materialization of each port (consumers
    refresh as after a publish) and to OpenLineage."""
    from ddp_assets.contracts.rollback import RollbackError, rollback
    from ddp_assets.dbt.load_cache import load_registry
    from ddp_assets.ports.rollbacks import announce
    from ddp_assets.runtime.instance import instance
    from ddp_assets.warehouse import warehouse_for

    paths = ProjectPaths.discover()
    registry = load_registry(paths)
    registry.get(product)  # an unknown product is an error with a hint
    warehouse = warehouse_for(paths)
    if not warehouse.exists():
        fail(f"no warehouse at {warehouse.location}", f"run 'ddp materialize {product}' first")
    actor = _actor()
    try:
        with warehouse.writer() as connection:
            result = rollback(
                connection,
                registry,
                product,
                to=to,
                steps=steps,
                port=port,
                force=force,
                reason=reason,
                actor=actor,
            )
    except RollbackError as error:
        fail(str(error), error.hint)
    announced = announce(paths, registry, result, instance(paths))
    if announced.lineage.startswith("error") or "pending" in announced.lineage:
        say_err("OpenLineage: {}", announced.lineage)
    if as_json:
        print_json(result.to_dict())
        return
    for move in result.moves:
        before = f"v{move.current.version}" if move.current else "nothing"
        say(
            "{}.{}: {} → v{} ({} rows, contract {} {})",
            product,
            move.port,
            before,
            move.target.version,
            move.target.rows,
            move.target.contract_id,
            move.target.contract_version,
        )
    for line in result.consumers_refused:
        say("[yellow]forced:[/yellow] {}", line)
