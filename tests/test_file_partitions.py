"""Partitions by landing file: each landing file of a product is one (dynamic) partition.

- the key rule (:func:`ddp_assets.partitions.file_partition_key`): the path when it is a safe
  key, else a readable form with the path's digest; stable and unique;
- the spec: ``by: file`` takes a column and no ``start``/``keys``; ``ddp validate`` wants a
  landing-file input port and the partition column in each port's contract (located, hinted);
- end to end, in a copy of the project holding one product partitioned by file (real Dagster
  instance, dbt and DuckDB through the ``ddp`` command; the landing sensor evaluated in process
  against the same instance): two files land, the sensor adds two partitions and requests one
  run each; both built, the published port holds both files' rows with their key in the
  partition column; the second file rewritten republishes only its partition; an unknown key
  is refused naming the nearest, ``--from`` is refused with a hint; ``ddp status`` lists them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ddp_assets.ingest.files import file_partition, partition_file_example, partition_of_file
from ddp_assets.partitions import (
    FILE_KEY_MAX,
    definition_of,
    file_partition_key,
    file_partitions_name,
    partitions_def,
    windows,
)
from ddp_assets.spec.checks import validate_problems
from ddp_assets.spec.model import ProductSpec
from ddp_assets.spec.registry import Registry

SPEC = """\
type: ddp_assets.components.DataProduct
attributes:
  id: receipts
  name: Receipts
  domain: sales
  version: 1.0.0
  status: active
  owners: [team:sales-analytics]
  description:
    purpose: Till receipts, one landing file per upload; each file is a partition.
  input_ports:
{ports}  output_ports:
    - name: receipts
      model: receipts_clean
      contract: contracts/receipts.odcs.yaml
  partitions:
{partitions}"""

FOREIGN_PARTITION = (
    '{"by":"day","column":"occurred_at","keys":["2025-12-02"],'
    '"start":"2025-12-02 00:00:00","end":"2025-12-03 00:00:00"}'
)
FILE_PORT = """\
    - name: raw_receipts
      type: file
      path: receipts/*.csv
      format: csv
"""
TABLE_PORT = """\
    - name: raw_receipts
      type: table
      table: shop.receipts
"""
BY_FILE = """\
    by: file
    column: source_file
"""

MODEL = """\
select receipt_id, store, amount, source_file
from {{ source('receipts', 'raw_receipts') }}
where {{ ddp_partition_filter('source_file') }}
"""

CONTRACT = """\
apiVersion: v3.2.0
kind: DataContract
id: urn:ddp:sales:receipts:receipts
name: Receipts
version: 1.0.0
status: active
domain: sales
dataProduct: receipts
schema:
  - name: receipts_clean
    physicalName: receipts_clean
    physicalType: view
    properties:
      - name: receipt_id
        primaryKey: true
        primaryKeyPosition: 1
        logicalType: integer
        physicalType: bigint
        required: true
      - name: store
        logicalType: string
        physicalType: varchar
        required: true
      - name: amount
        logicalType: number
        physicalType: double
{partition_property}"""

PARTITION_PROPERTY = """\
      - name: source_file
        logicalType: string
        physicalType: varchar
        required: true
"""


def write_product(
    folder: Path,
    *,
    ports: str = FILE_PORT,
    partitions: str = BY_FILE,
    partition_property: str = PARTITION_PROPERTY,
    model: str = MODEL,
) -> Path:
    (folder / "models").mkdir(parents=True, exist_ok=True)
    (folder / "contracts").mkdir(exist_ok=True)
    (folder / "defs.yaml").write_text(SPEC.format(ports=ports, partitions=partitions), "utf-8")
    (folder / "models" / "receipts_clean.sql").write_text(model, "utf-8")
    (folder / "contracts" / "receipts.odcs.yaml").write_text(
        CONTRACT.format(partition_property=partition_property), "utf-8"
    )
    return folder


def registry_of(root: Path, **kwargs: str) -> Registry:
    write_product(root / "defs" / "sales" / "receipts", **kwargs)
    return Registry.load(root / "defs", root)


def spec_of(root: Path) -> ProductSpec:
    registry = registry_of(root)
    assert not registry.errors, registry.errors
    return registry.products["receipts"].spec


# --- the key rule ----------------------------------------------------------------------------


def test_a_safe_path_is_its_own_key() -> None:
    for path in (
        "receipts/receipts_a.csv",
        "receipts/2026/01/part-1.csv",
        "events/date=2026-01-05/part+0@eu.jsonl",
        "_x/a.b.csv",
    ):
        assert file_partition_key(path) == path
    assert file_partition_key(Path("receipts") / "a.csv") == "receipts/a.csv"


@pytest.mark.parametrize(
    "path",
    [
        "receipts/receipt march 2026.csv",
        "receipts/o'brien.csv",
        "receipts/a,b.csv",
        "receipts/a...b.csv",
        "receipts/[1].csv",
        "receipts/ventes_été.csv",
        "-receipts/a.csv",
        "receipts/" + "x" * FILE_KEY_MAX + ".csv",
    ],
)
def test_other_paths_get_a_derived_key_with_their_digest(path: str) -> None:
    key = file_partition_key(path)
    assert key != path
    assert key == file_partition_key(path)  # stable: the path alone decides
    readable, _, digest = key.rpartition("~")
    assert len(digest) == 12 and all(c in "0123456789abcdef" for c in digest)
    assert len(key) <= FILE_KEY_MAX
    assert all(c.isascii() and (c.isalnum() or c in "_.=+@/-") for c in readable), key
    assert "..." not in key
    dg.StaticPartitionsDefinition([key])  # Dagster checks its keys' characters


def test_keys_are_unique() -> None:
    paths = [
        "receipts/a b.csv",
        "receipts/a_b.csv",
        "receipts/a:b.csv",
        "receipts/a  b.csv",
        "receipts/a...b.csv",
        "receipts/a_b.csv~0123456789ab",  # a path that looks like a derived key is derived
    ]
    keys = [file_partition_key(p) for p in paths]
    assert len(set(keys)) == len(keys), keys
    assert "~" not in file_partition_key("receipts/a_b.csv")


def test_a_by_file_product_has_dynamic_partitions_named_after_it(tmp_path: Path) -> None:
    spec = spec_of(tmp_path)
    definition = partitions_def(spec)
    assert isinstance(definition, dg.DynamicPartitionsDefinition)
    assert definition.name == file_partitions_name("receipts") == "receipts__files"
    assert definition == partitions_def(spec)  # the product's assets share one definition
    assert spec.partitions is not None
    with pytest.raises(ValueError, match="named after their product"):
        definition_of(spec.partitions)
    # every file names its partition, whatever its name
    assert partition_of_file(spec, "receipts/anything.csv") == "receipts/anything.csv"
    assert file_partition(spec, "receipts/a b.csv").ok
    assert partition_file_example(spec, "receipts/*.csv") == "receipts/part-1.csv"
    # a run's windows are its keys (the publish replaces `column = key`)
    built = windows(spec, ["receipts/b.csv", "receipts/a.csv"])
    assert [(w.key, w.start, w.end) for w in built] == [
        ("receipts/b.csv", None, None),
        ("receipts/a.csv", None, None),
    ]


# --- the landing load ------------------------------------------------------------------------

RAW_CONTRACT = """\
apiVersion: v3.2.0
kind: DataContract
id: urn:ddp:sales:receipts:raw_receipts
name: raw_receipts
version: 1.0.0
status: active
domain: sales
dataProduct: receipts
schema:
  - name: raw_receipts
    physicalType: table
    properties:
      - name: receipt_id
        logicalType: integer
        physicalType: bigint
        required: true
      - name: store
        logicalType: string
        physicalType: varchar
      - name: amount
        logicalType: number
        physicalType: double
"""


def test_a_run_loads_its_files_with_their_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ddp_assets.ingest.landing import file_ports_asset
    from ddp_assets.settings import ProjectPaths
    from ddp_assets.spec.model import FileInputPort

    monkeypatch.setenv("DDP_DATA_DIR", str(tmp_path / "data"))
    folder = write_product(tmp_path / "defs" / "sales" / "receipts")
    (folder / "contracts" / "raw_receipts.odcs.yaml").write_text(RAW_CONTRACT, "utf-8")
    registry = Registry.load(tmp_path / "defs", tmp_path)
    assert not registry.errors, registry.errors
    product = registry.products["receipts"]
    paths = ProjectPaths(tmp_path)
    landing = paths.landing_dir / "receipts"
    landing.mkdir(parents=True)
    (landing / "a.csv").write_text("receipt_id,store,amount\n1,s1,1.5\n2,s2,2.5\n", "utf-8")
    # a file with a column named as the partition column: ddp's key replaces it
    (landing / "b c.csv").write_text(
        "receipt_id,store,amount,source_file\n7,s1,7.5,elsewhere.csv\n", "utf-8"
    )
    ports = [p for p in product.spec.input_ports if isinstance(p, FileInputPort)]
    asset = file_ports_asset(product, ports, paths)
    a, bc = "receipts/a.csv", file_partition_key("receipts/b c.csv")

    def raw() -> list[tuple]:
        with duckdb.connect(str(paths.warehouse_path), read_only=True) as connection:
            return connection.execute(
                "select receipt_id, amount, source_file from receipts.raw_receipts order by 1"
            ).fetchall()

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(file_partitions_name("receipts"), [a, bc])
        one = dg.materialize([asset], instance=instance, partition_key=bc)
        assert one.success
        assert raw() == [(7, 7.5, bc)]  # only that file, its key in the column
        both = dg.materialize(
            [asset],
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": a,
                "dagster/asset_partition_range_end": bc,
            },
        )
        assert both.success
        assert raw() == [(1, 1.5, a), (2, 2.5, a), (7, 7.5, bc)]
        checks = [e.passed for e in both.get_asset_check_evaluations()]
        assert checks == [True]  # the landing contract holds (the key column is ddp's)
        # the file removed: its partition loads no rows, with the contract's columns and the key
        (landing / "a.csv").unlink()
        gone = dg.materialize([asset], instance=instance, partition_key=a)
        assert gone.success
        assert raw() == []
        with duckdb.connect(str(paths.warehouse_path), read_only=True) as connection:
            columns = [
                r[0] for r in connection.execute("describe receipts.raw_receipts").fetchall()
            ]
        assert columns == ["receipt_id", "store", "amount", "source_file"]


# --- the spec and `ddp validate` -------------------------------------------------------------


@pytest.mark.parametrize(
    ("partitions", "field", "message", "hint"),
    [
        (
            '    by: file\n    column: source_file\n    start: "2026-01-01"\n',
            "partitions.start",
            "'start' is not for 'by: file' partitions",
            "each landing file is its own partition",
        ),
        (
            "    by: file\n    column: source_file\n    keys: [a, b]\n",
            "partitions.keys",
            "'keys' is not for 'by: file' partitions",
            "remove 'keys'",
        ),
        (
            "    by: file\n",
            "partitions.column",
            "required field 'column' is missing",
            "add 'column: <value>'",
        ),
        (
            "    by: files\n    column: source_file\n",
            "partitions.by",
            "is not one of: hour, day, month, key, file",
            "did you mean 'file'?",
        ),
    ],
)
def test_spec_errors_are_located_with_a_hint(
    tmp_path: Path, partitions: str, field: str, message: str, hint: str
) -> None:
    registry = registry_of(tmp_path, partitions=partitions)
    errors = [p for p in registry.errors if p.field == field]
    assert errors, [p.format() for p in registry.errors]
    problem = errors[0]
    assert problem.file.endswith("receipts/defs.yaml")
    assert problem.line is not None and problem.line > 15  # at the partitions block
    assert message in problem.message
    assert problem.hint and hint in problem.hint, problem.format()


def test_validate_wants_a_landing_file_port(tmp_path: Path) -> None:
    registry = registry_of(tmp_path, ports=TABLE_PORT)
    assert not registry.errors, [p.format() for p in registry.errors]
    problems = [p for p in validate_problems(registry) if p.field == "partitions.by"]
    assert len(problems) == 1, [p.format() for p in validate_problems(registry)]
    assert "no landing-file input port" in problems[0].message
    lines = (tmp_path / "defs" / "sales" / "receipts" / "defs.yaml").read_text().splitlines()
    assert problems[0].line == lines.index("    by: file") + 1
    assert problems[0].hint and "input port of type 'file'" in problems[0].hint
    # with a file port, no such problem
    fine = registry_of(tmp_path / "fine")
    assert not [p for p in validate_problems(fine) if p.field == "partitions.by"]


def test_validate_wants_the_partition_column_in_the_contract(tmp_path: Path) -> None:
    registry = registry_of(
        tmp_path,
        partition_property="",
        model=MODEL.replace("amount, source_file", "amount"),
    )
    assert not registry.errors, [p.format() for p in registry.errors]
    problems = [p for p in validate_problems(registry) if p.field == "partitions.column"]
    assert len(problems) == 1, [p.format() for p in validate_problems(registry)]
    problem = problems[0]
    assert "partitioned on 'source_file', which is not a column of its contract" in (
        problem.message
    )
    assert problem.file.endswith("receipts/defs.yaml") and problem.line is not None
    assert problem.hint and "physicalType: varchar" in problem.hint
    assert "landing file's partition key" in problem.hint


# --- end to end --------------------------------------------------------------------------------


def receipts_csv(first: int, rows: int, amount: float) -> str:
    lines = ["receipt_id,store,amount"]
    lines += [f"{i},store_{i % 2},{amount + i}" for i in range(first, first + rows)]
    return "\n".join(lines) + "\n"


class Project:
    def __init__(self, root: Path, data: Path, home: Path) -> None:
        self.root, self.data, self.home = root, data, home

    @property
    def landing(self) -> Path:
        return self.data / "landing"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DDP_PROJECT_ROOT": str(self.root),
            "PYTHONPATH": str(self.root),
            "DDP_DATA_DIR": str(self.data),
            "DAGSTER_HOME": str(self.home),
            "OPENLINEAGE_DISABLED": "true",
            # another run's partition left in the process environment (a CI worker once had
            # one): a run must give dbt its own partitions for the whole invocation
            "DDP_PARTITION": FOREIGN_PARTITION,
        }

    def ddp(self, *args: str) -> subprocess.CompletedProcess[str]:
        ddp = str(Path(sys.executable).parent / "ddp")
        return subprocess.run(
            [ddp, *args],
            env=self.env(),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=900,
        )

    def read(self, sql: str, params: list[object] | None = None) -> list[tuple]:
        with duckdb.connect(str(self.data / "warehouse.duckdb"), read_only=True) as connection:
            return connection.execute(sql, params or []).fetchall()

    def live(self) -> dict[str, tuple[int, int]]:
        """partition -> (written_in, rows) of the version of the port consumers read."""
        rows = self.read(
            "select partition, written_in, rows from _ddp.partition_versions where product = "
            "'receipts' and port = 'receipts' and version = (select version from "
            "_ddp.version_moves where product = 'receipts' and port = 'receipts' "
            "order by move desc limit 1)"
        )
        return {str(p): (int(w), int(r)) for p, w, r in rows}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    from bench.common import copy_project

    root = copy_project(tmp_path / "project", with_products=False)
    write_product(root / "ddp_assets" / "defs" / "sales" / "receipts")
    data, home = tmp_path / "data", tmp_path / "home"
    home.mkdir()
    shutil.copy2(root / "dagster.yaml", home / "dagster.yaml")
    (data / "landing" / "receipts").mkdir(parents=True)
    return Project(root, data, home)


def _tick(project: Project, instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    from ddp_assets.automation.landing import evaluate_landing
    from ddp_assets.settings import ProjectPaths

    registry = Registry.load(project.root / "ddp_assets" / "defs", project.root)
    assert not registry.errors, registry.errors
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    return evaluate_landing(context, registry.products["receipts"], ProjectPaths(project.root))


def _apply(instance: dg.DagsterInstance, result: dg.SensorResult) -> None:
    """What the sensor daemon does with a tick's dynamic partition requests."""
    for request in result.dynamic_partitions_requests or []:
        assert isinstance(request, dg.AddDynamicPartitionsRequest)
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))


@pytest.mark.slow
def test_each_landing_file_is_a_partition_end_to_end(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DDP_DATA_DIR", str(project.data))
    monkeypatch.setenv("DAGSTER_HOME", str(project.home))
    name = file_partitions_name("receipts")
    first, second = "receipts/receipts_a.csv", "receipts/receipts_b.csv"
    (project.landing / first).write_text(receipts_csv(1, 3, 10.0), "utf-8")
    (project.landing / second).write_text(receipts_csv(10, 2, 20.0), "utf-8")

    with dg.DagsterInstance.get() as instance:
        # two files land: the sensor adds two partitions and requests one run of each
        tick = _tick(project, instance, None)
        added = [
            key
            for request in tick.dynamic_partitions_requests or []
            if isinstance(request, dg.AddDynamicPartitionsRequest)
            and request.partitions_def_name == name
            for key in request.partition_keys
        ]
        assert sorted(added) == [first, second]
        assert sorted(r.partition_key or "" for r in tick.run_requests or []) == [first, second]
        assert all(r.tags["ddp/product"] == "receipts" for r in tick.run_requests or [])
        _apply(instance, tick)
        assert instance.get_dynamic_partitions(name) == sorted([first, second])
        quiet = _tick(project, instance, tick.cursor)
        assert not quiet.run_requests and not quiet.dynamic_partitions_requests

        # both built (one run of the two files): the port holds both files' rows, keyed
        built = project.ddp(
            "materialize", "receipts", "--partition", first, "--partition", second, "--json"
        )
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
        rows = project.read(
            "select receipt_id, amount, source_file from receipts.receipts_clean order by 1"
        )
        assert rows == [
            (1, 11.0, first),
            (2, 12.0, first),
            (3, 13.0, first),
            (10, 30.0, second),
            (11, 31.0, second),
        ]
        before = project.live()
        assert {k: v[1] for k, v in before.items()} == {first: 3, second: 2}

        # the second file rewritten (same path, new content): only its partition is requested
        (project.landing / second).write_text(receipts_csv(10, 3, 50.0), "utf-8")
        changed = _tick(project, instance, quiet.cursor)
        assert [r.partition_key for r in changed.run_requests or []] == [second]
        assert not changed.dynamic_partitions_requests  # the partition is known
        again = project.ddp("materialize", "receipts", "--partition", second)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        after = project.live()
        assert after[first] == before[first]  # the same version's rows, untouched
        assert after[second][0] != before[second][0] and after[second][1] == 3
        rows = project.read(
            "select receipt_id, amount, source_file from receipts.receipts_clean order by 1"
        )
        assert rows == [
            (1, 11.0, first),
            (2, 12.0, first),
            (3, 13.0, first),
            (10, 60.0, second),
            (11, 61.0, second),
            (12, 62.0, second),
        ]
        # the landing table held the one file of that run, with its key
        raw = project.read("select distinct source_file from receipts.raw_receipts")
        assert raw == [(second,)]

    # an unknown key is refused, naming the nearest; a range is refused with a hint
    moves = project.read("select count(*) from _ddp.version_moves")[0][0]
    wrong = project.ddp("materialize", "receipts", "--partition", "receipts/receipts_c.csv")
    out = wrong.stdout + wrong.stderr
    assert wrong.returncode != 0
    assert "'receipts/receipts_c.csv' is not a partition of product 'receipts'" in out
    assert "did you mean 'receipts/receipts_" in out
    assert "Traceback" not in out
    ranged = project.ddp("materialize", "receipts", "--from", first)
    out = ranged.stdout + ranged.stderr
    assert ranged.returncode != 0 and "partitioned by file" in out and "--partition" in out
    assert "Traceback" not in out
    assert project.read("select count(*) from _ddp.version_moves")[0][0] == moves

    # a third file: `ddp materialize` without --partition adds and builds it (files never built)
    third = "receipts/receipts c.csv"
    (project.landing / third).write_text(receipts_csv(20, 1, 5.0), "utf-8")
    default = project.ddp("materialize", "receipts", "--json")
    assert default.returncode == 0, default.stdout[-3000:] + default.stderr[-3000:]
    outcome = json.loads(default.stdout)
    third_key = file_partition_key(third)
    assert {a["partitions"] == [third_key] for p in outcome["products"] for a in p["assets"]} == {
        True
    }
    assert project.read(
        "select source_file from receipts.receipts_clean where receipt_id = 20"
    ) == [(third_key,)]

    # status lists the file partitions, published of known
    status = project.ddp("status", "receipts", "--json")
    assert status.returncode == 0, status.stderr
    card = json.loads(status.stdout)[0]
    assert card["partitions"]["by"] == "file"
    assert card["partitions"]["published"] == 3 and card["partitions"]["partitions"] == 3
    assert card["partitions"]["missing_count"] == 0
