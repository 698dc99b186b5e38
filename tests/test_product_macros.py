"""A product's own dbt macros (``<product folder>/macros/``): dbt reads them, editing one
re-parses, and a macro name defined twice is a located error at ``ddp validate`` (issue 16).
Real dbt, DuckDB and Dagster in a fresh ``ddp init`` project."""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb
import pytest

from ddp_assets.dbt.macro_check import macro_definitions
from tests.test_import_dbt import Project, _fresh_project

ROWS = "id,amount\n1,12.50\n2,3.25\n3,7.00\n"
IGNORE_LINE = "../acme/defs/*/*/macros/"
DOUBLED = "{% macro doubled(column) %}({{ column }} * 2){% endmacro %}\n"


def _product(project: Project, tmp: Path, name: str) -> Path:
    export = tmp / "exports" / f"{name}.csv"
    export.parent.mkdir(exist_ok=True)
    export.write_text(ROWS)
    new = project.ddp(
        "new", name, "--domain", "sales", "--from-file", str(export),
        "--port", f"{name}_out", "--model", f"{name}_model",
    )  # fmt: skip
    assert new.returncode == 0, new.stdout + new.stderr
    return project.root / "acme" / "defs" / "sales" / name


def _dbtignore(project: Project, *, product_macros: bool) -> None:
    """The project's .dbtignore with or without the line that keeps product macros out of
    dbt's models (the starter template may already have it)."""
    path = project.root / "dbt_project" / ".dbtignore"
    lines = [line for line in path.read_text().splitlines() if line != IGNORE_LINE]
    path.write_text("\n".join([*lines, *([IGNORE_LINE] if product_macros else [])]) + "\n")


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Path]:
    base = tmp_path_factory.mktemp("macros")
    project = _fresh_project(base)
    return project, _product(project, base, "returns")


def test_a_product_macro_is_built_and_an_edit_is_parsed_again(
    project: tuple[Project, Path],
) -> None:
    project_, folder = project
    _dbtignore(project_, product_macros=True)
    (folder / "macros").mkdir()
    macro = folder / "macros" / "amounts.sql"
    macro.write_text(DOUBLED)
    model = folder / "models" / "returns_model.sql"
    text = model.read_text()
    assert '"amount"' in text, text
    model.write_text(text.replace('"amount"', '{{ doubled(\'"amount"\') }} as "amount"', 1))
    validate = project_.ddp("validate")
    assert validate.returncode == 0, _output(validate)
    run = project_.ddp("materialize", "returns")
    assert run.returncode == 0, _output(run)
    warehouse = str(project_.data / "warehouse.duckdb")
    with duckdb.connect(warehouse, read_only=True) as db:
        assert db.execute("select sum(amount) from returns.returns_model").fetchone() == (45.5,)
    # dbt read ddp's copy; the model is not a dbt model of its own
    copy = project_.root / "dbt_project/macros/_ddp/products/sales/returns/macros/amounts.sql"
    assert copy.read_text() == DOUBLED
    manifest = (project_.root / "dbt_project/target/dev/manifest.json").read_text()
    assert "macro.acme.doubled" in manifest and "model.acme.amounts" not in manifest
    # an edit of the macro alone re-parses: the next run builds with the new body
    macro.write_text(DOUBLED.replace("* 2", "* 3"))
    run = project_.ddp("materialize", "returns")
    assert run.returncode == 0, _output(run)
    with duckdb.connect(warehouse, read_only=True) as db:
        assert db.execute("select sum(amount) from returns.returns_model").fetchone() == (68.25,)
    assert "* 3" in copy.read_text()


def test_a_macro_defined_twice_is_a_located_error(
    project: tuple[Project, Path], tmp_path: Path
) -> None:
    project_, folder = project
    _dbtignore(project_, product_macros=True)
    (folder / "macros").mkdir(exist_ok=True)
    (folder / "macros" / "amounts.sql").write_text(DOUBLED)
    other = _product(project_, tmp_path, "refunds") / "macros"
    other.mkdir()
    (other / "more.sql").write_text("{# the same name #}\n" + DOUBLED)
    shared = project_.root / "dbt_project" / "macros" / "shared.sql"
    shared.write_text("{% macro generate_schema_name(a, b) %}x{% endmacro %}\n" + DOUBLED)
    try:
        result = project_.ddp("validate")
    finally:
        shared.unlink()
    output = _output(result)
    assert result.returncode == 1, output
    # the project's macro folder comes first, then the products in their folders' order
    assert (
        "acme/defs/sales/refunds/macros/more.sql:2: error: (dbt macro): macro 'doubled' is also "
        "defined in dbt_project/macros/shared.sql:2"
    ) in output, output
    assert (
        "acme/defs/sales/returns/macros/amounts.sql:1: error: (dbt macro): macro 'doubled'"
    ) in output
    assert "dbt's macro namespace is one for the whole project" in output
    assert (
        "dbt_project/macros/shared.sql:1: error: (dbt macro): macro 'generate_schema_name' is "
        "also defined in ddp's platform macros (dbt_project/macros/_ddp/"
    ) in output
    assert "Traceback" not in output
    (other / "more.sql").write_text(DOUBLED.replace("doubled", "tripled"))  # renamed: green
    validate = project_.ddp("validate")
    assert validate.returncode == 0, _output(validate)


def test_product_macros_dbt_would_read_as_models_are_refused(
    project: tuple[Project, Path],
) -> None:
    project_, folder = project
    (folder / "macros").mkdir(exist_ok=True)
    (folder / "macros" / "amounts.sql").write_text(DOUBLED)
    _dbtignore(project_, product_macros=False)
    try:
        result = project_.ddp("validate")
    finally:
        _dbtignore(project_, product_macros=True)
    output = _output(result)
    assert result.returncode == 1, output
    assert "dbt_project/.dbtignore: error: (dbt macros):" in output, output
    assert "but dbt would also parse it as a model" in output
    assert f"add the line `{IGNORE_LINE}` to dbt_project/.dbtignore" in output
    assert "Traceback" not in output


def test_macro_definitions_by_dbt_names() -> None:
    source = (
        "{% macro a(x) %}{% macro inner() %}{% endmacro %}{{ x }}{% endmacro %}\n"
        "{%- test positive(model, column_name) -%} select 1 {%- endtest %}\n"
        "{% materialization snap, adapter='duckdb' %}{% endmaterialization %}\n"
    )
    assert macro_definitions(source) == [
        ("a", 1),
        ("test_positive", 2),
        ("materialization_snap_duckdb", 3),
    ]


def test_a_broken_product_macro_is_located_at_the_product_file(
    project: tuple[Project, Path],
) -> None:
    """dbt's own error for an unclosed macro names no file: ddp's names the product's."""
    project_, folder = project
    _dbtignore(project_, product_macros=True)
    (folder / "macros").mkdir(exist_ok=True)
    macro = folder / "macros" / "amounts.sql"
    macro.write_text("{% macro doubled(column) %}({{ column }} * 2)\n")  # no endmacro
    try:
        result = project_.ddp("validate")
    finally:
        macro.write_text(DOUBLED)
    output = _output(result)
    assert result.returncode == 1, output
    assert (
        "acme/defs/sales/returns/macros/amounts.sql:1: error: (dbt macro): dbt cannot read this "
        "macro file: Unexpected end of template. Jinja was looking for the following tags: "
        "'endmacro'"
    ) in output, output
    assert "close every {% macro %} with {% endmacro %}" in output
    assert "Traceback" not in output
