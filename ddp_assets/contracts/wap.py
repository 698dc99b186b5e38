"""Write-audit-publish: output ports are built in staging, audited, then published atomically.

- **write**: dbt (or a Python model) builds an output port's model into the staging schema
  ``<product>__staging`` (:func:`staging_schema`);
- **audit**: the contract's checks run against the staging relation;
- **publish**: :func:`publish` copies staging to ``<product>.<model>`` inside one database
  transaction (DuckDB or PostgreSQL, through :mod:`ddp_assets.warehouse`), with a record of
  the published version (rows, content checksum, contract version, run id) in
  ``_ddp.published_versions``. Every audit is recorded in ``_ddp.audits``,
  so an input port can check its upstream's latest audit before its product runs.

A failed audit, a failed build or a killed process never reaches the published relation: it
is only ever replaced by a committed transaction, and the database rolls back an uncommitted
one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from ddp_assets.naming import META_SCHEMA as META_SCHEMA
from ddp_assets.naming import STAGING_SUFFIX as STAGING_SUFFIX
from ddp_assets.naming import staging_schema as staging_schema
from ddp_assets.warehouse import Connection, quote, relation, warehouse_of
from ddp_assets.warehouse import relation_exists as relation_exists


@dataclass(frozen=True)
class PublishedVersion:
    """What a consumer reads at ``<product>.<model>``: which build, which contract, which rows."""

    product: str
    port: str
    relation: str
    rows: int
    checksum: str
    contract_id: str
    contract_version: str
    run_id: str
    published_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Audit:
    """The latest audit of an output port (passed or not, and which blocking checks failed)."""

    product: str
    port: str
    contract_id: str
    contract_version: str
    run_id: str
    passed: bool
    failed_checks: list[str]
    audited_at: str


_PUBLISHED_COLUMNS = (
    "product varchar, port varchar, relation varchar, rows bigint, checksum varchar, "
    "contract_id varchar, contract_version varchar, run_id varchar, published_at varchar"
)
_AUDIT_COLUMNS = (
    "product varchar, port varchar, contract_id varchar, contract_version varchar, "
    "run_id varchar, passed boolean, failed_checks varchar, audited_at varchar"
)


def _names(columns: str) -> str:
    return ", ".join(part.split()[0] for part in columns.split(","))


def ensure_meta(connection: Connection) -> None:
    warehouse = warehouse_of(connection)
    connection.execute(f"create schema if not exists {quote(META_SCHEMA)}")
    connection.execute(
        warehouse.meta_table_ddl(relation(META_SCHEMA, "published_versions"), _PUBLISHED_COLUMNS)
    )
    connection.execute(warehouse.meta_table_ddl(relation(META_SCHEMA, "audits"), _AUDIT_COLUMNS))


def _meta_exists(connection: Connection, table: str) -> bool:
    return relation_exists(connection, META_SCHEMA, table)


def checksum(connection: Connection, schema: str, table: str) -> tuple[int, str]:
    """Row count and an order-independent content checksum, computed in the warehouse."""
    return warehouse_of(connection).checksum(connection, schema, table)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record_audit(
    connection: Connection,
    *,
    product: str,
    port: str,
    contract_id: str,
    contract_version: str,
    run_id: str,
    failed_checks: list[str],
) -> Audit:
    ensure_meta(connection)
    audit = Audit(
        product,
        port,
        contract_id,
        contract_version,
        run_id,
        not failed_checks,
        failed_checks,
        _now(),
    )
    connection.execute(
        f"insert into {relation(META_SCHEMA, 'audits')} ({_names(_AUDIT_COLUMNS)}) "
        "values (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            product,
            port,
            contract_id,
            contract_version,
            run_id,
            audit.passed,
            json.dumps(failed_checks),
            audit.audited_at,
        ],
    )
    return audit


def publish(
    connection: Connection,
    *,
    product: str,
    port: str,
    model: str,
    contract_id: str,
    contract_version: str,
    run_id: str,
) -> PublishedVersion:
    """Replace ``<product>.<model>`` with the audited staging relation, in one transaction."""
    ensure_meta(connection)
    warehouse = warehouse_of(connection)
    staging = staging_schema(product)
    with warehouse.transaction(connection):
        connection.execute(f"create schema if not exists {quote(product)}")
        warehouse.copy_table(connection, staging, model, product, model)
        rows, digest = checksum(connection, product, model)
        version = PublishedVersion(
            product,
            port,
            f"{product}.{model}",
            rows,
            digest,
            contract_id,
            contract_version,
            run_id,
            _now(),
        )
        connection.execute(
            f"insert into {relation(META_SCHEMA, 'published_versions')} "
            f"({_names(_PUBLISHED_COLUMNS)}) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                version.product,
                version.port,
                version.relation,
                version.rows,
                version.checksum,
                version.contract_id,
                version.contract_version,
                version.run_id,
                version.published_at,
            ],
        )
    return version


def published_version(connection: Connection, product: str, port: str) -> PublishedVersion | None:
    """The version consumers read now, or None if the port was never published."""
    if not _meta_exists(connection, "published_versions"):
        return None
    row = connection.execute(
        f"select {_names(_PUBLISHED_COLUMNS)} from {relation(META_SCHEMA, 'published_versions')} "
        "where product = ? and port = ? "
        f"order by published_at desc, {warehouse_of(connection).insertion_order} desc limit 1",
        [product, port],
    ).fetchone()
    return PublishedVersion(*row) if row else None


def latest_audit(connection: Connection, product: str, port: str) -> Audit | None:
    if not _meta_exists(connection, "audits"):
        return None
    row = connection.execute(
        f"select {_names(_AUDIT_COLUMNS)} from {relation(META_SCHEMA, 'audits')} "
        "where product = ? and port = ? "
        f"order by audited_at desc, {warehouse_of(connection).insertion_order} desc limit 1",
        [product, port],
    ).fetchone()
    if row is None:
        return None
    product, port, contract_id, contract_version, run_id = row[:5]
    return Audit(
        product,
        port,
        contract_id,
        contract_version,
        run_id,
        bool(row[5]),
        json.loads(row[6]),
        row[7],
    )
