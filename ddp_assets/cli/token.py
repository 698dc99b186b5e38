"""``ddp token issue|list|revoke``: consumers' API tokens for the ports."""

from __future__ import annotations

from typing import Annotated

import typer

from ddp_assets.cli.console import Table, fail, out, print_json, say, say_err
from ddp_assets.settings import ProjectPaths

app = typer.Typer(help="API tokens of the ports' consumers.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@app.command("issue")
def issue(
    consumer: Annotated[str, typer.Argument(help="The consumer id, e.g. 'bi-dashboard'.")],
    role: Annotated[
        list[str] | None,
        typer.Option(
            "--role", "-r", help="A role of the consumer (repeatable); replaces its roles."
        ),
    ] = None,
    note: Annotated[str | None, typer.Option(help="What the token is for.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Issue a token to CONSUMER; it is printed once and only its hash is kept."""
    from ddp_assets.ports.store import Store
    from ddp_assets.ports.tokens import TokenError
    from ddp_assets.ports.tokens import issue as issue_token

    store = Store.open(ProjectPaths.discover())
    try:
        info = issue_token(store, consumer, role or [], note)
    except TokenError as error:
        fail(str(error), error.hint, code=2)
    if as_json:
        print_json(
            {"id": info.id, "consumer": info.consumer, "roles": info.roles, "token": info.token}
        )
        return
    say("{}", info.token)
    say_err(
        "token {} for '{}' (roles: {}); it is not shown again. "
        "Run 'ddp ports build' to refresh the consumer's SQL port.",
        info.id,
        info.consumer,
        ", ".join(info.roles) or "none",
    )


@app.command("list")
def list_tokens(
    revoked: Annotated[bool, typer.Option("--revoked", help="Include revoked tokens.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Tokens (never their secret): id, consumer, roles, created, revoked."""
    from ddp_assets.ports.store import Store
    from ddp_assets.ports.tokens import list_tokens as listed

    found = listed(Store.open(ProjectPaths.discover()), include_revoked=revoked)
    if as_json:
        print_json(
            [
                {
                    "id": t.id,
                    "consumer": t.consumer,
                    "roles": t.roles,
                    "note": t.note,
                    "created_at": t.created_at,
                    "revoked_at": t.revoked_at,
                }
                for t in found
            ]
        )
        return
    table = Table("id", "consumer", "roles", "note", "created", "revoked")
    for t in found:
        table.add_row(
            t.id, t.consumer, ", ".join(t.roles), t.note or "", t.created_at, t.revoked_at or ""
        )
    out.print(table)


@app.command("revoke")
def revoke(
    token_id: Annotated[str | None, typer.Argument(help="The token's id (ddp token list).")] = None,
    consumer: Annotated[
        str | None, typer.Option("--consumer", help="Revoke every token of this consumer.")
    ] = None,
) -> None:
    """Revoke a token, or all tokens of a consumer; the REST port refuses them at once."""
    from ddp_assets.ports.sql_port import remove_sql_port
    from ddp_assets.ports.store import Store
    from ddp_assets.ports.tokens import TokenError, active_consumers
    from ddp_assets.ports.tokens import revoke as revoke_tokens

    paths = ProjectPaths.discover()
    store = Store.open(paths)
    try:
        count = revoke_tokens(store, token_id=token_id, consumer=consumer)
    except TokenError as error:
        fail(str(error), error.hint, code=2)
    active = {c.id for c in active_consumers(store)}
    removed = [c for c in _consumers_of(store, token_id, consumer) if c not in active]
    for gone in removed:
        remove_sql_port(paths, gone)
    if removed:
        say("revoked {} token(s); removed the SQL port of {}", count, ", ".join(removed))
    else:
        say("revoked {} token(s)", count)


def _consumers_of(store: object, token_id: str | None, consumer: str | None) -> list[str]:
    from ddp_assets.ports.store import Store

    assert isinstance(store, Store)
    if consumer is not None:
        return [consumer]
    rows = store.execute("select consumer from tokens where id = ?", (token_id,))
    return [str(r[0]) for r in rows]
