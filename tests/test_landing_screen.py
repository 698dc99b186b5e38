"""The landing screen: what the landing sensor refuses before a run, and what the load refuses.

Real DuckDB, a real Dagster instance and the demo products' specs. Each case drops one bad
entry beside a good file in a landing zone whose raw table was loaded once (so the port has a
recorded header and types), ticks the sensor, and checks that the bad entry was quarantined
with a reason naming the mismatch, that the good file still starts its run, and that the load
after it reads the good file only.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ddp_assets.automation.landing import evaluate_landing
from ddp_assets.ingest.files import landing_files, refusal_reason
from ddp_assets.ingest.landing import file_ports_asset
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.model import FileInputPort
from ddp_assets.spec.registry import Product, Registry

HEADER = "customer_id,first_name,last_name,email,country,segment,signup_date,updated_at"


def customers(first_id: int, rows: int = 3, header: str = HEADER) -> str:
    lines = [header]
    for i in range(first_id, first_id + rows):
        lines.append(f"{i},Ada,Lovelace,ada{i}@example.com,GB,smb,2024-01-02,2024-01-03 04:05:06")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def registry(project_paths: ProjectPaths) -> Registry:
    return Registry.load(project_paths.defs_dir, project_paths.root)


@dataclass
class Zone:
    paths: ProjectPaths
    instance: dg.DagsterInstance
    registry: Registry

    @property
    def landing(self) -> Path:
        return self.paths.landing_dir

    def product(self, product_id: str) -> Product:
        return self.registry.products[product_id]

    def load(self, product_id: str) -> dg.ExecuteInProcessResult:
        product = self.product(product_id)
        ports = [p for p in product.spec.input_ports if isinstance(p, FileInputPort)]
        asset = file_ports_asset(product, ports, self.paths)
        return dg.materialize([asset], instance=self.instance, raise_on_error=False)

    def tick(self, product_id: str, cursor: str | None = None) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=self.instance, cursor=cursor)
        return evaluate_landing(context, self.product(product_id), self.paths)

    def notes(self, product_id: str) -> list[dict]:
        folder = self.paths.data_dir / "quarantine" / product_id
        return [json.loads(p.read_text()) for p in sorted(folder.rglob("*.reason.json"))]

    def raw(self, product_id: str, port: str) -> tuple[int, list[str]]:
        with duckdb.connect(str(self.paths.warehouse_path), read_only=True) as connection:
            row = connection.execute(f'select count(*) from "{product_id}"."{port}"').fetchone()
            columns = [
                c[0] for c in connection.execute(f'describe "{product_id}"."{port}"').fetchall()
            ]
        return (int(row[0]) if row else 0), columns


@pytest.fixture
def zone(
    tmp_path: Path, project_paths: ProjectPaths, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Zone]:
    monkeypatch.setenv("DDP_DATA_DIR", str(tmp_path / "data"))
    paths = ProjectPaths(project_paths.root)
    (paths.landing_dir / "customers").mkdir(parents=True)
    with dg.instance_for_test() as instance:
        yield Zone(paths, instance, registry)


@pytest.fixture
def loaded(zone: Zone) -> Zone:
    """customers.raw_customers loaded once from a good file: the port's header is on record."""
    (zone.landing / "customers" / "customers.csv").write_text(customers(1))
    assert zone.load("customers").success
    return zone


def _fifo(folder: Path) -> Path:
    path = folder / "pipe.csv"
    os.mkfifo(path)
    return path


def _link(target: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / "passwd.csv"
        path.symlink_to(target)
        return path

    return make


def _write(name: str, text: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.write_text(text)
        return path

    return make


def _write_bytes(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    return make


def _directory(folder: Path) -> Path:
    path = folder / "archive.csv"
    path.mkdir()
    (path / "inside.csv").write_text(customers(50))
    return path


BAD_CUSTOMERS = {
    "wrong header": (
        _write("renamed.csv", customers(10, header=HEADER.replace("customer_id", "id"))),
        ["header does not match", "missing customer_id", "id, first_name"],
    ),
    "mistyped column": (
        _write(
            "typed.csv",
            customers(20) + "abc,Bob,Marley,b@example.com,JM,smb,2024-01-02,2024-01-03\n",
        ),
        ["column customer_id", "'abc' at row 4 (line 5)", "not BIGINT"],
    ),
    "mistyped date": (
        _write("dated.csv", customers(25).replace("2024-01-02", "yesterday", 1)),
        ["column signup_date", "'yesterday' at row 1 (line 2)", "not DATE"],
    ),
    "symlink to /etc/passwd": (_link("/etc/passwd"), ["symbolic link (to /etc/passwd)"]),
    "symlink to a good file": (_link("customers.csv"), ["symbolic link (to customers.csv)"]),
    "dangling symlink": (_link("/nonexistent/file.csv"), ["symbolic link"]),
    "fifo": (_fifo, ["named pipe (FIFO)"]),
    "directory": (_directory, ["is a directory"]),
    "empty file": (_write("empty.csv", ""), ["the file is empty"]),
    "not UTF-8": (
        _write_bytes(
            "latin.csv",
            (HEADER + "\n1,Ada,Lovelace,a@example.com,GB,smb,").encode() + b"\xff\xfe\x00\x01\n",
        ),
        ["cannot be read as csv", "CSV Error on Line: 2"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_CUSTOMERS), ids=list(BAD_CUSTOMERS))
def test_a_bad_entry_is_quarantined_and_never_blocks_the_run(loaded: Zone, case: str) -> None:
    make, expected = BAD_CUSTOMERS[case]
    folder = loaded.landing / "customers"
    bad = make(folder)
    (folder / "more.csv").write_text(customers(100))
    opened = _watch_fifo(bad)
    result = loaded.tick("customers")
    assert not opened.is_set(), "the screen opened the pipe"

    assert len(result.run_requests or []) == 1, "the good file still starts its run"
    assert not os.path.lexists(bad)
    (note,) = loaded.notes("customers")
    assert note["input_port"] == "raw_customers" and note["file"] == str(bad)
    for fragment in expected:
        assert fragment in note["reason"], (fragment, note["reason"])
    quarantined = [
        Path(folder, name)
        for folder, dirs, files in os.walk(loaded.paths.data_dir / "quarantine")
        for name in [*dirs, *files]
    ]
    assert bad.name in {p.name for p in quarantined}  # the entry itself, a link stays a link
    (observation,) = result.asset_events
    assert isinstance(observation, dg.AssetObservation)
    assert observation.asset_key == dg.AssetKey(["customers", "raw_customers"])
    assert observation.metadata["ddp/reason"].value == note["reason"]  # type: ignore[union-attr]

    # the run the sensor asked for loads the good files only, and succeeds
    assert loaded.load("customers").success
    rows, columns = loaded.raw("customers", "raw_customers")
    assert rows == 6 and columns == HEADER.split(",")
    # and a later tick starts nothing new: the quarantined entry is gone for good
    assert loaded.tick("customers", result.cursor).run_requests == []


def _watch_fifo(path: Path) -> threading.Event:
    """If something blocks reading the pipe, a writer opens it after a while to let it go."""
    opened = threading.Event()
    if not path.is_fifo():
        return opened

    def release() -> None:
        for _ in range(100):
            threading.Event().wait(0.2)
            target = next(
                (p for p in [path, *path.parent.parent.parent.rglob("pipe.csv")] if p.is_fifo()),
                None,
            )
            if target is None:
                return
            try:
                handle = os.open(target, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue  # no reader: nobody is blocked
            opened.set()
            os.close(handle)
            return

    threading.Thread(target=release, daemon=True).start()
    return opened


def test_passwd_never_reaches_the_raw_table(loaded: Zone) -> None:
    """The attack: /etc/passwd linked in as a CSV gave raw_customers its columns."""
    folder = loaded.landing / "customers"
    (folder / "passwd.csv").symlink_to("/etc/passwd")
    loaded.tick("customers")
    assert loaded.load("customers").success
    assert loaded.raw("customers", "raw_customers")[1] == HEADER.split(",")


def test_added_column_without_a_contract_is_a_warning_not_a_refusal(loaded: Zone) -> None:
    folder = loaded.landing / "customers"
    grown = customers(30).splitlines()
    (folder / "grown.csv").write_text(
        "\n".join([grown[0] + ",tier"] + [line + ",gold" for line in grown[1:]]) + "\n"
    )
    result = loaded.tick("customers")
    assert len(result.run_requests or []) == 1 and (folder / "grown.csv").exists()
    assert loaded.notes("customers") == []


def test_first_file_sets_the_header_when_nothing_was_loaded(zone: Zone) -> None:
    folder = zone.landing / "customers"
    (folder / "a.csv").write_text(customers(1))
    (folder / "b.csv").write_text(customers(5, header=HEADER.replace("email", "mail")))
    result = zone.tick("customers")
    assert len(result.run_requests or []) == 1
    (note,) = zone.notes("customers")
    assert note["file"].endswith("b.csv")
    assert "the port's file a.csv" in note["reason"] and "missing email" in note["reason"]


SUPPLIERS = "supplier_id,supplier_name,country,lead_time_days\n"
BAD_SUPPLIERS = {
    "missing column": (
        SUPPLIERS.replace(",lead_time_days", "") + "3,Fabrikam,GB\n",
        "missing lead_time_days",
    ),
    "unexpected column": (
        SUPPLIERS.replace("\n", ",rating\n") + "3,Fabrikam,GB,5,A\n",
        "unexpected rating",
    ),
    "mistyped column": (SUPPLIERS + "3,Fabrikam,GB,soon\n", "column lead_time_days: 'soon'"),
    "contract rule": (SUPPLIERS + "3,Fabrikam,gb,5\n", "country"),
}


@pytest.mark.parametrize("case", list(BAD_SUPPLIERS), ids=list(BAD_SUPPLIERS))
def test_input_contract_sets_the_header_and_types(zone: Zone, case: str) -> None:
    text, expected = BAD_SUPPLIERS[case]
    folder = zone.landing / "inventory"
    folder.mkdir()
    (folder / "suppliers.csv").write_text(SUPPLIERS + "1,Northwind,ES,22\n")
    (folder / "suppliers_bad.csv").write_text(text)
    result = zone.tick("inventory")
    assert len(result.run_requests or []) == 1
    (note,) = zone.notes("inventory")
    assert note["input_port"] == "raw_suppliers"
    assert "urn:ddp:supply_chain:inventory:raw_suppliers" in note["reason"]
    assert expected in note["reason"], note["reason"]


def test_json_lines_mistyped_field(zone: Zone) -> None:
    folder = zone.landing / "usage_events"
    folder.mkdir()
    good = '{"event_id": "e1", "customer_id": 1, "event_type": "login"}\n'
    # usage_events is daily-partitioned: each file names its day
    (folder / "events_2025-06-01.jsonl").write_text(good)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance)
        evaluate_landing(context, zone.product("usage_events"), zone.paths)
        (folder / "events_2025-06-01_late.jsonl").write_text(
            good + good.replace("1,", '"one",').replace("e1", "e2")
        )
        evaluate_landing(
            dg.build_sensor_context(instance=instance, cursor=context.cursor),
            zone.product("usage_events"),
            zone.paths,
        )
    (note,) = zone.notes("usage_events")
    # mixed numbers and strings read as DuckDB's JSON type: the value is shown as written
    assert "column customer_id: '\"one\"' at line 2 is not BIGINT" in note["reason"]


# -- the load refuses on its own (defence in depth) ----------------------------------------


def test_the_load_refuses_links_and_pipes_without_a_sensor(zone: Zone) -> None:
    folder = zone.landing / "customers"
    (folder / "customers.csv").write_text(customers(1))
    (folder / "passwd.csv").symlink_to("/etc/passwd")
    os.mkfifo(folder / "pipe.csv")
    result = zone.load("customers")
    assert result.success
    (materialization,) = result.asset_materializations_for_node("customers__landing")
    refused = materialization.metadata["ddp/refused_files"].value
    assert isinstance(refused, dict)
    assert set(refused) == {str(folder / "passwd.csv"), str(folder / "pipe.csv")}
    assert "symbolic link" in str(refused[str(folder / "passwd.csv")])
    assert zone.raw("customers", "raw_customers") == (3, HEADER.split(","))


def test_the_load_with_only_refused_entries_fails_with_a_clear_message(zone: Zone) -> None:
    (zone.landing / "customers" / "passwd.csv").symlink_to("/etc/passwd")
    result = zone.load("customers")
    assert not result.success
    (failure,) = result.get_step_failure_events()
    error = failure.step_failure_data.error
    assert error is not None
    assert "passwd.csv is a symbolic link (to /etc/passwd)" in error.message
    assert "customers.raw_customers" in error.message and "Traceback" not in error.message


ESCAPES: dict[str, Callable[[Path, Path], Path]] = {}


def _linked_folder(landing: Path, outside: Path) -> Path:
    (outside / "data.csv").write_text(customers(1))
    (landing / "customers" / "mounted").symlink_to(outside, target_is_directory=True)
    return landing / "customers" / "mounted" / "data.csv"


def _dot_dot(landing: Path, outside: Path) -> Path:
    (outside / "data.csv").write_text(customers(1))
    return landing / ".." / outside.name / "data.csv"


@pytest.mark.parametrize("make", [_linked_folder, _dot_dot], ids=["linked folder", "dot-dot"])
def test_a_path_resolving_outside_the_zone_is_refused(
    zone: Zone, tmp_path: Path, make: Callable[[Path, Path], Path]
) -> None:
    outside = zone.landing.parent / "outside"
    outside.mkdir()
    path = make(zone.landing, outside)
    assert path.is_file()  # a regular file, reached from inside the zone's path
    reason = refusal_reason(path, zone.landing)
    assert reason is not None and "outside the landing zone" in reason
    pattern = str(path.relative_to(zone.landing))
    assert landing_files(zone.landing, pattern) == []
