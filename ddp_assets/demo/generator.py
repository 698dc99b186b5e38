"""Deterministic generator of the demo landing zone.

The landing zone holds the raw files that the source-aligned data products ingest: customers,
orders and order items of a shop, product usage events, and the inventory domain (suppliers,
products, stock levels and purchase orders).

Everything is generated inside DuckDB with SQL over ``range(n)`` and written with
``COPY ... TO``, so no row is ever materialised in Python and ten million rows take seconds.
Pseudo-randomness comes from ``hash(i, seed, 'salt')`` and modulo arithmetic, never from
``random()``, and every file is written in a fixed row order: the same ``(scale, seed)`` always
gives byte-identical files. Every key is unique and every foreign key resolves, so the data
passes the data contracts of the products built on it.

With ``days=N`` (``generate_landing_zone(..., days=N)``) the event-like data, orders, order
items and usage events, is written as one file per day for the N days ending at
:data:`REFERENCE_DATE`, named with the day (``orders/orders_2025-12-31.csv``,
``orders/order_items_2025-12-31.parquet``, ``usage_events/events_2025-12-31.jsonl``) as a
daily-partitioned product expects, each day's rows timestamped within that day. The totals are
the scale's (at least one order and one event a day), the keys still unique across days.

Usage events are always written one file per day: the demo's ``usage_events`` product is
daily-partitioned. Without ``days`` they cover the :data:`EVENT_DAYS` days ending at
:data:`REFERENCE_DATE` (orders and order items are then one file each).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

import duckdb

__all__ = [
    "DAILY_FILES",
    "LANDING_FILES",
    "MAX_DAYS",
    "REFERENCE_DATE",
    "LandingFile",
    "day_range",
    "expected_files",
    "generate_landing_zone",
]

FileFormat = Literal["csv", "parquet", "jsonl"]


@dataclass(frozen=True)
class LandingFile:
    """One file of the landing zone.

    Attributes:
        path: Path relative to the landing directory.
        format: ``csv`` (with header), ``parquet`` or ``jsonl`` (newline-delimited JSON).
        share: Approximate share of the total ``scale`` rows that this file holds.
        minimum: Lower bound on the row count, so small scales still make sense.
        columns: Column names, in file order.
    """

    path: str
    format: FileFormat
    share: float
    minimum: int
    columns: tuple[str, ...]


LANDING_FILES: tuple[LandingFile, ...] = (
    LandingFile(
        path="customers/customers.csv",
        format="csv",
        share=0.03,
        minimum=50,
        columns=(
            "customer_id",
            "first_name",
            "last_name",
            "email",
            "country",
            "segment",
            "signup_date",
            "updated_at",
        ),
    ),
    LandingFile(
        path="orders/orders.csv",
        format="csv",
        share=0.20,
        minimum=100,
        columns=("order_id", "customer_id", "ordered_at", "status", "channel"),
    ),
    # 1 to 3 lines per order (2 on average), so the count follows from the orders.
    LandingFile(
        path="orders/order_items.parquet",
        format="parquet",
        share=0.40,
        minimum=0,
        columns=("order_id", "line_no", "sku", "quantity", "unit_price"),
    ),
    LandingFile(
        path="usage_events/events.jsonl",
        format="jsonl",
        share=0.25,
        minimum=100,
        columns=("event_id", "customer_id", "event_type", "feature", "occurred_at", "duration_ms"),
    ),
    LandingFile(
        path="inventory/products.csv",
        format="csv",
        share=0.01,
        minimum=20,
        columns=("sku", "product_name", "category", "supplier_id", "unit_cost"),
    ),
    LandingFile(
        path="inventory/suppliers.csv",
        format="csv",
        share=0.001,
        minimum=10,
        columns=("supplier_id", "supplier_name", "country", "lead_time_days"),
    ),
    LandingFile(
        path="inventory/stock_levels.csv",
        format="csv",
        share=0.07,
        minimum=50,
        columns=("snapshot_date", "sku", "warehouse", "on_hand", "reorder_point"),
    ),
    LandingFile(
        path="inventory/purchase_orders.parquet",
        format="parquet",
        share=0.04,
        minimum=40,
        columns=(
            "po_id",
            "supplier_id",
            "sku",
            "quantity",
            "ordered_at",
            "expected_at",
            "received_at",
        ),
    ),
)


REFERENCE_DATE = date(2025, 12, 31)
"""The last day of the generated history (orders and usage events end on it): with ``days``,
the daily files are those of the days ending here."""

EVENT_DAYS = 30
"""The days of usage events (one file each) when ``days`` is not given."""

MAX_DAYS = 3660
"""The most days ``days`` may ask for (ten years)."""

DAILY_FILES: dict[str, str] = {
    "orders/orders.csv": "orders/orders_{day}.csv",
    "orders/order_items.parquet": "orders/order_items_{day}.parquet",
    "usage_events/events.jsonl": "usage_events/events_{day}.jsonl",
}
"""The landing files written one per day with ``days``: the whole file's path → the day's."""

_DAY_NAME = r"\d{4}-\d{2}-\d{2}"

_EVENTS_ONLY = {"usage_events/events.jsonl": EVENT_DAYS}
"""Without ``days``: the files still written one per day, and over how many days."""


def day_range(days: int) -> list[date]:
    """The ``days`` days ending at :data:`REFERENCE_DATE`, oldest first."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_DAYS}, got {days}")
    return [REFERENCE_DATE - timedelta(days=days - 1 - d) for d in range(days)]


def _words(text: str) -> tuple[str, ...]:
    """Split space-separated words, which keeps the long name lists compact."""
    return tuple(text.split())


# Accepted values, shared with the tests and handy for writing contracts.
COUNTRIES: tuple[str, ...] = ("US", "GB", "DE", "FR", "NL", "ES", "IT", "CA", "AU", "JP")
SEGMENTS: tuple[str, ...] = ("consumer", "smb", "enterprise")
ORDER_STATUSES: tuple[str, ...] = ("placed", "shipped", "delivered", "cancelled", "returned")
CHANNELS: tuple[str, ...] = ("web", "mobile", "store", "partner")
EVENT_TYPES: tuple[str, ...] = ("login", "feature_use", "export", "invite", "logout")
FEATURES: tuple[str, ...] = (
    "dashboards",
    "alerts",
    "reports",
    "api",
    "sharing",
    "search",
    "billing",
    "integrations",
)
CATEGORIES: tuple[str, ...] = ("electronics", "home", "garden", "sports", "toys", "office")
WAREHOUSES: tuple[str, ...] = ("AMS", "BER", "DAL", "LON", "SIN")

# Name parts, as space-separated words (the noun lists are comma-separated).
_FIRST_NAMES: tuple[str, ...] = _words(
    "Ada Grace Alan Edsger Barbara Donald Margaret Linus Katherine Dennis Frances John Radia Ken "
    "Hedy Tim Sophie Guido Joan Bjarne Lucia Mateo Emma Noah Olivia Liam Mia Lucas Yuki Hiro "
    "Chloe Hugo Greta Lars Ines Pablo Giulia Marco Aiko Ravi"
)
_LAST_NAMES: tuple[str, ...] = _words(
    "Lovelace Hopper Turing Dijkstra Liskov Knuth Hamilton Torvalds Johnson Ritchie Allen Backus "
    "Perlman Thompson Lamarr Berners Wilson Rossum Clarke Stroustrup Garcia Martin Muller Schmidt "
    "Dubois Janssen Rossi Bianchi Tanaka Sato Smith Brown Taylor Moreau Visser Lopez Fischer "
    "Nakamura Walker Patel"
)
_ADJECTIVES: tuple[str, ...] = _words(
    "Compact Classic Smart Eco Deluxe Basic Ultra Mini Pro Heavy-Duty"
)
# One list of six nouns per category, in the order of CATEGORIES.
_NOUNS: tuple[tuple[str, ...], ...] = tuple(
    tuple(nouns.split(","))
    for nouns in (
        "Headphones,Charger,Speaker,Keyboard,Monitor,Webcam",
        "Lamp,Kettle,Blanket,Mirror,Vase,Clock",
        "Hose,Shovel,Planter,Rake,Sprinkler,Gloves",
        "Racket,Yoga Mat,Dumbbell,Bottle,Helmet,Ball",
        "Puzzle,Robot,Kite,Blocks,Doll,Train Set",
        "Stapler,Notebook,Desk Chair,Pen Set,Binder,Whiteboard",
    )
)
_NOUNS_PER_CATEGORY = 6
_SUPPLIER_PREFIXES: tuple[str, ...] = _words(
    "Northwind Contoso Acme Globex Initech Umbrella Stark Wayne Tyrell Cyberdyne Hooli Vandelay "
    "Soylent Wonka Oscorp Massive Aperture Gringotts Dunder Prestige"
)
_SUPPLIER_SUFFIXES: tuple[str, ...] = ("Trading", "Supply Co", "Logistics", "Industries", "GmbH")

_MAX_LINES_PER_ORDER = 3


def expected_files(days: int | None = None) -> list[str]:
    """Return the paths, relative to the landing directory, of every landing file (with
    ``days``: the daily files of :data:`DAILY_FILES` in place of the whole ones, oldest day
    first)."""
    found: list[str] = []
    for spec in LANDING_FILES:
        daily = DAILY_FILES.get(spec.path)
        spread = days if days is not None else _EVENTS_ONLY.get(spec.path)
        if daily is None or spread is None:
            found.append(spec.path)
        else:
            found.extend(daily.format(day=day.isoformat()) for day in day_range(spread))
    return found


def _spec(path: str) -> LandingFile:
    """Return the landing file described by ``path``."""
    for spec in LANDING_FILES:
        if spec.path == path:
            return spec
    raise KeyError(path)


def _rows(path: str, scale: int) -> int:
    """Return the number of rows to generate for the file at ``path``."""
    spec = _spec(path)
    return max(spec.minimum, round(spec.share * scale))


def _sql_list(values: tuple[str, ...]) -> str:
    """Render strings as a DuckDB list literal."""
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _pick(values: tuple[str, ...], key: str, salt: str) -> str:
    """SQL picking one of ``values`` uniformly from the hash of ``key``."""
    return f"{_sql_list(values)}[1 + u({key}, '{salt}', {len(values)})]"


def _weighted(choices: tuple[tuple[str, int], ...], key: str, salt: str) -> str:
    """SQL picking one of the weighted ``choices`` (weights sum to 100) from a hash."""
    if sum(w for _, w in choices) != 100:
        raise ValueError("weights must sum to 100")
    parts: list[str] = []
    bound = 0
    for value, weight in choices[:-1]:
        bound += weight
        parts.append(f"WHEN u({key}, '{salt}', 100) < {bound} THEN '{value}'")
    return f"CASE {' '.join(parts)} ELSE '{choices[-1][0]}' END"


def _define_macros(
    con: duckdb.DuckDBPyConnection, seed: int, n_products: int, n_suppliers: int
) -> None:
    """Create the hash-based helpers that every generating query uses."""
    nouns = "[" + ", ".join(_sql_list(n) for n in _NOUNS) + "]"
    n_categories = len(CATEGORIES)
    con.execute(f"CREATE MACRO u(i, salt, n) AS (hash(i, {seed}, salt) % (n))::BIGINT")
    con.execute("CREATE MACRO sku(p) AS printf('SKU-%05d', p)")
    con.execute(f"CREATE MACRO product_of(i, salt) AS 1 + u(i, salt, {n_products})")
    con.execute(f"CREATE MACRO supplier_of(p) AS 1 + u(p, 'product_supplier', {n_suppliers})")
    con.execute(f"CREATE MACRO category_of(p) AS 1 + u(p, 'product_category', {n_categories})")
    con.execute(
        f"CREATE MACRO noun_of(p) AS "
        f"{nouns}[category_of(p)][1 + u(p, 'noun', {_NOUNS_PER_CATEGORY})]"
    )
    con.execute(
        "CREATE MACRO cost_of(p) AS "
        "((1 + u(p, 'cost_units', 150)) * 100 + u(p, 'cost_cents', 100))::DECIMAL(10, 2) / 100"
    )
    con.execute("CREATE MACRO lead_time_of(s) AS (2 + u(s, 'lead_time', 44))::INTEGER")
    # Share (in percent) of a supplier's received purchase orders that arrive late.
    con.execute("CREATE MACRO late_pct_of(s) AS 3 + u(s, 'late_pct', 45)")


def _customers_sql(n: int) -> str:
    """SQL for ``customers/customers.csv``."""
    country = _weighted(
        (
            ("US", 30),
            ("GB", 12),
            ("DE", 12),
            ("FR", 9),
            ("NL", 7),
            ("ES", 6),
            ("IT", 6),
            ("CA", 7),
            ("AU", 5),
            ("JP", 6),
        ),
        "i",
        "country",
    )
    segment = _weighted((("consumer", 65), ("smb", 27), ("enterprise", 8)), "i", "segment")
    return f"""
        WITH base AS (
            SELECT
                i + 1 AS customer_id,
                {_pick(_FIRST_NAMES, "i", "first_name")} AS first_name,
                {_pick(_LAST_NAMES, "i", "last_name")} AS last_name,
                {country} AS country,
                {segment} AS segment,
                DATE '2023-01-01' + u(i, 'signup', 1096)::INTEGER AS signup_date,
                i
            FROM range({n}) AS t(i)
        )
        SELECT
            customer_id,
            first_name,
            last_name,
            lower(first_name || '.' || last_name || '.' || customer_id || '@example.com')
                AS email,
            country,
            segment,
            signup_date,
            signup_date::TIMESTAMP
                + to_days(u(i, 'updated_days', (DATE '2025-12-31' - signup_date) + 1)::INTEGER)
                + to_seconds(u(i, 'updated_seconds', 86400)) AS updated_at
        FROM base
        ORDER BY customer_id
    """


def _orders_sql(n: int, n_customers: int, day: date | None = None, first: int = 0) -> str:
    """SQL for ``orders/orders.csv`` (with ``day``: the orders ``first`` to ``first + n - 1``,
    ordered within that day)."""
    status = _weighted(
        (("delivered", 72), ("shipped", 9), ("placed", 7), ("cancelled", 7), ("returned", 5)),
        "i",
        "status",
    )
    channel = _weighted(
        (("web", 45), ("mobile", 30), ("store", 15), ("partner", 10)), "i", "channel"
    )
    ordered_at = (
        "TIMESTAMP '2024-01-01' + to_seconds(u(i, 'ordered_at', 731 * 86400))"
        if day is None
        else f"TIMESTAMP '{day.isoformat()}' + to_seconds(u(i, 'ordered_at', 86400))"
    )
    return f"""
        SELECT
            i + 1 AS order_id,
            1 + u(i, 'order_customer', {n_customers}) AS customer_id,
            {ordered_at} AS ordered_at,
            {status} AS status,
            {channel} AS channel
        FROM range({first}, {first + n}) AS t(i)
        ORDER BY order_id
    """


def _order_items_sql(n_orders: int, first: int = 0) -> str:
    """SQL for ``orders/order_items.parquet``: 1 to 3 lines for every order (of the orders
    ``first`` to ``first + n_orders - 1``)."""
    k = _MAX_LINES_PER_ORDER
    return f"""
        WITH lines AS (
            SELECT
                i,
                i // {k} + 1 AS order_id,
                (i % {k} + 1)::INTEGER AS line_no,
                product_of(i, 'item_product') AS p
            FROM range({first * k}, {(first + n_orders) * k}) AS t(i)
            WHERE i % {k} < 1 + u(i // {k}, 'lines', {k})
        )
        SELECT
            order_id,
            line_no,
            sku(p) AS sku,
            (CASE WHEN u(i, 'bulk', 100) < 80 THEN 1 + u(i, 'qty', 3)
                  ELSE 1 + u(i, 'qty', 10) END)::INTEGER AS quantity,
            round(cost_of(p) * (125 + u(i, 'markup', 60)) / 100, 2)::DECIMAL(10, 2)
                AS unit_price
        FROM lines
        ORDER BY order_id, line_no
    """


def _events_sql(n: int, n_customers: int, day: date | None = None, first: int = 0) -> str:
    """SQL for ``usage_events/events.jsonl`` (with ``day``: the events ``first`` to
    ``first + n - 1``, occurring within that day)."""
    event_type = _weighted(
        (("login", 28), ("feature_use", 45), ("export", 8), ("invite", 4), ("logout", 15)),
        "i",
        "event_type",
    )
    occurred_at = (
        "TIMESTAMP '2025-01-01' + to_seconds(u(i, 'occurred_at', 365 * 86400))"
        if day is None
        else f"TIMESTAMP '{day.isoformat()}' + to_seconds(u(i, 'occurred_at', 86400))"
    )
    return f"""
        WITH base AS (
            SELECT i, {event_type} AS event_type FROM range({first}, {first + n}) AS t(i)
        )
        SELECT
            printf('evt-%09d', i + 1) AS event_id,
            1 + u(i, 'event_customer', {n_customers}) AS customer_id,
            event_type,
            CASE WHEN event_type = 'feature_use' THEN {_pick(FEATURES, "i", "feature")} END
                AS feature,
            strftime({occurred_at}, '%Y-%m-%dT%H:%M:%S') AS occurred_at,
            CASE WHEN u(i, 'duration_null', 100) >= 10
                 THEN (50 + u(i, 'duration', 600000))::INTEGER END AS duration_ms
        FROM base
        ORDER BY i
    """


def _products_sql(n: int) -> str:
    """SQL for ``inventory/products.csv``."""
    return f"""
        SELECT
            sku(p) AS sku,
            {_pick(_ADJECTIVES, "p", "adjective")} || ' ' || noun_of(p) AS product_name,
            {_sql_list(CATEGORIES)}[category_of(p)] AS category,
            supplier_of(p) AS supplier_id,
            cost_of(p) AS unit_cost
        FROM range(1, {n + 1}) AS t(p)
        ORDER BY p
    """


def _suppliers_sql(n: int) -> str:
    """SQL for ``inventory/suppliers.csv``: names are unique."""
    n_pre, n_suf = len(_SUPPLIER_PREFIXES), len(_SUPPLIER_SUFFIXES)
    return f"""
        SELECT
            s AS supplier_id,
            {_sql_list(_SUPPLIER_PREFIXES)}[1 + (s - 1) % {n_pre}] || ' '
                || {_sql_list(_SUPPLIER_SUFFIXES)}[1 + ((s - 1) // {n_pre}) % {n_suf}]
                || CASE WHEN s > {n_pre * n_suf}
                        THEN ' ' || ((s - 1) // {n_pre * n_suf} + 1) ELSE '' END
                AS supplier_name,
            {_pick(COUNTRIES, "s", "supplier_country")} AS country,
            lead_time_of(s) AS lead_time_days
        FROM range(1, {n + 1}) AS t(s)
        ORDER BY s
    """


def _stock_levels_sql(n: int, n_products: int) -> str:
    """SQL for ``inventory/stock_levels.csv``: weekly snapshots of (sku, warehouse).

    Row ``i`` is warehouse ``i % 5`` and product ``(i // 5) % n_products`` of the snapshot
    ``i // (5 * n_products)`` weeks before 2025-12-29, so the key is unique by construction.
    """
    w = len(WAREHOUSES)
    return f"""
        WITH base AS (
            SELECT
                i,
                i % {w} AS w,
                (i // {w}) % {n_products} + 1 AS p,
                i // ({w} * {n_products}) AS week
            FROM range({n}) AS t(i)
        )
        SELECT
            DATE '2025-12-29' - (7 * week)::INTEGER AS snapshot_date,
            sku(p) AS sku,
            {_sql_list(WAREHOUSES)}[w + 1] AS warehouse,
            (CASE WHEN u(i, 'stock_out', 100) < 8 THEN 0
                  ELSE 1 + u(i, 'on_hand', 400) END)::INTEGER AS on_hand,
            (10 + u(p * {w} + w, 'reorder_point', 90))::INTEGER AS reorder_point
        FROM base
        ORDER BY i
    """


def _purchase_orders_sql(n: int) -> str:
    """SQL for ``inventory/purchase_orders.parquet``.

    The supplier is the product's supplier; the expected date follows its lead time; ~10% are
    still open, and a supplier-dependent share of the received ones arrive late.
    """
    return f"""
        WITH base AS (
            SELECT
                i,
                i + 1 AS po_id,
                product_of(i, 'po_product') AS p,
                TIMESTAMP '2024-01-01' + to_seconds(u(i, 'po_ordered_at', 731 * 86400))
                    AS ordered_at
            FROM range({n}) AS t(i)
        ), with_supplier AS (
            SELECT *, supplier_of(p) AS s FROM base
        ), expected AS (
            SELECT
                *,
                ordered_at + to_days(lead_time_of(s)) + to_seconds(u(i, 'po_jitter', 86400))
                    AS expected_at
            FROM with_supplier
        )
        SELECT
            po_id,
            s AS supplier_id,
            sku(p) AS sku,
            (10 * (1 + u(i, 'po_quantity', 50)))::INTEGER AS quantity,
            ordered_at,
            expected_at,
            CASE
                WHEN u(i, 'po_open', 100) < 10 THEN NULL
                WHEN u(i, 'po_late', 100) < late_pct_of(s)
                    THEN expected_at + to_seconds(86400 + u(i, 'po_late_by', 14 * 86400))
                ELSE expected_at - to_seconds(u(i, 'po_early', 2 * 86400))
            END AS received_at
        FROM expected
        ORDER BY po_id
    """


_COPY_OPTIONS: dict[FileFormat, str] = {
    "csv": "FORMAT csv, HEADER true, DELIMITER ','",
    "parquet": "FORMAT parquet, COMPRESSION zstd",
    "jsonl": "FORMAT json",
}


def _copy(con: duckdb.DuckDBPyConnection, sql: str, target: Path, fmt: FileFormat) -> int:
    """Write the result of ``sql`` to ``target`` atomically and return its row count.

    The rows go to a hidden temporary file beside ``target`` that is renamed over it once
    complete, so a half-written landing file is never visible.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    quoted = str(tmp).replace("'", "''")
    try:
        if fmt == "parquet":
            # A single writer thread fixes the row-group layout, hence the bytes.
            con.execute("SET threads = 1")
        row = con.execute(f"COPY ({sql}) TO '{quoted}' ({_COPY_OPTIONS[fmt]})").fetchone()
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        con.execute("RESET threads")
    if row is None:  # pragma: no cover - COPY always reports a count
        raise RuntimeError(f"COPY to {target} reported no row count")
    return int(row[0])


def _bounds(n: int, days: int) -> list[tuple[int, int]]:
    """Rows ``[lo, hi)`` of each of ``days`` days: consecutive, as even as integers allow."""
    return [(d * n // days, (d + 1) * n // days) for d in range(days)]


def _daily_queries(
    n_orders: int, n_events: int, n_customers: int, days: int | None
) -> dict[str, tuple[str, str]]:
    """{daily file path: (whole file's path, SQL)} for every day of ``day_range(days)``
    (``days`` None: the usage events of the :data:`EVENT_DAYS` days only)."""
    queries: dict[str, tuple[str, str]] = {}
    orders, items, events = DAILY_FILES.values()
    event_days = days if days is not None else EVENT_DAYS
    calendar = day_range(days) if days is not None else []
    for day, (lo, hi) in zip(calendar, _bounds(n_orders, len(calendar)), strict=True):
        name = day.isoformat()
        queries[orders.format(day=name)] = (
            "orders/orders.csv",
            _orders_sql(hi - lo, n_customers, day, lo),
        )
        queries[items.format(day=name)] = (
            "orders/order_items.parquet",
            _order_items_sql(hi - lo, lo),
        )
    for day, (lo, hi) in zip(day_range(event_days), _bounds(n_events, event_days), strict=True):
        queries[events.format(day=day.isoformat())] = (
            "usage_events/events.jsonl",
            _events_sql(hi - lo, n_customers, day, lo),
        )
    return queries


def _remove_other_layout(landing_dir: Path, keep: set[str]) -> None:
    """Remove the generator's own orders, order items and events files of the other layout
    (the whole files when writing daily ones, daily ones of other days or none), so the port
    globs of the demo read one layout. Only names the generator writes are touched."""
    for whole, daily in DAILY_FILES.items():
        folder, _, pattern = daily.rpartition("/")
        named = re.compile(re.escape(pattern).replace(re.escape("{day}"), _DAY_NAME) + "$")
        candidates = [landing_dir / whole]
        if (landing_dir / folder).is_dir():
            candidates.extend(
                p for p in (landing_dir / folder).iterdir() if named.fullmatch(p.name)
            )
        for path in candidates:
            if path.relative_to(landing_dir).as_posix() not in keep and path.is_file():
                path.unlink()


def generate_landing_zone(
    landing_dir: Path, scale: int = 10_000, seed: int = 42, days: int | None = None
) -> dict[str, int]:
    """Write every landing file under landing_dir; return {relative file path: row count}.

    Args:
        landing_dir: Root of the landing zone; folders are created and files overwritten.
        scale: Approximate total number of rows over all files (1_000 to 10_000_000).
        seed: Seed of the hash-based pseudo-randomness; same ``(scale, seed, days)``, same
            bytes.
        days: When given (1 to :data:`MAX_DAYS`), orders, order items and usage events are
            written as one file per day for the ``days`` days ending at
            :data:`REFERENCE_DATE` (:data:`DAILY_FILES`), each day's rows timestamped on that
            day, the same totals spread over the days (at least one order and one event a
            day); the whole files of a run without ``days`` are removed, and the other way
            round.

    Returns:
        The row count of every file written, keyed by its path relative to ``landing_dir``
        (see :func:`expected_files`).
    """
    if scale < 1:
        raise ValueError(f"scale must be positive, got {scale}")
    if days is not None:
        day_range(days)  # checks the bounds before anything is written
    seed = int(seed)
    landing_dir = Path(landing_dir)
    n_customers = _rows("customers/customers.csv", scale)
    n_orders = _rows("orders/orders.csv", scale)
    n_events = _rows("usage_events/events.jsonl", scale)
    n_products = _rows("inventory/products.csv", scale)
    n_suppliers = _rows("inventory/suppliers.csv", scale)
    n_stock = _rows("inventory/stock_levels.csv", scale)
    n_pos = _rows("inventory/purchase_orders.parquet", scale)
    if days is not None:
        n_orders = max(n_orders, days)
    n_events = max(n_events, days if days is not None else EVENT_DAYS)

    queries: dict[str, str] = {
        "customers/customers.csv": _customers_sql(n_customers),
        "orders/orders.csv": _orders_sql(n_orders, n_customers),
        "orders/order_items.parquet": _order_items_sql(n_orders),
        "usage_events/events.jsonl": _events_sql(n_events, n_customers),
        "inventory/products.csv": _products_sql(n_products),
        "inventory/suppliers.csv": _suppliers_sql(n_suppliers),
        "inventory/stock_levels.csv": _stock_levels_sql(n_stock, n_products),
        "inventory/purchase_orders.parquet": _purchase_orders_sql(n_pos),
    }
    daily = _daily_queries(n_orders, n_events, n_customers, days)
    files = expected_files(days)
    counts: dict[str, int] = {}
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET preserve_insertion_order = true")
        _define_macros(con, seed, n_products, n_suppliers)
        for path in files:
            whole, sql = daily[path] if path in daily else (path, queries[path])
            counts[path] = _copy(con, sql, landing_dir / path, _spec(whole).format)
    finally:
        con.close()
    _remove_other_layout(landing_dir, set(files))
    # the helpdesk's database (not a landing file: the support_tickets product's depot reads it)
    from ddp_assets.demo.helpdesk import HELPDESK_DB, ticket_count, write_helpdesk_database

    write_helpdesk_database(landing_dir / HELPDESK_DB, ticket_count(scale), n_customers, seed)
    return counts
