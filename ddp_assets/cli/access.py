"""``ddp access request|requests|approve|deny|revoke|grants``: access requests and the grants
they become (the grants store beside the spec's grants, docs/ports.md "Access requests")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from ddp_assets.cli.console import Table, fail, out, print_json, say
from ddp_assets.settings import ProjectPaths

app = typer.Typer(
    help="Access requests: ask for a product's ports, approve or deny, revoke.",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
As = Annotated[
    str | None,
    typer.Option(
        "--as", help="Who decides: one of the product's owners (default: DDP_USER, git email)."
    ),
]
T = TypeVar("T")


def _context() -> Any:
    from ddp_assets.dbt.load_cache import load_registry
    from ddp_assets.ports.access import AccessContext
    from ddp_assets.ports.store import Store

    paths = ProjectPaths.discover()
    ctx = AccessContext(paths, load_registry(paths), Store.open(paths), via="cli")
    from ddp_assets.ports.access import sweep_expired

    sweep_expired(ctx)  # expiries due are recorded before anything is shown or decided
    return ctx


def _refuse(error: Exception) -> NoReturn:
    from ddp_assets.ports.policy import PortError

    if isinstance(error, PortError):
        fail(error.message, error.hint, code=2)
    raise error


def _run(step: Callable[[], T]) -> T:
    from ddp_assets.ports.policy import PortError

    try:
        return step()
    except PortError as error:
        _refuse(error)


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def _show(request: Any, as_json: bool, verb: str) -> None:
    if as_json:
        print_json(request.to_dict())
        return
    ports = ", ".join(request.granted_ports or request.ports)
    say("{} {}: {} → {}.{}", verb, request.id, request.consumer, request.product, ports)


@app.command("request")
def request(
    product: Annotated[str, typer.Argument(help="Product id.")],
    ports: Annotated[
        list[str] | None, typer.Argument(help="Output ports (default: all of them).")
    ] = None,
    consumer: Annotated[str, typer.Option("--consumer", help="Who reads (a consumer id).")] = "",
    purpose: Annotated[str, typer.Option("--purpose", help="What the data is for.")] = "",
    columns: Annotated[
        list[str] | None,
        typer.Option("--columns", help="Columns needed (comma-separated or repeated)."),
    ] = None,
    clearance: Annotated[
        list[str] | None,
        typer.Option(
            "--clearance",
            help="Classifications asked in clear (e.g. restricted), required for such columns.",
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Expiry: a date (through that day) or time.")
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Who asks (default: the consumer).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Ask PRODUCT's owners for CONSUMER's access to PORTS."""
    from ddp_assets.ports.access import request_access

    if not consumer:
        fail("--consumer is required", "e.g. --consumer bi-dashboard", code=2)
    if not purpose:
        fail("--purpose is required", "say what the data is for, e.g. --purpose 'churn model'", 2)
    ctx = _context()
    found = _run(
        lambda: request_access(
            ctx,
            product,
            list(ports or []),
            consumer=consumer,
            purpose=purpose,
            columns=_split(columns),
            clearance=_split(clearance),
            until=until,
            requested_by=by,
        )
    )
    _show(found, as_json, "requested")
    if not as_json:
        say("the owners are notified: {}", ", ".join(ctx.registry.products[product].spec.owners))


@app.command("requests")
def requests(
    product: Annotated[str | None, typer.Option("--product", help="One product.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="pending, approved, denied, revoked, expired.")
    ] = "pending",
    every: Annotated[bool, typer.Option("--all", help="Every status.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Access requests (pending by default), oldest first."""
    from ddp_assets.ports.access import STATUSES, list_requests

    if status is not None and status not in STATUSES:
        fail(f"unknown status {status!r}", f"one of: {', '.join(STATUSES)}", code=2)
    ctx = _context()
    if product is not None:
        ctx.registry.get(product)  # an unknown product is an error with a hint
    found = list_requests(ctx.store, product, status=None if every else status)
    if as_json:
        print_json([r.to_dict() for r in found])
        return
    table = Table("id", "status", "consumer", "ports", "purpose", "until", "by", "decided")
    for r in found:
        decided = f"{r.decided_by}: {r.reason}" if r.decided_by else ""
        table.add_row(
            r.id,
            r.status,
            r.consumer,
            f"{r.product}.{','.join(r.granted_ports or r.ports)}",
            r.purpose,
            r.until or "",
            r.requested_by,
            decided,
        )
    out.print(table)


@app.command("approve")
def approve(
    request_id: Annotated[str, typer.Argument(help="The request's id (ddp access requests).")],
    ports: Annotated[
        list[str] | None, typer.Option("--ports", help="Grant only these of the requested ports.")
    ] = None,
    rows: Annotated[
        list[str] | None,
        typer.Option("--rows", help="Row filter <column>:<op>:<value> (repeatable; AND-ed)."),
    ] = None,
    keep_masking: Annotated[
        bool, typer.Option("--keep-masking", help="Grant no clearance: classified columns masked.")
    ] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (for the audit).")] = None,
    who: As = None,
    as_json: JsonFlag = False,
) -> None:
    """Approve a request: a grant that every port enforces at once."""
    from ddp_assets.ports.access import approve as run
    from ddp_assets.ports.access import default_identity

    ctx = _context()
    done = _run(
        lambda: run(
            ctx,
            request_id,
            approver=who or default_identity(),
            ports=_split(ports),
            rows=list(rows or []),
            keep_masking=keep_masking,
            reason=reason,
        )
    )
    _show(done, as_json, "approved")


@app.command("deny")
def deny(
    request_id: Annotated[str, typer.Argument(help="The request's id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (told to the consumer).")] = "",
    who: As = None,
    as_json: JsonFlag = False,
) -> None:
    """Deny a pending request, with a reason."""
    from ddp_assets.ports.access import default_identity
    from ddp_assets.ports.access import deny as run

    if not reason:
        fail("--reason is required", "say why, e.g. --reason 'use the aggregated port'", code=2)
    ctx = _context()
    done = _run(lambda: run(ctx, request_id, approver=who or default_identity(), reason=reason))
    _show(done, as_json, "denied")


@app.command("revoke")
def revoke(
    request_id: Annotated[str, typer.Argument(help="The approved request's id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why.")] = "",
    who: As = None,
    as_json: JsonFlag = False,
) -> None:
    """Revoke an approved grant now (REST, SQL and file ports refuse it at once)."""
    from ddp_assets.ports.access import default_identity
    from ddp_assets.ports.access import revoke as run

    if not reason:
        fail("--reason is required", "say why, e.g. --reason 'project ended'", code=2)
    ctx = _context()
    done = _run(lambda: run(ctx, request_id, by=who or default_identity(), reason=reason))
    _show(done, as_json, "revoked")


@app.command("grants")
def grants(
    product: Annotated[str | None, typer.Option("--product", help="One product.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Every grant in force: the spec's and the approved requests' (with their expiry)."""
    from ddp_assets.ports.access import grant_problems, list_requests

    ctx = _context()
    chosen = [ctx.registry.get(product)] if product else list(ctx.registry.products.values())
    found: list[dict[str, Any]] = []
    for item in sorted(chosen, key=lambda p: p.id):
        for grant in item.spec.policies.grants:
            found.append({"product": item.id, "source": "spec", **grant.model_dump()})
        for r in list_requests(ctx.store, item.id, status="approved"):
            if r.expired():
                continue  # no longer served; the next sweep marks it expired
            found.append(
                {"product": item.id, "source": r.id, "until": r.until, **r.grant().model_dump()}
            )
    problems = grant_problems(ctx.registry, ctx.store)
    if as_json:
        print_json({"grants": found, "problems": problems})
        return
    table = Table("product", "to", "ports", "rows", "cleared for", "source", "until")
    for g in found:
        rows = " and ".join(f"{c['column']} {c['op']} {c['value']}" for c in g["rows"]) or "all"
        table.add_row(
            g["product"],
            g["to"],
            ", ".join(g["ports"]),
            rows,
            ", ".join(g["cleared_for"]),
            g["source"],
            g.get("until") or "",
        )
    out.print(table)
    for problem in problems:
        say("[yellow]warning[/yellow]: {}", problem)
