"""``ddp init``: what it writes, what it refuses, and that this repository's demo is an instance
of the same templates (the end-to-end run in a fresh venv is tests/test_install.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ddp_assets.cli.app import app
from ddp_assets.settings import ProjectPaths, find_project_root
from ddp_assets.spec.errors import SpecErrors
from ddp_assets.starter import (
    demo_products,
    init_project,
    package_name,
    render,
    template_files,
)

ROOT = Path(__file__).resolve().parents[1]

# Files of the demo instance that are the template, unchanged (the others name the package).
SAME_AS_TEMPLATE = [
    "dagster.yaml",
    "dbt_project/profiles.yml",
    "dbt_project/.dbtignore",
    "ddp_assets/defs/__init__.py",
    "ddp_assets/defs/_platform/dbt/defs.yaml",
    "ddp_assets/defs/_platform/automation/defs.yaml",
    "ddp_assets/defs/_platform/lineage/defs.yaml",
]


@pytest.mark.parametrize("relative", SAME_AS_TEMPLATE)
def test_the_demo_instance_is_written_from_the_templates(relative: str) -> None:
    rendered = {str(dest): src for src, dest in template_files("ddp_assets").items()}
    assert relative in rendered, f"{relative} has no template"
    text = render(
        rendered[relative].read_text(), package="ddp_assets", project_name="ddp", requirement="ddp"
    )
    assert text == (ROOT / relative).read_text(), (
        f"{relative} and its template differ: change both (ddp_assets/starter/templates/project)"
    )


def test_an_empty_project(tmp_path: Path) -> None:
    result = init_project(tmp_path / "acme-data")
    root = result.root
    assert result.package == "acme_data"
    config = tomllib.loads((root / "pyproject.toml").read_text())
    assert config["tool"]["dg"]["project"]["root_module"] == "acme_data"
    assert any(d.startswith("ddp") for d in config["project"]["dependencies"])
    for needed in (
        "acme_data/definitions.py",
        "acme_data/defs/_platform/dbt/defs.yaml",
        "dbt_project/dbt_project.yml",
        "dagster.yaml",
        "workspace.yaml",
        ".gitignore",
        ".github/workflows/ci.yml",
        ".github/workflows/preview-cleanup.yml",  # tests/test_starter_workflows.py runs both
        "README.md",
    ):
        assert (root / needed).is_file(), needed
    text = "".join(p.read_text() for p in root.rglob("*") if p.is_file())
    assert "__PACKAGE__" not in text and "__PROJECT_NAME__" not in text
    assert "../acme_data/defs" in (root / "dbt_project/dbt_project.yml").read_text()
    products = [
        p for p in (root / "acme_data/defs").glob("*/*/defs.yaml") if "_platform" not in str(p)
    ]
    assert not products, "empty: no products"
    # ddp finds the project from anywhere inside it, and its folders
    paths = ProjectPaths(find_project_root(root / "acme_data" / "defs"))
    assert paths.root == root.resolve()
    assert paths.defs_dir == root.resolve() / "acme_data" / "defs"
    assert paths.code_location_module == "acme_data.definitions"


def test_the_demo_products_come_along(tmp_path: Path) -> None:
    result = init_project(tmp_path / "shop", demo=True)
    assert len(result.demo_products) == len(demo_products()) == 8
    assert (result.root / "depots" / "helpdesk.yaml").is_file()  # the demo depot
    for folder in demo_products():
        relative = folder.relative_to(ROOT / "ddp_assets" / "defs")
        assert (result.root / "shop" / "defs" / relative / "defs.yaml").is_file()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("1st", "not a usable project name"),
        ("a b", "not a usable project name"),
        ("ddp", "shadows a module"),
        ("class", "shadows a module"),
    ],
)
def test_bad_names_are_refused(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(SpecErrors, match=message):
        init_project(tmp_path / "x", name=name)


def test_init_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep me")
    result = CliRunner().invoke(app, ["init", "taken", "--directory", str(tmp_path / "taken")])
    assert result.exit_code != 0
    assert isinstance(result.exception, SpecErrors)
    assert "not empty" in str(result.exception)
    assert (tmp_path / "taken" / "mine.txt").read_text() == "keep me"
    assert sorted(p.name for p in (tmp_path / "taken").iterdir()) == ["mine.txt"]


def test_the_command(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["init", "acme", "--directory", str(tmp_path / "acme")])
    assert result.exit_code == 0, result.output
    assert "created" in result.output and "[dev]" in result.output
    assert (tmp_path / "acme" / "acme" / "definitions.py").is_file()


def test_package_names() -> None:
    assert package_name("Acme-Data.v2") == "acme_data_v2"
    assert package_name("shop") == "shop"


def test_an_instance_made_before_the_stock_event_log_is_repaired(tmp_path: Path) -> None:
    """A ``$DAGSTER_HOME/dagster.yaml`` copied when it named ddp's former event log class (a
    module that is gone) is replaced by the project's, and kept beside as a backup."""
    from ddp_assets.runtime.instance import REMOVED_STORAGE, ensure_dagster_home

    home = tmp_path / "home"
    home.mkdir()
    old = f"event_log_storage:\n  module: {REMOVED_STORAGE}\n  class: PooledSqliteEventLogStorage\n"
    (home / "dagster.yaml").write_text(old)
    import os

    saved = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        ensure_dagster_home(ProjectPaths(ROOT))
    finally:
        if saved is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = saved
    assert (home / "dagster.yaml").read_text() == (ROOT / "dagster.yaml").read_text()
    assert (home / "dagster.yaml.bak").read_text() == old
