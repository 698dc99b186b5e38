"""The Dagster instance and code location ddp commands run against."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from functools import lru_cache
from pathlib import Path

import dagster as dg

from ddp_assets import compat
from ddp_assets.settings import ProjectPaths, environment
from ddp_assets.spec.errors import SpecErrors, SpecProblem


def ensure_dagster_home(paths: ProjectPaths) -> None:
    """Create ``$DAGSTER_HOME`` (default ``.dagster_home``) with the project's ``dagster.yaml``;
    in an environment other than prod, its own ``$DAGSTER_HOME/envs/<env>`` (its runs and event
    log apart from prod's, the same ``dagster.yaml``)."""
    home = paths.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    source = paths.root / "dagster.yaml"
    if source.exists() and (not target.exists() or _names_removed_storage(target)):
        if target.exists():  # a copy ddp made before 0.1's storage went: keep it beside
            shutil.copyfile(target, target.with_name("dagster.yaml.bak"))
        shutil.copyfile(source, target)
    os.environ["DAGSTER_HOME"] = str(home)


REMOVED_STORAGE = "ddp_assets.runtime.sqlite_storage"  # named by dagster.yaml until session 5


def _names_removed_storage(config: Path) -> bool:
    """Whether an instance's ``dagster.yaml`` names ddp's former event log class (the module is
    gone: Dagster could not load the instance)."""
    try:
        return REMOVED_STORAGE in config.read_text(encoding="utf-8")
    except OSError:
        return False


def instance(paths: ProjectPaths) -> dg.DagsterInstance:
    """The project's Dagster instance, for the ``ddp`` process (its SQLite event log keeps its
    engines between events: ``compat.pool_sqlite_event_log``)."""
    ensure_dagster_home(paths)
    found = dg.DagsterInstance.get()
    compat.pool_sqlite_event_log(found)
    return found


@lru_cache(maxsize=4)
def _definitions(root: str, env: str) -> dg.Definitions:
    """``env``: the cache's key only (an environment's assets write its own schemas, some named
    when the definitions are built)."""
    paths = ProjectPaths(Path(root))
    if root not in sys.path:  # as `dagster dev` does with the workspace's working_directory
        sys.path.insert(0, root)
    module = importlib.import_module(paths.code_location_module)
    defs = getattr(module, "defs", None)
    if defs is None:
        raise SpecErrors(
            [
                SpecProblem(
                    str(paths.package_dir / "definitions.py"),
                    None,
                    "defs",
                    f"the code location module '{paths.code_location_module}' has no 'defs'",
                    "define `@dg.definitions def defs(): return build_definitions(...)` "
                    "(see `ddp init`)",
                )
            ]
        )
    built = defs() if callable(defs) else defs  # @dg.definitions wraps the function lazily
    if not isinstance(built, dg.Definitions):
        raise TypeError(f"{paths.code_location_module}.defs is not a dagster Definitions")
    return built


def definitions(paths: ProjectPaths) -> dg.Definitions:
    """The project's code location Definitions, from its own module (``<package>.definitions``,
    so a team's additions to it are there too), loaded once per process."""
    return _definitions(str(paths.root), environment())
