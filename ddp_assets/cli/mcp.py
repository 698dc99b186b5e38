"""``ddp mcp``: the MCP port, for AI assistants and agents under the products' policies."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer

from ddp_assets.cli.console import fail, say_err
from ddp_assets.settings import ProjectPaths


def _catalog(paths: ProjectPaths) -> Any:
    """The catalog's search and descriptions and the ODPS export, for the MCP port."""
    from ddp_assets.catalog.entries import catalog_entries, show_details
    from ddp_assets.catalog.search import search
    from ddp_assets.catalog.status import instance_if_any
    from ddp_assets.export.odps import to_odps
    from ddp_assets.ports.mcp import Catalog

    instance: dict[str, Any] = {}

    def find(registry: Any, query: str, domain: Any, owner: Any, tag: Any) -> list[Any]:
        hits = search(catalog_entries(registry), query, domain=domain, owner=owner, tag=tag)
        return [hit.to_dict() for hit in hits]

    def describe(paths_: ProjectPaths, product: Any, registry: Any) -> dict[str, Any]:
        if "it" not in instance:
            instance["it"] = instance_if_any(paths_)
        return show_details(product, registry, instance["it"])

    return Catalog(search=find, describe=describe, descriptor=to_odps)


def mcp(
    transport: Annotated[
        str, typer.Option("--transport", help="http (streamable HTTP) or stdio.")
    ] = "http",
    host: Annotated[str, typer.Option(help="Interface to listen on (http).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port (http).")] = 8765,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="DDP_TOKEN", help="stdio: the consumer's token."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level (http).")] = "warning",
) -> None:
    """Serve the products over the Model Context Protocol, as the token's consumer sees them.

    http: every request carries 'Authorization: Bearer <token>' (endpoint /mcp); stdio: the
    token is --token or DDP_TOKEN. Tools search, describe, read rows, query SQL and request
    access; resources are the ODCS contracts and ODPS descriptors. Every call is audited.
    """
    from ddp_assets.dbt.load_cache import load_registry
    from ddp_assets.ports import tokens
    from ddp_assets.ports.mcp import McpState, build_server, http_app
    from ddp_assets.ports.store import Store

    mode: Literal["http", "stdio"]
    if transport == "http":
        mode = "http"
    elif transport == "stdio":
        mode = "stdio"
    else:
        fail(f"unknown transport {transport!r}", "use --transport http or --transport stdio", 2)
    paths = ProjectPaths.discover()
    store = Store.open(paths)
    if mode == "stdio" and tokens.authenticate(store, token) is None:
        fail(
            "stdio needs the consumer's token: " + ("unknown or revoked" if token else "none"),
            "pass --token or set DDP_TOKEN to a token from 'ddp token issue'",
            code=2,
        )
    state = McpState(paths, load_registry(paths), store, _catalog(paths), token=token)
    server = build_server(state, host=host, port=port)
    if mode == "stdio":
        server.run("stdio")
        return
    import uvicorn

    say_err("MCP port on http://{}:{}/mcp (Bearer token required)", host, port)
    uvicorn.run(http_app(server, state), host=host, port=port, log_level=log_level)
