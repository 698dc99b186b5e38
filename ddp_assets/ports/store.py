"""The ports' own state: API tokens and the audit log, in one SQLite file.

Not in the DuckDB warehouse: it has one writer, and the REST server must never need the
writer's lock to record an access. SQLite in WAL mode lets the server append audit rows while
``ddp audit`` or ``ddp token`` read and write from other processes.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from ddp_assets.settings import ProjectPaths
from ddp_assets.warehouse.permissions import private_dir, private_file

SCHEMA = """
create table if not exists consumers (
    id text primary key,
    roles text not null default '[]',
    created_at text not null
);
create table if not exists tokens (
    id text primary key,
    consumer text not null references consumers(id),
    token_hash text not null unique,
    note text,
    created_at text not null,
    revoked_at text
);
create table if not exists audit (
    id integer primary key autoincrement,
    at text not null,
    consumer text,
    product text,
    port text,
    channel text not null,
    action text not null,
    rows integer,
    allowed integer not null,
    status integer not null,
    reason text
);
create index if not exists audit_product on audit(product, at);
"""


def ports_dir(paths: ProjectPaths) -> Path:
    """``$DDP_DATA_DIR/ports``: the serving snapshot, the SQL ports, tokens and audit log."""
    return paths.data_dir / "ports"


class Store:
    """One SQLite connection per process, shared by threads under a lock (writes are tiny)."""

    def __init__(self, path: Path):
        private_dir(path.parent)
        self.path = path
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=30
        )
        self._connection.execute("pragma journal_mode=wal")
        self._connection.execute("pragma synchronous=normal")
        self._connection.execute("pragma foreign_keys=on")
        self._connection.executescript(SCHEMA)
        private_file(path)  # token hashes and who read what: the owner's only

    @classmethod
    def open(cls, paths: ProjectPaths) -> Store:
        return cls(ports_dir(paths) / "access.sqlite")

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            return self._connection.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._connection.close()
