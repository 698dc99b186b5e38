"""Standalone scripts the harness writes to a temporary file and runs as measured processes.

Each prints one JSON line: ``time.time()`` when its first line ran (so the harness can tell
interpreter start-up from the rest) and ``time.perf_counter()`` marks between phases.
"""

from __future__ import annotations

from pathlib import Path

# (D) plain dagster-dbt: one @dbt_assets over the prepared manifest, materialized on an
# ephemeral instance. argv: manifest.json, dbt project dir.
PLAIN_DAGSTER_DBT_RUN = """\
import json, sys, time
WALL0, T0 = time.time(), time.perf_counter()
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

T_IMPORT = time.perf_counter()
MANIFEST, PROJECT_DIR = Path(sys.argv[1]), sys.argv[2]
TARGETS = []


@dbt_assets(manifest=MANIFEST)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    invocation = dbt.cli(["build"], context=context)
    TARGETS.append(str(invocation.target_path))
    yield from invocation.stream()


T_DEFS = time.perf_counter()
with dg.DagsterInstance.ephemeral() as instance:
    result = dg.materialize(
        [dbt_models],
        instance=instance,
        resources={"dbt": DbtCliResource(project_dir=PROJECT_DIR, profiles_dir=PROJECT_DIR)},
        raise_on_error=False,
    )
    T_RUN = time.perf_counter()
    events = [
        [e.timestamp, e.dagster_event.event_type_value, e.step_key]
        for e in instance.all_logs(result.run_id)
        if e.dagster_event is not None
    ]
print(json.dumps({
    "wall0": WALL0,
    "import": T_IMPORT - T0,
    "defs": T_DEFS - T_IMPORT,
    "materialize": T_RUN - T_DEFS,
    "success": result.success,
    "run_id": result.run_id,
    "events": events,
    "dbt_target_paths": TARGETS,
}))
sys.exit(0 if result.success else 1)
"""

# dagster-dbt's translator resolves a node's upstream specs recursively, so a ref() chain deeper
# than about 150 models (the synthetic projects chain every product to the previous one) can
# exceed Python's default limit, depending on set iteration order (PYTHONHASHSEED). Both loaders
# get the same higher limit; see docs/performance.md.
RECURSION_LIMIT = 20_000

# The ddp code location, as `dagster dev` / `ddp` load it (PYTHONPATH = the project).
DDP_DEFS_LOAD = """\
import json, sys, time
WALL0, T0 = time.time(), time.perf_counter()
sys.setrecursionlimit(RECURSION_LIMIT)
import dagster, dagster_dbt  # the frameworks, imported by both loaders

T_FRAMEWORK = time.perf_counter()
from ddp_assets.definitions import defs

T_IMPORT = time.perf_counter()
d = defs()
T_DEFS = time.perf_counter()
graph = d.resolve_asset_graph()
T_GRAPH = time.perf_counter()
print(json.dumps({
    "wall0": WALL0,
    "cpu_loaded": time.process_time(),  # the process's CPU until the definitions are loaded
    "framework_import": T_FRAMEWORK - T0,
    "project_import": T_IMPORT - T_FRAMEWORK,
    "definitions": T_DEFS - T_IMPORT,
    "asset_graph": T_GRAPH - T_DEFS,
    "assets": len(graph.get_all_asset_keys()),
    "checks": len(graph.asset_check_keys),
}))
""".replace("RECURSION_LIMIT", str(RECURSION_LIMIT))

# Plain dagster-dbt on the same prepared manifest. argv: manifest.json, dbt project dir.
PLAIN_DEFS_LOAD = """\
import json, sys, time
WALL0, T0 = time.time(), time.perf_counter()
sys.setrecursionlimit(RECURSION_LIMIT)
import dagster, dagster_dbt  # the frameworks, imported by both loaders

T_FRAMEWORK = time.perf_counter()
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

T_IMPORT = time.perf_counter()


@dbt_assets(manifest=Path(sys.argv[1]))
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    yield from dbt.cli(["build"], context=context).stream()


d = dg.Definitions(assets=[dbt_models], resources={"dbt": DbtCliResource(project_dir=sys.argv[2])})
T_DEFS = time.perf_counter()
graph = d.resolve_asset_graph()
T_GRAPH = time.perf_counter()
print(json.dumps({
    "wall0": WALL0,
    "cpu_loaded": time.process_time(),  # the process's CPU until the definitions are loaded
    "framework_import": T_FRAMEWORK - T0,
    "project_import": T_IMPORT - T_FRAMEWORK,
    "definitions": T_DEFS - T_IMPORT,
    "asset_graph": T_GRAPH - T_DEFS,
    "assets": len(graph.get_all_asset_keys()),
    "checks": len(graph.asset_check_keys),
}))
""".replace("RECURSION_LIMIT", str(RECURSION_LIMIT))


# Runs `ddp ...` or `dbt ...` (argv: the tool, then its arguments) as its console script would,
# and writes the modules the process had loaded when it ended, in the order it loaded them
# (``sys.modules`` keeps it), one per line, to $DDP_BENCH_MODULES. Not measured: it tells the
# import-floor measurement (IMPORTS_ONLY) what to import. ``ddp materialize`` ends with
# ``os._exit`` (ddp_assets/cli/console.py), dbt with ``sys.exit``: both are covered.
MODULES_LOADED_BY = """\
import atexit, os, sys

OUT = os.environ.pop("DDP_BENCH_MODULES")
_exit = os._exit


def dump():
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("\\n".join(list(sys.modules)))


def fast_exit(code):
    dump()
    _exit(code)


os._exit = fast_exit
atexit.register(dump)
tool, sys.argv = sys.argv[1], sys.argv[1:]
if tool == "ddp":
    from ddp_assets.cli.entry import main
else:
    from dbt.cli.main import cli as main
main()
"""

# (I) and (Idbt): a process that only imports the modules another process loaded (a file written
# by MODULES_LOADED_BY), in the same order, and exits. argv: the module list, then "fast" (end
# with os._exit, as `ddp materialize` does) or "teardown" (a normal exit, as dbt's). The project's
# own modules (ddp_assets, the products' Python) are left out: they are ddp's work, not the floor.
IMPORTS_ONLY = """\
import importlib, json, os, sys, time

WALL0, T0 = time.time(), time.perf_counter()
OWN = ("__main__", "__mp_main__", "ddp_assets", "ddp_python_models", "bench")
names = [n for n in open(sys.argv[1], encoding="utf-8").read().splitlines() if n]
listed = set(names)
# A package that loads plugins from entry points would import more here than the measured
# process did if that process did not need them all; an entry point whose module it did not load
# is left out here too.
import importlib.metadata as metadata

every_entry_point = metadata.entry_points


def loaded_entry_points(**params):
    found = every_entry_point(**params)
    flat = [ep for group in found.values() for ep in group] if isinstance(found, dict) else found
    return metadata.EntryPoints(ep for ep in flat if ep.module in listed)


metadata.entry_points = loaded_entry_points
failed = []
for name in names:
    if name in sys.modules or name.split(".")[0] in OWN:
        continue
    try:
        importlib.import_module(name)
    except Exception:  # e.g. a module a package registers under another name
        failed.append(name)
report = {
    "wall0": WALL0,
    "seconds": time.perf_counter() - T0,
    "listed": len(names),
    "loaded": len(sys.modules),
    "failed": len(failed),
    "failed_sample": failed[:10],
}
print(json.dumps(report), flush=True)
if sys.argv[2] == "fast":
    os._exit(0)
"""


def write_script(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path
