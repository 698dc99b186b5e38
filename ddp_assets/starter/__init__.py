"""``ddp init``: a team's own ddp project, empty or with the demo products, in a new folder.

The project is an *instance* of the platform: a ``pyproject.toml`` depending on ddp, a code
location module that calls :func:`ddp_assets.platform.build_definitions`, a ``defs/`` folder
for products (with the platform's component instances under ``defs/_platform``), a
``dbt_project/``, ``dagster.yaml``, ``workspace.yaml``, ``.gitignore``, a CI workflow, a test
and a README. No platform code is copied: upgrading ddp is upgrading the dependency.

The files come from ``templates/project`` in this package. In their paths ``__package__``
stands for the project's Python package and a leading ``_dot_`` for ``.``; in their text
``__PACKAGE__``, ``__PROJECT_NAME__`` and ``__DDP_REQUIREMENT__`` are replaced. ``--demo``
adds the demo products, copied from this repository's demo instance (``ddp_assets/defs``,
which ships in the distribution).
"""

from __future__ import annotations

import importlib.metadata
import keyword
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ddp_assets.spec.errors import SpecErrors, SpecProblem

TEMPLATES = Path(__file__).resolve().parent / "templates" / "project"
DEMO_DEFS = Path(__file__).resolve().parent.parent / "defs"
# the demo's depots (its support_tickets product reads one); a project keeps them in depots/
DEMO_DEPOTS = Path(__file__).resolve().parent.parent / "demo" / "depots"
PLATFORM_FOLDER = "_platform"  # the platform's component instances inside defs/
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class InitResult:
    root: Path
    package: str
    files: list[Path]
    demo_products: list[str]


def package_name(project_name: str) -> str:
    """The Python package of a project named ``project_name`` (``acme-data`` → ``acme_data``)."""
    return re.sub(r"[^0-9a-zA-Z_]+", "_", project_name).strip("_").lower()


def ddp_requirement() -> str:
    """The dependency the new project declares: the installed ddp's minor series."""
    try:
        version = importlib.metadata.version("ddp")
    except importlib.metadata.PackageNotFoundError:
        return "ddp"
    major, minor, *_ = [*version.split("."), "0", "0"][:3]
    return f"ddp>={major}.{minor},<{major}.{int(minor) + 1}" if minor.isdigit() else "ddp"


def _problem(where: Path, message: str, hint: str) -> SpecErrors:
    return SpecErrors([SpecProblem(str(where), None, "(init)", message, hint)])


def _destination(relative: Path, package: str) -> Path:
    parts = []
    for part in relative.parts:
        part = package if part == "__package__" else part
        parts.append("." + part[len("_dot_") :] if part.startswith("_dot_") else part)
    return Path(*parts)


def render(text: str, *, package: str, project_name: str, requirement: str) -> str:
    return (
        text.replace("__PACKAGE__", package)
        .replace("__PROJECT_NAME__", project_name)
        .replace("__DDP_REQUIREMENT__", requirement)
    )


def template_files(package: str) -> dict[Path, Path]:
    """Each template file → its path in a project whose package is ``package``."""
    return {
        source: _destination(source.relative_to(TEMPLATES), package)
        for source in sorted(TEMPLATES.rglob("*"))
        if source.is_file() and "__pycache__" not in source.parts
    }


def demo_products() -> list[Path]:
    """The demo instance's product folders (``<domain>/<product>``), as shipped."""
    return sorted(
        spec.parent
        for spec in DEMO_DEFS.rglob("defs.yaml")
        if PLATFORM_FOLDER not in spec.relative_to(DEMO_DEFS).parts
    )


def init_project(target: Path, *, name: str | None = None, demo: bool = False) -> InitResult:
    """Write a new ddp project into ``target`` (which must not exist or be empty)."""
    project_name = name or target.name
    if not _NAME.match(project_name):
        raise _problem(
            target,
            f"'{project_name}' is not a usable project name",
            "start with a letter; use letters, digits, '-', '_' or '.' (e.g. acme-data)",
        )
    package = package_name(project_name)
    if keyword.iskeyword(package) or package in ("ddp", "ddp_assets", "dagster", "dbt"):
        raise _problem(
            target,
            f"the project's package would be '{package}', which shadows a module it needs",
            "choose another project name (e.g. acme-data)",
        )
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise _problem(
            target,
            "the folder already exists and is not empty",
            "choose a new folder: `ddp init` never overwrites files",
        )
    requirement = ddp_requirement()
    written: list[Path] = []
    for source, relative in template_files(package).items():
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        text = source.read_text(encoding="utf-8")
        destination.write_text(
            render(text, package=package, project_name=project_name, requirement=requirement),
            encoding="utf-8",
        )
        written.append(destination)
    products: list[str] = []
    if demo:
        defs = target / package / "defs"
        for folder in demo_products():
            relative = folder.relative_to(DEMO_DEFS)
            shutil.copytree(
                folder,
                defs / relative,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
            written.extend(p for p in (defs / relative).rglob("*") if p.is_file())
            products.append(folder.name)
        for depot in sorted(DEMO_DEPOTS.glob("*.yaml")):
            (target / "depots").mkdir(exist_ok=True)
            shutil.copyfile(depot, target / "depots" / depot.name)
            written.append(target / "depots" / depot.name)
    return InitResult(target, package, written, products)
