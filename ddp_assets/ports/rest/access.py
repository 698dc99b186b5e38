"""The REST port's access requests (``/access/requests``): ask, list, approve, deny, revoke.

The caller is its token's consumer: it asks for itself, sees its own requests and those of the
products it owns, and decides as an owner when its consumer id is an owner's email or it holds
the role of an owning team (``team:sales-analytics`` → role ``sales-analytics``). Every step
goes through :mod:`ddp_assets.ports.access` (audited with ``channel`` rest, notified to the
owners); a refusal is the port's one error shape.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ddp_assets.ports import access
from ddp_assets.ports.rest.app import ERRORS, Caller, ServerState, json_response
from ddp_assets.ports.rest.models import ErrorResponse
from ddp_assets.spec.model import SLUG

router = APIRouter(prefix="/access", tags=["access"])
RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    409: {"model": ErrorResponse, "description": "The request is not pending (or not approved)"},
}
RequestId = Annotated[
    str, PathParam(pattern=r"^ar-[0-9a-f]{8}$", description="An access request's id.")
]
Name = Annotated[str, Field(pattern=SLUG, max_length=63)]
Text = Annotated[str, Field(min_length=1, max_length=access.MAX_TEXT)]
Short = Annotated[str, Field(min_length=1, max_length=200)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewRequest(_Body):
    product: Name = Field(description="The product asked for.")
    ports: list[Name] = Field(default_factory=list, max_length=50, description="Default: all.")
    purpose: Text = Field(description="What the data is for.")
    columns: list[Short] = Field(default_factory=list, max_length=200)
    clearance: list[Short] = Field(
        default_factory=list,
        max_length=10,
        description="Classifications asked in clear; required for such columns.",
    )
    until: Short | None = Field(default=None, description="Expiry: a date or an ISO timestamp.")


class Approval(_Body):
    ports: list[Name] = Field(default_factory=list, max_length=50)
    rows: list[Short] = Field(
        default_factory=list, max_length=20, description="<column>:<op>:<value>, AND-ed."
    )
    keep_masking: bool = False
    reason: Text | None = None


class Decision(_Body):
    reason: Text


class AccessRequestOut(BaseModel):
    id: str
    product: str
    ports: list[str]
    consumer: str
    purpose: str
    columns: list[str]
    clearance: list[str]
    until: str | None
    requested_by: str
    requested_at: str
    via: str
    status: str
    decided_by: str | None = None
    decided_at: str | None = None
    reason: str | None = None
    granted_ports: list[str] | None = None
    rows: list[dict[str, Any]] | None = None
    cleared_for: list[str] | None = None
    ended_by: str | None = None
    ended_at: str | None = None


def _context(request: Request) -> access.AccessContext:
    state: ServerState = request.app.state.ddp
    ctx = access.AccessContext(state.paths, state.registry, state.store, via="rest")
    access.sweep_expired(ctx)
    return ctx


@router.post(
    "/requests",
    status_code=201,
    response_model=AccessRequestOut,
    responses=RESPONSES,
)
def create_request(body: NewRequest, who: Caller, request: Request) -> Response:
    """Ask a product's owners for the caller's access to its ports."""
    ctx = _context(request)
    found = access.request_access(
        ctx,
        body.product,
        body.ports,
        consumer=who.id,
        purpose=body.purpose,
        columns=body.columns,
        clearance=body.clearance,
        until=body.until,
        requested_by=who.id,
    )
    return json_response(found.to_dict(), 201)


@router.get("/requests", response_model=list[AccessRequestOut], responses=RESPONSES)
def list_requests(
    who: Caller,
    request: Request,
    product: Annotated[str | None, Query(pattern=SLUG, max_length=63)] = None,
    status: Annotated[
        str | None, Query(pattern="^(pending|approved|denied|revoked|expired)$")
    ] = None,
) -> Response:
    """The caller's own requests and those of the products it owns."""
    ctx = _context(request)
    shown = []
    for found in access.list_requests(ctx.store, product, status=status):
        owned = found.product in ctx.registry.products and access.is_owner(
            ctx.registry.products[found.product], who.id, who.roles
        )
        if owned or found.consumer == who.id:
            shown.append(found.to_dict())
    return json_response(shown)


@router.post("/requests/{request_id}/approve", response_model=AccessRequestOut, responses=RESPONSES)
def approve_request(
    request_id: RequestId, body: Approval, who: Caller, request: Request
) -> Response:
    """Approve a pending request as an owner (optionally narrowed)."""
    done = access.approve(
        _context(request),
        request_id,
        approver=who.id,
        roles=who.roles,
        ports=body.ports,
        rows=body.rows,
        keep_masking=body.keep_masking,
        reason=body.reason,
    )
    return json_response(done.to_dict())


@router.post("/requests/{request_id}/deny", response_model=AccessRequestOut, responses=RESPONSES)
def deny_request(request_id: RequestId, body: Decision, who: Caller, request: Request) -> Response:
    """Deny a pending request as an owner, with a reason."""
    done = access.deny(
        _context(request), request_id, approver=who.id, roles=who.roles, reason=body.reason
    )
    return json_response(done.to_dict())


@router.post("/requests/{request_id}/revoke", response_model=AccessRequestOut, responses=RESPONSES)
def revoke_request(
    request_id: RequestId, body: Decision, who: Caller, request: Request
) -> Response:
    """Revoke an approved grant (an owner, or its consumer giving it up)."""
    done = access.revoke(
        _context(request), request_id, by=who.id, roles=who.roles, reason=body.reason
    )
    return json_response(done.to_dict())
