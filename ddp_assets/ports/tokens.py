"""Consumers and their API tokens (``ddp token issue|list|revoke``).

A token is shown once, when issued; only its SHA-256 is stored. A slow password hash
(argon2, bcrypt) protects low-entropy secrets chosen by people against guessing; these tokens
are 256 random bits from :mod:`secrets`, so a single SHA-256 is as strong against guessing and
lets each request be checked with one indexed lookup instead of a deliberately slow hash.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ddp_assets.ports.policy import Consumer
from ddp_assets.ports.store import Store
from ddp_assets.spec.model import CONSUMER

PREFIX = "ddp_"
ROLE = re.compile(r"^[a-z][a-z0-9_-]*$")


class TokenError(ValueError):
    """A token command got bad input (a message and a hint)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class TokenInfo:
    id: str
    consumer: str
    roles: list[str]
    note: str | None
    created_at: str
    revoked_at: str | None = None
    token: str | None = field(default=None, repr=False)  # only when just issued

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_consumer_id(consumer: str) -> str:
    if consumer.startswith("role:") or not re.match(CONSUMER, consumer) or len(consumer) > 100:
        raise TokenError(
            f"{consumer!r} is not a valid consumer id",
            "use lower-case letters, digits, '_', '.', '@' and '-', e.g. 'bi-dashboard'",
        )
    return consumer


def issue(store: Store, consumer: str, roles: list[str], note: str | None = None) -> TokenInfo:
    """A new token for ``consumer`` (created if new); given roles replace the consumer's roles."""
    check_consumer_id(consumer)
    for role in roles:
        if not ROLE.match(role):
            raise TokenError(
                f"{role!r} is not a valid role name",
                "use lower-case letters, digits, '_' and '-', without 'role:', e.g. 'analyst'",
            )
    now = _now()
    existing = store.execute("select roles from consumers where id = ?", (consumer,))
    if not existing:
        store.execute(
            "insert into consumers (id, roles, created_at) values (?, ?, ?)",
            (consumer, json.dumps(sorted(set(roles))), now),
        )
    elif roles:
        store.execute(
            "update consumers set roles = ? where id = ?",
            (json.dumps(sorted(set(roles))), consumer),
        )
    token = PREFIX + secrets.token_urlsafe(32)
    token_id = secrets.token_hex(4)
    store.execute(
        "insert into tokens (id, consumer, token_hash, note, created_at) values (?, ?, ?, ?, ?)",
        (token_id, consumer, digest(token), note, now),
    )
    return TokenInfo(token_id, consumer, consumer_roles(store, consumer), note, now, token=token)


def consumer_roles(store: Store, consumer: str) -> list[str]:
    rows = store.execute("select roles from consumers where id = ?", (consumer,))
    return list(json.loads(str(rows[0][0]))) if rows else []


def authenticate(store: Store, token: str | None) -> Consumer | None:
    """The consumer holding an active token, or None."""
    if not token or not token.startswith(PREFIX) or len(token) > 200:
        return None
    rows = store.execute(
        "select c.id, c.roles from tokens t join consumers c on c.id = t.consumer "
        "where t.token_hash = ? and t.revoked_at is null",
        (digest(token),),
    )
    if not rows:
        return None
    consumer, roles = rows[0]
    return Consumer(str(consumer), tuple(json.loads(str(roles))))


def list_tokens(store: Store, *, include_revoked: bool = False) -> list[TokenInfo]:
    rows = store.execute(
        "select t.id, t.consumer, c.roles, t.note, t.created_at, t.revoked_at from tokens t "
        "join consumers c on c.id = t.consumer order by t.created_at, t.id"
    )
    found = [
        TokenInfo(str(i), str(c), json.loads(str(r)), n, str(at), rv)  # type: ignore[arg-type]
        for i, c, r, n, at, rv in rows
    ]
    return [t for t in found if include_revoked or t.active]


def revoke(store: Store, *, token_id: str | None = None, consumer: str | None = None) -> int:
    """Revoke one token or every token of a consumer; the number revoked."""
    if (token_id is None) == (consumer is None):
        raise TokenError(
            "name one token id or one consumer", "ddp token revoke ID, or --consumer C"
        )
    column, value = ("id", token_id) if token_id is not None else ("consumer", consumer)
    active = store.execute(
        f"select count(*) from tokens where {column} = ? and revoked_at is null", (value,)
    )
    count = int(active[0][0])  # type: ignore[arg-type]
    if not count:
        known = [t.id for t in list_tokens(store)] if token_id else []
        raise TokenError(
            f"no active token {'with id' if token_id else 'of consumer'} {value!r}",
            "see the active tokens with 'ddp token list'"
            + (f" ({', '.join(known[:5])}{', ...' if len(known) > 5 else ''})" if known else ""),
        )
    store.execute(
        f"update tokens set revoked_at = ? where {column} = ? and revoked_at is null",
        (_now(), value),
    )
    return count


def active_consumers(store: Store) -> list[Consumer]:
    """Consumers with at least one active token (the SQL ports are built for them)."""
    rows = store.execute(
        "select c.id, c.roles from consumers c where exists (select 1 from tokens t "
        "where t.consumer = c.id and t.revoked_at is null) order by c.id"
    )
    return [Consumer(str(c), tuple(json.loads(str(r)))) for c, r in rows]
