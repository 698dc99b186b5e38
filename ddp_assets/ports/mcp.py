"""The MCP port (``ddp mcp``): the products for AI assistants and agents, under their policies.

A Model Context Protocol server (the official ``mcp`` SDK's FastMCP) for consumers identified
by their ddp token: over streamable HTTP (loopback by default) each request carries
``Authorization: Bearer ddp_...`` and an HTTP request without a valid token is a 401 before
MCP sees it; over stdio the token is given when the server starts (``--token`` or
``DDP_TOKEN``). The token is looked up again at every call, so a revoked token stops at once.

Tools: ``search_catalog``, ``describe_product``, ``read_rows`` (the REST port's read path:
:func:`~ddp_assets.ports.policy.resolve`, :func:`~ddp_assets.ports.reads.parse_request` and
:func:`~ddp_assets.ports.reads.read_page` over the serving snapshot — grants, masking, row
filters, bounded pages), ``query_sql`` (the consumer's SQL port through
:func:`~ddp_assets.ports.sql_port.run_query`: :mod:`~ddp_assets.ports.sql_guard`'s checks,
time and memory limits, a row bound) and ``request_access``
(:func:`ddp_assets.ports.access.request_access`). Resources: each output port's ODCS contract
and each product's ODPS descriptor. Every call is audited with ``channel`` mcp; a refusal is a
tool error with the reason and its hint, never a crash.

The catalog and the ODPS export sit beside the ports in the layers (docs/architecture.md), so
``ddp mcp`` (the CLI) hands them in as :class:`Catalog`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from pydantic import Field
from starlette.types import ASGIApp, Receive, Scope, Send

from ddp_assets.ports import access, audit, tokens
from ddp_assets.ports.policy import Consumer, PortError, readable_ports, resolve
from ddp_assets.ports.reads import MAX_LIMIT, parse_request, read_page
from ddp_assets.ports.serving import (
    SNAPSHOT,
    Serving,
    SnapshotMissing,
    mask_salt,
    partial_view,
    serving_path,
    snapshot_relation,
)
from ddp_assets.ports.sql_guard import QueryLimits
from ddp_assets.ports.sql_port import run_query
from ddp_assets.ports.store import Store
from ddp_assets.ports.versions import ServedVersion, travel
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.errors import SpecErrors, did_you_mean
from ddp_assets.spec.registry import Product, Registry

CHANNEL = "mcp"
MAX_SQL_ROWS = 1000
INSTRUCTIONS = (
    "ddp data products under their access policies. Find products with search_catalog, read "
    "one with describe_product, read a port's rows with read_rows (masked and filtered for "
    "you) or query your SQL port with query_sql (read-only DuckDB SQL over "
    "<product>.<port>). Without a grant, ask with request_access: the product's owners decide."
)


@dataclass(frozen=True)
class Catalog:
    """What the MCP port needs from the catalog and the ODPS export (layers above the ports)."""

    search: Callable[[Registry, str, str | None, str | None, str | None], list[dict[str, Any]]]
    describe: Callable[[ProjectPaths, Product, Registry], dict[str, Any]]
    descriptor: Callable[[Product, Registry], dict[str, Any]]


@dataclass
class McpState:
    paths: ProjectPaths
    registry: Registry
    store: Store
    catalog: Catalog
    token: str | None = None  # stdio: the token the server was started with
    limits: QueryLimits = field(default_factory=QueryLimits.from_env)

    def __post_init__(self) -> None:
        self.serving = Serving(serving_path(self.paths))
        self.salt = mask_salt(self.paths)
        self._instance: Any = None

    def slo(self, product: Product, port: str) -> dict[str, Any]:
        """The port's SLO status (freshness against the SLO, open alerts), as REST's ``/slo``."""
        from ddp_assets.ports.slo import port_slo
        from ddp_assets.runtime.instance import instance

        if self._instance is None:
            self._instance = instance(self.paths)
        return port_slo(self._instance, product, port)

    def record(
        self,
        who: Consumer | None,
        action: str,
        status: int,
        product: str | None = None,
        port: str | None = None,
        rows: int | None = None,
        reason: str | None = None,
    ) -> None:
        audit.record(
            self.store,
            consumer=who.id if who else None,
            product=product,
            port=port,
            channel=CHANNEL,
            action=action,
            allowed=status < 400,
            status=status,
            rows=rows,
            reason=reason,
        )

    def product(self, product_id: str) -> Product:
        found = self.registry.products.get(product_id)
        if found is None:
            raise PortError(
                404,
                f"no product '{product_id[:80]}'",
                did_you_mean(product_id, self.registry.products) or "search_catalog lists them",
            )
        return found


def _bearer(headers: Any) -> str | None:
    scheme, _, token = str(headers.get("authorization", "")).partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _refusal(error: PortError) -> ToolError:
    text = f"refused ({error.status}): {error.message}"
    return ToolError(text + (f" — hint: {error.hint}" if error.hint else ""))


def build_server(state: McpState, *, host: str = "127.0.0.1", port: int = 8000) -> FastMCP:
    """The FastMCP server over ``state``'s project (tools and resources registered)."""
    server = FastMCP("ddp", instructions=INSTRUCTIONS, host=host, port=port, log_level="WARNING")

    def consumer(ctx: Context | None) -> Consumer:  # type: ignore[type-arg]
        request = None
        if ctx is not None:
            try:
                request = ctx.request_context.request
            except ValueError:  # outside a request
                request = None
        token = _bearer(request.headers) if request is not None else state.token
        found = tokens.authenticate(state.store, token)
        if found is None:
            state.record(None, "authenticate", 401, reason="unknown or revoked token")
            raise PortError(
                401,
                "authentication required: unknown or revoked token",
                "start the server with a token from 'ddp token issue' (or send it as Bearer)",
            )
        return found

    def audited(
        ctx: Context | None,  # type: ignore[type-arg]
        action: str,
        product: str | None,
        port: str | None,
        body: Callable[[Consumer], tuple[Any, int | None]],
    ) -> Any:
        """Run ``body`` for the caller; audited here unless the step audits itself (a query,
        once per port it read; an access request, by :mod:`ddp_assets.ports.access`)."""
        who: Consumer | None = None
        try:
            who = consumer(ctx)
            result, rows = body(who)
        except access.AccessError as error:
            raise _refusal(error) from None  # audited by ddp_assets.ports.access
        except PortError as error:
            if who is not None:
                for p, q in getattr(error, "ports", None) or [(product, port)]:
                    state.record(who, action, error.status, p, q, reason=error.message)
            raise _refusal(error) from None
        except SnapshotMissing:
            state.record(who, action, 503, product, port, reason="no serving snapshot")
            raise ToolError(
                "refused (503): no published data is served yet — hint: materialize the "
                "product, then run 'ddp ports build'"
            ) from None
        except SpecErrors as errors:
            message = errors.problems[0].message if errors.problems else "invalid spec"
            state.record(who, action, 500, product, port, reason=message)
            raise ToolError(f"refused (500): {message}") from None
        except ToolError:
            raise
        except Exception as error:  # never a crash, never the server's paths
            state.record(who, action, 500, product, port, reason=type(error).__name__)
            raise ToolError("internal error: the server's log has the details") from None
        if action not in ("query", "request"):
            state.record(who, action, 200, product, port, rows=rows)
        return result

    @server.tool(description="Search the data product catalog by words, domain, owner or tag.")
    def search_catalog(
        ctx: Context,  # type: ignore[type-arg]
        query: Annotated[str, Field(max_length=500, description="Words to match.")] = "",
        domain: Annotated[str | None, Field(max_length=63)] = None,
        owner: Annotated[str | None, Field(max_length=200)] = None,
        tag: Annotated[str | None, Field(max_length=63)] = None,
    ) -> list[dict[str, Any]]:
        def body(who: Consumer) -> tuple[Any, int | None]:
            granted = readable_ports(state.registry, who)
            hits = state.catalog.search(state.registry, query, domain, owner, tag)
            for hit in hits:
                hit["granted_ports"] = granted.get(hit["id"], [])
            return hits, len(hits)

        return audited(ctx, "search", None, None, body)

    @server.tool(
        description="Describe a product: purpose, owners, ports (which you may read), contracts, "
        "SLO and check status, lineage (upstream, downstream), versions."
    )
    def describe_product(
        ctx: Context,  # type: ignore[type-arg]
        product: Annotated[str, Field(max_length=63, description="Product id.")],
    ) -> dict[str, Any]:
        def body(who: Consumer) -> tuple[Any, int | None]:
            found = state.product(product)
            info = state.catalog.describe(state.paths, found, state.registry)
            granted = readable_ports(state.registry, who).get(product, [])
            try:
                served = state.serving.ports()
            except SnapshotMissing:
                served = {}

            def versions(port: str) -> list[dict[str, Any]] | None:
                """The port's versions as REST's ``.../versions`` shows them to the caller: a
                granted port's only, no whole-version counts under a row filter, no checksums
                under masks."""
                if port not in granted or (product, port) not in served:
                    return None
                seen = resolve(found, port, who)
                filtered, partial = seen.row_filter is not None, partial_view(seen)
                return [
                    {
                        **v.to_dict(),
                        "rows": None if filtered else v.rows,
                        "checksum": None if partial else v.checksum,
                    }
                    for v in state.serving.history(product, port)[0]
                ]

            info["ports"] = [
                {
                    "name": p.name,
                    "description": p.description,
                    "granted": p.name in granted,
                    "published": served[(product, p.name)].to_dict()
                    if (product, p.name) in served
                    else None,
                    "slo": state.slo(found, p.name),
                    "versions": versions(p.name),
                }
                for p in found.spec.output_ports
            ]
            info["access_grants"] = access.catalog_grants(state.paths, product)  # the store's
            return info, None

        return audited(ctx, "describe", product, None, body)

    @server.tool(
        description="Read a page of a port's rows as you may see them (masked columns, row "
        f"filters). filters: '<column>:<op>:<value>', e.g. 'country:in:DE,FR'. At most "
        f"{MAX_LIMIT} rows a page; page on with offset. version (a number) or as_of (an ISO "
        "time) reads a retained version under the same policy (describe_product lists them)."
    )
    def read_rows(
        ctx: Context,  # type: ignore[type-arg]
        product: Annotated[str, Field(max_length=63)],
        port: Annotated[str, Field(max_length=63)],
        columns: Annotated[list[str] | None, Field(max_length=200)] = None,
        filters: Annotated[list[str] | None, Field(max_length=20)] = None,
        order: Annotated[str | None, Field(max_length=1000)] = None,
        limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = 100,
        offset: Annotated[int, Field(ge=0)] = 0,
        version: Annotated[int | None, Field(ge=1)] = None,
        as_of: Annotated[str | None, Field(max_length=64)] = None,
    ) -> dict[str, Any]:
        def body(who: Consumer) -> tuple[Any, int | None]:
            found = state.product(product)
            granted = resolve(found, port, who)
            served = state.serving.ports().get((product, port))
            if served is None:
                raise PortError(
                    404,
                    f"port '{product}.{port}' has no published version yet",
                    "materialize the product, then run 'ddp ports build'",
                )
            picked: ServedVersion | None = None
            with state.serving.cursor() as (cursor, _):
                source = snapshot_relation(product, port)
                if version is not None or as_of is not None:  # time travel, same policy
                    history = state.serving.history(product, port)
                    source, granted, picked = travel(
                        cursor, SNAPSHOT, granted, history, version=version, as_of=as_of
                    )
                request = parse_request(
                    granted,
                    columns=",".join(columns) if columns else None,
                    filters=filters or [],
                    order=order,
                    limit=limit,
                    offset=offset,
                )
                page = read_page(cursor, granted, request, source, state.salt)
            names = [c.name for c in page.columns]
            result = {
                "product": product,
                "port": port,
                "version": picked.version
                if picked
                else next(
                    (v.version for v in state.serving.history(product, port)[0] if v.published),
                    None,
                ),
                "run_id": picked.run_id if picked else served.run_id,
                "columns": [c.to_dict() for c in page.columns],
                "rows": [dict(zip(names, _plain(row), strict=True)) for row in page.rows],
                "next_offset": page.next_offset,
                "row_filtered": granted.row_filter is not None,
            }
            return result, len(page.rows)

        return audited(ctx, "read", product, port, body)

    @server.tool(
        description="Run a read-only DuckDB SELECT on your SQL port (tables <product>.<port> "
        "you are granted, masked and filtered). Bounded in time, memory and rows; no files, "
        "ATTACH, COPY, settings or extensions."
    )
    def query_sql(
        ctx: Context,  # type: ignore[type-arg]
        sql: Annotated[str, Field(description="One SELECT query.")],
        max_rows: Annotated[int, Field(ge=1, le=MAX_SQL_ROWS)] = 100,
    ) -> dict[str, Any]:
        def body(who: Consumer) -> tuple[Any, int | None]:
            access.sweep_expired(
                access.AccessContext(state.paths, state.registry, state.store, via=CHANNEL)
            )
            result = run_query(state.paths, who, sql, max_rows, state.limits)
            for p, q in result.ports or [(None, None)]:
                state.record(who, "query", 200, p, q, rows=len(result.rows))
            return {
                "columns": result.columns,
                "rows": [_plain(row) for row in result.rows],
                "truncated": result.truncated,
                "ports": [f"{p}.{q}" for p, q in result.ports],
            }, len(result.rows)

        return audited(ctx, "query", None, None, body)

    @server.tool(
        description="Ask a product's owners for access to its ports for you, with a purpose. "
        "Columns classified above your clearance must be named in clearance (e.g. "
        "'restricted'). The owners are notified and decide; until then reads are refused."
    )
    def request_access(
        ctx: Context,  # type: ignore[type-arg]
        product: Annotated[str, Field(max_length=63)],
        purpose: Annotated[str, Field(max_length=access.MAX_TEXT)],
        ports: Annotated[list[str] | None, Field(max_length=50)] = None,
        columns: Annotated[list[str] | None, Field(max_length=200)] = None,
        clearance: Annotated[list[str] | None, Field(max_length=10)] = None,
        until: Annotated[str | None, Field(max_length=40)] = None,
    ) -> dict[str, Any]:
        def body(who: Consumer) -> tuple[Any, int | None]:
            ctx_ = access.AccessContext(state.paths, state.registry, state.store, via=CHANNEL)
            filed = access.request_access(
                ctx_,
                product,
                ports or [],
                consumer=who.id,
                purpose=purpose,
                columns=columns or [],
                clearance=clearance or [],
                until=until,
                requested_by=who.id,
            )
            return filed.to_dict(), None

        return audited(ctx, "request", product, None, body)

    for found in state.registry.products.values():
        _resources(server, state, found, consumer)
    return server


def _resources(
    server: FastMCP,
    state: McpState,
    product: Product,
    consumer: Callable[[Any], Consumer],
) -> None:
    """The product's ODPS descriptor and each output port's ODCS contract, as JSON."""

    def reader(action: str, port: str | None, make: Callable[[], Any]) -> Callable[[], str]:
        def read() -> str:
            try:
                who = consumer(server.get_context())
            except PortError as error:
                raise _refusal(error) from None
            try:
                document = make()
            except SpecErrors as errors:
                message = errors.problems[0].message if errors.problems else "invalid"
                state.record(who, action, 500, product.id, port, reason=message)
                raise ToolError(f"refused (500): {message}") from None
            state.record(who, action, 200, product.id, port)
            return json.dumps(document, default=str, indent=2)

        return read

    server.resource(
        f"ddp://products/{product.id}/odps",
        name=f"{product.id} (ODPS)",
        description=f"The ODPS descriptor of data product {product.id}.",
        mime_type="application/json",
    )(reader("descriptor", None, lambda: state.catalog.descriptor(product, state.registry)))
    for output in product.spec.output_ports:

        def contract(output_contract: str = output.contract) -> Any:
            from ddp_assets.spec.loader import read_yaml
            from ddp_assets.spec.odcs import plain

            return plain(read_yaml(product.folder / output_contract))

        server.resource(
            f"ddp://products/{product.id}/ports/{output.name}/contract",
            name=f"{product.id}.{output.name} (ODCS)",
            description=f"The ODCS contract of output port {product.id}.{output.name}.",
            mime_type="application/json",
        )(reader("contract", output.name, contract))


def _plain(row: Sequence[Any]) -> list[Any]:
    """A row's values as JSON values (dates as ISO text, decimals as numbers)."""
    from datetime import date, datetime, time
    from decimal import Decimal

    values: list[Any] = []
    for value in row:
        if isinstance(value, Decimal):
            values.append(float(value))
        elif isinstance(value, (date, datetime, time)):
            values.append(value.isoformat())
        elif isinstance(value, (bytes, bytearray)):
            values.append(value.hex())
        elif value is None or isinstance(value, (str, int, float, bool)):
            values.append(value)
        else:
            values.append(str(value))
    return values


class RequireToken:
    """HTTP requests without a valid ddp token are refused with 401 (and audited) before
    they reach MCP; lifespan events pass."""

    def __init__(self, app: ASGIApp, state: McpState):
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        token = _bearer(headers)
        if tokens.authenticate(self.state.store, token) is None:
            reason = "no token" if token is None else "unknown or revoked token"
            self.state.record(None, "authenticate", 401, reason=reason)
            body = json.dumps(
                {
                    "error": {
                        "status": 401,
                        "message": "authentication required: " + reason,
                        "hint": "send 'Authorization: Bearer <token>' from 'ddp token issue'",
                    }
                }
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"www-authenticate", b"Bearer"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def http_app(server: FastMCP, state: McpState) -> ASGIApp:
    """The streamable HTTP app (``/mcp``), behind the token check."""
    return RequireToken(server.streamable_http_app(), state)
