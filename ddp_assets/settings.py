"""Where things live: the project's folders and the data directories.

A ddp *project* is a team's repository (written by ``ddp init``; this repository's demo is one
too): a ``pyproject.toml`` whose ``[tool.dg.project] root_module`` names the code location's
package, that package's ``defs/`` folder (one folder per product), and ``dbt_project/``. The
platform itself is the installed ``ddp_assets`` package and never lives in the project.

Everything is resolved when asked for, never at import, so tests and deployments can point
``DDP_PROJECT_ROOT``, ``DDP_DATA_DIR`` and ``DAGSTER_HOME`` elsewhere without reloading modules.
The static catalog's pages (``DDP_CATALOG_URL``, :func:`catalog_url`) are resolved the same way.
Plain Python (no Dagster): the CLI, the asset factories and the catalog all read it.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ddp_assets.spec.errors import SpecErrors, SpecProblem

PACKAGE = "ddp_assets"  # the root module when a project does not name one (this repository)
DBT_DIR = "dbt_project"
PYPROJECT = "pyproject.toml"
ENVS_DIR = "envs"  # $DAGSTER_HOME/envs/<env>: the Dagster instance of a non-prod environment


class ProjectNotFound(SpecErrors):
    """No ddp project at or above the working folder (reported like any spec problem)."""

    def __init__(self, start: Path):
        self.start = start
        problem = SpecProblem(
            str(start),
            None,
            "(project)",
            "not inside a ddp project: no folder here or above has pyproject.toml with "
            "[tool.dg.project] root_module, <root_module>/defs and dbt_project/",
            "cd into your project, set DDP_PROJECT_ROOT, or create one with `ddp init NAME`",
        )
        super().__init__([problem])


def _dg_project(root: Path) -> dict[str, object]:
    """``[tool.dg.project]`` of the project's ``pyproject.toml`` (Dagster's own settings, which
    ``dg`` reads too); empty when there is none."""
    try:
        with (root / PYPROJECT).open("rb") as file:
            config = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    project = config.get("tool", {}).get("dg", {}).get("project", {})
    return project if isinstance(project, dict) else {}


def root_module(root: Path) -> str:
    """The project's package (``root_module``), else ``ddp_assets``."""
    module = _dg_project(root).get("root_module")
    return module if isinstance(module, str) and module else PACKAGE


def _is_project(folder: Path) -> bool:
    if not (folder / DBT_DIR).is_dir():
        return False
    return (folder / root_module(folder).replace(".", os.sep) / "defs").is_dir()


def find_project_root(start: Path | None = None) -> Path:
    """The project holding ``start`` (default: the working folder): it or its nearest parent
    with ``dbt_project/`` and ``<root_module>/defs``; else, in a development install of this
    repository, the checkout ddp was imported from (its demo). Raises :class:`ProjectNotFound`
    (an installed ddp outside any project)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if _is_project(folder):
            return folder
    checkout = Path(__file__).resolve().parent.parent
    if _is_project(checkout):
        return checkout
    raise ProjectNotFound(here)


@dataclass(frozen=True)
class ProjectPaths:
    """The layout of a ddp project, anchored at its root."""

    root: Path

    @classmethod
    def discover(cls, start: Path | None = None) -> ProjectPaths:
        root = os.environ.get("DDP_PROJECT_ROOT")
        return cls(Path(root).resolve() if root else find_project_root(start))

    @cached_property
    def package(self) -> str:
        """The code location's package (``[tool.dg.project] root_module``)."""
        return root_module(self.root)

    @property
    def code_location_module(self) -> str:
        """The module whose ``defs`` is the code location (``code_location_target_module``,
        else ``<package>.definitions``, as ``dg`` resolves it)."""
        module = _dg_project(self.root).get("code_location_target_module")
        return module if isinstance(module, str) and module else f"{self.package}.definitions"

    @property
    def package_dir(self) -> Path:
        return self.root / self.package.replace(".", os.sep)

    @property
    def defs_dir(self) -> Path:
        return self.package_dir / "defs"

    @property
    def dbt_dir(self) -> Path:
        return self.root / DBT_DIR

    @property
    def data_dir(self) -> Path:
        configured = os.environ.get("DDP_DATA_DIR")
        return Path(configured).resolve() if configured else self.root / "data"

    @property
    def depots_dir(self) -> Path:
        """The project's depot declarations, ``depots/<name>.yaml`` (ddp_assets.depots)."""
        return self.root / "depots"

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def warehouse_path(self) -> Path:
        """The DuckDB warehouse file (the ``dev`` target; see ``ddp_assets.warehouse``)."""
        return self.data_dir / "warehouse.duckdb"

    @property
    def dagster_home(self) -> Path:
        """The Dagster instance's folder: ``$DAGSTER_HOME`` (default ``.dagster_home``) in prod,
        ``<that>/envs/<env>`` in another environment (its own runs and event log)."""
        env = environment()
        base = self.base_dagster_home
        return base if env == "prod" else base / ENVS_DIR / env

    @property
    def base_dagster_home(self) -> Path:
        """prod's Dagster instance folder, the one holding ``envs/`` (``$DAGSTER_HOME`` may
        already name an environment's: ensure_dagster_home sets it)."""
        configured = os.environ.get("DAGSTER_HOME")
        home = Path(configured).resolve() if configured else self.root / ".dagster_home"
        return home.parent.parent if home.parent.name == ENVS_DIR else home


def environment() -> str:
    """The environment this process works in (``DDP_ENV``, set by ``ddp --env``; default
    ``prod``), checked: a bad name is a located error (docs/architecture.md, "Environments").

    naming.py owns the rule; imported here only when asked (it imports Dagster)."""
    from ddp_assets.naming import ENV_VAR, BadEnvironmentName, current_env

    try:
        return current_env()
    except BadEnvironmentName as error:
        raise SpecErrors(
            [
                SpecProblem(
                    "(environment)",
                    None,
                    f"{ENV_VAR} / --env",
                    str(error),
                    "name the environment like `dev` or `pr_42`; leave it unset for prod",
                )
            ]
        ) from None


CATALOG_URL_ENV = "DDP_CATALOG_URL"


def catalog_page(product: str) -> str:
    """A product's page in the static catalog, relative to the catalog's root."""
    return f"products/{product}.html"


def catalog_url(product_id: str) -> str | None:
    """The catalog page of a product, for asset metadata in the Dagster UI.

    Reads ``DDP_CATALOG_URL`` when called (a base URL such as ``https://catalog.example.com``,
    or the folder ``ddp catalog build`` wrote); None when it is not set.
    """
    base = os.environ.get(CATALOG_URL_ENV, "").strip()
    if not base:
        return None
    if "://" not in base:
        base = Path(base).resolve().as_uri()
    return f"{base.rstrip('/')}/{catalog_page(product_id)}"
