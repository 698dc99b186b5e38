"""What a team that brought its dbt project (tests/fixtures/dbt_shop) meets next (issue 16):
its packages installed by ``ddp prepare``, undefined macros caught by ``ddp validate``, and a
failed build told once, at the product file to fix. Real dbt, DuckDB and Dagster."""

from __future__ import annotations

import shutil

import pytest

from tests.test_import_dbt import Project, _fresh_project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = _fresh_project(tmp_path_factory.mktemp("onboard"))
    project.import_json()
    return project


def _output(result: object) -> str:
    return f"{getattr(result, 'stdout', '')}{getattr(result, 'stderr', '')}"


def test_prepare_installs_the_packages_under_its_fingerprint(project: Project) -> None:
    dbt_dir = project.root / "dbt_project"
    installed = dbt_dir / "dbt_packages"
    shutil.rmtree(installed)  # git-ignored: a fresh clone or CI has none
    first = project.ddp("prepare")
    assert first.returncode == 0, _output(first)
    assert "parsed" in first.stdout
    assert (installed / "shop_utils" / "macros" / "safe_divide.sql").is_file()
    again = project.ddp("prepare")
    assert again.returncode == 0 and "up to date" in again.stdout, _output(again)
    # a changed declaration installs again; a broken one is located in packages.yml
    packages = dbt_dir / "packages.yml"
    text = packages.read_text()
    try:
        packages.write_text(text + "  - local: packages/no_such_package\n")
        broken = project.ddp("prepare")
    finally:
        packages.write_text(text)
    assert broken.returncode == 1
    assert "dbt_project/packages.yml: error: (dbt deps)" in _output(broken), _output(broken)
    assert "Traceback" not in _output(broken)
    restored = project.ddp("prepare")
    assert restored.returncode == 0, _output(restored)
    assert (installed / "shop_utils").exists()


def test_validate_names_each_undefined_macro_with_its_line(project: Project) -> None:
    sql = project.root / "acme/defs/shop/web_analytics/models/marts/customer_engagement.sql"
    text = sql.read_text()
    lines = text.splitlines()
    at = next(n for n, line in enumerate(lines, 1) if "shop_utils.safe_divide" in line)
    calls = "    {{ dbt_utils.star(ref('stg_events')) }},\n    {{ cents_to_dolars('x') }},\n"
    broken = text.replace("shop_utils.safe_divide", "shop_utils.safe_divid")
    broken = broken.replace("select\n", "select\n" + calls, 1)
    try:
        sql.write_text(broken)
        result = project.ddp("validate")
    finally:
        sql.write_text(text)
    output = _output(result)
    assert result.returncode == 1, output
    shown = "acme/defs/shop/web_analytics/models/marts/customer_engagement.sql"
    first = next(n for n, line in enumerate(broken.splitlines(), 1) if "dbt_utils.star" in line)
    assert f"{shown}:{first}: error: (dbt macro): 'dbt_utils.star': no installed package" in output
    assert "declare 'dbt_utils' in dbt_project/packages.yml" in output
    assert f"{shown}:{first + 1}: error: (dbt macro): 'cents_to_dolars' is not a macro" in output
    assert "did you mean 'cents_to_dollars'?" in output
    assert f"{shown}:{at + 2}: error: (dbt macro): package 'shop_utils' has no macro" in output
    assert "did you mean 'safe_divide'?" in output
    assert "Traceback" not in output
    clean = project.ddp("validate")  # the project's own macro and package calls all resolve
    assert clean.returncode == 0, _output(clean)


def test_without_dbts_context_members_only_package_calls_are_checked(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The public fallback of ``compat.dbt_context_members``: when dbt moves its private table,
    ``ref``/``config`` are not taken for undefined macros; package calls are still checked."""
    from dbt.context.providers import ModelContext

    from ddp_assets.dbt.macro_check import undefined_macro_problems
    from ddp_assets.dbt.project import prepare
    from ddp_assets.settings import ProjectPaths
    from ddp_assets.spec.registry import Registry

    monkeypatch.setenv("DDP_DATA_DIR", str(project.data))
    monkeypatch.setenv("DAGSTER_HOME", str(project.home))
    paths = ProjectPaths(project.root)
    registry = Registry.load(paths.defs_dir, paths.root)
    manifest = prepare(paths, registry).manifest
    sql = project.root / "acme/defs/shop/web_analytics/models/marts/customer_engagement.sql"
    text = sql.read_text()
    broken = text.replace("shop_utils.safe_divide", "shop_utils.safe_divid")
    broken = broken.replace("select\n", "select\n    {{ cents_to_dolars('x') }},\n", 1)
    assert "ref(" in broken  # a context member is called
    try:
        sql.write_text(broken)
        stock = [p.message for p in undefined_macro_problems(registry, manifest, paths.dbt_dir)]
        monkeypatch.delattr(ModelContext, "_context_members_")
        fallback = [p.message for p in undefined_macro_problems(registry, manifest, paths.dbt_dir)]
    finally:
        sql.write_text(text)
    package = "package 'shop_utils' has no macro 'safe_divid'"
    assert (
        package in stock and "'cents_to_dolars' is not a macro of this project or of dbt" in stock
    )
    assert fallback == [package], fallback


def test_a_failed_build_is_one_message_at_the_model_file(project: Project) -> None:
    sql = project.root / "acme/defs/shop/customers/models/staging/stg_customers.sql"
    text = sql.read_text()
    line = next(n for n, s in enumerate(text.splitlines(), 1) if "as full_name" in s)
    try:
        sql.write_text(text.replace("source.first_name", "source.first_nam"))
        result = project.ddp("materialize", "customers")
    finally:
        sql.write_text(text)
    output = _output(result)
    assert result.returncode == 1, output
    located = (
        f"acme/defs/shop/customers/models/staging/stg_customers.sql:{line}: error: (dbt build): "
        "model 'stg_customers':"
    )
    assert output.count(located) == 1, output
    assert "first_nam" in output and "hint: fix the SQL" in output
    assert "Traceback" not in output and "Stack Trace" not in output, output
    assert "RUN_FAILURE" not in output and "Errors parsed from dbt logs" not in output, output
    assert "Exception ignored" not in output and "leaked semaphore" not in output, output


def test_a_dbt_parse_error_in_materialize_is_the_message_validate_shows(project: Project) -> None:
    sql = project.root / "acme/defs/shop/customers/models/staging/stg_customers.sql"
    text = sql.read_text()
    try:
        sql.write_text("{{ config(materialized='view' }}\n" + text)
        validate = project.ddp("validate")
        run = project.ddp("materialize", "customers")
    finally:
        sql.write_text(text)
    assert validate.returncode == 1 and run.returncode == 1, _output(validate) + _output(run)
    located = "acme/defs/shop/customers/models/staging/stg_customers.sql:1: error: (dbt parse)"
    assert located in _output(validate), _output(validate)
    message = _output(validate).split("\n1 error(s)")[0]
    assert message in _output(run), _output(run)
    assert "ComponentTreeException" not in _output(run) and "Traceback" not in _output(run)


def test_a_pin_of_a_version_never_published_is_a_located_warning(project: Project) -> None:
    spec = project.root / "acme/defs/shop/web_analytics/defs.yaml"
    text = spec.read_text()
    port = "      product: customers.dim_customers\n"
    assert text.count(port) == 1
    pinned = text.replace(port, port + "      pin: 99\n")
    line = pinned.splitlines().index("      pin: 99") + 1
    try:
        spec.write_text(pinned)
        unbuilt = project.ddp("validate")  # no version of the upstream yet: nothing to say
        built = project.ddp("materialize", "customers")
        assert built.returncode == 0, _output(built)
        warned = project.ddp("validate")
        spec.write_text(pinned.replace("pin: 99", "pin: 1"))
        kept = project.ddp("validate")
    finally:
        spec.write_text(text)
    assert unbuilt.returncode == 0 and "pins version" not in _output(unbuilt), _output(unbuilt)
    output = _output(warned)
    assert warned.returncode == 0, output  # a warning: validate still passes
    assert (
        f"acme/defs/shop/web_analytics/defs.yaml:{line}: warning: input_ports[1].pin: "
        "input port 'dim_customers' pins version 99 of customers.dim_customers, "
        "which it never published"
    ) in output, output
    assert "retained versions of customers.dim_customers: 1 " in output, output
    assert kept.returncode == 0 and "pins version" not in _output(kept), _output(kept)
