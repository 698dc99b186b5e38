"""Tests of the deterministic demo landing-zone generator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from ddp_assets.demo.generator import (
    CATEGORIES,
    CHANNELS,
    COUNTRIES,
    DAILY_FILES,
    EVENT_DAYS,
    EVENT_TYPES,
    FEATURES,
    LANDING_FILES,
    ORDER_STATUSES,
    REFERENCE_DATE,
    SEGMENTS,
    WAREHOUSES,
    expected_files,
    generate_landing_zone,
)

SCALE = 2_000

# Table name used in the tests for each landing file.
TABLES: dict[str, str] = {
    "customers/customers.csv": "customers",
    "orders/orders.csv": "orders",
    "orders/order_items.parquet": "order_items",
    "usage_events/events.jsonl": "events",
    "inventory/products.csv": "products",
    "inventory/suppliers.csv": "suppliers",
    "inventory/stock_levels.csv": "stock_levels",
    "inventory/purchase_orders.parquet": "purchase_orders",
}


def _reader(path: Path, fmt: str) -> str:
    """Return a DuckDB table function reading ``path`` in format ``fmt``."""
    quoted = str(path).replace("'", "''")
    if fmt == "csv":
        return f"read_csv('{quoted}', header = true)"
    if fmt == "parquet":
        return f"read_parquet('{quoted}')"
    return f"read_json('{quoted}', format = 'newline_delimited')"


def _connect(landing_dir: Path) -> duckdb.DuckDBPyConnection:
    """Open an in-memory DuckDB with one view per landing file."""
    con = duckdb.connect(":memory:")
    for spec in LANDING_FILES:
        path = landing_dir / spec.path
        if not path.exists() and spec.path in DAILY_FILES:  # written one file per day
            path = landing_dir / DAILY_FILES[spec.path].format(day="*")
        reader = _reader(path, spec.format)
        con.execute(f"CREATE VIEW {TABLES[spec.path]} AS SELECT * FROM {reader}")
    return con


def _rows_of(counts: dict[str, int], path: str) -> int:
    """The rows of a landing file, or of its daily files when it is written one per day."""
    if path in counts:
        return counts[path]
    prefix, _, suffix = DAILY_FILES[path].partition("{day}")
    return sum(n for name, n in counts.items() if name.startswith(prefix) and name.endswith(suffix))


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> object:
    """Run ``sql`` and return the single value it yields."""
    row = con.execute(sql).fetchone()
    assert row is not None
    return row[0]


def _file_bytes(landing_dir: Path) -> dict[str, bytes]:
    """Return the content of every landing file."""
    return {path: (landing_dir / path).read_bytes() for path in expected_files()}


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """A landing zone generated at the test scale, with its returned counts."""
    landing_dir = tmp_path_factory.mktemp("landing")
    return landing_dir, generate_landing_zone(landing_dir, scale=SCALE, seed=42)


@pytest.fixture(scope="module")
def con(landing: tuple[Path, dict[str, int]]) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection with a view over each landing file."""
    connection = _connect(landing[0])
    yield connection
    connection.close()


def test_expected_files_match_the_spec_and_the_result(
    landing: tuple[Path, dict[str, int]],
) -> None:
    landing_dir, counts = landing
    events = DAILY_FILES["usage_events/events.jsonl"]
    days = [REFERENCE_DATE - timedelta(days=d) for d in reversed(range(EVENT_DAYS))]
    assert expected_files() == [
        path
        for spec in LANDING_FILES
        for path in (
            [events.format(day=day.isoformat()) for day in days]
            if spec.path == "usage_events/events.jsonl"
            else [spec.path]
        )
    ]
    assert set(counts) == set(expected_files())
    for path in expected_files():
        assert (landing_dir / path).is_file(), path
    leftovers = [p for p in landing_dir.rglob("*") if p.is_file() and p.name.endswith(".tmp")]
    assert leftovers == []


def test_columns_are_documented(con: duckdb.DuckDBPyConnection) -> None:
    for spec in LANDING_FILES:
        columns = [row[0] for row in con.execute(f"DESCRIBE {TABLES[spec.path]}").fetchall()]
        assert tuple(columns) == spec.columns, spec.path


def test_column_types(con: duckdb.DuckDBPyConnection) -> None:
    expected: dict[str, dict[str, str]] = {
        "customers": {
            "customer_id": "BIGINT",
            "signup_date": "DATE",
            "updated_at": "TIMESTAMP",
            "email": "VARCHAR",
        },
        "orders": {"order_id": "BIGINT", "customer_id": "BIGINT", "ordered_at": "TIMESTAMP"},
        "order_items": {
            "order_id": "BIGINT",
            "line_no": "INTEGER",
            "sku": "VARCHAR",
            "quantity": "INTEGER",
            "unit_price": "DECIMAL(10,2)",
        },
        "events": {"event_id": "VARCHAR", "occurred_at": "TIMESTAMP", "feature": "VARCHAR"},
        "products": {"sku": "VARCHAR", "supplier_id": "BIGINT"},
        "suppliers": {"supplier_id": "BIGINT", "lead_time_days": "BIGINT"},
        "stock_levels": {"snapshot_date": "DATE", "on_hand": "BIGINT"},
        "purchase_orders": {
            "po_id": "BIGINT",
            "supplier_id": "BIGINT",
            "quantity": "INTEGER",
            "ordered_at": "TIMESTAMP",
            "expected_at": "TIMESTAMP",
            "received_at": "TIMESTAMP",
        },
    }
    for table, types in expected.items():
        actual = {str(r[0]): str(r[1]) for r in con.execute(f"DESCRIBE {table}").fetchall()}
        for column, type_ in types.items():
            assert actual[column] == type_, (table, column)


def test_row_counts_match_and_total_is_near_scale(
    landing: tuple[Path, dict[str, int]], con: duckdb.DuckDBPyConnection
) -> None:
    _, counts = landing
    for path, table in TABLES.items():
        rows = _rows_of(counts, path)
        assert _scalar(con, f"SELECT count(*) FROM {table}") == rows, path
        assert rows > 0, path
    total = sum(counts.values())
    assert 0.75 * SCALE <= total <= 1.25 * SCALE


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("customers", "customer_id"),
        ("customers", "email"),
        ("orders", "order_id"),
        ("order_items", "order_id, line_no"),
        ("events", "event_id"),
        ("products", "sku"),
        ("suppliers", "supplier_id"),
        ("suppliers", "supplier_name"),
        ("stock_levels", "snapshot_date, sku, warehouse"),
        ("purchase_orders", "po_id"),
    ],
)
def test_keys_are_unique_and_not_null(con: duckdb.DuckDBPyConnection, table: str, key: str) -> None:
    nulls = " OR ".join(f"{c.strip()} IS NULL" for c in key.split(","))
    assert _scalar(con, f"SELECT count(*) FROM {table} WHERE {nulls}") == 0
    duplicates = (
        f"SELECT count(*) FROM (SELECT {key} FROM {table} GROUP BY ALL HAVING count(*) > 1)"
    )
    assert _scalar(con, duplicates) == 0


@pytest.mark.parametrize(
    ("child", "column", "parent", "parent_key"),
    [
        ("orders", "customer_id", "customers", "customer_id"),
        ("order_items", "order_id", "orders", "order_id"),
        ("order_items", "sku", "products", "sku"),
        ("events", "customer_id", "customers", "customer_id"),
        ("products", "supplier_id", "suppliers", "supplier_id"),
        ("stock_levels", "sku", "products", "sku"),
        ("purchase_orders", "supplier_id", "suppliers", "supplier_id"),
        ("purchase_orders", "sku", "products", "sku"),
    ],
)
def test_foreign_keys_resolve(
    con: duckdb.DuckDBPyConnection, child: str, column: str, parent: str, parent_key: str
) -> None:
    orphans = f"SELECT count(*) FROM {child} c ANTI JOIN {parent} p ON c.{column} = p.{parent_key}"
    assert _scalar(con, f"SELECT count(*) FROM {child} WHERE {column} IS NULL") == 0
    assert _scalar(con, orphans) == 0


def test_every_order_has_lines_numbered_from_one(con: duckdb.DuckDBPyConnection) -> None:
    gaps = """
        SELECT count(*) FROM (
            SELECT order_id, min(line_no) AS lo, max(line_no) AS hi, count(*) AS n
            FROM order_items GROUP BY order_id
        ) WHERE lo <> 1 OR hi <> n
    """
    assert _scalar(con, gaps) == 0
    assert _scalar(con, "SELECT count(*) FROM orders ANTI JOIN order_items USING (order_id)") == 0


@pytest.mark.parametrize(
    ("table", "column", "accepted"),
    [
        ("customers", "country", COUNTRIES),
        ("customers", "segment", SEGMENTS),
        ("orders", "status", ORDER_STATUSES),
        ("orders", "channel", CHANNELS),
        ("events", "event_type", EVENT_TYPES),
        ("products", "category", CATEGORIES),
        ("suppliers", "country", COUNTRIES),
        ("stock_levels", "warehouse", WAREHOUSES),
    ],
)
def test_accepted_values(
    con: duckdb.DuckDBPyConnection, table: str, column: str, accepted: tuple[str, ...]
) -> None:
    values = {str(r[0]) for r in con.execute(f"SELECT DISTINCT {column} FROM {table}").fetchall()}
    assert _scalar(con, f"SELECT count(*) FROM {table} WHERE {column} IS NULL") == 0
    assert values <= set(accepted)
    assert len(values) >= min(3, len(accepted))


def test_customers_values(con: duckdb.DuckDBPyConnection) -> None:
    assert _scalar(con, "SELECT min(customer_id) FROM customers") == 1
    assert _scalar(con, "SELECT max(customer_id) = count(*) FROM customers") is True
    bad = """
        SELECT count(*) FROM customers
        WHERE email <> lower(email) OR email NOT LIKE '%@example.com'
           OR signup_date NOT BETWEEN DATE '2023-01-01' AND DATE '2025-12-31'
           OR updated_at < signup_date OR first_name IS NULL OR last_name IS NULL
    """
    assert _scalar(con, bad) == 0


def test_orders_values(con: duckdb.DuckDBPyConnection) -> None:
    bad = """
        SELECT count(*) FROM orders
        WHERE ordered_at NOT BETWEEN TIMESTAMP '2024-01-01' AND TIMESTAMP '2025-12-31 23:59:59'
    """
    assert _scalar(con, bad) == 0
    top = _scalar(con, "SELECT mode(status) FROM orders")
    assert top == "delivered"
    items = """
        SELECT count(*) FROM order_items
        WHERE quantity NOT BETWEEN 1 AND 10 OR unit_price <= 0 OR unit_price IS NULL
    """
    assert _scalar(con, items) == 0


def test_events_values(con: duckdb.DuckDBPyConnection) -> None:
    assert _scalar(con, "SELECT count(*) FROM events WHERE event_id NOT LIKE 'evt-%'") == 0
    feature = """
        SELECT count(*) FROM events
        WHERE (event_type = 'feature_use') <> (feature IS NOT NULL)
    """
    assert _scalar(con, feature) == 0
    distinct = "SELECT DISTINCT feature FROM events WHERE feature IS NOT NULL"
    features = {str(r[0]) for r in con.execute(distinct).fetchall()}
    assert features <= set(FEATURES)
    window = """
        SELECT count(*) FROM events
        WHERE occurred_at NOT BETWEEN TIMESTAMP '2025-01-01' AND TIMESTAMP '2025-12-31 23:59:59'
    """
    assert _scalar(con, window) == 0
    null_share = _scalar(con, "SELECT avg((duration_ms IS NULL)::INTEGER) FROM events")
    assert isinstance(null_share, float)
    assert 0.04 <= null_share <= 0.18


def test_inventory_values(con: duckdb.DuckDBPyConnection) -> None:
    assert _scalar(con, "SELECT count(*) FROM products WHERE unit_cost <= 0") == 0
    lead = "SELECT count(*) FROM suppliers WHERE lead_time_days NOT BETWEEN 2 AND 45"
    assert _scalar(con, lead) == 0
    stock = "SELECT count(*) FROM stock_levels WHERE on_hand < 0 OR reorder_point <= 0"
    assert _scalar(con, stock) == 0
    stock_outs = _scalar(con, "SELECT count(*) FROM stock_levels WHERE on_hand = 0")
    assert isinstance(stock_outs, int) and stock_outs > 0


def test_purchase_orders_values(con: duckdb.DuckDBPyConnection) -> None:
    bad = """
        SELECT count(*) FROM purchase_orders
        WHERE quantity <= 0 OR expected_at <= ordered_at
           OR (received_at IS NOT NULL AND received_at <= ordered_at)
    """
    assert _scalar(con, bad) == 0
    open_pos = _scalar(con, "SELECT count(*) FROM purchase_orders WHERE received_at IS NULL")
    assert isinstance(open_pos, int) and open_pos > 0
    # The supplier of a purchase order supplies the product, at about its lead time.
    mismatch = """
        SELECT count(*) FROM purchase_orders po
        JOIN products p USING (sku)
        JOIN suppliers s ON s.supplier_id = po.supplier_id
        WHERE p.supplier_id <> po.supplier_id
           OR date_diff('day', po.ordered_at, po.expected_at) NOT BETWEEN
              s.lead_time_days AND s.lead_time_days + 1
    """
    assert _scalar(con, mismatch) == 0
    late = _scalar(con, "SELECT count(*) FROM purchase_orders WHERE received_at > expected_at")
    assert isinstance(late, int) and late > 0


def test_supplier_on_time_rates_differ(tmp_path: Path) -> None:
    generate_landing_zone(tmp_path, scale=50_000, seed=7)
    with _connect(tmp_path) as con:
        rates = con.execute(
            """
            SELECT avg((received_at <= expected_at)::INTEGER) AS on_time
            FROM purchase_orders WHERE received_at IS NOT NULL
            GROUP BY supplier_id HAVING count(*) >= 20
            """
        ).fetchall()
    on_time = [float(r[0]) for r in rates]
    assert len(on_time) >= 10
    assert max(on_time) - min(on_time) > 0.2


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    first = generate_landing_zone(tmp_path / "a", scale=SCALE, seed=42)
    second = generate_landing_zone(tmp_path / "b", scale=SCALE, seed=42)
    assert first == second
    assert _file_bytes(tmp_path / "a") == _file_bytes(tmp_path / "b")


def test_different_seed_gives_different_content(tmp_path: Path) -> None:
    generate_landing_zone(tmp_path / "a", scale=SCALE, seed=42)
    generate_landing_zone(tmp_path / "b", scale=SCALE, seed=43)
    a, b = _file_bytes(tmp_path / "a"), _file_bytes(tmp_path / "b")
    for path in expected_files():
        assert a[path] != b[path], path


def test_rerun_overwrites_existing_files(tmp_path: Path) -> None:
    generate_landing_zone(tmp_path, scale=5_000, seed=1)
    counts = generate_landing_zone(tmp_path, scale=SCALE, seed=42)
    fresh = tmp_path / "fresh"
    generate_landing_zone(fresh, scale=SCALE, seed=42)
    assert _file_bytes(tmp_path) == _file_bytes(fresh)
    with _connect(tmp_path) as con:
        assert _scalar(con, "SELECT count(*) FROM orders") == counts["orders/orders.csv"]


def test_larger_scale(tmp_path: Path) -> None:
    scale = 200_000
    counts = generate_landing_zone(tmp_path, scale=scale)
    total = sum(counts.values())
    assert 0.75 * scale <= total <= 1.25 * scale
    with _connect(tmp_path) as con:
        for path, table in TABLES.items():
            assert _scalar(con, f"SELECT count(*) FROM {table}") == _rows_of(counts, path), path
        orphans = """
            SELECT count(*) FROM order_items ANTI JOIN orders USING (order_id)
        """
        assert _scalar(con, orphans) == 0
        dupes = "SELECT count(*) - count(DISTINCT event_id) FROM events"
        assert _scalar(con, dupes) == 0


# --- one file per day (days=N) ---------------------------------------------------------------

DAYS = 5


@pytest.fixture(scope="module")
def daily(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """A landing zone written one file per day for DAYS days, at the test scale."""
    landing_dir = tmp_path_factory.mktemp("daily")
    return landing_dir, generate_landing_zone(landing_dir, scale=SCALE, seed=42, days=DAYS)


def _daily_view(landing_dir: Path, whole: str) -> str:
    """A reader over every daily file of ``whole`` (e.g. orders/orders.csv), with its name."""
    spec = next(s for s in LANDING_FILES if s.path == whole)
    pattern = str(landing_dir / DAILY_FILES[whole].format(day="*")).replace("'", "''")
    if spec.format == "csv":
        return f"read_csv('{pattern}', header = true, filename = true)"
    if spec.format == "parquet":
        return f"read_parquet('{pattern}', filename = true)"
    return f"read_json('{pattern}', format = 'newline_delimited', filename = true)"


def test_days_writes_one_file_per_day_ending_at_the_reference_date(
    daily: tuple[Path, dict[str, int]], landing: tuple[Path, dict[str, int]]
) -> None:
    landing_dir, counts = daily
    days = [(REFERENCE_DATE - timedelta(days=d)).isoformat() for d in reversed(range(DAYS))]
    assert days[-1] == "2025-12-31" and len(set(days)) == DAYS
    assert list(counts) == expected_files(DAYS)
    for day in days:
        for name in (
            f"orders/orders_{day}.csv",
            f"orders/order_items_{day}.parquet",
            f"usage_events/events_{day}.jsonl",
        ):
            assert (landing_dir / name).is_file(), name
            assert counts[name] > 0, name
    for whole in DAILY_FILES:
        assert not (landing_dir / whole).exists(), whole
    # the scale's totals, spread over the days; the other files as without days
    _, whole_counts = landing
    for spec in LANDING_FILES:
        path = spec.path
        assert _rows_of(counts, path) == _rows_of(whole_counts, path), path
        if path not in DAILY_FILES:
            assert (landing_dir / path).read_bytes() == (landing[0] / path).read_bytes()
    # as even as integers allow
    per_day = [counts[f"orders/orders_{day}.csv"] for day in days]
    assert max(per_day) - min(per_day) <= 1


def test_each_days_rows_carry_that_days_timestamps(daily: tuple[Path, dict[str, int]]) -> None:
    landing_dir, counts = daily
    with duckdb.connect(":memory:") as con:
        con.execute(
            "CREATE VIEW orders AS SELECT * FROM " + _daily_view(landing_dir, "orders/orders.csv")
        )
        con.execute(
            "CREATE VIEW events AS SELECT * FROM "
            + _daily_view(landing_dir, "usage_events/events.jsonl")
        )
        con.execute(
            "CREATE VIEW items AS SELECT * FROM "
            + _daily_view(landing_dir, "orders/order_items.parquet")
        )
        day = "regexp_extract(filename, '(\\d{4}-\\d{2}-\\d{2})', 1)::DATE"
        assert _scalar(con, f"SELECT count(*) FROM orders WHERE ordered_at::DATE <> {day}") == 0
        assert _scalar(con, f"SELECT count(*) FROM events WHERE occurred_at::DATE <> {day}") == 0
        assert _scalar(con, "SELECT count(DISTINCT ordered_at::DATE) FROM orders") == DAYS
        # keys unique across days; every order's lines in the same day's file
        assert _scalar(con, "SELECT count(*) - count(DISTINCT order_id) FROM orders") == 0
        assert _scalar(con, "SELECT count(*) - count(DISTINCT event_id) FROM events") == 0
        split = """
            SELECT count(*) FROM items i JOIN orders o USING (order_id)
            WHERE regexp_extract(i.filename, '(\\d{4}-\\d{2}-\\d{2})', 1)
               <> regexp_extract(o.filename, '(\\d{4}-\\d{2}-\\d{2})', 1)
        """
        assert _scalar(con, split) == 0
        assert _scalar(con, "SELECT count(*) FROM items ANTI JOIN orders USING (order_id)") == 0
        assert _scalar(con, "SELECT count(*) FROM orders ANTI JOIN items USING (order_id)") == 0
        customers = (landing_dir / "customers/customers.csv").as_posix()
        orphans = f"""
            SELECT count(*) FROM events e
            ANTI JOIN read_csv('{customers}', header = true) c USING (customer_id)
        """
        assert _scalar(con, orphans) == 0
        total = _scalar(con, "SELECT count(*) FROM orders")
        assert total == sum(n for p, n in counts.items() if p.startswith("orders/orders_"))


def test_days_is_deterministic_and_switching_back_removes_the_daily_files(
    tmp_path: Path, daily: tuple[Path, dict[str, int]]
) -> None:
    counts = generate_landing_zone(tmp_path, scale=SCALE, seed=42, days=DAYS)
    assert counts == daily[1]
    for path in expected_files(DAYS):
        assert (tmp_path / path).read_bytes() == (daily[0] / path).read_bytes(), path
    # fewer days: the older days' files go; no days: every daily file goes
    generate_landing_zone(tmp_path, scale=SCALE, seed=42, days=2)
    assert sorted(p.name for p in (tmp_path / "orders").glob("orders_*.csv")) == [
        "orders_2025-12-30.csv",
        "orders_2025-12-31.csv",
    ]
    generate_landing_zone(tmp_path, scale=SCALE, seed=42)
    assert list((tmp_path / "orders").glob("*_20*")) == []
    # usage events stay daily (the demo's usage_events is partitioned), over EVENT_DAYS days
    assert len(list((tmp_path / "usage_events").glob("events_20*.jsonl"))) == EVENT_DAYS
    fresh = tmp_path / "fresh"
    generate_landing_zone(fresh, scale=SCALE, seed=42)
    assert _file_bytes(tmp_path) == _file_bytes(fresh)


def test_more_days_than_rows_still_gives_every_day_rows(tmp_path: Path) -> None:
    counts = generate_landing_zone(tmp_path, scale=100, seed=3, days=150)
    assert len(expected_files(150)) == len(counts) == 3 * 150 + 5
    for path, rows in counts.items():
        assert rows > 0, path


@pytest.mark.parametrize("days", [0, -1, 3661])
def test_days_out_of_range_is_refused_before_writing(tmp_path: Path, days: int) -> None:
    with pytest.raises(ValueError, match="days must be between 1 and 3660"):
        generate_landing_zone(tmp_path / "zone", scale=SCALE, days=days)
    assert not (tmp_path / "zone").exists()
