"""What keeps a code location load and a run cheap (docs/performance.md, "What changed").

These check behaviour, not time: the defs folder is read once per definitions build, a load of
a prepared project parses no YAML, ``prepare`` renders nothing when nothing changed, and column
lineage computed once is reused from disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ddp_assets.dbt import load_cache
from ddp_assets.dbt import project as dbt_project_module
from ddp_assets.lineage import columns
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec import registry as registry_module


def _build() -> Any:
    from ddp_assets.definitions import defs

    return defs() if callable(defs) else defs


def test_one_build_reads_the_defs_folder_once(
    project_paths: ProjectPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every component asks for the registry; the folder is read once and digested a fixed
    number of times, not once per product (which made the load quadratic in products)."""
    products = len(
        registry_module.Registry.load(project_paths.defs_dir, project_paths.root).products
    )
    loads: list[Path] = []
    digests: list[Path] = []
    original_load = registry_module.Registry.load.__func__  # type: ignore[attr-defined]
    original_key = registry_module.folder_key

    def counting_load(cls: Any, defs_dir: Path, root: Path | None = None) -> Any:
        loads.append(defs_dir)
        return original_load(cls, defs_dir, root)

    def counting_key(defs_dir: Path) -> str:
        digests.append(defs_dir)
        return original_key(defs_dir)

    monkeypatch.setattr(load_cache, "_read", lambda path, key: None)  # as on a first load
    monkeypatch.setattr(registry_module, "_CACHE", {})
    monkeypatch.setattr(registry_module.Registry, "load", classmethod(counting_load))
    monkeypatch.setattr(registry_module, "folder_key", counting_key)
    monkeypatch.setattr(load_cache, "folder_key", counting_key)
    _build()
    assert loads == [project_paths.defs_dir]
    # A few digests per build (the load cache's key, the registry's, prepare's store), never
    # one per product as before (there are more products than that in the demo).
    assert len(digests) < products


def test_a_prepared_load_parses_no_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    """After one build, the next reads specs and contract plans from the load cache."""
    _build()  # fills the cache if it was missing or stale

    def no_parsing(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a prepared load parsed YAML with ruamel")

    monkeypatch.setattr("ruamel.yaml.YAML.load", no_parsing)
    monkeypatch.setattr(registry_module, "_CACHE", {})
    from ddp_assets.contracts import compiler

    monkeypatch.setattr(compiler, "_PLANS", {})  # only the cache on disk can supply them
    graph = _build().resolve_asset_graph()
    assert graph.get_all_asset_keys()


def test_prepare_renders_nothing_when_nothing_changed(
    project_paths: ProjectPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = dbt_project_module.prepare(project_paths)

    def no_rendering(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("prepare rendered the dbt properties though nothing changed")

    monkeypatch.setattr(dbt_project_module, "write_properties", no_rendering)
    second = dbt_project_module.prepare(project_paths)
    assert not second.parsed
    assert second.fingerprint == first.fingerprint
    assert second.manifest["nodes"].keys() == first.manifest["nodes"].keys()


def test_partial_parse_state_is_kept_per_data_folder(tmp_path: Path) -> None:
    one = dbt_project_module.partial_parse_slot(tmp_path, "/data/one")
    other = dbt_project_module.partial_parse_slot(tmp_path, "/data/other")
    assert one != other
    assert one == dbt_project_module.partial_parse_slot(tmp_path, "/data/one")
    assert one.parent == tmp_path / "partial_parse"


def test_column_lineage_is_reused_from_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sql = "select o.id, sum(o.amount) as total from warehouse.sales.orders as o group by o.id"
    schemas = {("warehouse", "sales", "orders"): {"id": "bigint", "amount": "double"}}
    cache = tmp_path / "column_lineage.json"
    monkeypatch.setattr(columns, "_MEMO", {})
    with columns.remembered(cache):
        computed = columns.column_lineage(sql, schemas)
    assert computed["total"][0].column == "amount"
    assert computed["total"][0].subtype == "AGGREGATION"

    def no_sqlglot(*args: Any) -> Any:
        raise AssertionError("column lineage computed again")

    monkeypatch.setattr(columns, "_MEMO", {})
    monkeypatch.setattr(columns, "_column_lineage", no_sqlglot)
    with columns.remembered(cache):
        assert columns.column_lineage(sql, schemas) == computed


def test_dbt_specs_get_their_policies_where_they_are_created(project_paths: ProjectPaths) -> None:
    """The translator gives every dbt asset its product's refresh policy, so the root pass
    (apply_product_policies) keeps the dbt multi-asset as it is instead of rebuilding it (that
    rebuild was 15 % of a 1000-model load)."""
    import dagster as dg

    from ddp_assets.automation.policies import apply_product_policies

    with load_cache.load_scope(project_paths) as loaded:
        registry = loaded.registry
        built = dg.load_from_defs_folder(path_within_project=project_paths.defs_dir.parent)
        applied = apply_product_policies(built, registry)
    assets = [a for a in built.assets or [] if isinstance(a, dg.AssetsDefinition)]
    dbt_models = max(assets, key=lambda a: len(list(a.specs)))
    assert any(spec.metadata.get("dagster_dbt/unique_id") for spec in dbt_models.specs)
    refreshed = {
        pid for pid, p in registry.products.items() if p.spec.slos.refresh == "on_upstream_change"
    }
    assert refreshed
    for spec in dbt_models.specs:
        if spec.group_name in refreshed:
            assert spec.automation_condition is not None, spec.key
    assert any(a is dbt_models for a in applied.assets or [])


def test_a_build_leaves_the_collector_on() -> None:
    """The build pauses Python's cyclic collector (compat.collector_paused); it must turn it
    back on, or the process would never free reference cycles again."""
    import gc

    assert gc.isenabled()
    _build()
    assert gc.isenabled()
