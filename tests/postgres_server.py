"""A throwaway PostgreSQL server for tests: Debian's binaries, a temporary cluster, loopback only.

``make system-deps`` (run by ``make test``) installs Debian's ``postgresql`` package; this module
never uses the cluster that package may have started. It runs ``initdb`` into a fresh folder,
starts ``postgres`` on a free loopback port with trust authentication, and removes everything
on exit. PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres``
system user that the Debian package creates.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    data_dir: Path

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create a database (if missing) and return its DSN."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn(), autocommit=True) as connection:
            exists = connection.execute(
                "select 1 from pg_database where datname = %s", (name,)
            ).fetchone()
            if not exists:
                connection.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def warehouse(self, name: str) -> Any:
        """ddp's PostgreSQL warehouse on a database of this server (created if missing)."""
        from ddp_assets.warehouse.postgres import PostgresSettings, PostgresWarehouse

        self.create_database(name)
        settings = PostgresSettings(
            host=self.host, port=self.port, user=self.user, password="", dbname=name
        )
        return PostgresWarehouse(settings)


def postgres_bin_dir() -> Path | None:
    """The newest installed ``/usr/lib/postgresql/<major>/bin`` holding ``initdb``."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def throwaway_postgres(max_connections: int = 200) -> Iterator[PostgresServer]:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise RuntimeError(
            "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin: "
            "run `make system-deps` (apt-get install postgresql)"
        )
    root = Path(tempfile.mkdtemp(prefix="ddp-pg-"))
    data_dir = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, user="postgres")
    port = _free_port()
    subprocess.run(
        _as_owner(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ]
        ),
        check=True,
        capture_output=True,
    )
    log = root / "server.log"
    options = (
        f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c synchronous_commit=off "
        f"-c full_page_writes=off -c max_connections={max_connections}"
    )
    pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data_dir)]
    subprocess.run(
        _as_owner([*pg_ctl, "-l", str(log), "-o", options, "-w", "start"]),
        check=True,
        capture_output=True,
    )
    try:
        server = PostgresServer("127.0.0.1", port, "postgres", data_dir)
        _wait_ready(server)
        yield server
    finally:
        subprocess.run(
            _as_owner([*pg_ctl, "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(server: PostgresServer, timeout: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(server.dsn(), connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
