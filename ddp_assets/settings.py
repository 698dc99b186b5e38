"""Where things live: the project's folders and the data directories.

Everything is resolved when asked for, never at import, so tests and deployments can point
``DDP_DATA_DIR`` and ``DAGSTER_HOME`` elsewhere without reloading modules.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "ddp_assets"


def find_project_root(start: Path | None = None) -> Path:
    """The folder holding ``ddp_assets/defs`` and ``dbt_project``: the cwd or a parent of it,
    else the checkout this package was imported from."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PACKAGE / "defs").is_dir() and (folder / "dbt_project").is_dir():
            return folder
    return Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ProjectPaths:
    """The layout of a ddp project, anchored at its root."""

    root: Path

    @classmethod
    def discover(cls, start: Path | None = None) -> ProjectPaths:
        root = os.environ.get("DDP_PROJECT_ROOT")
        return cls(Path(root).resolve() if root else find_project_root(start))

    @property
    def defs_dir(self) -> Path:
        return self.root / PACKAGE / "defs"

    @property
    def dbt_dir(self) -> Path:
        return self.root / "dbt_project"

    @property
    def data_dir(self) -> Path:
        configured = os.environ.get("DDP_DATA_DIR")
        return Path(configured).resolve() if configured else self.root / "data"

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def warehouse_path(self) -> Path:
        """The DuckDB warehouse file (the ``dev`` target; see ``ddp_assets.warehouse``)."""
        return self.data_dir / "warehouse.duckdb"

    @property
    def dagster_home(self) -> Path:
        configured = os.environ.get("DAGSTER_HOME")
        return Path(configured).resolve() if configured else self.root / ".dagster_home"
