"""``ddp serve``: the REST port (FastAPI on uvicorn)."""

from __future__ import annotations

from typing import Annotated

import typer

from ddp_assets.settings import ProjectPaths

MAX_REQUEST_HEAD = 1024 * 1024


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Serve the products' output ports over HTTP (OpenAPI document at /docs and /openapi.json).

    Reads the serving snapshot that 'ddp ports build' writes; every access is audited.
    """
    import uvicorn

    from ddp_assets.ports.rest import create_app

    app = create_app(ProjectPaths.discover())
    # Query strings may be long (20 filters of 1000 characters, percent-encoded): let them reach
    # the application, which answers with a JSON 400, instead of h11's plain-text one at 16 KiB.
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD,
    )
