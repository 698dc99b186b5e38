"""End to end: the demo products built by ddp, by plain dbt, by plain dagster-dbt, and the floor.

- (A)  ``ddp materialize --all --json``: landing loads, dbt, the Python model, the output ports'
       audit and publish (write-audit-publish), through a new Dagster instance on an empty
       warehouse; whole process. (A2): the same command again on the same instance/warehouse.
- (B)  plain ``dbt build`` of the same dbt project on a copy of the warehouse after (A): the raw
       tables exist, and so do the published output ports that other products' models read.
- (B') the same work as (A) without Dagster: the raw loads (landing files and the depot's
       SQLite table) done directly in DuckDB (this process), plain ``dbt build`` (subprocess),
       the Python model and the publishes (this process: each port renamed to its next version,
       the published name a view of it, as ddp's versioned publish does), on a copy of the
       warehouse after (A); timed piece by piece.
- (F)  the floor: the raw loads (files and depot), the compiled SQL of every model and test, the
       Python model and the publishes (rename to version 1 + views), in dependency order on one
       DuckDB connection (:mod:`bench.floor`), on an empty warehouse.
- (F0) the physical floor of the work: (F) without the data tests and without the versioned
       publish (each port's relation is a view of its staging build): the demo's loads, model
       SQL and Python model on one DuckDB connection.
- (D)  plain dagster-dbt: ``@dbt_assets`` over the prepared manifest, ``dagster.materialize`` on an
       ephemeral instance, whole process, on a copy of the warehouse after (A), as (B).
- (A-off) (A) with lineage off (``OPENLINEAGE_DISABLED=true``): ddp builds no OpenLineage event.
- (C)  the contract checks alone (:mod:`bench.contract_pass`), on a copy of the warehouse after
       (A): every output port's Soda verification (and pandera for Python ports) as the audit
       runs them, timed in process; (Csql) the same rules as one hand-written SQL query per
       port. Its process's peak RSS shows whether the checks pull rows into Python.
- (I)  the import floor: a process that only imports the third-party modules a ``ddp
       materialize --all`` loads (captured once, :func:`capture_modules`), in the same order,
       and exits as ddp does; (Idbt) the same for the modules plain ``dbt build`` loads, with
       dbt's normal exit. From them, :func:`floors`: the lowest A/B and A/F any run could reach
       that loads those libraries in one process and does what B (and B', C) do after their
       imports, with nothing at all for Dagster's own run.

The ratios issue 20 asks for: A/D, A/F0, A/F and A/B (all in :data:`RATIOS`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import floor
from bench.common import (
    REPO,
    BenchError,
    Measured,
    Samples,
    Settings,
    copy_project,
    fresh_dir,
    python_env,
    ratio,
    run_measured,
    tool,
    wait_for_quiet,
)
from bench.scripts import IMPORTS_ONLY, MODULES_LOADED_BY, PLAIN_DAGSTER_DBT_RUN, write_script
from ddp_assets.spec.model import DepotInputPort, FileInputPort, TableInputPort
from ddp_assets.spec.registry import Registry

WARMUP_SCALE = 1_000


@dataclass
class Project:
    """The snapshot every end-to-end measurement runs against, prepared once."""

    settings: Settings
    root: Path
    registry: Registry
    compiled: dict[str, Any]
    prepared_manifest: Path
    python_step_keys: set[str]
    load_step_keys: set[str]
    port_step_keys: set[str]
    data: Path
    preparation: dict[str, dict[str, Any]] = field(default_factory=dict)
    modules: dict[str, Path] = field(default_factory=dict)  # "ddp"/"dbt": a module list file

    @property
    def dbt_dir(self) -> Path:
        return self.root / "dbt_project"

    def env(self, **extra: str | Path) -> dict[str, str]:
        return python_env(self.settings, PYTHONPATH=self.root, DDP_PROJECT_ROOT=self.root, **extra)

    def dbt_command(self, verb: str, *args: str) -> list[str]:
        return [
            tool("dbt"),
            verb,
            "--profiles-dir",
            "dbt_project",
            "--project-dir",
            "dbt_project",
            *args,
        ]


def prepare_project(settings: Settings, log: Any) -> Project:
    """Snapshot the checkout, check it, and do every untimed preparation (reported)."""
    root = copy_project(settings.work / "project")
    logs = settings.work / "logs" / "prepare"
    data = fresh_dir(settings.work / "data")
    env = python_env(settings, PYTHONPATH=root, DDP_PROJECT_ROOT=root, DDP_DATA_DIR=data)
    preparation: dict[str, dict[str, Any]] = {}

    validate = run_measured(
        "ddp validate", [tool("ddp"), "validate", "--no-dbt"], env=env, cwd=root, logs=logs
    )
    if validate.returncode != 0:
        raise BenchError(
            "the demo products do not validate (another engineer may be editing them; retry "
            f"in a few minutes):\n{validate.tail()}"
        )
    dbt_args = ["--profiles-dir", "dbt_project", "--project-dir", "dbt_project"]
    steps = (
        ("prepare", "ddp prepare (dbt parse for ddp)", [tool("ddp"), "prepare"]),
        ("dbt_parse", "dbt parse (for B and D)", [tool("dbt"), "parse", *dbt_args]),
        (
            "dbt_compile",
            "dbt compile (SQL for F)",
            [tool("dbt"), "compile", *dbt_args, "--target-path", "target/bench_compile"],
        ),
    )
    for key, label, command in steps:
        log(f"  preparing: {label}")
        measured = run_measured(label, command, env=env, cwd=root, logs=logs).check()
        preparation[key] = {"label": label, **measured.to_dict()}

    registry = Registry.load(root / "ddp_assets" / "defs", root)
    registry.raise_for_errors()
    compiled = floor.compiled_manifest(
        root / "dbt_project" / "target" / "bench_compile" / "manifest.json"
    )
    # Step keys (ddp_assets/components, ingest, compute): a product's landing files load in one
    # step "<product>__landing"; a depot port (ingest/depot_assets.py) or a table port loads in
    # its own step "<product>__<port>"; a Python model and its port's publish are the step
    # "<product>__<model>"; every dbt model and the audit + publish of the ports dbt builds are
    # the step "ddp_dbt_models" (its time is the "dbt" phase, audits and publishes included).
    python_keys = {
        f"{p.id}__{m.name}" for p in registry.products.values() for m in p.spec.python_models
    }
    port_keys: set[str] = set()
    load_keys = {
        f"{p.id}__landing"
        for p in registry.products.values()
        if any(isinstance(port, FileInputPort) for port in p.spec.input_ports)
    } | {
        f"{p.id}__{port.name}"
        for p in registry.products.values()
        for port in p.spec.input_ports
        if isinstance(port, TableInputPort | DepotInputPort)
    }
    return Project(
        settings=settings,
        root=root,
        registry=registry,
        compiled=compiled,
        prepared_manifest=root / "dbt_project" / "target" / "dev" / "manifest.json",
        python_step_keys=python_keys,
        load_step_keys=load_keys,
        port_step_keys=port_keys,
        data=data,
        preparation=preparation,
    )


# -- timelines ---------------------------------------------------------------------------------

RUN_START = "PIPELINE_START"
RUN_END = ("PIPELINE_SUCCESS", "PIPELINE_FAILURE")


def timeline(
    events: Sequence[tuple[float, str, str | None]],
    started_at: float,
    ended_at: float,
    python_steps: set[str],
    load_steps: set[str],
    port_steps: set[str],
) -> dict[str, float]:
    """Where a Dagster process spent its time, from its runs' event logs.

    ``events`` are (timestamp, event type, step key) of every run the process made (a
    materialize with partitioned products makes several, one after the other);
    ``started_at``/``ended_at`` are the wall-clock times around the process. ``between_steps``
    is the time inside runs outside any step; ``between_runs`` the time from one run's end to
    the next run's start (ddp's own work between runs: outcome, lineage, the next run's plan).
    """
    created = min(t for t, _, _ in events)
    run_starts = sorted(t for t, kind, _ in events if kind == RUN_START)
    run_ends = sorted(t for t, kind, _ in events if kind in RUN_END)
    run_start, run_end = run_starts[0], run_ends[-1]
    in_runs = sum(end - start for start, end in zip(run_starts, run_ends, strict=False))
    starts: dict[str, float] = {}
    durations: dict[str, float] = {}
    for t, kind, step in events:
        if step is None:
            continue
        if kind == "STEP_START":
            starts[step] = t
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and step in starts:
            durations[step] = durations.get(step, 0.0) + t - starts.pop(step)
    by_kind = {"loads": 0.0, "dbt": 0.0, "python": 0.0, "ports": 0.0, "other": 0.0}
    dbt_steps = 0
    for step, seconds in durations.items():
        if step in load_steps:
            by_kind["loads"] += seconds
        elif step in port_steps:
            by_kind["ports"] += seconds
        elif step in python_steps:
            by_kind["python"] += seconds
        elif "dbt" in step:
            by_kind["dbt"] += seconds
            dbt_steps += 1
        else:
            by_kind["other"] += seconds
    return {
        "start_to_run_created": created - started_at,
        "run_created_to_started": run_start - created,
        "steps_loads": by_kind["loads"],
        "steps_dbt": by_kind["dbt"],
        "steps_python": by_kind["python"],
        "steps_ports": by_kind["ports"],
        "steps_other": by_kind["other"],
        "dbt_steps": dbt_steps,
        "dbt_invocations": dbt_steps,  # one per step in a subprocess; run_a counts in-process ones
        "between_steps": in_runs - sum(durations.values()),
        "between_runs": (run_end - run_start) - in_runs,
        "run_end_to_exit": ended_at - run_end,
        "runs": len(run_starts),
        "steps": len(durations),
    }


def instance_events(home: Path, run_id: str) -> list[tuple[float, str, str | None]]:
    """(timestamp, event type, step key) of a run, read from a Dagster instance's storage."""
    import dagster as dg

    # ddp's dagster.yaml event log finds its folder through DAGSTER_HOME, as in the run itself
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            return [
                (e.timestamp, e.dagster_event.event_type_value, e.step_key)
                for e in instance.all_logs(run_id)
                if e.dagster_event is not None
            ]
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous


def _dbt_details(target: Path, details: dict[str, float], log: str | None = None) -> None:
    """Add one dbt invocation's own ``elapsed_time`` (running the nodes, after start-up and
    parsing) to ``details``, and count it if it had to parse the whole project (its log says
    why partial parsing failed). ``log`` is its log text; by default ``target/dbt.log``.
    """
    results = target / "run_results.json"
    if results.exists():
        elapsed = float(json.loads(results.read_text(encoding="utf-8"))["elapsed_time"])
        details["dbt_elapsed"] = details.get("dbt_elapsed", 0.0) + elapsed
    if log is None and (target / "dbt.log").exists():
        log = (target / "dbt.log").read_text(encoding="utf-8", errors="replace")
    if log is not None:
        full = float("Unable to do partial parsing" in log)
        details["dbt_full_parse"] = details.get("dbt_full_parse", 0.0) + full


# -- one repetition ----------------------------------------------------------------------------


@dataclass
class Repetition:
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    loadavg: dict[str, float] = field(default_factory=dict)
    waited: float = 0.0
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    details: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)  # not numbers: kept as they are


def reset_data(project: Project, landing: Path, warehouse: Path | None = None) -> Path:
    """Empty the shared data folder: landing link to this scale, a copy of ``warehouse`` or none.

    Every dbt run uses the same ``DDP_DATA_DIR`` as the preparation: dbt's partial parse is
    keyed on the profile, which holds the warehouse path (see docs/performance.md).
    """
    data = project.data
    for child in data.iterdir():
        if child.is_symlink() or child.is_file():
            child.unlink()
        else:
            shutil.rmtree(child)
    (data / "landing").symlink_to(landing, target_is_directory=True)
    if warehouse is not None:
        shutil.copyfile(warehouse, data / "warehouse.duckdb")
    return data


def run_a(
    project: Project,
    landing: Path,
    rep_dir: Path,
    rep: Repetition,
    *,
    again: bool = False,
    lineage: bool = True,
) -> None:
    """A: ``ddp materialize --all`` on an empty warehouse and a new Dagster instance; with
    ``again``, A2: the same command once more on the same instance and warehouse; without
    ``lineage``, A-off: as A with ``OPENLINEAGE_DISABLED=true``."""
    name = "A2" if again else ("A" if lineage else "A-off")
    home = rep_dir / name.replace("2", "") / "dagster_home"
    extra = {} if lineage else {"OPENLINEAGE_DISABLED": "true"}
    if again:
        data = project.data
    else:
        data = reset_data(project, landing)
        home = fresh_dir(home)
        shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    measured = run_measured(
        f"{name} ddp materialize --all",
        [tool("ddp"), "materialize", "--all", "--json"],
        env=project.env(DDP_DATA_DIR=data, DAGSTER_HOME=home, **extra),
        cwd=project.root,
        logs=rep_dir / "logs",
    )
    if measured.returncode != 0:
        try:
            errors = json.loads(measured.stdout).get("errors")
        except ValueError:
            errors = None
        if errors:
            raise BenchError(
                f"{name}: ddp materialize failed: {errors} (logs: {measured.stdout_path.parent})"
            )
    outcome = json.loads(measured.check().stdout)
    _record(rep, name, measured)
    run_ids = outcome.get("runs") or [outcome["run_id"]]
    events = [event for run_id in run_ids for event in instance_events(home, run_id)]
    details = timeline(
        events,
        measured.started_at,
        measured.ended_at,
        project.python_step_keys,
        project.load_step_keys,
        project.port_step_keys,
    )
    details["materialize_seconds_reported"] = float(outcome.get("seconds", float("nan")))
    runs = project.dbt_dir / "target" / "dev" / "runs"
    targets = sorted(  # one per dbt invocation
        target for run_id in run_ids for target in runs.glob(f"{run_id[:8]}-*")
    )
    for target in targets:
        _dbt_details(target, details)
    details["dbt_invocations"] = float(len(targets))
    rep.details[name] = details


def run_b_prime(
    project: Project, landing: Path, rep_dir: Path, rep: Repetition, after_a: Path
) -> None:
    """B': raw loads in DuckDB, dbt build (subprocess), the Python model and the publishes
    (each port renamed to the version ddp would publish next on this warehouse)."""
    data = reset_data(project, landing, after_a)
    warehouse = data / "warehouse.duckdb"
    versions = floor.next_versions(warehouse)  # read before the clock starts
    loads = floor.execute(floor.load_steps(project.registry, landing, data), warehouse)
    build = run_measured(
        "B' dbt build",
        project.dbt_command("build"),
        env=project.env(DDP_DATA_DIR=data),
        cwd=project.root,
        logs=rep_dir / "logs",
    ).check()
    rest = floor.execute(
        floor.order(
            [
                *floor.python_steps(project.registry, versions=versions),
                *floor.dbt_steps(project.compiled, build=False, publish=True, versions=versions),
            ]
        ),
        warehouse,
    )
    rep.seconds["B'"] = loads.seconds + build.seconds + rest.seconds
    rep.cpu_seconds["B'"] = loads.cpu_seconds + build.cpu_seconds + rest.cpu_seconds
    rep.loadavg["B'"] = build.loadavg[0]
    rep.peak_rss_mb["B'"] = build.peak_rss_mb
    details = {
        "loads": loads.seconds,
        "dbt_build": build.seconds,
        "python": rest.by_kind.get("python", 0.0),
        "publish": rest.by_kind.get("publish", 0.0),
    }
    _dbt_details(project.dbt_dir / "target", details, build.stdout)
    rep.details["B'"] = details


def run_b(project: Project, landing: Path, rep_dir: Path, rep: Repetition, after_a: Path) -> None:
    data = reset_data(project, landing, after_a)
    measured = run_measured(
        "B dbt build",
        project.dbt_command("build"),
        env=project.env(DDP_DATA_DIR=data),
        cwd=project.root,
        logs=rep_dir / "logs",
    ).check()
    _record(rep, "B", measured)
    details: dict[str, float] = {}
    _dbt_details(project.dbt_dir / "target", details, measured.stdout)
    rep.details["B"] = details


def run_d(project: Project, landing: Path, rep_dir: Path, rep: Repetition, after_a: Path) -> None:
    data = reset_data(project, landing, after_a)
    script = write_script(rep_dir / "D", "plain_dagster_dbt.py", PLAIN_DAGSTER_DBT_RUN)
    measured = run_measured(
        "D plain dagster-dbt",
        [tool("python"), str(script), str(project.prepared_manifest), str(project.dbt_dir)],
        env=python_env(project.settings, DDP_DATA_DIR=data),
        cwd=project.root,
        logs=rep_dir / "logs",
    ).check()
    _record(rep, "D", measured)
    report = json.loads(measured.stdout.strip().splitlines()[-1])
    events = [(float(t), str(k), s) for t, k, s in report["events"]]
    details = timeline(events, measured.started_at, measured.ended_at, set(), set(), set())
    details["interpreter_start"] = report["wall0"] - measured.started_at
    details["import"] = report["import"]
    details["defs"] = report["defs"]
    for target in report["dbt_target_paths"]:  # one per dbt invocation
        _dbt_details(Path(target), details)
    rep.details["D"] = details


def run_c(project: Project, landing: Path, rep_dir: Path, rep: Repetition, after_a: Path) -> None:
    """C and Csql: the contract checks alone, and the same rules as one SQL pass per port."""
    data = reset_data(project, landing, after_a)
    measured = run_measured(
        "C contract checks",
        [tool("python"), "-m", "bench.contract_pass", str(data / "warehouse.duckdb")],
        env=python_env(
            project.settings,
            PYTHONPATH=os.pathsep.join([str(project.root), str(REPO)]),
            DDP_PROJECT_ROOT=project.root,
            DDP_DATA_DIR=data,
        ),
        cwd=project.root,
        logs=rep_dir / "logs",
    ).check()
    report = json.loads(measured.stdout.strip().splitlines()[-1])
    rep.seconds["C"] = float(report["platform_seconds"])
    rep.cpu_seconds["C"] = float(report["platform_cpu_seconds"])
    rep.seconds["Csql"] = float(report["sql_seconds"])
    rep.cpu_seconds["Csql"] = float(report["sql_cpu_seconds"])
    rep.loadavg["C"] = rep.loadavg["Csql"] = measured.loadavg[0]
    rep.peak_rss_mb["C"] = measured.peak_rss_mb
    rep.details["C"] = {
        "process_seconds": measured.seconds,
        "imports_and_warmup": float(report["imports_and_warmup"]),
        "ports": float(report["ports"]),
        "rules": float(report["rules"]),
        "disagreements_with_sql": float(len(report["disagreements"])),
        "publish_copy_seconds": float(report["publish_copy_seconds"]),
        "checksum_seconds": float(report["checksum_seconds"]),
        "rename_seconds": float(report["rename_seconds"]),
    }
    rep.notes["C_per_port"] = report["per_port"]
    if report["disagreements"]:
        rep.notes["C_disagreeing_rules"] = report["disagreements"]


def capture_modules(project: Project, landing: Path, work: Path, log: Any) -> dict[str, Any]:
    """Which modules ``ddp materialize --all`` and plain ``dbt build`` load (not measured).

    Run once, on a small landing zone: what a process imports does not depend on the rows.
    """
    script = write_script(work, "modules_loaded_by.py", MODULES_LOADED_BY)
    home = fresh_dir(work / "dagster_home")
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    data = reset_data(project, landing)
    summary: dict[str, Any] = {}
    for name, command, env in (
        (
            "ddp",
            ["materialize", "--all", "--json"],
            project.env(DDP_DATA_DIR=data, DAGSTER_HOME=home),
        ),
        ("dbt", project.dbt_command("build")[1:], project.env(DDP_DATA_DIR=data)),
    ):
        out = work / f"modules_{name}.txt"
        run_measured(
            f"modules loaded by {name}",
            [tool("python"), str(script), name, *command],
            env={**env, "DDP_BENCH_MODULES": str(out)},
            cwd=project.root,
            logs=work / "logs",
        ).check()
        project.modules[name] = out
        summary[name] = len(out.read_text(encoding="utf-8").splitlines())
    log(f"  modules loaded: ddp materialize {summary['ddp']:,}, dbt build {summary['dbt']:,}")
    return summary


def run_i(project: Project, rep_dir: Path, rep: Repetition) -> None:
    """I and Idbt: processes that only import what a ddp run, and a dbt build, load."""
    script = write_script(rep_dir / "I", "imports_only.py", IMPORTS_ONLY)
    for name, modules, exit_ in (
        ("I", project.modules["ddp"], "fast"),
        ("Idbt", project.modules["dbt"], "teardown"),
    ):
        measured = run_measured(
            f"{name} imports only",
            [tool("python"), str(script), str(modules), exit_],
            env=project.env(),
            cwd=project.root,
            logs=rep_dir / "logs",
        ).check()
        _record(rep, name, measured)
        report = json.loads(measured.stdout.strip().splitlines()[-1])
        rep.details[name] = {
            "interpreter_start": report["wall0"] - measured.started_at,
            "imports": float(report["seconds"]),
            "modules": float(report["loaded"]),
            "failed": float(report["failed"]),
        }


def floors(medians: dict[str, float]) -> dict[str, float]:
    """The lowest A/B and A/F a run loading ddp's libraries in one process could reach.

    - A/B at any scale: the imports (I) plus what plain ``dbt build`` does after its own imports
      and before its interpreter's teardown (B - Idbt): parse state, nodes, artifacts.
    - A/F: the imports beyond dbt's (I - Idbt), the same work as A without Dagster (B': the
      loads, ``dbt build``, the Python model, the publishes) and the contract checks (C).

    Nothing is counted for Dagster itself (definitions, planning, events, run records), the
    landing checks, checksums or lineage: a real run costs more than its floor.
    """
    i, idbt, b = medians["I"], medians["Idbt"], medians["B"]
    return {
        "A/B": ratio(i + b - idbt, b),
        "A/F": ratio(i - idbt + medians["B'"] + medians["C"], medians["F"]),
    }


def run_f(project: Project, landing: Path, rep_dir: Path, rep: Repetition) -> None:
    steps = floor.order(
        [
            *floor.load_steps(project.registry, landing),
            *floor.dbt_steps(project.compiled),
            *floor.python_steps(project.registry),
        ]
    )
    result = floor.execute(steps, fresh_dir(rep_dir / "F") / "warehouse.duckdb")
    rep.seconds["F"] = result.seconds
    rep.cpu_seconds["F"] = result.cpu_seconds
    rep.details["F"] = {**result.by_kind, **{f"n_{k}": float(v) for k, v in result.counts.items()}}


def run_f0(project: Project, landing: Path, rep_dir: Path, rep: Repetition) -> None:
    steps = floor.order(
        [
            *floor.load_steps(project.registry, landing),
            *floor.dbt_steps(project.compiled, tests=False, versioned=False),
            *floor.python_steps(project.registry, versioned=False),
        ]
    )
    result = floor.execute(steps, fresh_dir(rep_dir / "F0") / "warehouse.duckdb")
    rep.seconds["F0"] = result.seconds
    rep.cpu_seconds["F0"] = result.cpu_seconds
    rep.details["F0"] = {
        **result.by_kind,
        **{f"n_{k}": float(v) for k, v in result.counts.items()},
    }


def _record(rep: Repetition, name: str, measured: Measured) -> None:
    rep.seconds[name] = measured.seconds
    rep.cpu_seconds[name] = measured.cpu_seconds
    rep.loadavg[name] = measured.loadavg[0]
    rep.peak_rss_mb[name] = measured.peak_rss_mb


def run_repetition(project: Project, landing: Path, rep_dir: Path, log: Any) -> Repetition:
    rep = Repetition()
    after_a = rep_dir / "after_A.duckdb"  # the warehouse (A) left: B', B and D start from it

    def a_then_copy() -> None:
        run_a(project, landing, rep_dir, rep)
        shutil.copyfile(project.data / "warehouse.duckdb", after_a)

    for name, run in (
        ("A", a_then_copy),
        ("A2", lambda: run_a(project, landing, rep_dir, rep, again=True)),
        ("A-off", lambda: run_a(project, landing, rep_dir, rep, lineage=False)),
        ("B'", lambda: run_b_prime(project, landing, rep_dir, rep, after_a)),
        ("B", lambda: run_b(project, landing, rep_dir, rep, after_a)),
        ("C", lambda: run_c(project, landing, rep_dir, rep, after_a)),
        ("D", lambda: run_d(project, landing, rep_dir, rep, after_a)),
        ("F", lambda: run_f(project, landing, rep_dir, rep)),
        ("F0", lambda: run_f0(project, landing, rep_dir, rep)),
        ("I", lambda: run_i(project, rep_dir, rep)),
    ):
        rep.waited += wait_for_quiet(project.settings)
        rep.loadavg.setdefault(name, os.getloadavg()[0])
        run()
        log(
            f"    {name:<3} {rep.seconds[name]:8.2f} s wall, {rep.cpu_seconds[name]:7.2f} s CPU"
            f" (load {rep.loadavg[name]:.1f})"
            + (f"; Idbt {rep.seconds['Idbt']:.2f} s" if name == "I" else "")
        )
    if not project.settings.keep:
        for name in ("A", "A-off", "D", "F", "F0"):
            shutil.rmtree(rep_dir / name, ignore_errors=True)
        after_a.unlink(missing_ok=True)
    return rep


# -- a whole scale -----------------------------------------------------------------------------

MEASURES = ("A", "A2", "A-off", "B", "B'", "C", "Csql", "D", "F", "F0", "I", "Idbt")
RATIOS = (
    ("A/B", "A", "B"),
    ("A2/B", "A2", "B"),
    ("A/B'", "A", "B'"),
    ("A/F", "A", "F"),
    ("A/F0", "A", "F0"),  # ... vs the physical floor (no tests, no versioned publish)
    ("F/F0", "F", "F0"),
    ("D/B", "D", "B"),
    ("A/D", "A", "D"),
    ("A/A-off", "A", "A-off"),  # lineage on vs off
    ("C/B", "C", "B"),  # all contract checks vs the build (plain dbt build)
    ("C/F", "C", "F"),  # ... vs the floor's build
    ("C/Csql", "C", "Csql"),  # ... vs one hand-written SQL pass over the same rules
)


def generate_landing(landing: Path, scale: int) -> tuple[float, int]:
    from ddp_assets.demo.generator import generate_landing_zone

    started = time.perf_counter()
    counts = generate_landing_zone(landing, scale=scale)
    return time.perf_counter() - started, sum(counts.values())


def run_scale(project: Project, scale: int, repeat: int, log: Any) -> dict[str, Any]:
    scale_dir = fresh_dir(project.settings.work / f"e2e_{scale}")
    landing = scale_dir / "landing"
    log(f"  scale {scale:,}: generating the landing zone ...")
    generate_seconds, rows = generate_landing(landing, scale)
    reps: list[Repetition] = []
    for index in range(repeat):
        log(f"  scale {scale:,}: repetition {index + 1}/{repeat}")
        reps.append(run_repetition(project, landing, scale_dir / f"rep{index + 1}", log))
    result = summarize(scale, rows, generate_seconds, reps)
    if project.settings.profile:
        from bench.profile import profile_materialize

        log(f"  scale {scale:,}: profiling one more ddp materialize (not counted) ...")
        result["profile"] = profile_materialize(project, landing, scale_dir / "profile")
    if not project.settings.keep:
        shutil.rmtree(scale_dir, ignore_errors=True)
    return result


def summarize(
    scale: int, rows: int, generate_seconds: float, reps: Sequence[Repetition]
) -> dict[str, Any]:
    seconds = {m: Samples([r.seconds[m] for r in reps]) for m in MEASURES}
    cpu = {m: Samples([r.cpu_seconds[m] for r in reps]) for m in MEASURES}
    medians = {m: s.median for m, s in seconds.items()}
    cpu_medians = {m: s.median for m, s in cpu.items()}
    ratios = {name: ratio(medians[a], medians[b]) for name, a, b in RATIOS}
    cpu_ratios = {name: ratio(cpu_medians[a], cpu_medians[b]) for name, a, b in RATIOS}
    details: dict[str, dict[str, float]] = {}
    for measure in MEASURES:
        keys = _keys(r.details.get(measure, {}) for r in reps)
        details[measure] = {
            k: Samples([r.details[measure][k] for r in reps if k in r.details[measure]]).median
            for k in keys
        }
    return {
        "scale": scale,
        "landing_rows": rows,
        "generate_seconds": round(generate_seconds, 3),
        "repeat": len(reps),
        "seconds": {m: s.to_dict() for m, s in seconds.items()},
        "cpu_seconds": {m: s.to_dict() for m, s in cpu.items()},
        "loadavg_1m": {m: [round(r.loadavg.get(m, 0.0), 2) for r in reps] for m in MEASURES},
        "waited_for_quiet_seconds": round(sum(r.waited for r in reps), 1),
        "peak_rss_mb": {
            m: round(Samples([r.peak_rss_mb[m] for r in reps]).median, 1)
            for m in MEASURES
            if all(m in r.peak_rss_mb for r in reps)
        },
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "cpu_ratios": {k: round(v, 3) for k, v in cpu_ratios.items()},
        "floors": {k: round(v, 3) for k, v in floors(medians).items()},
        "cpu_floors": {k: round(v, 3) for k, v in floors(cpu_medians).items()},
        "breakdown": {m: {k: round(v, 3) for k, v in d.items()} for m, d in details.items()},
        "notes": [r.notes for r in reps],
    }


def _keys(dicts: Iterable[dict[str, float]]) -> list[str]:
    seen: dict[str, None] = {}
    for d in dicts:
        seen.update(dict.fromkeys(d))
    return list(seen)


def warm_up(project: Project, log: Any) -> dict[str, Any]:
    """One untimed (A) and (D) at a small scale: OS page cache and bytecode cache."""
    scale_dir = fresh_dir(project.settings.work / "e2e_warmup")
    landing = scale_dir / "landing"
    generate_landing(landing, WARMUP_SCALE)
    rep_dir = scale_dir / "rep"
    rep = Repetition()
    started = time.perf_counter()
    run_a(project, landing, rep_dir, rep)
    after_a = rep_dir / "after_A.duckdb"
    shutil.copyfile(project.data / "warehouse.duckdb", after_a)
    run_d(project, landing, rep_dir, rep, after_a)
    seconds = time.perf_counter() - started
    shutil.rmtree(scale_dir, ignore_errors=True)
    log(
        f"  warm-up (not counted): A and D at {WARMUP_SCALE:,} rows: "
        f"A {rep.seconds['A']:.1f} s, D {rep.seconds['D']:.1f} s"
    )
    return {
        "scale": WARMUP_SCALE,
        "seconds": round(seconds, 3),
        "by_measure": {k: round(v, 3) for k, v in rep.seconds.items()},
    }


def run(settings: Settings, scales: Sequence[int], repeat: int, warmup: bool, log: Any) -> dict:
    log("end to end: preparing a snapshot of the project")
    project = prepare_project(settings, log)
    result: dict[str, Any] = {
        "preparation": project.preparation,
        "products": sorted(project.registry.products),
        "models": sum(
            1 for n in project.compiled["nodes"].values() if n["resource_type"] == "model"
        ),
        "tests": sum(1 for n in project.compiled["nodes"].values() if n["resource_type"] == "test"),
    }
    result["warmup"] = warm_up(project, log) if warmup else None
    scale_dir = fresh_dir(settings.work / "e2e_modules")
    generate_landing(scale_dir / "landing", WARMUP_SCALE)
    result["modules"] = capture_modules(project, scale_dir / "landing", scale_dir, log)
    result["scales"] = [run_scale(project, scale, repeat, log) for scale in scales]
    return result
