"""Access requests (a control port): a consumer asks, an owner approves or denies, and an
approval is a grant the policy engine enforces at once.

Requests and the grants they become live in a *grants store* beside the spec's grants: a table
of the ports' SQLite store (:mod:`ddp_assets.ports.store`), not a patch to ``defs.yaml``. An
approval works the moment it is given, an expiry on time and a revocation at once, without a
review, a merge and a redeploy between an owner's decision and its effect; the spec's grants
stay the reviewed baseline, and every step of a request is in the audit log (docs/ports.md,
"Access requests"). :func:`store_grants` is what the policy engine
(:func:`ddp_assets.ports.policy.product_grants`) adds to a product's grants: the approved,
unexpired ones, read at every resolve, so REST and the file port stop serving an expired grant
on the second it expires. The SQL port is a file built per consumer: an approval, a revocation
and :func:`sweep_expired` rebuild that consumer's file.

Every step (request, approval, denial, revocation, expiry) is written to the audit log
(``action`` ``access_request`` … ``access_expire``, ``channel`` the way it came: cli, rest,
mcp; ``reason`` says who and why) and sent to the alert sinks for the product's owners.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ddp_assets.ports import audit
from ddp_assets.ports.policy import (
    CLEAR_CLASSIFICATIONS,
    Consumer,
    PortError,
    grant_covers,
    port_columns,
)
from ddp_assets.ports.store import Store, ports_dir
from ddp_assets.settings import ProjectNotFound, ProjectPaths, find_project_root
from ddp_assets.spec.errors import SpecErrors, SpecProblem, did_you_mean, relative
from ddp_assets.spec.grants import condition_values
from ddp_assets.spec.model import LIST_OPS, NO_VALUE_OPS, Grant, RowCondition
from ddp_assets.spec.registry import Product, Registry

SCHEMA = (
    """create table if not exists access_requests (
    id text primary key,
    product text not null,
    ports text not null,
    consumer text not null,
    purpose text not null,
    columns text not null default '[]',
    clearance text not null default '[]',
    until text,
    requested_by text not null,
    requested_at text not null,
    via text not null,
    status text not null,
    decided_by text,
    decided_at text,
    reason text,
    granted_ports text,
    rows text,
    cleared_for text,
    ended_by text,
    ended_at text
)""",
    "create index if not exists access_requests_product on access_requests(product, status)",
    "create index if not exists access_requests_consumer on access_requests(consumer, status)",
)
STATUSES = ("pending", "approved", "denied", "revoked", "expired")
ACTIONS = ("access_request", "access_approve", "access_deny", "access_revoke", "access_expire")
MAX_TEXT = 1000
NOTIFICATIONS = "access.jsonl"
_COLUMNS = (
    "id, product, ports, consumer, purpose, columns, clearance, until, requested_by, "
    "requested_at, via, status, decided_by, decided_at, reason, granted_ports, rows, "
    "cleared_for, ended_by, ended_at"
)


class AccessError(PortError):
    """An access step refused (bad input, not an owner, own request): nothing is granted."""


@dataclass(frozen=True)
class AccessRequest:
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def expired(self, now: datetime | None = None) -> bool:
        return self.until is not None and _parse_at(self.until) <= (now or _now())

    @property
    def active(self) -> bool:
        return self.status == "approved" and not self.expired()

    def grant(self) -> Grant:
        """The grant an approved request is (its consumer, ports, row filter, clearances)."""
        return Grant(
            to=self.consumer,
            ports=list(self.granted_ports or self.ports),
            rows=[RowCondition.model_validate(r) for r in self.rows or []],
            cleared_for=list(self.cleared_for or []),
        )


# -- the store ---------------------------------------------------------------------------

_READY: weakref.WeakSet[Store] = weakref.WeakSet()


def _ready(store: Store) -> Store:
    if store not in _READY:
        for statement in SCHEMA:
            store.execute(statement)
        _READY.add(store)
    return store


def _now() -> datetime:
    return datetime.now(UTC)


def _at(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _parse_at(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _row(values: tuple[object, ...]) -> AccessRequest:
    (rid, product, ports, consumer, purpose, columns, clearance, until, by, at, via, status) = (
        values[:12]
    )
    decided_by, decided_at, reason, granted, rows, cleared, ended_by, ended_at = values[12:]

    def listed(text: object) -> Any:
        return None if text is None else json.loads(str(text))

    return AccessRequest(
        str(rid),
        str(product),
        listed(ports),
        str(consumer),
        str(purpose),
        listed(columns),
        listed(clearance),
        None if until is None else str(until),
        str(by),
        str(at),
        str(via),
        str(status),
        None if decided_by is None else str(decided_by),
        None if decided_at is None else str(decided_at),
        None if reason is None else str(reason),
        listed(granted),
        listed(rows),
        listed(cleared),
        None if ended_by is None else str(ended_by),
        None if ended_at is None else str(ended_at),
    )


def get_request(store: Store, request_id: str) -> AccessRequest:
    rows = _ready(store).execute(
        f"select {_COLUMNS} from access_requests where id = ?", (request_id,)
    )
    if not rows:
        pending = [r.id for r in list_requests(store, status="pending")][:5]
        raise AccessError(
            404,
            f"no access request {request_id[:40]!r}",
            "see them with 'ddp access requests'"
            + (f" (pending: {', '.join(pending)})" if pending else ""),
        )
    return _row(rows[0])


def list_requests(
    store: Store,
    product: str | None = None,
    *,
    status: str | None = None,
    consumer: str | None = None,
) -> list[AccessRequest]:
    """Requests, oldest first (``status`` one of :data:`STATUSES`)."""
    where, params = ["1 = 1"], []
    for column, value in (("product", product), ("status", status), ("consumer", consumer)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    rows = _ready(store).execute(
        f"select {_COLUMNS} from access_requests where {' and '.join(where)} "
        "order by requested_at, id",
        tuple(params),
    )
    return [_row(r) for r in rows]


@lru_cache(maxsize=256)
def _project_root(folder: Path) -> Path | None:
    try:
        root = find_project_root(folder)
    except ProjectNotFound:
        return None
    return root if folder.is_relative_to(root) else None  # not a fallback to the checkout


_STORES: dict[Path, Store] = {}


def store_grants(product: Product, now: datetime | None = None) -> list[Grant]:
    """The grants of ``product``'s approved, unexpired access requests, from the grants store
    of its project (none when the project has no store yet: reading never creates one)."""
    return [grant for grant, _ in store_grants_until(product, now)]


def store_grants_until(
    product: Product, now: datetime | None = None
) -> list[tuple[Grant, str | None]]:
    """:func:`store_grants` with each grant's expiry (ISO UTC, or None): for a compiler whose
    output outlives this moment (the PostgreSQL views check the expiry when read)."""
    root = _project_root(product.folder.resolve())
    if root is None:
        return []
    path = ports_dir(ProjectPaths(root)) / "access.sqlite"  # DDP_DATA_DIR is read each time
    if not path.exists():
        return []
    store = _STORES.get(path)
    if store is None:
        store = _STORES[path] = Store(path)
    moment = _at(now or _now())
    rows = _ready(store).execute(
        f"select {_COLUMNS} from access_requests where product = ? and status = 'approved' "
        "and (until is null or until > ?) order by decided_at, id",
        (product.id, moment),
    )
    return [(request.grant(), request.until) for request in map(_row, rows)]


# -- checks ------------------------------------------------------------------------------


def _product(registry: Registry, product_id: str) -> Product:
    product = registry.products.get(product_id)
    if product is None:
        raise AccessError(
            404,
            f"no product '{product_id[:80]}'",
            did_you_mean(product_id, registry.products)
            or f"products: {', '.join(sorted(registry.products))}",
        )
    return product


def _text(value: str, what: str) -> str:
    text = value.strip()
    if not text:
        raise AccessError(400, f"{what} is empty", f"say {what} in a sentence")
    if len(text) > MAX_TEXT or "\x00" in text:
        raise AccessError(400, f"{what} is too long or holds a NUL byte", f"under {MAX_TEXT} chars")
    return text


def _known_consumer(store: Store, consumer: str) -> tuple[str, ...]:
    rows = store.execute("select roles from consumers where id = ?", (consumer,))
    if not rows:
        raise AccessError(
            404,
            f"unknown consumer '{consumer[:100]}'",
            f"a consumer exists once it holds a token: ddp token issue {consumer[:100]}",
        )
    return tuple(json.loads(str(rows[0][0])))


def _ports(product: Product, ports: Sequence[str]) -> list[str]:
    names = [p.name for p in product.spec.output_ports]
    if not ports or "*" in ports:
        return names
    chosen: list[str] = []
    for port in ports:
        if port not in names:
            raise AccessError(
                404,
                f"product '{product.id}' has no output port '{port[:80]}'",
                did_you_mean(port, names) or f"its output ports: {', '.join(names)}",
            )
        if port not in chosen:
            chosen.append(port)
    return chosen


def parse_until(text: str | None, now: datetime | None = None) -> str | None:
    """An expiry as an ISO timestamp (UTC): a date means through that day, a datetime that
    moment (UTC unless it says otherwise); it must be in the future."""
    if text is None or not text.strip():
        return None
    raw = text.strip()
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        else:
            moment = _parse_at(raw)
        at = _at(moment)
    except (ValueError, OverflowError):
        raise AccessError(
            400,
            f"--until {raw[:40]!r} is not a date or a timestamp",
            "e.g. 2027-01-31 (through that day) or 2027-01-31T18:00:00Z",
        ) from None
    if moment <= (now or _now()):
        raise AccessError(400, f"--until {raw[:40]} is in the past", "give a future date")
    return at


def _cleared(grants: Iterable[Grant], principals: frozenset[str], port: str) -> set[str]:
    return {
        c.lower()
        for g in grants
        if g.to in principals and grant_covers(g, port)
        for c in g.cleared_for
    }


def _columns_check(
    product: Product,
    ports: list[str],
    consumer: Consumer,
    columns: Sequence[str],
    clearance: Sequence[str],
) -> list[str]:
    """The requested columns must exist; any a contract classifies above the consumer's
    clearance must be named in ``clearance`` (the consumer says it asks to read it in clear)."""
    from ddp_assets.ports.policy import product_grants

    grants = product_grants(product)
    known: dict[str, dict[str, str | None]] = {}
    for port in ports:
        try:
            found, _ = port_columns(product, port)
        except (SpecErrors, OSError):
            raise AccessError(
                400, f"the contract of '{product.id}.{port}' cannot be read", "ddp validate"
            ) from None
        known[port] = {c.name: c.classification for c in found}
    levels = {level for cols in known.values() for level in cols.values() if level}
    asked = {c.strip().lower() for c in clearance if c.strip()}
    for level in sorted(asked):
        if level not in levels and level != "*":
            raise AccessError(
                400,
                f"--clearance {level[:40]!r}: no column of the requested ports is classified so",
                f"their classifications: {', '.join(sorted(levels)) or 'none'}",
            )
    chosen: list[str] = []
    for name in columns:
        holders = [port for port, cols in known.items() if name in cols]
        if not holders:
            every = sorted({c for cols in known.values() for c in cols})
            raise AccessError(
                400,
                f"column {name[:80]!r} is in none of the requested ports "
                f"({', '.join(f'{product.id}.{p}' for p in ports)})",
                did_you_mean(name, every) or f"their columns: {', '.join(every)}",
            )
        for port in holders:
            level = known[port][name]
            if level is None or level in CLEAR_CLASSIFICATIONS:
                continue
            cleared = _cleared(grants, consumer.principals, port)
            if level in cleared or "*" in cleared or level in asked or "*" in asked:
                continue
            raise AccessError(
                400,
                f"column '{name}' of '{product.id}.{port}' is classified '{level}', above "
                f"consumer '{consumer.id}''s clearance",
                f"say so: add --clearance {level} (the owners decide whether you read it in "
                "clear), or leave the column out (a granted port shows it masked)",
            )
        if name not in chosen:
            chosen.append(name)
    return chosen


def parse_rows(product: Product, ports: Sequence[str], rows: Sequence[str]) -> list[RowCondition]:
    """Row conditions ``column:op:value`` (``in``: comma-separated values), checked against
    the columns and types of every port they cover (as ``ddp validate`` checks a spec's)."""
    conditions: list[RowCondition] = []
    for text in rows:
        parts = text.split(":", 2)
        if len(parts) < 2:
            raise AccessError(
                400,
                f"row filter {text[:80]!r} is not <column>:<op>:<value>",
                "e.g. --rows country:in:DE,FR or --rows segment:eq:smb",
            )
        column, op = parts[0], parts[1].strip().lower()
        value: Any = None
        if op not in NO_VALUE_OPS and len(parts) == 3:
            value = parts[2].split(",") if op in LIST_OPS else parts[2]
            if any(not v.strip() for v in (value if op in LIST_OPS else [value])):
                raise AccessError(
                    400,
                    f"row filter {text[:80]!r} has an empty value",
                    f"give the value(s) after '{op}:'"
                    + (", comma-separated, none empty: e.g. DE,FR" if op in LIST_OPS else ""),
                )
        try:
            condition = RowCondition.model_validate({"column": column, "op": op, "value": value})
        except ValidationError as error:
            item = error.errors(include_url=False)[0]
            message = (item.get("ctx") or {}).get("message", item["msg"])
            raise AccessError(
                400, f"row filter {text[:80]!r}: {message}", "e.g. --rows country:in:DE,FR"
            ) from None
        for port in ports:
            columns, _ = port_columns(product, port)
            types = {c.name: c.type for c in columns}
            if column not in types:
                raise AccessError(
                    400,
                    f"row filter on '{column}', which port '{product.id}.{port}' does not have",
                    did_you_mean(column, types) or f"its columns: {', '.join(types)}",
                )
            try:
                condition_values(condition, column, types[column])
            except ValueError as error:
                raise AccessError(400, f"row filter {text[:80]!r}: {error}") from None
        conditions.append(condition)
    return conditions


def is_owner(product: Product, who: str, roles: Sequence[str] = ()) -> bool:
    """``who`` is one of the product's owners (an email), or holds the role of an owning
    team (owner ``team:sales-analytics``, role ``sales-analytics``)."""
    owners = set(product.spec.owners)
    return who in owners or any(f"team:{role}" in owners for role in roles)


def default_identity() -> str | None:
    """Who runs the command: ``DDP_USER``, else ``git config user.email``."""
    found = os.environ.get("DDP_USER", "").strip()
    if found:
        return found
    try:
        done = subprocess.run(
            ["git", "config", "user.email"], capture_output=True, text=True, timeout=5, check=False
        )
    except OSError:
        return None
    return done.stdout.strip() or None


# -- the steps ---------------------------------------------------------------------------


@dataclass
class AccessContext:
    """What every step needs: the project, its registry and the ports' store; ``via`` is the
    channel the step came through (cli, rest, mcp)."""

    paths: ProjectPaths
    registry: Registry
    store: Store
    via: str = "cli"

    def __post_init__(self) -> None:
        _ready(self.store)


def _audit(
    ctx: AccessContext,
    action: str,
    request: AccessRequest | None,
    *,
    product: str | None,
    consumer: str | None,
    who: str | None,
    why: str | None,
    status: int = 200,
) -> None:
    ports = None if request is None else ",".join(request.granted_ports or request.ports)
    rid = f"request {request.id}" if request else "access"
    audit.record(
        ctx.store,
        consumer=consumer,
        product=product,
        port=ports,
        channel=ctx.via,
        action=action,
        allowed=status < 400,
        status=status,
        reason=f"{rid} by {who or '?'}: {why or '-'}",
    )


def _refused(
    ctx: AccessContext,
    action: str,
    error: AccessError,
    *,
    product: str | None,
    consumer: str | None,
    who: str | None,
    request: AccessRequest | None = None,
) -> AccessError:
    _audit(
        ctx,
        action,
        request,
        product=product,
        consumer=consumer,
        who=who,
        why=error.message,
        status=error.status,
    )
    return error


def notifications_file(paths: ProjectPaths) -> Path:
    """The JSON-lines sink of access notifications, beside the alerts' (``$DAGSTER_HOME/ddp``)."""
    from ddp_assets.automation.alerts import alerts_file

    return alerts_file(paths.dagster_home).with_name(NOTIFICATIONS)


def notify(ctx: AccessContext, kind: str, request: AccessRequest, message: str) -> None:
    """To the alert sinks (a JSON-lines file; ``DDP_ALERT_WEBHOOK`` too) for the owners; a
    webhook that cannot be reached does not undo the step (the file has the notification)."""
    from ddp_assets.automation.alerts import Alert, AlertSink

    product = ctx.registry.products.get(request.product)
    owners = list(product.spec.owners) if product else []
    sink = AlertSink(notifications_file(ctx.paths), os.environ.get("DDP_ALERT_WEBHOOK") or None)
    alert = Alert(
        kind=kind,
        key=f"access:{request.id}",
        product=request.product,
        message=message,
        details={"to": owners, "request": request.to_dict()},
    )
    with contextlib.suppress(OSError):
        sink.send(alert)


def refresh_sql_port(ctx: AccessContext, consumer: str) -> bool:
    """Rebuild ``consumer``'s SQL port from the serving snapshot (when it has an active token
    and a snapshot exists), so a grant's change reaches the SQL port at once."""
    from ddp_assets.ports import tokens
    from ddp_assets.ports.serving import mask_salt, serving_path
    from ddp_assets.ports.sql_port import build_sql_port

    active = {c.id: c for c in tokens.active_consumers(ctx.store)}
    if consumer not in active or not serving_path(ctx.paths).exists():
        return False
    build_sql_port(ctx.paths, ctx.registry, active[consumer], mask_salt(ctx.paths))
    return True


def apply_postgres(ctx: AccessContext, products: Iterable[str]) -> AccessError | None:
    """On a PostgreSQL warehouse, re-apply ``products``' port views and grants at once (and
    any product an earlier apply failed for); the error to raise when it failed (the decision
    stays recorded, the product pending: the next apply retries it)."""
    from ddp_assets.ports.postgres import ApplyError, apply_ports

    try:
        apply_ports(ctx.paths, ctx.registry, ctx.store, products)
    except ApplyError as error:
        return AccessError(503, f"recorded, but not yet in the warehouse: {error}", error.hint)
    return None


def request_access(
    ctx: AccessContext,
    product_id: str,
    ports: Sequence[str],
    *,
    consumer: str,
    purpose: str,
    columns: Sequence[str] = (),
    clearance: Sequence[str] = (),
    until: str | None = None,
    requested_by: str | None = None,
) -> AccessRequest:
    """File a pending request; :class:`AccessError` (audited) for bad input."""
    who = requested_by or consumer
    try:
        product = _product(ctx.registry, product_id)
        roles = _known_consumer(ctx.store, consumer)
        chosen = _ports(product, ports)
        text = _text(purpose, "the purpose")
        cols = _columns_check(product, chosen, Consumer(consumer, roles), columns, clearance)
        expiry = parse_until(until)
    except AccessError as error:
        raise _refused(
            ctx, "access_request", error, product=product_id, consumer=consumer, who=who
        ) from None
    request = AccessRequest(
        id="ar-" + secrets.token_hex(4),
        product=product.id,
        ports=chosen,
        consumer=consumer,
        purpose=text,
        columns=cols,
        clearance=sorted({c.strip().lower() for c in clearance if c.strip()}),
        until=expiry,
        requested_by=who,
        requested_at=_at(_now()),
        via=ctx.via,
        status="pending",
    )
    ctx.store.execute(
        "insert into access_requests (id, product, ports, consumer, purpose, columns, clearance, "
        "until, requested_by, requested_at, via, status) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
        "?, ?)",
        (
            request.id,
            request.product,
            json.dumps(request.ports),
            request.consumer,
            request.purpose,
            json.dumps(request.columns),
            json.dumps(request.clearance),
            request.until,
            request.requested_by,
            request.requested_at,
            request.via,
            request.status,
        ),
    )
    _audit(
        ctx,
        "access_request",
        request,
        product=product.id,
        consumer=consumer,
        who=who,
        why=text,
    )
    notify(
        ctx,
        "access_requested",
        request,
        f"{who} asks for {consumer}'s access to {product.id} "
        f"({', '.join(chosen)}): {text} — approve with 'ddp access approve {request.id}' or "
        f"deny with 'ddp access deny {request.id} --reason ...'",
    )
    return request


def _decider(
    ctx: AccessContext, request: AccessRequest, who: str | None, roles: Sequence[str]
) -> Product:
    product = _product(ctx.registry, request.product)
    if not who:
        raise AccessError(
            400, "who decides is not known", "pass --as OWNER (or set DDP_USER, git user.email)"
        )
    if who in (request.requested_by, request.consumer):
        others = [
            o for o in product.spec.owners if o not in (request.requested_by, request.consumer)
        ]
        raise AccessError(
            403,
            f"{who} cannot decide on their own request {request.id}",
            "another of the product's owners decides: " + ", ".join(others)
            if others
            else "the product has no other owner: add one to its owners first",
        )
    if not is_owner(product, who, roles):
        raise AccessError(
            403,
            f"{who} is not an owner of product '{product.id}'",
            "its owners decide: " + ", ".join(product.spec.owners),
        )
    return product


def _pending(request: AccessRequest, action: str) -> None:
    if request.status != "pending":
        raise AccessError(
            409,
            f"access request {request.id} is {request.status}, not pending",
            "see it with 'ddp access requests'"
            + ("; revoke an approved grant with 'ddp access revoke'" if action != "deny" else ""),
        )


def approve(
    ctx: AccessContext,
    request_id: str,
    *,
    approver: str | None,
    roles: Sequence[str] = (),
    ports: Sequence[str] = (),
    rows: Sequence[str] = (),
    keep_masking: bool = False,
    reason: str | None = None,
) -> AccessRequest:
    """Approve a pending request (optionally narrowed: fewer ports, a row filter, masking
    kept); the grant works at once on every port."""
    request = get_request(ctx.store, request_id)
    try:
        product = _decider(ctx, request, approver, roles)
        _pending(request, "approve")
        granted = list(request.ports)
        if ports:
            outside = [p for p in ports if p not in request.ports]
            if outside:
                raise AccessError(
                    400,
                    f"port(s) {', '.join(outside)} were not requested in {request.id}",
                    f"approve some of: {', '.join(request.ports)}",
                )
            granted = [p for p in request.ports if p in ports]
        conditions = parse_rows(product, granted, rows)
        why = _text(reason, "the reason") if reason else "approved"
    except AccessError as error:
        raise _refused(
            ctx,
            "access_approve",
            error,
            product=request.product,
            consumer=request.consumer,
            who=approver,
            request=request,
        ) from None
    cleared = [] if keep_masking else list(request.clearance)
    ctx.store.execute(
        "update access_requests set status = 'approved', decided_by = ?, decided_at = ?, "
        "reason = ?, granted_ports = ?, rows = ?, cleared_for = ? where id = ? "
        "and status = 'pending'",
        (
            approver,
            _at(_now()),
            why,
            json.dumps(granted),
            json.dumps([c.model_dump() for c in conditions]),
            json.dumps(cleared),
            request.id,
        ),
    )
    done = get_request(ctx.store, request.id)
    _audit(
        ctx,
        "access_approve",
        done,
        product=done.product,
        consumer=done.consumer,
        who=approver,
        why=why,
    )
    refresh_sql_port(ctx, done.consumer)
    failed = apply_postgres(ctx, [done.product])
    notify(
        ctx,
        "access_approved",
        done,
        f"{approver} approved {done.consumer}'s access to {done.product} "
        f"({', '.join(granted)}){' until ' + done.until if done.until else ''}: {why}",
    )
    if failed:
        raise failed
    return done


def deny(
    ctx: AccessContext,
    request_id: str,
    *,
    approver: str | None,
    reason: str,
    roles: Sequence[str] = (),
) -> AccessRequest:
    request = get_request(ctx.store, request_id)
    try:
        _decider(ctx, request, approver, roles)
        _pending(request, "deny")
        why = _text(reason, "the reason")
    except AccessError as error:
        raise _refused(
            ctx,
            "access_deny",
            error,
            product=request.product,
            consumer=request.consumer,
            who=approver,
            request=request,
        ) from None
    ctx.store.execute(
        "update access_requests set status = 'denied', decided_by = ?, decided_at = ?, "
        "reason = ? where id = ? and status = 'pending'",
        (approver, _at(_now()), why, request.id),
    )
    done = get_request(ctx.store, request.id)
    _audit(
        ctx,
        "access_deny",
        done,
        product=done.product,
        consumer=done.consumer,
        who=approver,
        why=why,
    )
    notify(ctx, "access_denied", done, f"{approver} denied request {done.id}: {why}")
    return done


def revoke(
    ctx: AccessContext,
    request_id: str,
    *,
    by: str | None,
    reason: str,
    roles: Sequence[str] = (),
) -> AccessRequest:
    """End an approved grant now (an owner, or the consumer giving it up)."""
    request = get_request(ctx.store, request_id)
    try:
        product = _product(ctx.registry, request.product)
        if not by:
            raise AccessError(400, "who revokes is not known", "pass --as OWNER")
        if by != request.consumer and not is_owner(product, by, roles):
            raise AccessError(
                403,
                f"{by} is not an owner of product '{product.id}'",
                "its owners revoke: " + ", ".join(product.spec.owners),
            )
        if request.status != "approved":
            raise AccessError(
                409,
                f"access request {request.id} is {request.status}: only an approved grant is "
                "revoked",
                "deny a pending request with 'ddp access deny'",
            )
        why = _text(reason, "the reason")
    except AccessError as error:
        raise _refused(
            ctx,
            "access_revoke",
            error,
            product=request.product,
            consumer=request.consumer,
            who=by,
            request=request,
        ) from None
    ctx.store.execute(
        "update access_requests set status = 'revoked', ended_by = ?, ended_at = ?, "
        "reason = ? where id = ? and status = 'approved'",
        (by, _at(_now()), why, request.id),
    )
    done = get_request(ctx.store, request.id)
    _audit(
        ctx, "access_revoke", done, product=done.product, consumer=done.consumer, who=by, why=why
    )
    refresh_sql_port(ctx, done.consumer)
    failed = apply_postgres(ctx, [done.product])
    notify(ctx, "access_revoked", done, f"{by} revoked grant {done.id}: {why}")
    if failed:
        raise failed
    return done


def sweep_expired(ctx: AccessContext, now: datetime | None = None) -> list[AccessRequest]:
    """Mark approved grants past their expiry as expired (audited, notified) and rebuild their
    consumers' SQL ports. REST and the file port already refuse them (the policy engine reads
    only unexpired grants); the SQL port is a file, rebuilt here."""
    moment = _at(now or _now())
    rows = ctx.store.execute(
        f"select {_COLUMNS} from access_requests where status = 'approved' "
        "and until is not null and until <= ?",
        (moment,),
    )
    expired = []
    for values in rows:
        request = _row(values)
        ctx.store.execute(
            "update access_requests set status = 'expired', ended_by = 'ddp', ended_at = ? "
            "where id = ? and status = 'approved'",
            (moment, request.id),
        )
        done = get_request(ctx.store, request.id)
        _audit(
            ctx,
            "access_expire",
            done,
            product=done.product,
            consumer=done.consumer,
            who="ddp",
            why=f"expired at {done.until}",
        )
        notify(ctx, "access_expired", done, f"grant {done.id} expired at {done.until}")
        expired.append(done)
    for consumer in sorted({r.consumer for r in expired}):
        refresh_sql_port(ctx, consumer)
    if expired:  # a failure leaves the products pending: the expiry sensor retries them
        apply_postgres(ctx, sorted({r.product for r in expired}))
    return expired


def expire_due(paths: ProjectPaths, store: Store, consumer: str, via: str = "sql") -> bool:
    """Before a query on ``consumer``'s SQL port: sweep when one of its grants is past its
    expiry (one indexed read otherwise), so the SQL port stops serving it on time, as REST
    does, without waiting for the sensor."""
    due = _ready(store).execute(
        "select 1 from access_requests where consumer = ? and status = 'approved' "
        "and until is not null and until <= ? limit 1",
        (consumer, _at(_now())),
    )
    if not due:
        return False
    try:
        registry = Registry.load(paths.defs_dir, paths.root)
        sweep_expired(AccessContext(paths, registry, store, via=via))
    except (SpecErrors, OSError) as error:  # never the expired grant's rows instead
        raise AccessError(
            503,
            f"a grant of '{consumer}' expired and its SQL port cannot be rebuilt: {error}"[:300],
            "ddp validate; then ddp ports build",
        ) from None
    return True


def _stale(registry: Registry, store: Store) -> list[tuple[AccessRequest, Product | None, str]]:
    """Approved, unexpired grants the spec no longer supports, with what is wrong."""
    found: list[tuple[AccessRequest, Product | None, str]] = []
    for request in list_requests(store, status="approved"):
        if request.expired():
            continue  # not served; the next sweep marks it expired
        product = registry.products.get(request.product)
        if product is None:
            found.append((request, None, f"product '{request.product}' no longer exists"))
            continue
        names = {p.name for p in product.spec.output_ports}
        gone = [p for p in request.granted_ports or [] if p not in names]
        if gone:
            found.append((request, product, f"{request.product} has no port {', '.join(gone)}"))
            continue
        try:
            parse_rows(product, request.granted_ports or [], _row_texts(request.rows or []))
        except AccessError as error:
            found.append((request, product, error.message))
        except (SpecErrors, OSError):
            found.append((request, product, "the contracts of its ports cannot be read"))
    return found


def grant_problems(registry: Registry, store: Store) -> list[str]:
    """Approved grants the spec no longer supports (a port or a filtered column gone): for
    ``ddp validate`` and ``ddp access grants``; such a grant is still enforced as far as it
    can be (an unknown port is never served)."""
    return [f"{request.id}: {message}" for request, _, message in _stale(registry, store)]


def _existing_store(paths: ProjectPaths) -> Store | None:
    path = ports_dir(paths) / "access.sqlite"
    if not path.exists():
        return None
    return _STORES.get(path) or _STORES.setdefault(path, Store(path))


def validate_problems(registry: Registry, paths: ProjectPaths) -> list[SpecProblem]:
    """``ddp validate``'s warnings about the grants store: an approved grant whose product,
    port or filtered column is gone, located at the product's ``policies`` (or the store).
    Warnings, not errors: the store is the platform's state, not the change under review, and
    a stale grant gives nothing the spec does not hold (an unknown port is never served)."""
    store = _existing_store(paths)
    if store is None:
        return []
    problems = []
    for request, product, message in _stale(registry, _ready(store)):
        if product is None:
            where, line = relative(store.path, paths.root), None
        else:
            where, line = product.loaded.display_path, product.loaded.line_of("policies")
        problems.append(
            SpecProblem(
                where,
                line,
                f"access grant {request.id}",
                f"the grants store's grant to '{request.consumer}' is stale: {message}",
                f"revoke it: ddp access revoke {request.id} --as OWNER --reason '...' "
                "(and ask again for what the spec now holds)",
                severity="warning",
            )
        )
    return problems


def stored_grants(paths: ProjectPaths) -> list[dict[str, Any]]:
    """Every approved, unexpired grant of the grants store (product, to, ports, rows,
    cleared_for, source, until), for ``ddp validate``; none when there is no store."""
    store = _existing_store(paths)
    if store is None:
        return []
    return [
        {"product": r.product, **r.grant().model_dump(), "source": r.id, "until": r.until}
        for r in list_requests(_ready(store), status="approved")
        if not r.expired()
    ]


def _row_texts(rows: list[dict[str, Any]]) -> list[str]:
    texts = []
    for row in rows:
        value = row.get("value")
        shown = ",".join(map(str, value)) if isinstance(value, list) else value
        texts.append(f"{row['column']}:{row['op']}" + ("" if shown is None else f":{shown}"))
    return texts


def audit_events(
    store: Store,
    product: str | None = None,
    *,
    consumer: str | None = None,
    channel: str | None = None,
    limit: int = 100,
) -> list[audit.AccessRecord]:
    """The access-request steps of the audit log, newest first."""
    marks = ", ".join("?" for _ in ACTIONS)
    where, params = [f"action in ({marks})"], list[object](ACTIONS)
    for column, value in (("product", product), ("consumer", consumer), ("channel", channel)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    rows = store.execute(
        "select at, consumer, product, port, channel, action, rows, allowed, status, reason "
        f"from audit where {' and '.join(where)} order by id desc limit ?",
        (*params, limit),
    )
    return [
        audit.AccessRecord(
            str(at),
            None if c is None else str(c),
            None if p is None else str(p),
            None if q is None else str(q),
            str(ch),
            str(ac),
            None if n is None else int(str(n)),
            bool(ok),
            int(str(st)),
            None if r is None else str(r),
        )
        for at, c, p, q, ch, ac, n, ok, st, r in rows
    ]


def catalog_grants(paths: ProjectPaths, product_id: str) -> list[dict[str, Any]]:
    """The approved, unexpired grants of a product for its catalog page (``access_grants`` of
    its entry): to, ports, rows, cleared_for, source (the request id), until."""
    store = _existing_store(paths)
    if store is None:
        return []
    return [
        {**r.grant().model_dump(), "source": r.id, "until": r.until}
        for r in list_requests(_ready(store), product_id, status="approved")
        if not r.expired()
    ]


def expiry_sensor(registry: Registry, paths: ProjectPaths, interval_seconds: int = 30) -> Any:
    """A Dagster sensor that runs :func:`sweep_expired` (launches no run), so an expired
    grant's SQL port is rebuilt within ``interval_seconds`` even when no ``ddp access``, REST
    or MCP call sweeps first. Registered by the ``ProductAutomation`` component beside
    ``ddp_ports_refresh`` (``access_interval_seconds``)."""
    import dagster as dg

    @dg.sensor(
        name="ddp_access_expiry",
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Expires approved access grants past their 'until' (audited, notified) and "
        "rebuilds their consumers' SQL ports (on PostgreSQL, re-applies the port views); "
        "launches no run.",
    )
    def _expire(context: Any) -> Any:  # dg.SensorEvaluationContext (annotations are text)
        store = _existing_store(paths)  # DDP_DATA_DIR is read at each tick
        if store is None:
            return dg.SkipReason("no grants store yet: nothing to expire")
        expired = sweep_expired(AccessContext(paths, registry, store, via="sensor"))
        names = ", ".join(r.id for r in expired) or "none"
        from ddp_assets.ports.postgres import apply_ports, pending_products

        retried = pending_products(store)
        if retried:  # an earlier apply to PostgreSQL failed: again (ApplyError fails the tick)
            apply_ports(paths, registry, store, [])
            names += f"; PostgreSQL ports re-applied: {', '.join(retried)}"
        return dg.SkipReason(f"access grants expired: {names}")

    return _expire
