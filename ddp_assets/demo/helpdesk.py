"""The demo's helpdesk database: a SQLite file standing in for an operational database.

The ``support_tickets`` product reads its ``tickets`` table through the ``helpdesk`` depot
(``depots/helpdesk.yaml``, a SQLAlchemy URL), so the demo shows a depot without any server.
The rows are generated in DuckDB like the landing files (hash-based, deterministic for a
``(scale, seed)``), then written with :mod:`sqlite3` into a temporary file that replaces the
database once complete. Every ticket's customer is a customer of the landing zone.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import duckdb

# relative to the landing directory; depots/helpdesk.yaml names the same file
HELPDESK_DB = "helpdesk/helpdesk.sqlite"
SHARE, MINIMUM = 0.02, 40

_DDL = """
create table tickets (
    ticket_id integer primary key,
    customer_id integer not null,
    channel text not null,
    priority text not null,
    status text not null,
    opened_at timestamp not null,
    updated_at timestamp not null
)
"""


def ticket_count(scale: int) -> int:
    return max(MINIMUM, round(SHARE * scale))


def _tickets_sql(n: int, n_customers: int, seed: int) -> str:
    # timestamps as SQLAlchemy's SQLite dialect writes them (microseconds always present),
    # so the cursor's ``updated_at >= :last`` compares like with like
    fmt = "'%Y-%m-%d %H:%M:%S.%f'"
    opened = f"timestamp '2025-01-01' + to_minutes((hash(i, {seed}, 'opened') % 525600)::BIGINT)"
    return f"""
        select
            i as ticket_id,
            1 + (hash(i, {seed}, 'ticket_customer') % {n_customers})::BIGINT as customer_id,
            ['email', 'chat', 'phone', 'web'][1 + (hash(i, {seed}, 'channel') % 4)::BIGINT]
                as channel,
            case when hash(i, {seed}, 'priority') % 100 < 40 then 'low'
                 when hash(i, {seed}, 'priority') % 100 < 80 then 'normal'
                 when hash(i, {seed}, 'priority') % 100 < 95 then 'high'
                 else 'urgent' end as priority,
            case when hash(i, {seed}, 'status') % 100 < 15 then 'open'
                 when hash(i, {seed}, 'status') % 100 < 25 then 'pending'
                 when hash(i, {seed}, 'status') % 100 < 85 then 'solved'
                 else 'closed' end as status,
            strftime({opened}, {fmt}) as opened_at,
            strftime({opened} + to_minutes((hash(i, {seed}, 'updated') % 4320)::BIGINT), {fmt})
                as updated_at
        from range(1, {n + 1}) as t(i)
        order by i
    """


def write_helpdesk_database(path: Path, n_tickets: int, n_customers: int, seed: int) -> int:
    """Write the helpdesk database at ``path`` (replaced whole); return its ticket count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with duckdb.connect(":memory:") as con:
        rows = con.execute(_tickets_sql(n_tickets, n_customers, seed)).fetchall()
    connection = sqlite3.connect(tmp)
    try:
        connection.execute(_DDL)
        connection.executemany("insert into tickets values (?, ?, ?, ?, ?, ?, ?)", rows)
        connection.commit()
    except BaseException:
        connection.close()
        tmp.unlink(missing_ok=True)
        raise
    connection.close()
    os.replace(tmp, path)
    return len(rows)
