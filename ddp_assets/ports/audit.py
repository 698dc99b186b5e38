"""The access log: every read of a port, allowed or denied (the products' control port)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from ddp_assets.ports.store import Store


@dataclass(frozen=True)
class AccessRecord:
    at: str
    consumer: str | None
    product: str | None
    port: str | None
    channel: str  # rest | sql | file
    action: str  # e.g. 'read', 'schema', 'list', 'export', 'query'
    rows: int | None
    allowed: bool
    status: int
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record(
    store: Store,
    *,
    consumer: str | None,
    product: str | None,
    port: str | None,
    channel: str,
    action: str,
    allowed: bool,
    status: int,
    rows: int | None = None,
    reason: str | None = None,
) -> None:
    store.execute(
        "insert into audit (at, consumer, product, port, channel, action, rows, allowed, status, "
        "reason) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            datetime.now(UTC).isoformat(timespec="milliseconds"),
            consumer,
            product,
            port,
            channel,
            action,
            rows,
            int(allowed),
            status,
            reason[:500] if reason else None,
        ),
    )


def read(
    store: Store,
    product: str | None = None,
    *,
    consumer: str | None = None,
    denied_only: bool = False,
    limit: int = 100,
) -> list[AccessRecord]:
    """The latest accesses, newest first."""
    where, params = ["1 = 1"], []
    if product is not None:
        where.append("product = ?")
        params.append(product)
    if consumer is not None:
        where.append("consumer = ?")
        params.append(consumer)
    if denied_only:
        where.append("allowed = 0")
    rows = store.execute(
        "select at, consumer, product, port, channel, action, rows, allowed, status, reason "
        f"from audit where {' and '.join(where)} order by id desc limit ?",
        (*params, limit),
    )
    return [
        AccessRecord(
            str(at),
            c,  # type: ignore[arg-type]
            p,  # type: ignore[arg-type]
            port,  # type: ignore[arg-type]
            str(ch),
            str(ac),
            None if n is None else int(n),  # type: ignore[arg-type]
            bool(ok),
            int(st),  # type: ignore[arg-type]
            r,  # type: ignore[arg-type]
        )
        for at, c, p, port, ch, ac, n, ok, st, r in rows
    ]
