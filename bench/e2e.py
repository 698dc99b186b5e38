"""End to end: the demo products built by ddp, by plain dbt, by plain dagster-dbt, and the floor.

- (A)  ``ddp materialize --all --json``: landing loads, ``dbt build``, the Python model, through
       the Dagster instance (fresh ``DDP_DATA_DIR`` and ``DAGSTER_HOME``), whole process.
- (B)  plain ``dbt build`` of the same dbt project, on a warehouse that holds the raw tables.
- (B') the raw loads done directly in DuckDB + plain ``dbt build`` + the Python model: the same
       work as (A) without Dagster, timed piece by piece.
- (F)  the floor: the raw loads, the compiled SQL of every model and test, and the Python model,
       in dependency order on one DuckDB connection (see :mod:`bench.floor`).
- (D)  plain dagster-dbt: ``@dbt_assets`` over the prepared manifest, ``dagster.materialize`` on an
       ephemeral instance, whole process (raw tables present, as for B).

(B) and (D) each start from a copy of the same warehouse holding only the raw tables (written by
B' and copied untimed), so that they, like (A), build every model into an empty schema.
"""

from __future__ import annotations

import json
import shutil
import sys
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
)
from bench.scripts import PLAIN_DAGSTER_DBT_RUN, write_script
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
    data: Path
    preparation: dict[str, dict[str, Any]] = field(default_factory=dict)

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
    python_keys = {
        f"{p.id}__{m.name}" for p in registry.products.values() for m in p.spec.python_models
    }
    return Project(
        settings=settings,
        root=root,
        registry=registry,
        compiled=compiled,
        prepared_manifest=root / "dbt_project" / "target" / "dev" / "manifest.json",
        python_step_keys=python_keys,
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
) -> dict[str, float]:
    """Where a Dagster process spent its time, from its run's event log.

    ``events`` are (timestamp, event type, step key); ``started_at``/``ended_at`` are the
    wall-clock times around the process.
    """
    created = min(t for t, _, _ in events)
    run_start = min(t for t, kind, _ in events if kind == RUN_START)
    run_end = max(t for t, kind, _ in events if kind in RUN_END)
    starts: dict[str, float] = {}
    durations: dict[str, float] = {}
    for t, kind, step in events:
        if step is None:
            continue
        if kind == "STEP_START":
            starts[step] = t
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and step in starts:
            durations[step] = t - starts[step]
    by_kind = {"loads": 0.0, "dbt": 0.0, "python": 0.0}
    for step, seconds in durations.items():
        if "dbt" in step:
            by_kind["dbt"] += seconds
        elif step in python_steps:
            by_kind["python"] += seconds
        else:
            by_kind["loads"] += seconds
    return {
        "start_to_run_created": created - started_at,
        "run_created_to_started": run_start - created,
        "steps_loads": by_kind["loads"],
        "steps_dbt": by_kind["dbt"],
        "steps_python": by_kind["python"],
        "between_steps": (run_end - run_start) - sum(durations.values()),
        "run_end_to_exit": ended_at - run_end,
        "steps": len(durations),
    }


def instance_events(home: Path, run_id: str) -> list[tuple[float, str, str | None]]:
    """(timestamp, event type, step key) of a run, read from a Dagster instance's storage."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        return [
            (e.timestamp, e.dagster_event.event_type_value, e.step_key)
            for e in instance.all_logs(run_id)
            if e.dagster_event is not None
        ]


def _dbt_details(target: Path, details: dict[str, float], log: str | None = None) -> None:
    """dbt's own ``elapsed_time`` (running the nodes, after start-up and parsing), and whether
    the invocation had to parse the whole project (its log says why partial parsing failed).

    ``log`` is the invocation's log text; by default the ``dbt.log`` in ``target``.
    """
    results = target / "run_results.json"
    if results.exists():
        details["dbt_elapsed"] = float(
            json.loads(results.read_text(encoding="utf-8"))["elapsed_time"]
        )
    if log is None and (target / "dbt.log").exists():
        log = (target / "dbt.log").read_text(encoding="utf-8", errors="replace")
    if log is not None:
        details["dbt_full_parse"] = float("Unable to do partial parsing" in log)


# -- one repetition ----------------------------------------------------------------------------


@dataclass
class Repetition:
    seconds: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    details: dict[str, dict[str, float]] = field(default_factory=dict)


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


def run_a(project: Project, landing: Path, rep_dir: Path, rep: Repetition) -> None:
    data = reset_data(project, landing)
    home = fresh_dir(rep_dir / "A" / "dagster_home")
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    measured = run_measured(
        "A ddp materialize --all",
        [tool("ddp"), "materialize", "--all", "--json"],
        env=project.env(DDP_DATA_DIR=data, DAGSTER_HOME=home),
        cwd=project.root,
        logs=rep_dir / "logs",
    ).check()
    outcome = json.loads(measured.stdout)
    if not outcome.get("success"):
        raise BenchError(f"A: ddp materialize did not succeed: {outcome.get('errors')}")
    _record(rep, "A", measured)
    events = instance_events(home, outcome["run_id"])
    details = timeline(events, measured.started_at, measured.ended_at, project.python_step_keys)
    details["materialize_seconds_reported"] = float(outcome.get("seconds", float("nan")))
    runs = project.dbt_dir / "target" / "dev" / "runs"
    targets = sorted(runs.glob(f"{outcome['run_id'][:8]}-*"))
    if targets:
        _dbt_details(targets[-1], details)
    rep.details["A"] = details


def run_b_prime(
    project: Project, landing: Path, rep_dir: Path, rep: Repetition, raw_copy: Path
) -> None:
    """B': raw loads in DuckDB (in this process) + dbt build (subprocess) + the Python model."""
    data = reset_data(project, landing)
    warehouse = data / "warehouse.duckdb"
    loads = floor.execute(floor.load_steps(project.registry, landing), warehouse)
    shutil.copyfile(warehouse, raw_copy)  # the raw-only warehouse B and D start from (untimed)
    build = run_measured(
        "B' dbt build",
        project.dbt_command("build"),
        env=project.env(DDP_DATA_DIR=data),
        cwd=project.root,
        logs=rep_dir / "logs",
    ).check()
    python = floor.execute(floor.python_steps(project.registry), warehouse)
    rep.seconds["B'"] = loads.seconds + build.seconds + python.seconds
    rep.peak_rss_mb["B'"] = build.peak_rss_mb
    details = {"loads": loads.seconds, "dbt_build": build.seconds, "python": python.seconds}
    _dbt_details(project.dbt_dir / "target", details, build.stdout)
    rep.details["B'"] = details


def run_b(project: Project, landing: Path, rep_dir: Path, rep: Repetition, raw_copy: Path) -> None:
    data = reset_data(project, landing, raw_copy)
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


def run_d(project: Project, landing: Path, rep_dir: Path, rep: Repetition, raw_copy: Path) -> None:
    data = reset_data(project, landing, raw_copy)
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
    details = timeline(events, measured.started_at, measured.ended_at, set())
    details["interpreter_start"] = report["wall0"] - measured.started_at
    details["import"] = report["import"]
    details["defs"] = report["defs"]
    for target in report["dbt_target_paths"]:
        _dbt_details(Path(target), details)
    rep.details["D"] = details


def run_f(project: Project, landing: Path, rep_dir: Path, rep: Repetition) -> None:
    data = fresh_dir(rep_dir / "F" / "data")
    steps = floor.order(
        [
            *floor.load_steps(project.registry, landing),
            *floor.dbt_steps(project.compiled),
            *floor.python_steps(project.registry),
        ],
        project.compiled,
    )
    result = floor.execute(steps, data / "warehouse.duckdb")
    rep.seconds["F"] = result.seconds
    rep.details["F"] = {**result.by_kind, **{f"n_{k}": float(v) for k, v in result.counts.items()}}


def _record(rep: Repetition, name: str, measured: Measured) -> None:
    rep.seconds[name] = measured.seconds
    rep.peak_rss_mb[name] = measured.peak_rss_mb


def run_repetition(project: Project, landing: Path, rep_dir: Path, log: Any) -> Repetition:
    rep = Repetition()
    raw_copy = rep_dir / "raw_only.duckdb"
    for name, run in (
        ("A", lambda: run_a(project, landing, rep_dir, rep)),
        ("B'", lambda: run_b_prime(project, landing, rep_dir, rep, raw_copy)),
        ("B", lambda: run_b(project, landing, rep_dir, rep, raw_copy)),
        ("D", lambda: run_d(project, landing, rep_dir, rep, raw_copy)),
        ("F", lambda: run_f(project, landing, rep_dir, rep)),
    ):
        run()
        log(f"    {name:<3} {rep.seconds[name]:8.2f} s")
    if not project.settings.keep:
        for name in ("A", "D", "F"):
            shutil.rmtree(rep_dir / name, ignore_errors=True)
        raw_copy.unlink(missing_ok=True)
    return rep


# -- a whole scale -----------------------------------------------------------------------------

MEASURES = ("A", "B", "B'", "D", "F")
RATIOS = (
    ("A/B", "A", "B"),
    ("A/B'", "A", "B'"),
    ("A/F", "A", "F"),
    ("D/B", "D", "B"),
    ("A/D", "A", "D"),
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
    if not project.settings.keep:
        shutil.rmtree(scale_dir, ignore_errors=True)
    return summarize(scale, rows, generate_seconds, reps)


def summarize(
    scale: int, rows: int, generate_seconds: float, reps: Sequence[Repetition]
) -> dict[str, Any]:
    seconds = {m: Samples([r.seconds[m] for r in reps]) for m in MEASURES}
    medians = {m: s.median for m, s in seconds.items()}
    ratios = {name: ratio(medians[a], medians[b]) for name, a, b in RATIOS}
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
        "peak_rss_mb": {
            m: round(Samples([r.peak_rss_mb[m] for r in reps]).median, 1)
            for m in MEASURES
            if all(m in r.peak_rss_mb for r in reps)
        },
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "breakdown": {m: {k: round(v, 3) for k, v in d.items()} for m, d in details.items()},
    }


def _keys(dicts: Iterable[dict[str, float]]) -> list[str]:
    seen: dict[str, None] = {}
    for d in dicts:
        seen.update(dict.fromkeys(d))
    return list(seen)


def warm_up(project: Project, log: Any) -> dict[str, Any]:
    """One untimed A, B', B, D and F at a small scale: OS page cache and bytecode cache."""
    scale_dir = fresh_dir(project.settings.work / "e2e_warmup")
    landing = scale_dir / "landing"
    generate_landing(landing, WARMUP_SCALE)
    started = time.perf_counter()
    rep = run_repetition(project, landing, scale_dir / "rep", lambda _: None)
    shutil.rmtree(scale_dir, ignore_errors=True)
    seconds = time.perf_counter() - started
    log(f"  warm-up at {WARMUP_SCALE:,} rows (not counted): {seconds:.1f} s")
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
    result["scales"] = [run_scale(project, scale, repeat, log) for scale in scales]
    return result


if __name__ == "__main__":  # pragma: no cover - use `python -m bench e2e`
    sys.exit("run `python -m bench e2e`")
