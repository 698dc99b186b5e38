"""Canaries for ddp_assets/compat.py, and the public routes that replaced the other hooks.

Each kept hook: its private target is still where, and shaped as, the hook expects in the
installed versions (an upgrade that moves it fails here, loudly), and its public fallback gives
the same result as the hook. docs/public-apis.md lists every hook and what became of it.
"""

from __future__ import annotations

import dataclasses
import gc
import inspect
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from ddp_assets import compat
from ddp_assets.settings import ProjectPaths

ROOT = Path(__file__).resolve().parents[1]

# -- the version guards -----------------------------------------------------------------------


def test_the_installed_versions_are_the_tested_ones() -> None:
    """pyproject.toml pins what compat was tested with: a bump of a pin lands here first."""
    for distribution in compat.TESTED:
        assert compat.tested(distribution), distribution
    assert compat.python_tested()


@pytest.mark.parametrize(
    ("distribution", "version", "expected"),
    [
        ("dagster", "1.13.0", True),
        ("dagster", "1.13.27", True),
        ("dagster", "1.13.0rc1", True),
        ("dagster", "1.14.0", False),
        ("dagster", "1.12.9", False),
        ("dagster-dbt", "0.29.27", True),
        ("dagster-dbt", "0.30.0", False),
        ("dbt-core", "1.11.16", True),
        ("dbt-core", "1.12.0", False),
        ("dagster", "not a version", False),
    ],
)
def test_a_version_outside_the_tested_range_is_not_tested(
    distribution: str, version: str, expected: bool
) -> None:
    assert compat.tested(distribution, version) is expected


def test_a_missing_distribution_is_not_tested() -> None:
    assert compat._installed("ddp-no-such-distribution") is None


def test_only_cpython_before_3_14_gets_the_collector_settings() -> None:
    assert compat.python_tested("cpython", "3.11.9")
    assert compat.python_tested("cpython", "3.13.1")
    assert not compat.python_tested("cpython", "3.14.0")
    assert not compat.python_tested("pypy", "3.11.9")


# -- Python's collector ------------------------------------------------------------------------


def test_tune_collector_raises_the_young_threshold_and_never_lowers_it() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        compat.tune_collector(enabled=False)  # the public path: Python's own setting
        assert gc.get_threshold() == (700, 10, 10)
        compat.tune_collector()
        assert gc.get_threshold() == (compat.YOUNG_THRESHOLD, 10, 10)
        gc.set_threshold(200_000, 10, 10)
        compat.tune_collector()
        assert gc.get_threshold()[0] == 200_000
        gc.set_threshold(0, 10, 10)  # 0: automatic collection off, the user's choice
        compat.tune_collector()
        assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*before)


def test_importing_compat_changes_nothing() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import gc; before = gc.get_threshold(); import ddp_assets.compat; "
            "print(gc.get_threshold() == before, gc.isenabled(), gc.get_freeze_count())",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "0"]


def test_collector_paused_turns_it_back_on_even_on_error() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), compat.collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("a build that failed")
    assert gc.isenabled()
    with compat.collector_paused(enabled=False):  # the public path: nothing paused
        assert gc.isenabled()
    gc.disable()
    try:  # a collector the caller had off stays off
        with compat.collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_collector_paused_freezes_once_per_process() -> None:
    """In a fresh process: the first block freezes what is alive, a second one does not."""
    code = (
        "import gc\n"
        "from ddp_assets import compat\n"
        "with compat.collector_paused():\n"
        "    kept = [[i] for i in range(1000)]\n"
        "first = gc.get_freeze_count()\n"
        "with compat.collector_paused():\n"
        "    more = [[i] for i in range(1000)]\n"
        "print(first > 1000, gc.get_freeze_count() == first, gc.isenabled())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "True"]


# -- Dagster's component loader: defs.yaml parsed by libyaml -----------------------------------


def test_canary_dagsters_component_loader_calls_the_replaced_name() -> None:
    import dagster.components.core.decl as decl
    from dagster_shared.yaml_utils import parse_yamls_with_source_position

    target = getattr(decl, compat.COMPONENT_YAML_PARSER)
    assert target is parse_yamls_with_source_position
    assert list(inspect.signature(target).parameters) == [
        "src",
        "filename",
        "implicits_to_remove",
    ]
    assert list(inspect.signature(compat.parse_component_yaml).parameters) == [
        "src",
        "filename",
        "implicits_to_remove",
    ]
    # the loader looks the name up in its module when it runs: replacing it there takes effect
    loader = decl.build_component_decl_from_yaml_file
    assert compat.COMPONENT_YAML_PARSER in loader.__code__.co_names
    assert compat.component_yaml_in_c_supported()


def test_component_yaml_in_c_replaces_the_parser_for_the_block_only() -> None:
    import dagster.components.core.decl as decl

    original = getattr(decl, compat.COMPONENT_YAML_PARSER)
    with compat.component_yaml_in_c():
        assert getattr(decl, compat.COMPONENT_YAML_PARSER) is compat.parse_component_yaml
    assert getattr(decl, compat.COMPONENT_YAML_PARSER) is original
    with pytest.raises(ValueError), compat.component_yaml_in_c():
        raise ValueError("a load that failed")
    assert getattr(decl, compat.COMPONENT_YAML_PARSER) is original
    with compat.component_yaml_in_c(enabled=False):  # the public path: dagster's parser
        assert getattr(decl, compat.COMPONENT_YAML_PARSER) is original


def test_component_yaml_parsed_in_c_gives_dagsters_trees(project_paths: ProjectPaths) -> None:
    """Dagster's loader must get exactly the values and source positions its own parser gives,
    for every ``defs.yaml`` of the demo; a broken file's error names it."""
    import yaml
    from dagster_shared.yaml_utils import parse_yamls_with_source_position

    files = sorted(project_paths.defs_dir.rglob("defs.yaml"))
    assert len(files) > 5
    for path in files:
        text = path.read_text(encoding="utf-8")
        ours = compat.parse_component_yaml(text, str(path))
        assert ours == parse_yamls_with_source_position(text, str(path)), path
        assert ours[0].source_position_tree.children["attributes"].position.start.line > 1
    several = "type: a\n---\ntype: b\nattributes:\n  when: 2024-01-01\n"
    assert compat.parse_component_yaml(several, "x.yaml") == parse_yamls_with_source_position(
        several, "x.yaml"
    )
    broken = "type: x\nattributes:\n  id: [unclosed\n"
    with pytest.raises(yaml.MarkedYAMLError) as raised:
        compat.parse_component_yaml(broken, "broken/defs.yaml")
    assert raised.value.problem_mark is not None
    assert raised.value.problem_mark.name == "broken/defs.yaml"


# -- Dagster's component tree: its declarations mapped once per build ---------------------------


def test_canary_dagsters_component_tree_finds_each_declaration_through_the_mapping() -> None:
    import dagster.components.core.component_tree as component_tree

    owner = compat._component_tree_class()
    assert owner is not None and issubclass(component_tree.ComponentTree, owner)
    assert list(inspect.signature(vars(owner)[compat.COMPONENT_DECL_TREE]).parameters) == ["self"]
    # the tree loads each component through the mapping, looked up on the object when it runs
    loader = vars(owner)["_load_component_at_loc"]
    assert compat.COMPONENT_DECL_TREE in loader.__code__.co_names
    assert compat.component_tree_walked_once_supported()


def test_component_tree_walked_once_maps_the_same_declarations_once_per_block(
    project_paths: ProjectPaths,
) -> None:
    from dagster.components.core.component_tree import ComponentTree

    tree = ComponentTree.for_project(path_within_project=project_paths.root / "ddp_assets")
    stock = tree._component_decl_tree()
    assert len(stock) > 5
    owner = compat._component_tree_class()
    original = vars(owner)[compat.COMPONENT_DECL_TREE]
    with compat.component_tree_walked_once():
        first = tree._component_decl_tree()
        assert tree._component_decl_tree() is first  # walked once
        assert list(first) == list(stock)
        assert [type(d) for d in first.values()] == [type(d) for d in stock.values()]
        other = ComponentTree.for_project(path_within_project=project_paths.root / "ddp_assets")
        assert other._component_decl_tree() is not first  # each tree its own
    assert vars(owner)[compat.COMPONENT_DECL_TREE] is original
    assert tree._component_decl_tree() is not first  # the block's mapping is gone
    with pytest.raises(ValueError), compat.component_tree_walked_once():
        raise ValueError("a load that failed")
    assert vars(owner)[compat.COMPONENT_DECL_TREE] is original
    with compat.component_tree_walked_once(enabled=False):  # the public path: Dagster's walk
        assert tree._component_decl_tree() is not tree._component_decl_tree()
    # builds at once (threads): the last block to leave puts Dagster's method back
    with compat.component_tree_walked_once():
        with compat.component_tree_walked_once():
            inner = tree._component_decl_tree()
        assert tree._component_decl_tree() is inner
    assert vars(owner)[compat.COMPONENT_DECL_TREE] is original


def test_frozen_objects_are_unfrozen_at_exit_only_for_duckdb() -> None:
    """Without duckdb the exit leaves what the build froze; with it, everything is unfrozen so
    its nanobind objects are freed (no leak report)."""
    code = (
        "import gc, sys\n"
        "from ddp_assets import compat\n"
        "with compat.collector_paused():\n"
        "    kept = [[i] for i in range(1000)]\n"
        "frozen = gc.get_freeze_count()\n"
        "left = compat._unfreeze_for_leak_checks()\n"
        "print(frozen > 1000, left, gc.get_freeze_count() == frozen)\n"
        "import duckdb\n"
        "duckdb.connect().execute('select 1').fetchall()\n"
        "print(compat._unfreeze_for_leak_checks(), gc.get_freeze_count())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False", "True", "True", "0"]
    assert "nanobind" not in done.stderr, done.stderr
    # the exit hook itself, without calling it by hand
    code = (
        "from ddp_assets import compat\n"
        "with compat.collector_paused():\n"
        "    kept = [[i] for i in range(1000)]\n"
        "import duckdb\n"
        "duckdb.connect().execute('select 1').fetchall()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "nanobind" not in done.stderr, done.stderr


# -- dagster-dbt: what DbtCliResource.cli computes, for dbt in process -------------------------


def test_canary_dagster_dbt_helpers_keep_their_shape() -> None:
    from dagster_dbt import DbtCliInvocation, DbtCliResource
    from dagster_dbt.asset_utils import (
        DBT_INDIRECT_SELECTION_ENV,
        DbtCliInvocationPartialParams,
        extract_runtime_selection_from_args,
        get_updated_cli_invocation_params_for_context,
    )
    from dagster_dbt.dagster_dbt_translator import validate_opt_translator
    from dagster_dbt.dbt_manifest import validate_manifest

    assert compat.in_process_dbt_supported()
    assert DBT_INDIRECT_SELECTION_ENV == "DBT_INDIRECT_SELECTION"
    assert list(inspect.signature(extract_runtime_selection_from_args).parameters) == ["args"]
    assert list(inspect.signature(get_updated_cli_invocation_params_for_context).parameters) == [
        "context",
        "manifest",
        "dagster_dbt_translator",
        "runtime_selects",
        "runtime_excludes",
    ]
    assert set(inspect.get_annotations(DbtCliInvocationPartialParams)) >= {
        "manifest",
        "dagster_dbt_translator",
        "selection_args",
        "indirect_selection",
        "dbt_project",
    }
    assert list(inspect.signature(validate_manifest).parameters) == ["manifest"]
    assert list(inspect.signature(validate_opt_translator).parameters) == ["dagster_dbt_translator"]
    # the fields an in-process invocation is built with (dbt/project.py)
    assert {f.name for f in dataclasses.fields(DbtCliInvocation)} >= {
        "process",
        "manifest",
        "dagster_dbt_translator",
        "project_dir",
        "target_path",
        "raise_on_error",
        "context",
        "adapter",
        "cli_version",
        "project",
    }
    # the resource's own cli still computes its invocation with the same helpers
    source = inspect.getsource(DbtCliResource.cli)
    assert "extract_runtime_selection_from_args" in source
    assert "get_updated_cli_invocation_params_for_context" in source


def test_canary_dagster_dbt_uses_only_what_in_process_dbt_offers_of_popen() -> None:
    """dagster-dbt's invocation reads its dbt process through a few ``Popen`` members;
    ``InProcessDbt`` offers those (a new one used by an upgrade fails here)."""
    import re

    from dagster_dbt import DbtCliInvocation

    from ddp_assets.dbt.in_process import InProcessDbt

    used = set(re.findall(r"self\.process\.(\w+)", inspect.getsource(DbtCliInvocation)))
    assert used >= {"stdout", "wait", "returncode"}
    instance_attributes = {"args", "returncode", "stdout"}  # set in InProcessDbt.__init__
    assert used <= instance_attributes | set(dir(InProcessDbt)), used


def test_plan_dbt_invocation_splits_the_selection_as_dagster_dbt_does() -> None:
    from dagster_dbt import DagsterDbtTranslator

    plan = compat.plan_dbt_invocation(
        ["build", "--select", "orders", "--exclude", "stg_orders", "--full-refresh"],
        context=None,
        manifest=None,
        dagster_dbt_translator=None,
    )
    assert plan.args == ["build", "--full-refresh"]
    assert sorted(plan.selection_args) == sorted(["--select", "orders", "--exclude", "stg_orders"])
    assert plan.env == {}
    assert isinstance(plan.translator, DagsterDbtTranslator)


def test_installed_dbt_version_is_what_dbt_version_reports(project_paths: ProjectPaths) -> None:
    """The public fallback of dagster-dbt's ``dbt --version`` subprocess gives the same."""
    from dagster_dbt import DbtCliResource

    from ddp_assets.dbt.project import dbt_executable

    stock = DbtCliResource(project_dir=str(project_paths.dbt_dir), dbt_executable=dbt_executable())
    assert stock._cli_version == compat.installed_dbt_version()


# -- public routes that replaced hooks ---------------------------------------------------------


def test_with_assets_keeps_every_other_definitions_parameter() -> None:
    """``automation.policies.with_assets`` rebuilds a Definitions through its public
    constructor: every parameter Dagster's constructor has must be carried over."""
    from ddp_assets.automation.policies import with_assets

    carried = {
        "assets",
        "schedules",
        "sensors",
        "jobs",
        "resources",
        "executor",
        "loggers",
        "asset_checks",
        "metadata",
        "component_tree",
    }
    assert set(inspect.signature(dg.Definitions).parameters) == carried

    @dg.asset
    def one() -> None: ...

    @dg.asset
    def two() -> None: ...

    @dg.asset_check(asset=one)
    def positive() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=True)

    job = dg.define_asset_job("all_assets")

    @dg.sensor(job=job)
    def watcher() -> None: ...

    @dg.logger
    def quiet(_context: dg.InitLoggerContext) -> logging.Logger:
        return logging.getLogger("quiet")

    original = dg.Definitions(
        assets=[one],
        asset_checks=[positive],
        jobs=[job],
        schedules=[dg.ScheduleDefinition(job=job, cron_schedule="0 * * * *")],
        sensors=[watcher],
        resources={"greeting": dg.ResourceDefinition.hardcoded_resource("hi")},
        executor=dg.in_process_executor,
        loggers={"quiet": quiet},
        metadata={"owner": "ddp"},
    )
    rebuilt = with_assets(original, [one, two])
    assert rebuilt.assets == [one, two]
    for name in carried - {"assets"}:
        assert getattr(rebuilt, name) == getattr(original, name), name
    assert {k.to_user_string() for k in rebuilt.resolve_asset_graph().get_all_asset_keys()} == {
        "one",
        "two",
    }


def test_check_outcomes_read_publicly_match_the_stored_status(tmp_path: Path) -> None:
    """``automation.health`` reads a check execution's outcome from its evaluation event (public
    classes); it must agree with the storage's own status (a private enum, read here only)."""
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus,
    )

    from ddp_assets.automation.health import _check_passed

    @dg.asset(
        check_specs=[
            dg.AssetCheckSpec("good", asset="numbers"),
            dg.AssetCheckSpec("bad", asset="numbers"),
        ]
    )
    def numbers() -> dg.MaterializeResult:
        return dg.MaterializeResult(
            check_results=[
                dg.AssetCheckResult(check_name="good", passed=True),
                dg.AssetCheckResult(check_name="bad", passed=False),
            ]
        )

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        assert dg.materialize([numbers], instance=instance, raise_on_error=False).success
        for name, expected in (("good", True), ("bad", False)):
            key = dg.AssetCheckKey(dg.AssetKey("numbers"), name)
            (record,) = instance.event_log_storage.get_asset_check_execution_history(key, limit=5)
            assert _check_passed(record) is expected
            status = AssetCheckExecutionRecordStatus
            assert record.status == (status.SUCCEEDED if expected else status.FAILED)


def _soda_telemetry(prelude: str) -> list[str]:
    code = (
        "import os\n"
        f"{prelude}\n"
        "from ddp_assets.contracts import soda_telemetry_default_off\n"
        "with soda_telemetry_default_off():\n"
        "    import soda_core.contracts\n"
        "from soda_core.telemetry.soda_telemetry import SodaTelemetry\n"
        "sent = bool(SodaTelemetry()._SodaTelemetry__send)\n"
        "print(sent, os.environ.get('SODA_CORE_TELEMETRY_ENABLED'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[-2:]


def test_soda_telemetry_is_off_for_the_process_and_the_environment_left_as_it_was() -> None:
    assert _soda_telemetry("os.environ.pop('SODA_CORE_TELEMETRY_ENABLED', None)") == [
        "False",
        "None",
    ]


def test_soda_telemetry_follows_the_users_setting() -> None:
    assert _soda_telemetry("os.environ['SODA_CORE_TELEMETRY_ENABLED'] = 'true'") == [
        "True",
        "true",
    ]


def test_importing_contracts_sets_no_environment_variable() -> None:
    code = (
        "import os; os.environ.pop('SODA_CORE_TELEMETRY_ENABLED', None)\n"
        "import ddp_assets.contracts\n"
        "print('SODA_CORE_TELEMETRY_ENABLED' in os.environ)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False"]


def test_multiprocessings_exit_hook_is_still_there() -> None:
    """Canary: the hook a fast exit calls (CPython 3.11-3.13)."""
    import multiprocessing.util

    assert callable(multiprocessing.util._exit_function)  # type: ignore[attr-defined]


def test_a_fast_exit_leaves_no_semaphore_behind() -> None:
    """dbt makes its locks from a spawn context; ``ddp`` leaves with ``os._exit``. Without the
    hook the resource tracker warned of leaked semaphores at every command's end."""
    script = (
        "import multiprocessing\n"
        "lock = multiprocessing.get_context('spawn').Lock()\n"
        "from ddp_assets.cli import console\n"
        "console.allow_fast_exit()\n"
        "console.leave(0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "leaked semaphore" not in done.stderr, done.stderr


# -- the pooled SQLite event log ------------------------------------------------------------------


@dg.asset
def pooled_numbers() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 3})


@dg.asset(
    deps=[pooled_numbers], check_specs=[dg.AssetCheckSpec("positive", asset="pooled_doubled")]
)
def pooled_doubled(context) -> dg.MaterializeResult:  # type: ignore[no-untyped-def]  # Dagster reads the annotation, a string here
    context.log.info("doubling")
    return dg.MaterializeResult(
        metadata={"rows": 3}, check_results=[dg.AssetCheckResult(passed=True)]
    )


def test_the_sqlite_event_logs_private_hooks_are_still_there() -> None:
    """Canary: what compat.pool_sqlite_event_log binds over and calls on Dagster's storage."""
    import inspect

    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    assert list(inspect.signature(SqliteEventLogStorage._connect).parameters) == ["self", "shard"]
    for name in ("conn_string_for_shard", "_initdb", "has_table", "delete_events", "wipe"):
        assert callable(getattr(SqliteEventLogStorage, name)), name


def test_runs_stored_through_the_pool_read_back_with_dagsters_own_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    from ddp_assets.runtime.instance import instance
    from ddp_assets.settings import ProjectPaths

    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with instance(ProjectPaths(ROOT)) as pooled:
        storage: Any = pooled.event_log_storage
        assert type(storage) is SqliteEventLogStorage  # Dagster's class, as dagster.yaml says
        assert hasattr(storage, "_ddp_engines"), "the ddp process's instance is pooled"
        results = [
            dg.materialize([pooled_numbers, pooled_doubled], instance=pooled, raise_on_error=True)
            for _ in range(2)
        ]
        assert 0 < len(getattr(storage, "_ddp_engines")) <= compat.KEEP_ENGINES  # noqa: B009
        with storage.run_connection(results[0].run_id) as connection:
            mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
        assert str(mode).lower() == "wal"
    plain = SqliteEventLogStorage(str(home / "history" / "runs"))
    for result in results:
        records = plain.get_logs_for_run(result.run_id)
        kinds = [r.dagster_event.event_type_value for r in records if r.dagster_event]
        assert kinds.count("ASSET_MATERIALIZATION") == 2
        assert kinds.count("ASSET_CHECK_EVALUATION") == 1
        assert any(r.user_message == "doubling" for r in records)
    latest = plain.get_latest_materialization_events([dg.AssetKey("pooled_doubled")])
    event = latest[dg.AssetKey("pooled_doubled")]
    assert event is not None and event.run_id == results[-1].run_id


def test_other_storages_are_left_as_they_are(tmp_path: Path) -> None:
    with dg.DagsterInstance.ephemeral() as ephemeral:
        assert not compat.pool_sqlite_event_log(
            ephemeral
        )  # in-memory storage: not Dagster's SQLite


# -- dbt's model context members (the undefined-macro check of ddp validate) ------------------


def test_canary_dbts_model_context_keeps_its_members_table() -> None:
    """Fails when dbt-core moves ``ModelContext._context_members_`` (compat's private read for
    ``dbt/macro_check.py``): the check would fall back to package calls only."""
    from dbt.context.providers import ModelContext

    members = vars(ModelContext).get("_context_members_")
    assert isinstance(members, dict), type(members)
    assert {"ref", "source", "config", "var", "this", "adapter", "env_var"} <= set(members)
    assert compat.tested("dbt-core")
    assert compat.dbt_context_members() == frozenset(members)


def test_dbt_context_members_fall_back_outside_the_tested_dbt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(compat.TESTED, "dbt-core", "==0.1.*")
    assert compat.dbt_context_members() is None
    environment = compat.dbt_jinja_environment()  # a plain Jinja environment then
    assert "dbt" not in type(environment).__module__
    environment.parse("{% macro m(x) %}{{ x }}{% endmacro %}{% do [].append(1) %}")
