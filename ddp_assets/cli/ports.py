"""``ddp ports build|sql|export|access``: the SQL and file ports, and what a consumer may read."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ddp_assets.cli.console import Table, fail, out, print_json, say, say_err
from ddp_assets.dbt.load_cache import load_registry
from ddp_assets.settings import ProjectPaths

app = typer.Typer(
    help="Output ports: build them, query and export as a consumer.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
Token = Annotated[
    str | None,
    typer.Option("--token", envvar="DDP_TOKEN", help="The consumer's API token (or DDP_TOKEN)."),
]


def _fail_port(error: Exception) -> None:
    from ddp_assets.ports.policy import PortError
    from ddp_assets.ports.serving import SnapshotMissing

    if isinstance(error, PortError):
        fail(error.message, error.hint, code=2)
    if isinstance(error, SnapshotMissing):
        fail(str(error), error.hint, code=2)
    raise error


@app.command("build")
def build(
    consumer: Annotated[
        list[str] | None, typer.Option("--consumer", help="Only this consumer's SQL port.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Snapshot every published port for serving, then build each consumer's SQL port.

    On a PostgreSQL warehouse it first applies the ports' views and grants there (one
    transaction), what `ddp ports postgres | psql` would.
    """
    from ddp_assets.ports.api import build_ports
    from ddp_assets.ports.postgres import ApplyError, apply_ports
    from ddp_assets.ports.store import Store

    paths = ProjectPaths.discover()
    registry = load_registry(paths)
    store = Store.open(paths)
    try:
        applied = apply_ports(paths, registry, store)
    except ApplyError as error:
        fail(str(error), "check the warehouse, then run 'ddp ports build' again", code=2)
    try:
        report = build_ports(paths, registry, store, consumer)
    except FileNotFoundError as error:
        fail(str(error), "run 'ddp materialize --all' first", code=2)
    except Exception as error:
        _fail_port(error)
        return
    if as_json:
        print_json(
            {
                "snapshot": [p.to_dict() for p in report.snapshot],
                "sql_ports": {c: [p.to_dict() for p in ps] for c, ps in report.sql_ports.items()},
                "removed": report.removed,
                "postgres_ports": None if applied is None else [list(p) for p in applied.ports],
            }
        )
        return
    if applied is not None:
        say("PostgreSQL port views and grants applied: {} port(s)", len(applied.ports))
    say("serving snapshot: {} published port(s)", len(report.snapshot))
    for consumer_id, ports in report.sql_ports.items():
        names = ", ".join(f"{p.product}.{p.port}" for p in ports) or "no granted port"
        say("SQL port of {}: {}", consumer_id, names)
    for gone in report.removed:
        say("removed the SQL port of {} (no active token)", gone)


@app.command("sql")
def sql(
    query: Annotated[str, typer.Argument(help="A SQL query over the consumer's ports.")],
    token: Token = None,
    max_rows: Annotated[int, typer.Option(min=1, max=1_000_000)] = 1000,
    as_json: JsonFlag = False,
) -> None:
    """Run QUERY in the token's SQL port: read-only, no file or network access, audited."""
    from ddp_assets.ports.api import query as run
    from ddp_assets.ports.store import Store

    paths = ProjectPaths.discover()
    try:
        result = run(paths, Store.open(paths), token, query, max_rows)
    except Exception as error:
        _fail_port(error)
        return
    if as_json:
        print_json({"columns": result.columns, "rows": [list(r) for r in result.rows]})
        return
    table = Table(*result.columns)
    for row in result.rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    out.print(table)
    if result.truncated:
        say_err("(first {} rows)", max_rows)


@app.command("export")
def export(
    product: Annotated[str, typer.Argument(help="Product id.")],
    port: Annotated[str, typer.Argument(help="Output port.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write into.")] = Path("."),
    file_format: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    token: Token = None,
    version: Annotated[
        int | None, typer.Option("--version", min=1, help="A retained version (ddp versions).")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="The version published at this ISO time.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Export a port as the token's consumer sees it, with its contract beside it (of the
    published version, or of a retained one: --version N or --as-of TIME)."""
    from ddp_assets.ports.api import export as run
    from ddp_assets.ports.files import FORMATS
    from ddp_assets.ports.store import Store

    if file_format not in FORMATS:
        fail(f"unknown format {file_format!r}", f"use one of: {', '.join(FORMATS)}", code=2)
    paths = ProjectPaths.discover()
    registry = load_registry(paths)
    try:
        exported = run(
            paths,
            registry,
            Store.open(paths),
            token,
            product,
            port,
            out_dir,
            file_format,  # type: ignore[arg-type]
            version,
            as_of,
        )
    except Exception as error:
        _fail_port(error)
        return
    if as_json:
        print_json(exported.to_dict())
        return
    say("{} rows → {}; contract → {}", exported.rows, exported.data, exported.contract)


@app.command("access")
def access(
    consumer: Annotated[str, typer.Argument(help="A consumer id.")],
    role: Annotated[
        list[str] | None, typer.Option("--role", help="Roles to assume (default: its token's).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """What CONSUMER may read: granted ports, masked columns, row filters."""
    from ddp_assets.ports.policy import Consumer, readable_ports, resolve
    from ddp_assets.ports.store import Store
    from ddp_assets.ports.tokens import consumer_roles

    paths = ProjectPaths.discover()
    registry = load_registry(paths)
    roles = role if role is not None else consumer_roles(Store.open(paths), consumer)
    who = Consumer(consumer, tuple(roles))
    rows = []
    for product_id, ports in sorted(readable_ports(registry, who).items()):
        for port in ports:
            granted = resolve(registry.products[product_id], port, who)
            rows.append(
                {
                    "product": product_id,
                    "port": port,
                    "masked": {c.name: c.mask for c in granted.columns if c.mask},
                    "row_filter": None
                    if granted.row_filter is None
                    else [[c.model_dump() for c in branch] for branch in granted.row_filter],
                }
            )
    if as_json:
        print_json({"consumer": consumer, "roles": list(roles), "ports": rows})
        return
    say("{} (roles: {})", consumer, ", ".join(roles) or "none")
    table = Table("port", "masked columns", "rows")
    for r in rows:
        masked = ", ".join(f"{k} ({v})" for k, v in r["masked"].items()) or "-"
        filtered = (
            "all"
            if r["row_filter"] is None
            else " or ".join(
                " and ".join(f"{c['column']} {c['op']} {c['value']}" for c in branch)
                for branch in r["row_filter"]
            )
        )
        table.add_row(f"{r['product']}.{r['port']}", masked, filtered)
    out.print(table)


@app.command("postgres")
def postgres() -> None:
    """Print the PostgreSQL script of every port's policy: roles, views, grants.

    For a PostgreSQL warehouse holding the published tables as <product>.<model>; it includes
    the masking salt, so treat the output as a secret. Re-running it is safe. On a PostgreSQL
    warehouse ddp applies it itself ('ddp ports build', after each publish and access decision).
    """
    from ddp_assets.ports.postgres import compile_registry, consumer_statements
    from ddp_assets.ports.serving import mask_salt
    from ddp_assets.ports.store import Store
    from ddp_assets.ports.tokens import active_consumers

    paths = ProjectPaths.discover()
    registry = load_registry(paths)
    statements = compile_registry(registry, mask_salt(paths))
    statements += consumer_statements(active_consumers(Store.open(paths)))
    # A script for psql, not for the eye: written as compiled (its literals are the policy's).
    typer.echo("begin;")
    for statement in statements:
        typer.echo(statement.as_string(None) + ";")
    typer.echo("commit;")
