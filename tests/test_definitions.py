"""The whole code location loads, and its asset graph is exactly the one we expect.

The snapshot (tests/snapshots/asset_graph.json) makes every renamed key, moved group or lost
check show up as a diff. After an intended change, rewrite it with
``DDP_UPDATE_SNAPSHOTS=1 pytest tests/test_definitions.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest

from ddp_assets.runtime.instance import definitions
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.registry import Registry

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"


@pytest.fixture(scope="module")
def defs(project_paths: ProjectPaths) -> dg.Definitions:
    return definitions(project_paths)


@pytest.fixture(scope="module")
def registry(project_paths: ProjectPaths) -> Registry:
    return Registry.load(project_paths.defs_dir, project_paths.root)


def graph_snapshot(defs: dg.Definitions) -> dict[str, object]:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "checks": sorted(c.name for c in node.check_keys),
        }
    return {"assets": assets}


def match_snapshot(actual: dict[str, object], snapshot: Path) -> None:
    """``actual`` equals the committed snapshot; written only with DDP_UPDATE_SNAPSHOTS=1
    (a missing snapshot fails: a test that writes its own expectation cannot fail)."""
    if os.environ.get("DDP_UPDATE_SNAPSHOTS") == "1":
        snapshot.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n")
    elif not snapshot.exists():
        pytest.fail(
            f"the snapshot {snapshot} is missing: write it with "
            "DDP_UPDATE_SNAPSHOTS=1 pytest tests/test_definitions.py, review it and commit it"
        )
    assert actual == json.loads(snapshot.read_text())


def test_definitions_load_and_match_snapshot(defs: dg.Definitions) -> None:
    match_snapshot(graph_snapshot(defs), SNAPSHOT)


def test_a_missing_snapshot_fails_and_is_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "asset_graph.json"
    monkeypatch.delenv("DDP_UPDATE_SNAPSHOTS", raising=False)
    with pytest.raises(pytest.fail.Exception, match="DDP_UPDATE_SNAPSHOTS=1"):
        match_snapshot({"assets": {}}, missing)
    assert not missing.exists()
    monkeypatch.setenv("DDP_UPDATE_SNAPSHOTS", "1")
    match_snapshot({"assets": {}}, missing)  # asked for: written, then it matches
    monkeypatch.delenv("DDP_UPDATE_SNAPSHOTS")
    match_snapshot({"assets": {}}, missing)
    with pytest.raises(AssertionError):
        match_snapshot({"assets": {"a": {}}}, missing)


def test_one_group_per_product(defs: dg.Definitions, registry: Registry) -> None:
    graph = defs.resolve_asset_graph()
    groups = {graph.get(k).group_name for k in graph.materializable_asset_keys}
    assert groups == set(registry.products)
    assert len(registry.products) >= 6
    assert len({p.spec.domain for p in registry.products.values()}) >= 3


def test_every_asset_carries_its_product(defs: dg.Definitions, registry: Registry) -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.materializable_asset_keys:
        node = graph.get(key)
        product = registry.products[node.group_name or ""]
        assert key.path[0] == product.id, key
        assert list(node.owners) == list(product.spec.owners), key
        assert node.tags["ddp/product"] == product.id
        assert node.tags["ddp/domain"] == product.spec.domain
        assert node.tags["ddp/status"] == product.spec.status
        assert node.tags["ddp/tier"] == product.spec.tier
        assert node.kinds & {"dbt", "python", "csv", "parquet", "json", "view", "dlt"}, key
        assert node.description, key


def test_output_ports_have_contract_and_schema(
    defs: dg.Definitions, registry: Registry, project_paths: ProjectPaths
) -> None:
    graph = defs.resolve_asset_graph()
    for product in registry.products.values():
        for port in product.spec.output_ports:
            node = graph.get(dg.AssetKey([product.id, port.model]))
            assert node.metadata["ddp/output_port"] == port.name
            contract = node.metadata["ddp/contract"]
            assert (project_paths.root / str(getattr(contract, "value", contract))).is_file()
            assert node.tags["ddp/output_port"] == port.name
            if "dbt" in node.kinds:
                schema = node.metadata["dagster/column_schema"]
                assert [c.name for c in getattr(schema, "value", schema).columns], port


def test_dbt_tests_are_asset_checks(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    names = {c.name for c in graph.asset_check_keys}
    assert "unique_customers_customer_id" in names
    assert "unique_orders_order_id" in names


def test_every_writer_is_in_the_duckdb_pool(defs: dg.Definitions) -> None:
    from ddp_assets.metadata import WRITER_POOL

    graph = defs.resolve_asset_graph()
    for key in graph.materializable_asset_keys:
        assets_def = defs.get_assets_def(key)
        pools = {node.pool for node in assets_def.node_def.iterate_op_defs()}
        assert pools == {WRITER_POOL}, key
