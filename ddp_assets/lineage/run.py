"""Putting it together for one run: specs + manifest + event log → OpenLineage events."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from openlineage.client.event_v2 import RunEvent

from ddp_assets.lineage.columns import remembered
from ddp_assets.lineage.events import EventBuilder, landing_files_of, read_run
from ddp_assets.lineage.graph import LineageGraph, build_graph, python_model_key
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.model import FileInputPort
from ddp_assets.spec.registry import Registry, load_registry

COLUMN_LINEAGE_FILE = "ddp_column_lineage.json"  # beside the dbt targets; see lineage.columns


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def prepared_manifest(paths: ProjectPaths) -> dict[str, Any]:
    """The manifest ``ddp prepare`` wrote, without parsing dbt again (empty if none yet)."""
    from ddp_assets.dbt.project import dbt_project

    return _read_json(dbt_project(paths).manifest_path) or {"nodes": {}, "sources": {}}


def run_manifest(paths: ProjectPaths, run_id: str) -> dict[str, Any] | None:
    """The manifest dbt wrote in this run's own target folder (it holds the compiled SQL)."""
    from ddp_assets.dbt.project import dbt_project

    project = dbt_project(paths)
    runs = project.project_dir / project.target_path / "runs"
    candidates = sorted(runs.glob(f"{run_id[:8]}-*/manifest.json"), key=lambda p: p.stat().st_mtime)
    return _read_json(candidates[-1]) if candidates else None


def python_and_landing_keys(registry: Registry) -> list[str]:
    keys: list[str] = []
    for product in registry.products.values():
        keys.extend(
            f"{product.id}/{p.name}"
            for p in product.spec.input_ports
            if isinstance(p, FileInputPort)
        )
        keys.extend(python_model_key(product, m.name) for m in product.spec.python_models)
    return keys


def latest_column_types(
    instance: dg.DagsterInstance | None, keys: Iterable[str]
) -> dict[str, dict[str, str]]:
    """Columns of the assets dbt cannot describe, from their latest materialization."""
    if instance is None:
        return {}
    asset_keys = [dg.AssetKey(k.split("/")) for k in keys]
    found: dict[str, dict[str, str]] = {}
    for asset_key, entry in instance.get_latest_materialization_events(asset_keys).items():
        materialization = entry.asset_materialization if entry else None
        if materialization is None:
            continue
        schema = materialization.metadata.get("dagster/column_schema")
        value = getattr(schema, "value", None)
        if isinstance(value, dg.TableSchema):
            found["/".join(asset_key.path)] = {c.name: c.type for c in value.columns}
    return found


def static_graph(
    paths: ProjectPaths,
    registry: Registry | None = None,
    manifest: Mapping[str, Any] | None = None,
    instance: dg.DagsterInstance | None = None,
) -> LineageGraph:
    """The lineage of every asset as the code declares it (for ``ddp lineage``, the catalog)."""
    if registry is None:
        registry = load_registry(paths.defs_dir, paths.root)
        registry.raise_for_errors()
    if manifest is None:
        from ddp_assets.dbt.project import prepare

        manifest = prepare(paths, registry).manifest
    types = latest_column_types(instance, python_and_landing_keys(registry))
    return build_graph(paths, registry, manifest, column_types=types)


def _registry(paths: ProjectPaths) -> Registry:
    """The specs, from the definitions' load cache when nothing changed (no YAML read then)."""
    from ddp_assets.dbt.load_cache import cached_registry

    return cached_registry(paths) or load_registry(paths.defs_dir, paths.root)


def run_events(
    instance: dg.DagsterInstance, run_id: str, paths: ProjectPaths
) -> list[RunEvent] | None:
    """The OpenLineage events of a finished run; None while the run is not finished."""
    record = read_run(instance, run_id)
    if record is None:
        return None
    registry = _registry(paths)
    manifest = run_manifest(paths, run_id) or prepared_manifest(paths)
    compiled = {
        uid: node["compiled_code"]
        for uid, node in manifest.get("nodes", {}).items()
        if node.get("compiled_code")
    }
    keys = python_and_landing_keys(registry)
    types = latest_column_types(instance, keys)
    for key in keys:  # this run's own materializations win
        execution = record.assets.get(key)
        schema = execution.metadata.get("dagster/column_schema") if execution else None
        if isinstance(schema, dict) and schema:
            types[key] = schema
    # column lineage depends on the SQL only: reuse what earlier runs computed (cost, not naming)
    with remembered(paths.dbt_dir / "target" / COLUMN_LINEAGE_FILE):
        graph = build_graph(
            paths,
            registry,
            manifest,
            column_types=types,
            compiled=compiled,
            landing=landing_files_of(record, paths.landing_dir, keys),
            lineage_of=set(record.assets),  # the events describe this run's assets only
        )
    return EventBuilder(graph, registry, manifest).events(record)
