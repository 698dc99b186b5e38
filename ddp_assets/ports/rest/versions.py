"""The REST port's version history: ``GET /products/{product}/ports/{port}/versions``.

The versions of a port the caller is granted (number, product version, contract version, run,
when published, dropped or retained, which one is published) and its publishes and rollbacks.
Any retained one is read with ``?version=N`` (or ``?as_of=``) on ``/rows``, ``/file`` and the
port itself (:mod:`ddp_assets.ports.versions`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ddp_assets.ports.policy import PortError, resolve
from ddp_assets.ports.rest import models
from ddp_assets.ports.rest.app import ERRORS, Caller, PortName, ProductId, ServerState
from ddp_assets.ports.rest.app import json_response as json_response
from ddp_assets.ports.serving import SnapshotMissing, partial_view

router = APIRouter(tags=["ports"])


@router.get(
    "/products/{product}/ports/{port}/versions",
    response_model=models.PortVersions,
    responses=ERRORS,
)
def get_versions(product: ProductId, port: PortName, who: Caller, request: Request) -> Response:
    """The port's versions (retained ones readable with ?version=N or ?as_of=) and its
    publishes and rollbacks."""
    state: ServerState = request.app.state.ddp
    try:
        access = resolve(state.product(product), port, who)
        versions, moves = state.serving.history(product, port)
    except PortError as error:
        state.record(who.id, product, port, "versions", error.status, None, error.message)
        raise
    except SnapshotMissing:
        state.record(who.id, product, port, "versions", 503, None, "no serving snapshot")
        raise
    # a whole version's count would tell what a row filter hides, its checksum what masks hide
    filtered, partial = access.row_filter is not None, partial_view(access)
    listed = []
    for v in versions:
        shown = v.to_dict()
        shown["rows"] = None if filtered else shown["rows"]
        shown["checksum"] = None if partial else shown["checksum"]
        listed.append(shown)
    state.record(who.id, product, port, "versions", 200, len(listed))
    return json_response(
        {
            "product": product,
            "port": port,
            "versions": listed,
            "moves": [
                {
                    "version": m.version,
                    "previous_version": m.previous_version,
                    "action": m.action,
                    "reason": m.reason,
                    "moved_at": m.moved_at,
                }
                for m in moves
            ],
        }
    )
