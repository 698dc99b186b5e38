"""The Dagster instance and code location ddp commands run against."""

from __future__ import annotations

import os
import shutil
from functools import lru_cache

import dagster as dg

from ddp_assets.settings import ProjectPaths


def ensure_dagster_home(paths: ProjectPaths) -> None:
    """Create ``$DAGSTER_HOME`` (default ``.dagster_home``) with the project's ``dagster.yaml``."""
    home = paths.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    source = paths.root / "dagster.yaml"
    if not target.exists() and source.exists():
        shutil.copyfile(source, target)
    os.environ["DAGSTER_HOME"] = str(home)


def instance(paths: ProjectPaths) -> dg.DagsterInstance:
    ensure_dagster_home(paths)
    return dg.DagsterInstance.get()


@lru_cache(maxsize=4)
def _definitions(root: str) -> dg.Definitions:
    from ddp_assets.definitions import defs

    return defs() if callable(defs) else defs  # @dg.definitions wraps the function lazily


def definitions(paths: ProjectPaths) -> dg.Definitions:
    """The code location's Definitions (loaded once per process)."""
    return _definitions(str(paths.root))
