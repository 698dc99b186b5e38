"""The local instance's pooled SQLite event log (ddp_assets/runtime/sqlite_storage.py)."""

import shutil
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from ddp_assets.runtime import sqlite_storage
from ddp_assets.runtime.sqlite_storage import PooledSqliteEventLogStorage

ROOT = Path(__file__).resolve().parents[1]


@dg.asset
def numbers() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 3})


@dg.asset(deps=[numbers], check_specs=[dg.AssetCheckSpec("positive", asset="doubled")])
def doubled(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    context.log.info("doubling")
    return dg.MaterializeResult(
        metadata={"rows": 3}, check_results=[dg.AssetCheckResult(passed=True)]
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def test_the_project_instance_uses_the_pooled_event_log(home: Path) -> None:
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        # Dagster's default location, so existing local instances keep their history
        assert Path(instance.event_log_storage._base_dir) == home / "history" / "runs"


def test_runs_stored_through_the_pool_read_back_with_dagsters_own_storage(home: Path) -> None:
    with dg.DagsterInstance.get() as instance:
        results = [
            dg.materialize([numbers, doubled], instance=instance, raise_on_error=True)
            for _ in range(2)
        ]
        pooled = instance.event_log_storage
        assert isinstance(pooled, PooledSqliteEventLogStorage)
        assert len(pooled._engines) <= sqlite_storage.KEEP_ENGINES
    # the same files, read by the storage Dagster itself would use: nothing lost or different
    plain = SqliteEventLogStorage(str(home / "history" / "runs"))
    for result in results:
        records = plain.get_logs_for_run(result.run_id)
        kinds = [r.dagster_event.event_type_value for r in records if r.dagster_event]
        assert kinds.count("ASSET_MATERIALIZATION") == 2
        assert kinds.count("ASSET_CHECK_EVALUATION") == 1
        assert any(r.user_message == "doubling" for r in records)
    latest = plain.get_latest_materialization_events([dg.AssetKey("doubled")])
    event = latest[dg.AssetKey("doubled")]
    assert event is not None and event.run_id == results[-1].run_id


def test_old_engines_are_disposed(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_storage, "KEEP_ENGINES", 2)
    storage = PooledSqliteEventLogStorage(str(home / "events"))
    for run in ("a", "b", "c", "d"):
        with storage.run_connection(run) as connection:
            connection.exec_driver_sql("select 1")
    assert list(storage._engines) == ["c", "d"]
    storage.dispose()
    assert not storage._engines


def test_pooled_connections_are_in_wal_mode_and_sync_at_checkpoints(home: Path) -> None:
    storage = PooledSqliteEventLogStorage(str(home / "events"))
    with storage.run_connection("a") as connection:
        # synchronous=NORMAL is safe from corruption only in WAL mode
        assert connection.exec_driver_sql("pragma journal_mode").scalar() == "wal"
        # 1 = NORMAL (2 = FULL, SQLite's default)
        assert connection.exec_driver_sql("pragma synchronous").scalar() == 1
    storage.dispose()


def test_has_table_remembers_only_what_it_found(home: Path) -> None:
    storage = PooledSqliteEventLogStorage(str(home / "events"))
    assert storage.has_table("asset_check_executions")
    assert "asset_check_executions" in storage._tables
    assert not storage.has_table("no_such_table")
    assert "no_such_table" not in storage._tables
    storage.wipe()  # forgets what it found, then recreates the schema
    assert storage.has_table("asset_check_executions")
    storage.dispose()
