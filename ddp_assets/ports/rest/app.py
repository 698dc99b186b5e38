"""The REST port (``ddp serve``): products, ports, rows, schemas, contracts and SLO status.

Every request but ``/health`` carries an API token (``Authorization: Bearer ddp_...``). Each
access is resolved through the policy engine (:mod:`ddp_assets.ports.policy`) and written to
the audit log, allowed or not. Data comes from the serving snapshot, never the warehouse, so
the server never holds the warehouse's lock. Errors are one JSON shape,
``{"error": {"status", "message", "hint"}}``: 401 without a valid token, 403 without a grant,
404 for an unknown product or port, 400 for a bad column, filter, order or page.
"""

import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ddp_assets.ports import audit, tokens
from ddp_assets.ports.files import FORMATS, export_port
from ddp_assets.ports.policy import (
    Consumer,
    PortAccess,
    PortError,
    policy_select,
    readable_ports,
    resolve,
)
from ddp_assets.ports.reads import (
    FILTER_SYNTAX,
    MAX_FILTERS,
    MAX_LIMIT,
    MAX_OFFSET,
    MAX_PARAM_LENGTH,
    parse_request,
    read_page,
)
from ddp_assets.ports.rest import models
from ddp_assets.ports.serving import (
    SNAPSHOT,
    ServedPort,
    Serving,
    SnapshotMissing,
    mask_salt,
    partial_view,
    serving_path,
    snapshot_relation,
    view_checksum,
)
from ddp_assets.ports.store import Store
from ddp_assets.ports.versions import ServedVersion, travel
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.errors import did_you_mean
from ddp_assets.spec.model import SLUG
from ddp_assets.spec.registry import Product, Registry

CHANNEL = "rest"
SLO_CACHE_SECONDS = 30.0
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": models.ErrorResponse, "description": text}
    for status, text in (
        (400, "Bad column, filter, order or page"),
        (401, "No valid API token"),
        (403, "The token's consumer is not granted the port"),
        (404, "Unknown product or port"),
    )
}
NOT_FOUND = {404: ERRORS[404]}

ProductId = Annotated[str, PathParam(pattern=SLUG, max_length=63, description="Product id.")]
PortName = Annotated[str, PathParam(pattern=SLUG, max_length=63, description="Output port.")]
VersionParam = Annotated[
    int | None,
    Query(ge=1, le=2**53, description="A retained version (see .../versions); default: the "
          "published one."),
]  # fmt: skip
AsOf = Annotated[
    str | None,
    Query(max_length=64, description="The version consumers read at this ISO 8601 time, e.g. "
          "2026-12-04T10:00:00Z."),
]  # fmt: skip


@dataclass
class ServerState:
    paths: ProjectPaths
    registry: Registry
    store: Store
    serving: Serving
    salt: str
    _slo: dict[str, tuple[float, Any]] = field(default_factory=dict)
    _slo_lock: threading.Lock = field(default_factory=threading.Lock)
    _instance: Any = None
    _seen: dict[tuple[Any, ...], tuple[int, str]] = field(default_factory=dict)

    def seen(self, access: PortAccess, served: ServedPort) -> tuple[int, str]:
        """Rows and checksum of a port as ``access`` sees it (cached per snapshot)."""
        source = snapshot_relation(access.product, access.port)
        sql, params = policy_select(access, source, self.salt)
        key = (served.run_id, served.snapshot_at, sql, tuple(params))
        found = self._seen.get(key)
        if found is None:
            with self.serving.cursor() as (cursor, _):
                found = view_checksum(cursor, sql, params)
            if len(self._seen) > 1000:
                self._seen.clear()
            self._seen[key] = found
        return found

    def product(self, product_id: str) -> Product:
        product = self.registry.products.get(product_id)
        if product is None:
            raise PortError(
                404,
                f"no product '{product_id}'",
                did_you_mean(product_id, self.registry.products) or "GET /products lists them",
            )
        return product

    def record(
        self,
        consumer: str | None,
        product: str | None,
        port: str | None,
        action: str,
        status: int,
        rows: int | None = None,
        reason: str | None = None,
    ) -> None:
        audit.record(
            self.store,
            consumer=consumer,
            product=product,
            port=port,
            channel=CHANNEL,
            action=action,
            allowed=status < 400,
            status=status,
            rows=rows,
            reason=reason,
        )

    def slo(self, product: Product, port: str) -> dict[str, Any]:
        """The port's SLO status, cached for a few seconds (the instance is opened once)."""
        now = time.monotonic()
        key = f"{product.id}.{port}"
        with self._slo_lock:
            cached = self._slo.get(key)
            if cached and now - cached[0] < SLO_CACHE_SECONDS:
                return cached[1]
            from ddp_assets.ports.slo import port_slo
            from ddp_assets.runtime.instance import instance

            if self._instance is None:
                self._instance = instance(self.paths)
            status = port_slo(self._instance, product, port)
            self._slo[key] = (now, status)
            return status


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (date, datetime, dtime)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, UUID):
        return str(value)
    return str(value)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps(data, default=_json_default, option=orjson.OPT_PASSTHROUGH_DATETIME)
    return Response(body, status, headers=headers, media_type="application/json")


def error_response(error: PortError) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    body = {"error": {"status": error.status, "message": error.message, "hint": error.hint}}
    return json_response(body, error.status, headers)


bearer = HTTPBearer(
    auto_error=False,
    description="An API token issued with `ddp token issue CONSUMER`.",
)


def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Consumer:
    """The caller, from its bearer token; 401 (audited) without a valid one."""
    state: ServerState = request.app.state.ddp
    found = None
    if credentials is not None and credentials.scheme.lower() == "bearer":
        found = tokens.authenticate(state.store, credentials.credentials)
    if found is None:
        params = request.path_params
        reason = "no token" if credentials is None else "unknown or revoked token"
        state.record(
            None, params.get("product"), params.get("port"), "authenticate", 401, None, reason
        )
        raise PortError(
            401,
            "authentication required: " + reason,
            "send 'Authorization: Bearer <token>' with a token from 'ddp token issue'",
        )
    return found


Caller = Annotated[Consumer, Depends(authenticated)]


class HeadAsGet:
    """HEAD answered wherever GET is: the GET route runs (audited as such), the body is
    dropped and the headers (``content-length`` included) are kept, as RFC 9110 asks."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


def param_hint(name: str, path_params: dict[str, Any]) -> str:
    """What a bad query or path parameter should look like (each its own hint)."""

    def shown(key: str) -> str:  # only a well-formed name is echoed back
        value = str(path_params.get(key, ""))
        return value if len(value) <= 63 and re.fullmatch(SLUG, value) else "{" + key + "}"

    where = f"/products/{shown('product')}/ports/{shown('port')}"
    if name == "version":
        return f"version is the number (1 or more) of a retained version: GET {where}/versions"
    if name == "as_of":
        return "as_of is an ISO 8601 time, e.g. 2026-12-04T10:00:00Z"
    if name == "format":
        return "format is one of: " + ", ".join(FORMATS)
    if name in ("limit", "offset"):
        return f"limit is 1 to {MAX_LIMIT}, offset 0 to {MAX_OFFSET}"
    if name == "filter":
        return FILTER_SYNTAX
    if name in ("product", "port"):
        return "product and port names are lower-case slugs"
    return "GET /openapi.json lists the parameters of each endpoint"


def create_app(paths: ProjectPaths | None = None) -> FastAPI:
    """The FastAPI application over the project's products (``uvicorn --factory``)."""
    paths = paths or ProjectPaths.discover()
    from ddp_assets.dbt.load_cache import load_registry

    state = ServerState(
        paths,
        load_registry(paths),
        Store.open(paths),
        Serving(serving_path(paths)),
        mask_salt(paths),
    )
    app = FastAPI(
        title="ddp data products",
        version="1.0.0",
        description="Read data products' output ports under their access policies. Every "
        "access is audited. Tokens: `ddp token issue CONSUMER`.",
    )
    app.state.ddp = state
    app.add_middleware(HeadAsGet)

    record = state.record

    @app.exception_handler(PortError)
    def _port_error(request: Request, error: PortError) -> Response:
        return error_response(error)

    @app.exception_handler(SnapshotMissing)
    def _no_snapshot(request: Request, error: SnapshotMissing) -> Response:
        return error_response(PortError(503, "no published data is served yet", error.hint))

    def caller_id(request: Request) -> str | None:
        """The consumer of the request's token, if valid (for requests no route checked)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        who = tokens.authenticate(state.store, token.strip())
        return who.id if who else None

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, error: RequestValidationError) -> Response:
        problems: list[str] = []
        hints: list[str] = []
        params = request.path_params
        for item in error.errors():
            where = ".".join(str(p) for p in item.get("loc", ()) if p not in ("query", "path"))
            problems.append(f"{where}: {item.get('msg', 'invalid')}")
            hint = param_hint(where.split(".")[0], params)
            if hint not in hints:
                hints.append(hint)
        message = "bad request: " + "; ".join(problems)[:500]
        record(
            caller_id(request),
            params.get("product"),
            params.get("port"),
            "request",
            400,
            reason=message,
        )
        return error_response(PortError(400, message, "; ".join(hints)))

    @app.exception_handler(StarletteHTTPException)
    def _http(request: Request, error: StarletteHTTPException) -> Response:
        # no route (404) or a method no route takes (405): audited like every other request
        status = error.status_code
        shown = "".join(c if c.isprintable() else "?" for c in request.url.path)[:200]
        record(
            caller_id(request),
            None,
            None,
            "request",
            status,
            reason=f"{request.method[:10]} {shown}: {error.detail}",
        )
        hint = {
            404: "GET /openapi.json lists the endpoints",
            405: "the ports are read with GET (or HEAD)",
        }.get(status)
        response = error_response(PortError(status, str(error.detail), hint))
        for name, value in (error.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(Exception)
    def _internal(request: Request, error: Exception) -> Response:
        # never the exception's text: it may name the server's files
        params = request.path_params
        record(
            caller_id(request),
            params.get("product"),
            params.get("port"),
            "request",
            500,
            reason=f"internal error: {type(error).__name__}",
        )
        return error_response(
            PortError(500, "internal error", "the server's log has the details; retry later")
        )

    @contextmanager
    def audited(
        who: Consumer, product: str | None, port: str | None, action: str
    ) -> Iterator[dict[str, Any]]:
        outcome: dict[str, Any] = {"rows": None}
        try:
            yield outcome
        except PortError as error:
            record(who.id, product, port, action, error.status, None, error.message)
            raise
        except SnapshotMissing:
            record(who.id, product, port, action, 503, None, "no serving snapshot")
            raise
        record(who.id, product, port, action, 200, outcome["rows"])

    def port_access(who: Consumer, product_id: str, port: str) -> tuple[Product, PortAccess]:
        product = state.product(product_id)
        return product, resolve(product, port, who)

    def published(product_id: str, port: str) -> ServedPort:
        served = state.serving.ports().get((product_id, port))
        if served is None:
            raise PortError(
                404,
                f"port '{product_id}.{port}' has no published version yet",
                "materialize the product, then run 'ddp ports build'",
            )
        return served

    def versioned(
        cursor: Any, access: PortAccess, version: int | None, as_of: str | None
    ) -> tuple[str, PortAccess, ServedVersion | None]:
        """The relation to read (the published one, or a retained version by number or time)
        and the caller's access to it, always under the port's current policy."""
        if version is None and as_of is None:
            return snapshot_relation(access.product, access.port), access, None
        history = state.serving.history(access.product, access.port)
        return travel(cursor, SNAPSHOT, access, history, version=version, as_of=as_of)

    def published_number(product_id: str, port: str) -> int | None:
        versions, _ = state.serving.history(product_id, port)
        return next((v.version for v in versions if v.published), None)

    def summary(product: Product, granted: list[str]) -> dict[str, Any]:
        try:
            served = state.serving.ports()
        except SnapshotMissing:
            served = {}
        spec = product.spec
        return {
            "id": spec.id,
            "name": spec.name,
            "domain": spec.domain,
            "version": spec.version,
            "status": spec.status,
            "owners": list(spec.owners),
            "purpose": spec.description.purpose,
            "ports": [
                {
                    "name": p.name,
                    "description": p.description,
                    "granted": p.name in granted,
                    "published": (spec.id, p.name) in served,
                }
                for p in spec.output_ports
            ],
        }

    @app.get("/health", response_model=models.Health, tags=["server"])
    def health() -> Response:
        """Liveness, and whether a serving snapshot exists (no token needed)."""
        try:
            count = len(state.serving.ports())
        except SnapshotMissing:
            return json_response({"status": "ok", "snapshot": False, "ports": 0})
        return json_response({"status": "ok", "snapshot": True, "ports": count})

    @app.get(
        "/products",
        response_model=list[models.ProductSummary],
        responses={401: ERRORS[401]},
        tags=["products"],
    )
    def list_products(who: Caller) -> Response:
        """Every product with its output ports, and which of them the caller may read."""
        with audited(who, None, None, "list"):
            granted = readable_ports(state.registry, who)
            return json_response(
                [
                    summary(product, granted.get(product.id, []))
                    for _, product in sorted(state.registry.products.items())
                ]
            )

    @app.get(
        "/products/{product}",
        response_model=models.ProductSummary,
        responses={**NOT_FOUND, 400: ERRORS[400], 401: ERRORS[401]},
        tags=["products"],
    )
    def get_product(product: ProductId, who: Caller) -> Response:
        """One product and its output ports."""
        with audited(who, product, None, "describe"):
            found = state.product(product)
            granted = readable_ports(state.registry, who).get(product, [])
            return json_response(summary(found, granted))

    port_errors = dict(ERRORS)

    @app.get(
        "/products/{product}/ports/{port}",
        response_model=models.PortDetail,
        responses=port_errors,
        tags=["ports"],
    )
    def get_port(
        product: ProductId,
        port: PortName,
        who: Caller,
        version: VersionParam = None,
        as_of: AsOf = None,
    ) -> Response:
        """The port as the caller sees it: published version (or the one asked for by number
        or time), columns (masked or not)."""
        with audited(who, product, port, "describe"):
            found, access = port_access(who, product, port)
            try:
                served = state.serving.ports().get((product, port))
            except SnapshotMissing:
                served = None
            output = found.spec.output_port(port)
            described = None
            if served is not None and (version is not None or as_of is not None):
                with state.serving.cursor() as (cursor, _):
                    source, access, chosen = versioned(cursor, access, version, as_of)
                    assert chosen is not None
                    described = {
                        "version": chosen.version,
                        "rows": chosen.rows,
                        "run_id": chosen.run_id,
                        "published_at": chosen.published_at,
                        "contract_id": chosen.contract_id,
                        "contract_version": chosen.contract_version,
                        "checksum": chosen.checksum,
                        "snapshot_at": served.snapshot_at,
                    }
                    if partial_view(access):
                        sql, params = policy_select(access, source, state.salt)
                        described["rows"], described["checksum"] = view_checksum(
                            cursor, sql, params
                        )
            elif served is not None:
                described = {
                    k: v
                    for k, v in served.to_dict().items()
                    if k not in ("product", "port", "model")
                }
                described["version"] = published_number(product, port)
                if partial_view(access):
                    # counted over the rows and values the caller sees, never the whole table
                    described["rows"], described["checksum"] = state.seen(access, served)
            return json_response(
                {
                    "product": product,
                    "port": port,
                    "description": output.description if output else None,
                    "version": described,
                    "columns": [c.to_dict() for c in access.columns],
                    "primary_key": list(access.primary_key),
                    "row_filtered": access.row_filter is not None,
                }
            )

    @app.get(
        "/products/{product}/ports/{port}/schema",
        response_model=list[models.Column],
        responses=port_errors,
        tags=["ports"],
    )
    def get_schema(product: ProductId, port: PortName, who: Caller) -> Response:
        """The columns the caller reads: name, type, classification, masking."""
        with audited(who, product, port, "schema"):
            _, access = port_access(who, product, port)
            return json_response([c.to_dict() for c in access.columns])

    @app.get(
        "/products/{product}/ports/{port}/contract",
        response_model=dict[str, Any],
        responses=port_errors,
        tags=["ports"],
    )
    def get_contract(product: ProductId, port: PortName, who: Caller) -> Response:
        """The port's ODCS contract, as JSON, with the servers where it is published."""
        from ddp_assets.contracts.servers import exported_contract

        with audited(who, product, port, "contract"):
            found, _ = port_access(who, product, port)
            return json_response(exported_contract(state.paths, found, port))

    @app.get(
        "/products/{product}/ports/{port}/slo",
        response_model=models.SloStatus,
        responses=port_errors,
        tags=["ports"],
    )
    def get_slo(product: ProductId, port: PortName, who: Caller) -> Response:
        """Freshness of the port against its SLO, and the product's open alerts."""
        with audited(who, product, port, "slo"):
            found, _ = port_access(who, product, port)
            return json_response(state.slo(found, port))

    @app.get(
        "/products/{product}/ports/{port}/rows",
        response_model=models.RowsPage,
        responses=port_errors,
        tags=["ports"],
    )
    def get_rows(
        product: ProductId,
        port: PortName,
        who: Caller,
        columns: Annotated[
            str | None,
            Query(
                max_length=MAX_PARAM_LENGTH, description="Comma-separated columns (default: all)."
            ),
        ] = None,
        filter: Annotated[
            list[Annotated[str, Field(max_length=MAX_PARAM_LENGTH)]] | None,
            Query(
                max_length=MAX_FILTERS,
                description="Repeatable <column>:<op>:<value>, e.g. country:in:DE,FR.",
            ),
        ] = None,
        order: Annotated[
            str | None,
            Query(
                max_length=MAX_PARAM_LENGTH,
                description="Comma-separated columns, '-' for descending.",
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        version: VersionParam = None,
        as_of: AsOf = None,
    ) -> Response:
        """A page of rows, with column selection, typed filters and ordering; of the published
        version, or of a retained one (``version``, or ``as_of`` a time)."""
        with audited(who, product, port, "read") as outcome:
            _, access = port_access(who, product, port)

            def parsed(access: PortAccess) -> Any:
                return parse_request(
                    access,
                    columns=columns,
                    filters=filter or [],
                    order=order,
                    limit=limit,
                    offset=offset,
                )

            request = parsed(access)
            served = published(product, port)
            with state.serving.cursor() as (cursor, _):
                source, access, chosen = versioned(cursor, access, version, as_of)
                if chosen is not None:  # checked again against the columns the version has
                    request = parsed(access)
                page = read_page(cursor, access, request, source, state.salt)
            outcome["rows"] = len(page.rows)
            names = [c.name for c in page.columns]
            return json_response(
                {
                    "product": product,
                    "port": port,
                    "run_id": chosen.run_id if chosen else served.run_id,
                    "version": chosen.version if chosen else published_number(product, port),
                    "columns": [c.to_dict() for c in page.columns],
                    "rows": [dict(zip(names, row, strict=True)) for row in page.rows],
                    "limit": page.limit,
                    "offset": page.offset,
                    "next_offset": page.next_offset,
                    "filters": page.filters,
                }
            )

    @app.get(
        "/products/{product}/ports/{port}/file",
        responses={
            **port_errors,
            200: {
                "description": "The port as a file, as the caller sees it",
                "content": {"application/vnd.apache.parquet": {}, "text/csv": {}},
            },
        },
        response_class=Response,
        tags=["ports"],
    )
    def get_file(
        product: ProductId,
        port: PortName,
        who: Caller,
        format: Annotated[
            Literal["parquet", "csv"], Query(description="parquet or csv")
        ] = "parquet",
        version: VersionParam = None,
        as_of: AsOf = None,
    ) -> Response:
        """The whole port as a Parquet or CSV file (the file port over HTTP); of the published
        version, or of a retained one (``version``, or ``as_of`` a time)."""
        assert format in FORMATS
        with audited(who, product, port, "export") as outcome:
            found, access = port_access(who, product, port)
            served = published(product, port)
            folder = Path(tempfile.mkdtemp(prefix="ddp-export-"))
            try:
                with state.serving.cursor() as (cursor, _):
                    source, access, chosen = versioned(cursor, access, version, as_of)
                    exported = export_port(
                        cursor, found, access, served, state.salt, folder, format,
                        source=source, version=chosen,
                    )  # fmt: skip
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            outcome["rows"] = exported.rows
            media = "application/vnd.apache.parquet" if format == "parquet" else "text/csv"
            return FileResponse(
                exported.data,
                media_type=media,
                filename=exported.data.name,
                background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
            )

    from ddp_assets.ports.rest.access import router as access_requests
    from ddp_assets.ports.rest.versions import router as port_versions

    app.include_router(access_requests)
    app.include_router(port_versions)
    return app
