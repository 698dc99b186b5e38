"""Partitioned landing: a file's partition from its name, the landing load of a partitioned run
(only the run's partitions' files), and the landing sensor (one run per touched partition).

Real DuckDB, a real Dagster instance, and a small daily-partitioned product written into
``tmp_path`` (its spec, SQL model and contracts), loaded by ddp's registry as any project's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ddp_assets.automation.landing import evaluate_landing
from ddp_assets.ingest.files import (
    file_partition,
    partition_file_example,
    partition_of_file,
)
from ddp_assets.ingest.landing import file_ports_asset, table_port_asset
from ddp_assets.partitions import partitions_def
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.model import FileInputPort, ProductSpec
from ddp_assets.spec.registry import Product, Registry

ROOT = Path(__file__).resolve().parents[1]

SPEC = """\
type: ddp_assets.components.DataProduct
attributes:
  id: shop
  name: Shop
  domain: sales
  version: 1.0.0
  status: active
  owners: [shop@example.com]
  description:
    purpose: Orders of a shop, one landing file per day.
  input_ports:
    - name: raw_orders
      type: file
      path: orders/orders*.csv
      format: csv
    - name: raw_events
      type: file
      path: events/*.jsonl
      format: json
{extra_ports}  output_ports:
    - name: orders
      model: shop_orders
      contract: contracts/orders.odcs.yaml
{partitions}"""

DAILY = """\
  partitions:
    by: day
    column: ordered_at
    start: "2026-01-01"
"""

ORDERS_CONTRACT = """\
apiVersion: v3.2.0
kind: DataContract
id: urn:ddp:sales:shop:{name}
name: {name}
version: 1.0.0
status: active
domain: sales
dataProduct: shop
schema:
  - name: {name}
    physicalType: table
    properties:
      - name: order_id
        logicalType: integer
        physicalType: bigint
        required: true
      - name: ordered_at
        logicalType: timestamp
        physicalType: timestamp
        required: true
      - name: amount
        logicalType: number
        physicalType: double
"""

HEADER = "order_id,ordered_at,amount"


def orders_csv(day: str, first: int, rows: int = 3) -> str:
    lines = [HEADER]
    lines += [f"{i},{day} 0{i % 10}:00:00,{i}.5" for i in range(first, first + rows)]
    return "\n".join(lines) + "\n"


def events_jsonl(day: str, first: int, rows: int = 2) -> str:
    return "".join(
        json.dumps({"event_id": i, "ordered_at": f"{day}T01:00:00"}) + "\n"
        for i in range(first, first + rows)
    )


def write_product(folder: Path, partitions: str = DAILY, extra_ports: str = "") -> None:
    (folder / "models").mkdir(parents=True, exist_ok=True)
    (folder / "contracts").mkdir(exist_ok=True)
    (folder / "defs.yaml").write_text(
        SPEC.format(partitions=partitions, extra_ports=extra_ports), encoding="utf-8"
    )
    (folder / "models" / "shop_orders.sql").write_text(
        "select * from {{ source('shop', 'raw_orders') }}\n", encoding="utf-8"
    )
    (folder / "contracts" / "orders.odcs.yaml").write_text(
        ORDERS_CONTRACT.format(name="shop_orders"), encoding="utf-8"
    )
    # the landing contract of raw_orders: a partition without a file loads empty
    (folder / "contracts" / "raw_orders.odcs.yaml").write_text(
        ORDERS_CONTRACT.format(name="raw_orders"), encoding="utf-8"
    )


def load_product(root: Path, partitions: str = DAILY, extra_ports: str = "") -> Product:
    write_product(root / "defs" / "sales" / "shop", partitions, extra_ports)
    registry = Registry.load(root / "defs", root)
    assert not registry.errors, registry.errors
    return registry.products["shop"]


def spec_of(tmp_path: Path, partitions: str) -> ProductSpec:
    """The spec of the shop product with ``partitions`` (one line of YAML, or a block)."""
    block = partitions if partitions.startswith("  ") or not partitions else f"  {partitions}\n"
    return load_product(tmp_path, block).spec


# --- a file's partition ----------------------------------------------------------------------


def test_a_daily_file_names_its_day(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, DAILY)
    assert partition_of_file(spec, "orders/orders_2026-01-05.csv") == "2026-01-05"
    assert partition_of_file(spec, Path("orders/2026-01-05/part-1.csv")) == "2026-01-05"
    # the first date in the path decides, and an hour after it is part of the day
    assert partition_of_file(spec, "orders/2026-01-05/orders_2026-02-01.csv") == "2026-01-05"
    assert partition_of_file(spec, "orders/orders_2026-01-05-13.csv") == "2026-01-05"
    # every key found is a key of the product's partitions definition
    definition = partitions_def(spec)
    assert definition is not None and definition.has_partition_key("2026-01-05")


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("orders/orders.csv", "no date YYYY-MM-DD"),
        ("orders/orders_20260105.csv", "no date YYYY-MM-DD"),
        ("orders/orders_2026-02-30.csv", "'2026-02-30' in its name is not a date"),
        ("orders/orders_2025-12-31.csv", "before the product's first partition 2026-01-01"),
    ],
)
def test_a_daily_file_naming_no_partition(tmp_path: Path, path: str, reason: str) -> None:
    spec = spec_of(tmp_path, DAILY)
    found = file_partition(spec, path)
    assert partition_of_file(spec, path) is None
    assert found.key is None and found.reason is not None and reason in found.reason


def test_a_file_of_a_partition_not_yet_open_waits(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, DAILY)
    found = file_partition(spec, "orders/orders_2099-01-01.csv")
    assert found.key == "2099-01-01" and found.reason is None
    assert found.opens is not None and found.opens.year == 2099 and not found.ok
    assert partition_of_file(spec, "orders/orders_2099-01-01.csv") is None


def test_hourly_and_monthly_names(tmp_path: Path) -> None:
    hourly = spec_of(
        tmp_path / "h", 'partitions: {by: hour, column: ordered_at, start: "2026-01-01"}'
    )
    for name in ("e_2026-01-05-13.csv", "e_2026-01-05T13.csv", "e_2026-01-05-13:00.csv"):
        assert partition_of_file(hourly, f"orders/{name}") == "2026-01-05-13:00", name
    assert partition_of_file(hourly, "orders/e_2026-01-05-13:30.csv") is None
    assert partition_of_file(hourly, "orders/e_2026-01-05.csv") is None
    monthly = spec_of(
        tmp_path / "m", 'partitions: {by: month, column: ordered_at, start: "2026-01-01"}'
    )
    assert partition_of_file(monthly, "orders/orders_2026-03.csv") == "2026-03-01"
    assert partition_of_file(monthly, "orders/orders_2026-03-17.csv") == "2026-03-01"
    assert partition_of_file(monthly, "orders/orders_2026-13.csv") is None
    assert partition_file_example(monthly, "orders/orders*.csv") == "orders/orders_2026-01.csv"
    assert partition_file_example(hourly, "events/*.jsonl") == "events/2026-01-01-00.jsonl"


def test_static_keys_as_path_parts(tmp_path: Path) -> None:
    spec = spec_of(
        tmp_path, "partitions: {by: key, column: region, keys: [emea, amer, eu, eu-west]}"
    )
    assert partition_of_file(spec, "orders/emea/orders.csv") == "emea"
    assert partition_of_file(spec, "orders/orders_amer.csv") == "amer"
    assert partition_of_file(spec, "orders/orders-emea.csv") == "emea"
    assert partition_of_file(spec, "orders/orders_eu-west.csv") == "eu-west"  # not eu
    assert partition_of_file(spec, "orders/orders_eu.csv") == "eu"
    assert partition_of_file(spec, "orders/orders_emeax.csv") is None
    both = file_partition(spec, "orders/emea/orders_amer.csv")
    assert both.key is None and both.reason and "several partitions (amer, emea)" in both.reason
    assert partition_file_example(spec, "orders/orders*.csv") == "orders/orders_emea.csv"


def test_an_unpartitioned_product_has_no_file_partitions(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, "")
    assert spec.partitions is None
    assert partition_of_file(spec, "orders/orders_2026-01-05.csv") is None


# --- the landing load ------------------------------------------------------------------------


@dataclass
class Zone:
    product: Product
    paths: ProjectPaths
    instance: dg.DagsterInstance

    @property
    def landing(self) -> Path:
        return self.paths.landing_dir

    def drop(self, relative: str, text: str) -> Path:
        path = self.landing / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def asset(self) -> dg.AssetsDefinition:
        ports = [p for p in self.product.spec.input_ports if isinstance(p, FileInputPort)]
        return file_ports_asset(self.product, ports, self.paths)

    def load(self, partition: str | None = None, **kwargs: object) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [self.asset()],
            instance=self.instance,
            partition_key=partition,
            raise_on_error=False,
            **kwargs,  # type: ignore[arg-type]
        )

    def raw(self, port: str) -> list[tuple]:
        with duckdb.connect(str(self.paths.warehouse_path), read_only=True) as connection:
            return connection.execute(f'select * from shop."{port}" order by 1').fetchall()

    def columns(self, port: str) -> list[tuple[str, str]]:
        with duckdb.connect(str(self.paths.warehouse_path), read_only=True) as connection:
            rows = connection.execute(f'describe shop."{port}"').fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    def logs(self, result: dg.ExecuteInProcessResult) -> list[str]:
        return [e.user_message for e in self.instance.all_logs(result.run_id)]

    def tick(self, cursor: str | None = None) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=self.instance, cursor=cursor)
        return evaluate_landing(context, self.product, self.paths)


@pytest.fixture
def zone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DDP_DATA_DIR", str(tmp_path / "data"))
    product = load_product(tmp_path / "project")
    paths = ProjectPaths(ROOT)
    with dg.instance_for_test() as instance:
        yield Zone(product, paths, instance)


def _metadata(result: dg.ExecuteInProcessResult, port: str) -> dict[str, object]:
    events = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["shop", port])
    ]
    assert events, f"no materialization of {port}"
    return {k: getattr(v, "value", v) for k, v in events[-1].materialization.metadata.items()}


def test_the_landing_assets_share_the_products_partitions(zone: Zone, tmp_path: Path) -> None:
    asset = zone.asset()
    definition = partitions_def(zone.product.spec)
    assert asset.partitions_def == definition
    for key in asset.keys:
        assert asset.specs_by_key[key].partitions_def == definition
    assert asset.backfill_policy is not None
    tables = load_product(
        tmp_path / "with_table",
        extra_ports="    - name: ref\n      type: table\n      table: main.reference\n",
    )
    table_port = tables.spec.input_ports[-1]
    view = table_port_asset(tables, table_port, zone.paths)  # type: ignore[arg-type]
    assert view.partitions_def == definition


def test_a_partitioned_run_loads_only_its_partitions_files(zone: Zone) -> None:
    zone.drop("orders/orders_2026-01-05.csv", orders_csv("2026-01-05", 1))
    zone.drop("orders/orders_2026-01-06.csv", orders_csv("2026-01-06", 10, rows=4))
    zone.drop("orders/orders.csv", orders_csv("2026-01-05", 100))  # names no partition
    zone.drop("events/2026-01-05.jsonl", events_jsonl("2026-01-05", 1))
    zone.drop("events/2026-01-06.jsonl", events_jsonl("2026-01-06", 10))
    result = zone.load("2026-01-06")
    assert result.success
    assert [r[0] for r in zone.raw("raw_orders")] == [10, 11, 12, 13]
    assert [r[0] for r in zone.raw("raw_events")] == [10, 11]
    metadata = _metadata(result, "raw_orders")
    assert metadata["ddp/partitions"] == ["2026-01-06"]
    assert metadata["ddp/file_count"] == 1
    assert metadata["ddp/files"] == ["orders/orders_2026-01-06.csv"]
    fingerprints = metadata["ddp/partition_fingerprints"]
    assert isinstance(fingerprints, dict) and set(fingerprints) == {"2026-01-06"}
    assert fingerprints["2026-01-06"] == metadata["ddp/files_fingerprint"]
    warnings = [m for m in zone.logs(result) if "skipped orders/orders.csv" in m]
    assert warnings and "e.g. orders/orders_2026-01-01.csv" in warnings[0]
    assert "its name holds no date YYYY-MM-DD" in warnings[0]

    # a range of partitions (a backfill batch) loads the files of each
    rerun = zone.load(
        None,
        tags={
            "dagster/asset_partition_range_start": "2026-01-05",
            "dagster/asset_partition_range_end": "2026-01-06",
        },
    )
    assert rerun.success
    assert [r[0] for r in zone.raw("raw_orders")] == [1, 2, 3, 10, 11, 12, 13]
    both = _metadata(rerun, "raw_orders")
    assert both["ddp/partitions"] == ["2026-01-05", "2026-01-06"]
    assert both["ddp/file_count"] == 2
    # the data version is the fingerprint of the run's files: another partition, another one
    assert both["ddp/files_fingerprint"] != metadata["ddp/files_fingerprint"]


def test_a_partition_without_a_file(zone: Zone) -> None:
    zone.drop("orders/orders_2026-01-05.csv", orders_csv("2026-01-05", 1))
    # raw_events has no landing contract: its missing partition fails, naming a file to drop
    result = zone.load("2026-01-07")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    text = failure.step_failure_data.error.message if failure.step_failure_data.error else ""
    assert "no landing file for partition 2026-01-07 of port 'shop.raw_events'" in text
    assert "expected e.g. events/2026-01-01.jsonl" in text
    # raw_orders has one: the partition loads as an empty table with the contract's columns
    assert zone.raw("raw_orders") == []
    assert zone.columns("raw_orders") == [
        ("order_id", "BIGINT"),
        ("ordered_at", "TIMESTAMP"),
        ("amount", "DOUBLE"),
    ]
    assert _metadata(result, "raw_orders")["ddp/file_count"] == 0


def test_an_unpartitioned_product_loads_every_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DDP_DATA_DIR", str(tmp_path / "data"))
    product = load_product(tmp_path / "project", partitions="")
    zone = Zone(product, ProjectPaths(ROOT), dg.DagsterInstance.ephemeral())
    zone.drop("orders/orders_2026-01-05.csv", orders_csv("2026-01-05", 1))
    zone.drop("orders/orders.csv", orders_csv("2026-01-05", 100, rows=1))
    zone.drop("events/a.jsonl", events_jsonl("2026-01-05", 1))
    assert zone.asset().partitions_def is None
    result = zone.load()
    assert result.success
    assert [r[0] for r in zone.raw("raw_orders")] == [1, 2, 3, 100]
    metadata = _metadata(result, "raw_orders")
    assert "ddp/partitions" not in metadata and "ddp/file_count" not in metadata


# --- the landing sensor ----------------------------------------------------------------------


def _requests(result: dg.SensorResult) -> dict[str, dg.RunRequest]:
    requests = result.run_requests or []
    by_key = {r.partition_key: r for r in requests}
    assert len(by_key) == len(requests), "one request per partition"
    return {str(k): v for k, v in by_key.items()}


def test_the_sensor_requests_one_run_per_touched_partition(zone: Zone) -> None:
    zone.drop("orders/orders_2026-01-05.csv", orders_csv("2026-01-05", 1))
    zone.drop("orders/orders_2026-01-06.csv", orders_csv("2026-01-06", 10))
    zone.drop("events/2026-01-06.jsonl", events_jsonl("2026-01-06", 1))
    first = zone.tick()
    requests = _requests(first)
    assert set(requests) == {"2026-01-05", "2026-01-06"}
    assert requests["2026-01-05"].tags["ddp/changed_ports"] == "raw_orders"
    assert requests["2026-01-06"].tags["ddp/changed_ports"] == "raw_events,raw_orders"
    assert all(r.tags["ddp/product"] == "shop" for r in requests.values())
    assert len({r.run_key for r in requests.values()}) == 2

    # nothing changed: nothing requested
    quiet = zone.tick(first.cursor)
    assert not quiet.run_requests

    # a new day's file requests that day only
    zone.drop("orders/orders_2026-01-07.csv", orders_csv("2026-01-07", 20))
    new_day = zone.tick(quiet.cursor)
    assert set(_requests(new_day)) == {"2026-01-07"}

    # a late file for an old partition requests that old partition
    zone.drop("orders/orders_2026-01-05_late.csv", orders_csv("2026-01-05", 30))
    late = zone.tick(new_day.cursor)
    assert set(_requests(late)) == {"2026-01-05"}
    assert late.cursor is not None
    assert not zone.tick(late.cursor).run_requests


def test_the_sensor_quarantines_a_file_naming_no_partition(zone: Zone) -> None:
    zone.drop("orders/orders_2026-01-05.csv", orders_csv("2026-01-05", 1))
    zone.drop("orders/orders.csv", orders_csv("2026-01-05", 100))
    zone.drop("orders/orders_2025-12-30.csv", orders_csv("2025-12-30", 200))
    result = zone.tick()
    assert set(_requests(result)) == {"2026-01-05"}
    assert not (zone.landing / "orders" / "orders.csv").exists()
    assert not (zone.landing / "orders" / "orders_2025-12-30.csv").exists()
    folder = zone.paths.data_dir / "quarantine" / "shop"
    notes = {
        Path(n["file"]).name: n["reason"]
        for n in (json.loads(p.read_text()) for p in folder.rglob("*.reason.json"))
    }
    assert set(notes) == {"orders.csv", "orders_2025-12-30.csv"}
    assert "orders/orders.csv names no partition of product 'shop'" in notes["orders.csv"]
    assert "YYYY-MM-DD" in notes["orders.csv"]
    assert "e.g. orders/orders_2026-01-01.csv" in notes["orders.csv"]
    assert "before the product's first partition" in notes["orders_2025-12-30.csv"]
    observed = [o.metadata["ddp/quarantined"] for o in result.asset_events or []]
    assert len(observed) == 2


def test_a_file_for_a_partition_not_yet_open_waits(zone: Zone) -> None:
    zone.drop("orders/orders_2026-01-05.csv", orders_csv("2026-01-05", 1))
    zone.drop("orders/orders_2099-01-01.csv", orders_csv("2099-01-01", 2))
    result = zone.tick()
    assert set(_requests(result)) == {"2026-01-05"}
    assert (zone.landing / "orders" / "orders_2099-01-01.csv").exists()  # not quarantined
    assert not (zone.paths.data_dir / "quarantine").exists()


def test_the_sensor_starts_from_what_each_partition_loaded(zone: Zone) -> None:
    zone.drop("orders/orders_2026-01-05.csv", orders_csv("2026-01-05", 1))
    zone.drop("events/2026-01-05.jsonl", events_jsonl("2026-01-05", 1))
    zone.drop("orders/orders_2026-01-06.csv", orders_csv("2026-01-06", 10))
    zone.drop("events/2026-01-06.jsonl", events_jsonl("2026-01-06", 10))
    assert zone.load("2026-01-05").success
    # the first tick's cursor comes from the instance: only the unloaded partition runs
    assert set(_requests(zone.tick())) == {"2026-01-06"}
    assert zone.load("2026-01-06").success
    assert not zone.tick().run_requests
    # a file of a loaded partition changes: that partition runs again
    zone.drop("orders/orders_2026-01-05.csv", orders_csv("2026-01-05", 1, rows=5))
    assert set(_requests(zone.tick())) == {"2026-01-05"}


def test_a_partitioned_products_depot_port_loads_whole_in_each_partitions_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ddp_assets.demo.helpdesk import HELPDESK_DB, write_helpdesk_database
    from ddp_assets.depots.loader import load_depots
    from ddp_assets.ingest.depot_assets import depot_port_assets
    from ddp_assets.spec.model import DepotInputPort

    monkeypatch.setenv("DDP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
    paths = ProjectPaths(ROOT)
    write_helpdesk_database(paths.landing_dir / HELPDESK_DB, 40, 10, 42)
    product = load_product(
        tmp_path / "project",
        extra_ports="    - name: tickets\n      type: depot\n      depot: helpdesk\n"
        "      table: tickets\n",
    )
    ports = [p for p in product.spec.input_ports if isinstance(p, DepotInputPort)]
    (asset,) = depot_port_assets(product, ports, paths, load_depots(paths))
    assert asset.partitions_def == partitions_def(product.spec)
    with dg.instance_for_test() as instance:
        for day in ("2026-01-05", "2026-01-06"):
            result = dg.materialize([asset], instance=instance, partition_key=day)
            assert result.success
            (event,) = result.get_asset_materialization_events()
            assert event.partition == day
            with duckdb.connect(str(paths.warehouse_path), read_only=True) as connection:
                row = connection.execute("select count(*) from shop.tickets").fetchone()
            assert row == (40,)  # every ticket, whatever the partition
