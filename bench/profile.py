"""``--profile``: where a ddp process spends its CPU, by function (not counted in the figures).

One extra ``ddp materialize --all`` (fresh instance and warehouse, as A) and one extra load of
the code location run under ``cProfile`` with a CPU clock; the harness reports the platform's
functions (``ddp_assets``) and a few framework hot spots by cumulative CPU seconds. The profiler
slows pure-Python code down, so read the shares, not the seconds.
"""

from __future__ import annotations

import pstats
import shutil
from pathlib import Path
from typing import Any

from bench.common import REPO, fresh_dir, run_measured, tool
from bench.scripts import RECURSION_LIMIT

WRAPPER = """\
import cProfile, sys, time
sys.setrecursionlimit(RECURSION_LIMIT)  # as the loader scripts (bench/scripts.py)
out, argv = sys.argv[1], sys.argv[2:]
profiler = cProfile.Profile(time.process_time)
code = 0
profiler.enable()
try:
    if argv[0] == "ddp":
        sys.argv = argv
        import ddp_assets.cli.run
        from ddp_assets.cli.entry import main
        # keep the interpreter alive after the command, so the profile can be written
        ddp_assets.cli.run.allow_fast_exit = lambda: None
        main()
    else:
        from ddp_assets.definitions import defs
        defs().resolve_asset_graph()
except SystemExit as exit_:
    code = exit_.code if isinstance(exit_.code, int) else 0
finally:
    profiler.disable()
    profiler.dump_stats(out)
sys.exit(code)
""".replace("RECURSION_LIMIT", str(RECURSION_LIMIT))

# Framework functions worth naming in a breakdown: (file name suffix, function name, label).
HOT_SPOTS = (
    ("dagster_dbt/__init__.py", "<module>", "import dagster_dbt"),
    ("load_defs.py", "load_from_defs_folder", "load the code location (all components)"),
    ("job_definition.py", "execute_in_process", "the run (execute_in_process)"),
    ("run_domain.py", "_log_asset_planned_events", "run creation: planned events"),
    ("sqlite_event_log.py", "store_event", "event log writes (SQLite)"),
    ("ruamel/yaml/main.py", "load", "YAML parsing (ruamel)"),
    ("yaml/__init__.py", "dump", "YAML writing (PyYAML)"),
)


def _top(stats: pstats.Stats, root: Path, limit: int) -> list[dict[str, Any]]:
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in raw.values())
    rows: list[dict[str, Any]] = []
    for (filename, line, name), (_, calls, _, cumulative, _) in raw.items():
        path = Path(filename)
        try:
            relative = path.relative_to(root)
        except ValueError:
            continue
        if relative.parts[:1] != ("ddp_assets",) or name.startswith("<"):
            continue
        rows.append(
            {
                "function": f"{relative}:{line}({name})",
                "calls": calls,
                "cpu_seconds": round(cumulative, 3),
                "share": round(cumulative / total, 3) if total else None,
            }
        )
    rows.sort(key=lambda r: -r["cpu_seconds"])
    # The entry chain (main → command → materialize → defs) holds nearly everything: skip it.
    return [r for r in rows if r["share"] is None or r["share"] < 0.9][:limit]


def _hot_spots(stats: pstats.Stats) -> list[dict[str, Any]]:
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in raw.values())
    rows = []
    for suffix, function, label in HOT_SPOTS:
        cumulative = sum(
            v[3] for (f, _, n), v in raw.items() if f.endswith(suffix) and n == function
        )
        calls = sum(v[1] for (f, _, n), v in raw.items() if f.endswith(suffix) and n == function)
        if calls:
            rows.append(
                {
                    "label": label,
                    "calls": calls,
                    "cpu_seconds": round(cumulative, 3),
                    "share": round(cumulative / total, 3) if total else None,
                }
            )
    return rows


def summarize(path: Path, root: Path, limit: int = 15) -> dict[str, Any]:
    stats = pstats.Stats(str(path))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    return {
        "profiled_cpu_seconds": round(sum(tt for (_, _, tt, _, _) in raw.values()), 3),
        "hot_spots": _hot_spots(stats),
        "ddp_functions": _top(stats, root, limit),
    }


def profile_materialize(project: Any, landing: Path, folder: Path) -> dict[str, Any]:
    """``ddp materialize --all`` under cProfile, on a fresh instance and an empty warehouse."""
    from bench.e2e import reset_data

    folder = fresh_dir(folder)
    data = reset_data(project, landing)
    home = fresh_dir(folder / "dagster_home")
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    wrapper = folder / "profile_wrapper.py"
    wrapper.write_text(WRAPPER, encoding="utf-8")
    out = folder / "materialize.prof"
    run_measured(
        "profile ddp materialize",
        [tool("python"), str(wrapper), str(out), "ddp", "materialize", "--all", "--json"],
        env=project.env(DDP_DATA_DIR=data, DAGSTER_HOME=home),
        cwd=project.root,
        logs=folder,
    ).check()
    return summarize(out, project.root)


def profile_load(env: dict[str, str], root: Path, folder: Path) -> dict[str, Any]:
    """One load of the code location (``defs()`` + asset graph) under cProfile."""
    folder.mkdir(parents=True, exist_ok=True)
    wrapper = folder / "profile_wrapper.py"
    wrapper.write_text(WRAPPER, encoding="utf-8")
    out = folder / "load.prof"
    run_measured(
        "profile defs load",
        [tool("python"), str(wrapper), str(out), "load"],
        env=env,
        cwd=root,
        logs=folder,
    ).check()
    return summarize(out, root)
