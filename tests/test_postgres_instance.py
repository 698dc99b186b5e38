"""The production Dagster instance (deploy/dagster.yaml) against a real PostgreSQL server.

The instance is the production file itself, with its environment variables pointed at the
throwaway server and run monitoring polled faster (``FAST_MONITORING``, the only change). The
processes are those of the docker compose deployment: a user-code server (``dagster
code-server start -m ddp_assets.definitions``), ``dagster-webserver`` and ``dagster-daemon``,
each on its own, sharing PostgreSQL, the instance home, the warehouse and the project.

1. the whole demo materializes with runs, events and check results stored in PostgreSQL;
2. eight runs launched at once through the run queue all succeed, with every event of every
   run recorded and no lock error anywhere (the DuckDB writer pool serializes them);
3. a run worker killed mid-run (SIGKILL, with its dbt child) is marked failed by the code
   server that launched it (the DefaultRunLauncher cannot report a worker's health to run
   monitoring), run monitoring frees the DuckDB writer slot the dead run still held, the run
   retry succeeds, and the published data is never half-written.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, LiteralString

import dagster as dg
import pytest
import yaml
from dagster._core.events import DagsterEventType

from ddp_assets.runtime.webserver import DagsterUI, free_port
from ddp_assets.spec.registry import Registry
from tests.conftest import ROOT
from tests.dagster_process import process_tree, running, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.integration]

BIN = Path(sys.executable).parent
SCALE = 2_000
DATABASE = "ddp_dagster"
# Layered over deploy/dagster.yaml so a test waits seconds, not the production half-minute.
FAST_MONITORING = {"poll_interval_seconds": 2, "free_slots_after_run_end_seconds": 2}
# What a lock conflict looks like: DuckDB's file lock, PostgreSQL's deadlock and lock timeouts,
# SQLite's busy database (which must not be in use at all).
LOCK_ERROR = re.compile(
    r"could not set lock|conflicting lock|deadlock detected|lock timeout|"
    r"could not obtain lock|locknotavailable|database is locked",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class PgDeployment:
    home: Path
    data_dir: Path
    dsn: str
    env: dict[str, str]

    def instance(self) -> dg.DagsterInstance:
        """The instance, read from the DAGSTER_HOME the subprocesses use."""
        return dg.DagsterInstance.from_config(str(self.home))

    def logs(self) -> Iterator[Path]:
        """Every log the deployment wrote: processes, then each step's stdout and stderr."""
        yield from sorted(self.home.glob("*.log"))
        yield from sorted((self.home / "storage").rglob("*.out"))
        yield from sorted((self.home / "storage").rglob("*.err"))


@pytest.fixture(scope="module")
def pg_deployment(
    postgres_server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PgDeployment]:
    """A DAGSTER_HOME with the production dagster.yaml and a landing zone of its own (the
    session's demo, its SQLite instance and its data are never touched)."""
    from ddp_assets.demo.generator import generate_landing_zone

    postgres_server.create_database(DATABASE)
    root = tmp_path_factory.mktemp("pg_deployment")
    home, data_dir = root / "dagster_home", root / "data"
    home.mkdir()
    config = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    config["run_monitoring"].update(FAST_MONITORING)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    generate_landing_zone(data_dir / "landing", scale=SCALE)
    postgres_env = {
        "DAGSTER_PG_HOST": postgres_server.host,
        "DAGSTER_PG_PORT": str(postgres_server.port),
        "DAGSTER_PG_USERNAME": postgres_server.user,
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_DB": DATABASE,
    }
    with pytest.MonkeyPatch.context() as patch:
        # the instance read in this process resolves the same {env: ...} settings
        for key, value in postgres_env.items():
            patch.setenv(key, value)
        yield PgDeployment(
            home=home,
            data_dir=data_dir,
            dsn=postgres_server.dsn(DATABASE),
            env={
                **os.environ,
                **postgres_env,
                "DAGSTER_HOME": str(home),
                "DDP_DATA_DIR": str(data_dir),
                "DDP_PROJECT_ROOT": str(ROOT),
            },
        )


@pytest.fixture(scope="module")
def built_on_postgres(pg_deployment: PgDeployment) -> dict[str, Any]:
    """``ddp materialize --all`` with the production instance: the whole demo, one run."""
    result = subprocess.run(
        [str(BIN / "ddp"), "materialize", "--all", "--json"],
        env=pg_deployment.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    (pg_deployment.home / "materialize.log").write_text(result.stderr)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout)


def _events(instance: dg.DagsterInstance, run_id: str) -> list[Any]:
    return [record.event_log_entry for record in instance.get_records_for_run(run_id).records]


def _counts(instance: dg.DagsterInstance, run_id: str) -> Counter[DagsterEventType]:
    return Counter(
        entry.dagster_event.event_type
        for entry in _events(instance, run_id)
        if entry.dagster_event is not None
    )


def test_the_whole_demo_runs_on_postgres_storage(
    built_on_postgres: dict[str, Any], pg_deployment: PgDeployment
) -> None:
    import psycopg
    from dagster_postgres import (
        PostgresEventLogStorage,
        PostgresRunStorage,
        PostgresScheduleStorage,
    )

    outcome = built_on_postgres
    assert outcome["success"], outcome["errors"]
    runs = outcome["runs"]
    assert len(runs) == 3, runs  # the unpartitioned products, usage_events' days, their readers
    assets = [asset for product in outcome["products"] for asset in product["assets"]]
    checks = [check for asset in assets for check in asset["checks"]]
    # a partitioned asset has one materialization per partition its run built
    materializations = sum(max(1, len(asset["partitions"])) for asset in assets)
    # Dagster keeps a check execution per check and partition of a partitioned run: counted
    # here for the unpartitioned runs only (their assets' checks, one each)
    plain_checks = sum(len(asset["checks"]) for asset in assets if not asset["partitions"])
    assert {product["product"] for product in outcome["products"]} == set(
        Registry.load(ROOT / "ddp_assets" / "defs", ROOT).products
    )
    assert all(asset["status"] == "materialized" for asset in assets)
    assert checks, "the demo evaluates asset checks"

    with pg_deployment.instance() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        counts: Counter[DagsterEventType] = Counter()
        partitioned_run = ""
        for one in runs:  # the unpartitioned products, usage_events' days, their readers
            run = instance.get_run_by_id(one)
            assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
            counts += _counts(instance, one)
            if run.tags.get("dagster/partition") or run.tags.get(
                "dagster/asset_partition_range_start"
            ):
                partitioned_run = one
    assert counts[DagsterEventType.ASSET_MATERIALIZATION] == materializations
    assert counts[DagsterEventType.ASSET_CHECK_EVALUATION] == len(checks)

    # the rows are in PostgreSQL's own tables, and no SQLite storage was created beside them
    with psycopg.connect(pg_deployment.dsn) as connection:

        def count(sql: LiteralString) -> int:
            row = connection.execute(sql, (runs,)).fetchone()
            return int(row[0]) if row else 0

        assert count("select count(*) from runs where run_id = any(%s)") == len(runs)
        assert (
            count(
                "select count(*) from event_logs "
                "where run_id = any(%s) and dagster_event_type = 'ASSET_MATERIALIZATION'"
            )
            == materializations
        )
        plain_runs = [one for one in runs if one != partitioned_run]
        row = connection.execute(
            "select count(*) from asset_check_executions where run_id = any(%s)", (plain_runs,)
        ).fetchone()
        assert row is not None and int(row[0]) == plain_checks
    assert not list(pg_deployment.home.rglob("*.db")), "SQLite storage next to PostgreSQL"


# --------------------------------------------------------------------------------------------
# The compose topology: user-code server, webserver and daemon as separate processes.

SENSORS = """
query Sensors($repo: RepositorySelector!) {
  sensorsOrError(repositorySelector: $repo) {
    __typename ... on Sensors { results { name sensorState { id status } } }
  }
  schedulesOrError(repositorySelector: $repo) {
    __typename ... on Schedules { results { name scheduleState { id status } } }
  }
}
"""
STOP_SENSOR = "mutation Stop($id: String) { stopSensor(id: $id) { __typename } }"
STOP_SCHEDULE = "mutation Stop($id: String) { stopRunningSchedule(id: $id) { __typename } }"


@dataclass(frozen=True)
class Deployment:
    ui: DagsterUI
    pg: PgDeployment


def _stop_run_triggers(ui: DagsterUI) -> None:
    """Stop the landing sensors, the automation sensor and the schedules before the daemon
    starts, so every run in these tests is one the test launched (lineage and alert sensors,
    which start no runs, keep running)."""
    repo = {"repositoryName": "__repository__", "repositoryLocationName": ui.location}
    data = ui.query(SENSORS, {"repo": repo})
    stopped = []
    for sensor in data["sensorsOrError"]["results"]:
        if sensor["name"].endswith("__landing") or sensor["name"] == "ddp_automation":
            ui.query(STOP_SENSOR, {"id": sensor["sensorState"]["id"]})
            stopped.append(sensor["name"])
    for schedule in data["schedulesOrError"]["results"]:
        ui.query(STOP_SCHEDULE, {"id": schedule["scheduleState"]["id"]})
    # a renamed sensor would start runs of its own in the middle of these tests
    assert "ddp_automation" in stopped and "customers__landing" in stopped, stopped


@pytest.fixture(scope="module")
def deployment(built_on_postgres, pg_deployment: PgDeployment) -> Iterator[Deployment]:
    code_port, web_port = free_port(), free_port()
    workspace = pg_deployment.home / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {
                        "grpc_server": {
                            "host": "127.0.0.1",
                            "port": code_port,
                            "location_name": "ddp",
                        }
                    }
                ]
            }
        )
    )
    env, home = pg_deployment.env, pg_deployment.home
    code_server = [
        str(BIN / "dagster"),
        *("code-server", "start", "-h", "127.0.0.1", "-p", str(code_port)),
        *("-m", "ddp_assets.definitions", "--location-name", "ddp"),
    ]
    webserver = [
        str(BIN / "dagster-webserver"),
        *("-h", "127.0.0.1", "-p", str(web_port), "-w", str(workspace)),
    ]
    daemon = [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)]
    with (
        running(code_server, env=env, log=home / "code_server.log", cwd=ROOT) as code,
        running(webserver, env=env, log=home / "webserver.log", cwd=ROOT) as web,
    ):
        ui = DagsterUI(f"http://127.0.0.1:{web_port}")

        def up() -> bool:
            assert code.poll() is None, (home / "code_server.log").read_text()[-4000:]
            assert web.poll() is None, (home / "webserver.log").read_text()[-4000:]
            return ui.ready()

        wait_for("the webserver to list the code location's assets", up, timeout=240)
        _stop_run_triggers(ui)
        with running(daemon, env=env, log=home / "daemon.log", cwd=ROOT):
            yield Deployment(ui, pg_deployment)


def _landing_assets() -> list[list[str]]:
    registry = Registry.load(ROOT / "ddp_assets" / "defs", ROOT)
    return sorted(
        [product.id, table]
        for product in registry.products.values()
        for table in product.raw_tables
        if table not in product.python_model_names
        and table not in {p.name for p in product.spec.input_ports if p.type == "depot"}
    )


def test_eight_runs_launched_at_once_all_succeed_with_every_event(
    deployment: Deployment,
) -> None:
    """Every landing load of the demo, each its own run, submitted together: all eight write
    the warehouse, so the `duckdb_writer` pool serializes them while the queue, the event log
    and the pool slots take concurrent writes from eight processes."""
    keys = _landing_assets()
    assert len(keys) == 8
    run_ids = [deployment.ui.launch([key], tags={"ddp/test": "eight-at-once"}) for key in keys]
    statuses = {run_id: deployment.ui.wait(run_id, timeout=420) for run_id in run_ids}
    assert set(statuses.values()) == {"SUCCESS"}, statuses

    runs: list[tuple[float, float]] = []  # launched (RUN_STARTING) .. RUN_SUCCESS, per run
    writes: list[tuple[float, float, str]] = []  # its one step, the warehouse write
    with deployment.pg.instance() as instance:
        for run_id, key in zip(run_ids, keys, strict=True):
            events = _events(instance, run_id)
            at = {e.dagster_event.event_type: e.timestamp for e in events if e.dagster_event}
            runs.append((at[DagsterEventType.RUN_STARTING], at[DagsterEventType.RUN_SUCCESS]))
            writes.append(
                (at[DagsterEventType.STEP_START], at[DagsterEventType.STEP_SUCCESS], run_id)
            )
            kinds = Counter(e.dagster_event.event_type for e in events if e.dagster_event)
            once = (
                DagsterEventType.RUN_ENQUEUED,
                DagsterEventType.RUN_STARTING,
                DagsterEventType.RUN_START,
                DagsterEventType.RUN_SUCCESS,
                DagsterEventType.STEP_START,
                DagsterEventType.STEP_SUCCESS,
                DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
                DagsterEventType.ASSET_MATERIALIZATION,
            )
            wrong = {kind.name: kinds[kind] for kind in once if kinds[kind] != 1}
            assert not wrong, (run_id, key, wrong, sorted(k.name for k in kinds))
            assert not kinds[DagsterEventType.STEP_FAILURE], (run_id, kinds)
            for entry in events:
                assert not LOCK_ERROR.search(entry.message or ""), (run_id, entry.message)
            materialized = [
                e.dagster_event.asset_key
                for e in events
                if e.dagster_event is not None
                and e.dagster_event.event_type == DagsterEventType.ASSET_MATERIALIZATION
            ]
            assert materialized == [dg.AssetKey(key)]
            # the event log is one ordered sequence per run: nothing lost in between
            ordered = [e.dagster_event.event_type for e in events if e.dagster_event]
            assert ordered.index(DagsterEventType.RUN_START) < ordered.index(
                DagsterEventType.STEP_START
            )
            # after RUN_SUCCESS only the worker's exit notice (engine events), nothing lost
            after = ordered[ordered.index(DagsterEventType.RUN_SUCCESS) + 1 :]
            assert set(after) <= {DagsterEventType.ENGINE_EVENT}, ordered
    # the runs were launched together, and wrote the warehouse one after the other (the pool)
    overlapping = max(sum(start <= t < end for start, end in runs) for t, _ in runs)
    assert overlapping >= 2, runs
    writes.sort()
    for (_, end, first), (start, _, second) in itertools.pairwise(writes):
        assert start >= end, f"runs {first} and {second} wrote the warehouse at once"
    for log in deployment.pg.logs():
        found = LOCK_ERROR.search(log.read_text(errors="replace"))
        assert found is None, f"{log}: {found and found.group(0)}"


def _run_worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    for entry in _events(instance, run_id):
        if entry.message and entry.message.startswith("Started process for run (pid:"):
            return int(entry.message.rsplit(":", 1)[1].strip(" )."))
    return None


def _writer_slot_holders(instance: dg.DagsterInstance) -> set[str]:
    info = instance.event_log_storage.get_concurrency_info("duckdb_writer")
    return {slot.run_id for slot in info.claimed_slots}


def _started_steps(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [
        entry.step_key
        for entry in _events(instance, run_id)
        if entry.dagster_event is not None
        and entry.dagster_event.event_type == DagsterEventType.STEP_START
        and entry.step_key
    ]


def test_killed_run_worker_is_failed_and_retried_with_published_data_intact(
    deployment: Deployment,
) -> None:
    import duckdb

    from ddp_assets.contracts.wap import checksum, published_version

    registry = Registry.load(ROOT / "ddp_assets" / "defs", ROOT)
    product = registry.products["customers"]
    ports = [port.name for port in product.spec.output_ports]
    warehouse = deployment.pg.data_dir / "warehouse.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        published = {port: published_version(connection, product.id, port) for port in ports}
    before = {port: version for port, version in published.items() if version is not None}
    assert set(before) == set(ports), published

    keys = [
        ["customers", "raw_customers"],
        ["customers", "stg_customers"],
        ["customers", "staging", "customers"],
        ["customers", "customers"],
    ]
    run_id = deployment.ui.launch(keys, tags={"ddp/test": "killed-worker"})
    with deployment.pg.instance() as instance:
        # kill once the load is done and the next step (dbt, a writer) has started
        wait_for(
            "the run to start its second step",
            lambda: len(_started_steps(instance, run_id)) >= 2,
            timeout=300,
            interval=0.2,
        )
        pid = _run_worker_pid(instance, run_id)
        assert pid is not None
        assert run_id in _writer_slot_holders(instance), "the step started holding the writer"
        tree = process_tree(pid)
        for member in tree:  # the worker and its children (dbt), as when a container dies
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, signal.SIGKILL)

        assert deployment.ui.wait(run_id, timeout=120) == "FAILURE"

        def retry() -> dg.DagsterRun | None:
            runs = instance.get_runs(dg.RunsFilter(tags={"dagster/parent_run_id": run_id}))
            return runs[0] if runs else None

        retried = wait_for("the run retry", retry, timeout=120)
        assert retried.tags.get("dagster/retry_number") == "1"
        assert deployment.ui.wait(retried.run_id, timeout=300) == "SUCCESS"
        # nothing in a killed process gives its slot back: run monitoring did
        # (free_slots_after_run_end_seconds), or the retry could not have written
        assert run_id not in _writer_slot_holders(instance)
        failure = [
            entry.message
            for entry in _events(instance, run_id)
            if entry.dagster_event is not None
            and entry.dagster_event.event_type == DagsterEventType.RUN_FAILURE
        ]
    assert failure, "the killed run has a RUN_FAILURE event"

    with duckdb.connect(str(warehouse), read_only=True) as connection:
        for port in ports:
            version = published_version(connection, product.id, port)
            assert version is not None
            # published by the retry, never by the killed run, and exactly what was recorded
            assert version.run_id == retried.run_id, (port, version, before[port])
            assert version.rows == before[port].rows  # same landing files, same rows
            schema, table = version.relation.split(".")
            assert checksum(connection, schema, table) == (version.rows, version.checksum)
            killed = connection.execute(
                "select count(*) from _ddp.published_versions where run_id = ?", [run_id]
            ).fetchone()
            assert killed == (0,)
