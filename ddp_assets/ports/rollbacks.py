"""What follows a rollback's pointer move (``ddp rollback``), as after a publish.

:func:`~ddp_assets.contracts.rollback.rollback` moves the published views in the warehouse;
:func:`announce` then tells everyone who reads them:

- the ports' audit log (``ddp audit``, channel ``control``): who, which versions, why;
- Dagster: an ``AssetMaterialization`` of each moved port (metadata ``ddp/version``,
  ``ddp/rolled_back_from``, ``ddp/reason``, ...; ``report_runless_asset_event``), so the asset's
  history in the UI shows the rollback. It is what a publish leaves too, so the consumers'
  automation conditions and the ports' refresh sensor (``ddp_ports_refresh``, which rebuilds
  the serving snapshot and the SQL ports) react to a rollback as to a publish;
- OpenLineage: a run of the job ``<product>.rollback`` (:mod:`ddp_assets.lineage.rollback`).

Lineage never fails a rollback: an error there is returned, not raised.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import dagster as dg

from ddp_assets.contracts.rollback import RollbackResult
from ddp_assets.naming import port_key
from ddp_assets.ports.audit import record
from ddp_assets.ports.store import Store
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.registry import Registry


@dataclass
class Announced:
    rollback_id: str
    materializations: list[dg.AssetKey] = field(default_factory=list)
    lineage: str = ""  # the emission's status (emitted, disabled, ...) or the error


def materialization(product: str, result: RollbackResult, index: int) -> dg.AssetMaterialization:
    """The Dagster event of one moved port."""
    move = result.moves[index]
    before = move.current.version if move.current else None
    reason = result.reason
    forced = result.forced and bool(result.consumers_refused)
    return dg.AssetMaterialization(
        asset_key=port_key(product, move.model),
        description=f"rolled back from v{before} to v{move.target.version}"
        + (f": {reason}" if reason else ""),
        metadata={
            "ddp/version": move.target.version,
            "ddp/product_version": move.target.product_version,
            "ddp/rolled_back_from": before,
            "ddp/reason": reason,
            "ddp/actor": result.actor,
            "ddp/forced": forced,
            "ddp/action": "rollback",
            "dagster/row_count": move.target.rows,
            "ddp/published_checksum": move.target.checksum,
            "ddp/published_run_id": move.target.run_id,
            "ddp/contract_version": move.target.contract_version,
        },
    )


def announce(
    paths: ProjectPaths,
    registry: Registry,
    result: RollbackResult,
    instance: dg.DagsterInstance,
    store: Store | None = None,
) -> Announced:
    """Audit log, Dagster materializations and OpenLineage events of a done rollback."""
    announced = Announced(str(uuid.uuid4()))
    own_store = store is None
    store = store or Store.open(paths)
    try:
        for index, move in enumerate(result.moves):
            before = move.current.version if move.current else None
            record(
                store,
                consumer=result.actor,
                product=result.product,
                port=move.port,
                channel="control",
                action="rollback",
                allowed=True,
                status=200,
                reason=f"v{before} -> v{move.target.version}"
                + (" (forced)" if result.forced and result.consumers_refused else "")
                + (f": {result.reason}" if result.reason else ""),
            )
            event = materialization(result.product, result, index)
            instance.report_runless_asset_event(event)
            announced.materializations.append(event.asset_key)
    finally:
        if own_store:
            store.close()
    announced.lineage = _lineage(paths, registry, result, instance, announced.rollback_id)
    return announced


def _lineage(
    paths: ProjectPaths,
    registry: Registry,
    result: RollbackResult,
    instance: dg.DagsterInstance,
    rollback_id: str,
) -> str:
    from ddp_assets.lineage.rollback import MovedPort, emit_rollback_lineage, rollback_events

    try:
        moved = [
            MovedPort(
                m.port,
                m.model,
                m.current.version if m.current else None,
                int(m.target.version or 0),
                m.target.stored_as or "",
                m.target.rows,
                m.target.contract_id,
            )
            for m in result.moves
        ]
        events = rollback_events(
            paths,
            registry,
            result.product,
            moved,
            rollback_id=rollback_id,
            actor=result.actor,
            reason=result.reason,
        )
        emitted = emit_rollback_lineage(instance, rollback_id, events)
    except Exception as error:  # lineage never fails a rollback
        return f"error: {type(error).__name__}: {error}"
    return emitted.notice or emitted.status
