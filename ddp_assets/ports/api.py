"""The ports' Python API behind ``ddp ports``: build the ports, query and export as a consumer.

Each call that reads data on a consumer's behalf authenticates its token and writes the audit
log, allowed or denied, as the REST server does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ddp_assets.ports import access, audit, tokens
from ddp_assets.ports.files import ExportedPort, FileFormat, export_port
from ddp_assets.ports.policy import Consumer, PortError, resolve
from ddp_assets.ports.serving import (
    ServedPort,
    Serving,
    build_snapshot,
    clean_stale_builds,
    mask_salt,
    serving_path,
)
from ddp_assets.ports.sql_guard import QueryLimits
from ddp_assets.ports.sql_port import (
    QueryResult,
    build_sql_port,
    remove_sql_port,
    run_query,
    sql_ports_dir,
)
from ddp_assets.ports.store import Store
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.registry import Registry


@dataclass
class BuildReport:
    snapshot: list[ServedPort]
    sql_ports: dict[str, list[ServedPort]] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)


def build_ports(
    paths: ProjectPaths, registry: Registry, store: Store, consumers: list[str] | None = None
) -> BuildReport:
    """Refresh the serving snapshot, then the SQL port of every consumer with a token.

    Consumers whose tokens were all revoked lose their SQL port file.
    """
    report = BuildReport(build_snapshot(paths, registry))
    clean_stale_builds(sql_ports_dir(paths))  # left by a killed build
    salt = mask_salt(paths)
    active = {c.id: c for c in tokens.active_consumers(store)}
    for consumer_id in consumers or sorted(active):
        consumer = active.get(consumer_id)
        if consumer is None:
            raise PortError(
                404,
                f"consumer '{consumer_id}' has no active token",
                "issue one with 'ddp token issue' first",
            )
        report.sql_ports[consumer_id] = build_sql_port(paths, registry, consumer, salt)
    if consumers is None:
        folder = sql_ports_dir(paths)
        for path in sorted(folder.glob("*.duckdb")) if folder.is_dir() else []:
            if path.stem not in active and remove_sql_port(paths, path.stem):
                report.removed.append(path.stem)
    return report


def _denied(
    store: Store,
    error: PortError,
    consumer: Consumer,
    product: str | None,
    port: str | None,
    channel: str,
    action: str,
) -> PortError:
    """Record a refused access of ``consumer`` in the audit log; the error to raise."""
    audit.record(
        store,
        consumer=consumer.id,
        product=product,
        port=port,
        channel=channel,
        action=action,
        allowed=False,
        status=error.status,
        reason=error.message,
    )
    return error


def authenticate(store: Store, token: str | None, channel: str) -> Consumer:
    consumer = tokens.authenticate(store, token)
    if consumer is None:
        audit.record(
            store,
            consumer=None,
            product=None,
            port=None,
            channel=channel,
            action="authenticate",
            allowed=False,
            status=401,
            reason="no token" if not token else "unknown or revoked token",
        )
        raise PortError(
            401,
            "authentication required: unknown or revoked token" if token else "no token given",
            "pass --token or set DDP_TOKEN to a token from 'ddp token issue'",
        )
    return consumer


def query(
    paths: ProjectPaths,
    store: Store,
    token: str | None,
    sql: str,
    max_rows: int = 10_000,
    limits: QueryLimits | None = None,
) -> QueryResult:
    """Run SQL in the token's consumer's SQL port; one audit row per port it reads.

    ``limits``: the query's time and memory bounds (default: from the environment).
    """
    consumer = authenticate(store, token, "sql")
    access.expire_due(paths, store, consumer.id)  # an expired grant's tables go first
    try:
        result = run_query(paths, consumer, sql, max_rows, limits)
    except PortError as error:
        # a refused or aborted query is denied for every port it named
        for product, port in getattr(error, "ports", None) or [(None, None)]:
            _denied(store, error, consumer, product, port, "sql", "query")
        raise
    for product, port in result.ports or [(None, None)]:
        audit.record(
            store,
            consumer=consumer.id,
            product=product,
            port=port,
            channel="sql",
            action="query",
            allowed=True,
            status=200,
            rows=len(result.rows),
        )
    return result


def export(
    paths: ProjectPaths,
    registry: Registry,
    store: Store,
    token: str | None,
    product_id: str,
    port: str,
    out_dir: Path,
    file_format: FileFormat = "parquet",
    version: int | None = None,
    as_of: str | None = None,
) -> ExportedPort:
    """Export a port as the token's consumer sees it (the file port); ``version`` or
    ``as_of``: a retained version (:mod:`ddp_assets.ports.versions`), same policy."""
    consumer = authenticate(store, token, "file")

    def denied(error: PortError) -> PortError:
        return _denied(store, error, consumer, product_id, port, "file", "export")

    product = registry.products.get(product_id)
    if product is None:
        raise denied(PortError(404, f"no product '{product_id}'"))
    try:
        access = resolve(product, port, consumer)
    except PortError as error:
        raise denied(error) from None
    serving = Serving(serving_path(paths))
    served = serving.ports().get((product_id, port))
    if served is None:
        raise denied(
            PortError(
                404,
                f"port '{product_id}.{port}' has no published version yet",
                "materialize the product, then run 'ddp ports build'",
            )
        )
    with serving.cursor() as (cursor, _):
        source, chosen = None, None
        if version is not None or as_of is not None:
            from ddp_assets.ports.serving import SNAPSHOT
            from ddp_assets.ports.versions import travel

            try:
                source, access, chosen = travel(
                    cursor,
                    SNAPSHOT,
                    access,
                    serving.history(product_id, port),
                    version=version,
                    as_of=as_of,
                )
            except PortError as error:
                raise denied(error) from None
        exported = export_port(
            cursor,
            product,
            access,
            served,
            mask_salt(paths),
            out_dir,
            file_format,
            source=source,
            version=chosen,
        )
    audit.record(
        store,
        consumer=consumer.id,
        product=product_id,
        port=port,
        channel="file",
        action="export",
        allowed=True,
        status=200,
        rows=exported.rows,
    )
    return exported
