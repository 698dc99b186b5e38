"""The lineage of every asset, from the product specs and the dbt manifest (no run needed).

An :class:`AssetLineage` says what one Dagster asset (``<product>/<model>``) reads and writes,
with its SQL and column lineage; :class:`LineageGraph` holds all of them plus the
product-to-product edges of the specs. Run events (:mod:`ddp_assets.lineage.events`), ``ddp
lineage`` and the catalog all read this one model.
"""

from __future__ import annotations

import graphlib
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddp_assets.ingest.files import landing_files
from ddp_assets.lineage.columns import SourceColumn, TableName, column_lineage, output_columns
from ddp_assets.naming import dbt_asset_key, ddp_meta, port_key, staging_key
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.model import DepotInputPort, FileInputPort, ProductInputPort, TableInputPort
from ddp_assets.spec.registry import Registry

if TYPE_CHECKING:
    import dagster as dg

_REF = re.compile(r"""\{\{\s*ref\(\s*['"](\w+)['"]\s*(?:,\s*['"](\w+)['"]\s*)?\)\s*\}\}""")
_SOURCE = re.compile(r"""\{\{\s*source\(\s*['"](\w+)['"]\s*,\s*['"](\w+)['"]\s*\)\s*\}\}""")
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)


def _depot_dataset(paths: ProjectPaths, port: DepotInputPort) -> tuple[str, str] | None:
    """The OpenLineage (namespace, name) of what a depot port reads; None for an unknown
    depot (its asset reports it). Redacted: a dataset name never carries a credential."""
    from ddp_assets.depots.connect import source_dataset
    from ddp_assets.depots.loader import load_depots
    from ddp_assets.depots.pipeline import source_what
    from ddp_assets.depots.secrets import redact

    depot = load_depots(paths).get(port.depot)
    if depot is None:
        return None
    namespace, name = source_dataset(depot, paths, source_what(port))
    return redact(namespace), redact(name)


@dataclass(frozen=True)
class DatasetRef:
    """A dataset by its OpenLineage namespace and name; ``asset`` when a ddp asset writes it."""

    namespace: str
    name: str
    asset: str | None = None  # "product/model"
    table: TableName | None = None

    @property
    def product(self) -> str | None:
        return self.asset.split("/", 1)[0] if self.asset else None

    def to_dict(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "asset": self.asset}


@dataclass
class AssetLineage:
    """One Dagster asset: what it reads, what it writes, how (SQL) and column by column."""

    product: str
    model: str
    kind: str  # dbt | python | landing | table
    output: DatasetRef
    inputs: list[DatasetRef] = field(default_factory=list)
    description: str | None = None
    port: str | None = None
    contract: str | None = None
    sql: str | None = None
    unique_id: str | None = None
    columns: dict[str, str | None] = field(default_factory=dict)  # name → type (if known)
    column_descriptions: dict[str, str] = field(default_factory=dict)
    column_lineage: dict[str, list[SourceColumn]] = field(default_factory=dict)
    key_path: tuple[str, ...] = ()  # the Dagster asset key

    @property
    def key(self) -> str:
        return "/".join(self.key_path or (self.product, self.model))

    @property
    def job(self) -> str:
        """The OpenLineage job name: the asset key, dotted."""
        return ".".join(self.key_path or (self.product, self.model))

    def to_dict(self) -> dict[str, Any]:
        return {
            "asset": self.key,
            "product": self.product,
            "model": self.model,
            "kind": self.kind,
            "port": self.port,
            "output": self.output.to_dict(),
            "inputs": [i.to_dict() for i in self.inputs],
            "columns": [{"name": n, "type": t} for n, t in self.columns.items()],
            "column_lineage": self._column_lineage_dict(),
        }

    def _column_lineage_dict(self) -> dict[str, list[dict[str, str]]]:
        from ddp_assets.lineage.naming import table_name

        return {
            column: [
                {"dataset": table_name(*s.table), "column": s.column, "subtype": s.subtype}
                for s in sources
            ]
            for column, sources in self.column_lineage.items()
        }


@dataclass(frozen=True)
class ProductEdge:
    upstream: str
    port: str
    downstream: str
    input_port: str

    def to_dict(self) -> dict[str, str]:
        return {
            "upstream": self.upstream,
            "port": self.port,
            "downstream": self.downstream,
            "input_port": self.input_port,
        }


@dataclass
class LineageGraph:
    namespace: str
    assets: dict[str, AssetLineage]
    product_edges: list[ProductEdge]
    dialect: str = "duckdb"  # the SQL dialect of the warehouse the models run in

    def for_product(self, product: str) -> list[AssetLineage]:
        return [a for a in self.assets.values() if a.product == product]

    def table_edges(self, product: str | None = None) -> list[tuple[str, str]]:
        """(input dataset name, output dataset name) of every asset (of one product)."""
        edges = {
            (i.name, a.output.name)
            for a in self.assets.values()
            if product is None or a.product == product
            for i in a.inputs
        }
        return sorted(edges)

    def neighbourhood(self, product: str) -> list[ProductEdge]:
        return [e for e in self.product_edges if product in (e.upstream, e.downstream)]

    def to_dict(self, product: str | None = None) -> dict[str, Any]:
        edges = self.product_edges if product is None else self.neighbourhood(product)
        assets = self.assets.values() if product is None else self.for_product(product)
        return {
            "namespace": self.namespace,
            "products": [e.to_dict() for e in edges],
            "tables": [{"from": a, "to": b} for a, b in self.table_edges(product)],
            "assets": [a.to_dict() for a in sorted(assets, key=lambda a: a.key)],
        }


def _wap_staging_schema() -> Any:
    """``staging_schema`` when write-audit-publish is part of the platform, else None."""
    try:
        from ddp_assets.contracts.wap import staging_schema
    except ImportError:
        return None
    return staging_schema


def python_model_key(product: Any, model: str) -> str:
    """The asset key of a Python model: output ports are built in staging under WAP."""
    staged = model in product.output_models and _wap_staging_schema() is not None
    return _key((staging_key if staged else port_key)(product.id, model).path)


def _dbt_key(node: Mapping[str, Any]) -> dg.AssetKey:
    """The Dagster asset key of a dbt model, as the dbt translator gives it."""
    key = dbt_asset_key(node)
    if key is None:  # a model without ddp's meta: dagster-dbt's own key
        from dagster_dbt import DagsterDbtTranslator

        key = DagsterDbtTranslator().get_asset_key(node)
    return key


def render_sql(raw_code: str, manifest: Mapping[str, Any], reader: str | None = None) -> str:
    """A model's SQL with ``ref()``/``source()`` replaced by relations, other Jinja dropped.

    Used when no compiled SQL is at hand (no run yet): good enough for lineage. A ``ref()`` to
    another product's output port reads the published relation ``<product>.<model>``.
    """
    by_name = {
        n["name"]: n for n in manifest.get("nodes", {}).values() if n["resource_type"] == "model"
    }
    sources = {(s["source_name"], s["name"]): s for s in manifest.get("sources", {}).values()}

    def ref(match: re.Match[str]) -> str:
        node = by_name.get(match[2] or match[1])
        if not node or not node.get("relation_name"):
            return match[0]
        meta = ddp_meta(node)
        if meta.get("port") and meta.get("product") not in (None, reader):
            alias = node.get("alias") or node["name"]
            return f'"{node["database"]}"."{meta["product"]}"."{alias}"'
        return node["relation_name"]

    def source(match: re.Match[str]) -> str:
        node = sources.get((match[1], match[2]))
        return node["relation_name"] if node and node.get("relation_name") else match[0]

    return _JINJA.sub("", _SOURCE.sub(source, _REF.sub(ref, raw_code))).strip()


def _node_table(node: Mapping[str, Any]) -> TableName:
    name = node.get("alias") or node.get("identifier") or node["name"]
    return (str(node["database"]), str(node["schema"]), str(name))


def _key(path: Sequence[str]) -> str:
    return "/".join(path)


def build_graph(
    paths: ProjectPaths,
    registry: Registry,
    manifest: Mapping[str, Any],
    *,
    column_types: Mapping[str, Mapping[str, str]] | None = None,
    compiled: Mapping[str, str] | None = None,
    landing: Mapping[str, list[Path]] | None = None,
    lineage_of: Collection[str] | None = None,
) -> LineageGraph:
    """Every asset's lineage, keyed by its Dagster asset key (``"product/model"``).

    ``column_types``: asset key → columns, e.g. from materializations of landing and Python
    assets (dbt cannot know those). ``compiled``: dbt unique id → compiled SQL of this run.
    ``landing``: asset key → the files a landing load read. ``lineage_of``: the asset keys
    whose column lineage is wanted (a run's events describe only its own assets); every
    other dbt model gets its output columns only, which its readers' schemas need. None:
    every model's.
    """
    # imported here: the naming module loads the OpenLineage client (~0.3 s), which a code
    # location load (that imports this module through the catalog) does not need
    from ddp_assets.lineage.naming import (
        FILE_NAMESPACE,
        file_name,
        table_name,
        warehouse_database,
        warehouse_dialect,
        warehouse_namespace,
    )

    staging_schema = _wap_staging_schema()
    namespace = warehouse_namespace(paths)
    database = warehouse_database(paths)
    dialect = warehouse_dialect(paths)
    column_types = column_types or {}
    compiled = compiled or {}
    nodes = manifest.get("nodes", {})
    project = manifest_project(manifest)
    models = {
        uid: n
        for uid, n in nodes.items()
        if n.get("resource_type") == "model" and n.get("package_name") == project
    }
    assets: dict[str, AssetLineage] = {}

    def table_ref(table: TableName) -> DatasetRef:
        return DatasetRef(namespace, table_name(*table), None, table)

    def add(asset: AssetLineage) -> None:
        assets[asset.key] = asset

    for product in registry.products.values():
        spec = product.spec
        for port in spec.input_ports:
            table = (database, spec.id, port.name)
            key = _key([spec.id, port.name])
            if isinstance(port, FileInputPort):
                files = (landing or {}).get(key)
                if files is None:
                    files = landing_files(paths.landing_dir, port.path)
                inputs = [DatasetRef(FILE_NAMESPACE, file_name(f)) for f in files] or [
                    DatasetRef(FILE_NAMESPACE, str(paths.landing_dir / port.path))
                ]
                add(
                    AssetLineage(
                        spec.id,
                        port.name,
                        "landing",
                        DatasetRef(namespace, table_name(*table), key, table),
                        inputs,
                        description=port.description or f"Landing files '{port.path}'.",
                        key_path=(spec.id, port.name),
                    )
                )
            elif isinstance(port, DepotInputPort):
                source = _depot_dataset(paths, port)
                add(
                    AssetLineage(
                        spec.id,
                        port.name,
                        "depot",
                        DatasetRef(namespace, table_name(*table), key, table),
                        [DatasetRef(*source)] if source else [],
                        description=port.description,
                        key_path=(spec.id, port.name),
                    )
                )
            elif isinstance(port, TableInputPort):
                schema, name = port.table.split(".", 1)
                add(
                    AssetLineage(
                        spec.id,
                        port.name,
                        "table",
                        DatasetRef(namespace, table_name(*table), key, table),
                        [table_ref((database, schema, name))],
                        description=port.description,
                        key_path=(spec.id, port.name),
                    )
                )
        for model in spec.python_models:
            port_name = product.output_models.get(model.name)
            staged = bool(port_name and staging_schema)
            schema = staging_schema(spec.id) if staged and staging_schema else spec.id
            path = tuple((staging_key if staged else port_key)(spec.id, model.name).path)
            table = (database, schema, model.name)
            add(
                AssetLineage(
                    spec.id,
                    model.name,
                    "python",
                    DatasetRef(namespace, table_name(*table), _key(path), table),
                    [
                        table_ref((database, s, n))
                        for s, n in registry.python_model_inputs(product, model).values()
                    ],
                    description=model.description,
                    port=port_name,
                    key_path=path,
                )
            )
        if staging_schema is not None:  # write-audit-publish: a publish asset per output port
            for port in spec.output_ports:
                staged_table = (database, staging_schema(spec.id), port.model)
                table = (database, spec.id, port.model)
                key = _key([spec.id, port.model])
                add(
                    AssetLineage(
                        spec.id,
                        port.model,
                        "publish",
                        DatasetRef(namespace, table_name(*table), key, table),
                        [table_ref(staged_table)],
                        description=port.description,
                        port=port.name,
                        contract=port.contract,
                        key_path=(spec.id, port.model),
                        column_lineage={},
                    )
                )
    # the schemas known so far (landing, python), then dbt models in dependency order
    schemas: dict[TableName, dict[str, str]] = {}
    for key, known_columns in column_types.items():
        asset = assets.get(key)
        if asset is not None and asset.output.table is not None:
            schemas[asset.output.table] = dict(known_columns)
            asset.columns = {n: t for n, t in known_columns.items()}
    published = {a.inputs[0].table: a for a in assets.values() if a.kind == "publish" and a.inputs}
    for staged, publisher in published.items():
        if staged in schemas:
            _publish_columns(publisher, schemas[staged], schemas)
    sorter = graphlib.TopologicalSorter(
        {uid: [d for d in n["depends_on"]["nodes"] if d in models] for uid, n in models.items()}
    )
    for uid in sorter.static_order():
        node = models[uid]
        meta = ddp_meta(node)
        product_id = meta.get("product") or registry.model_owner.get(node["name"])
        if not product_id:
            continue
        table = _node_table(node)
        sql = compiled.get(uid) or render_sql(node.get("raw_code", ""), manifest, product_id)
        known = dict(schemas)
        path = tuple(_dbt_key(node).path)
        wanted = lineage_of is None or _key(path) in lineage_of
        # sqlglot's lineage of every column is most of this function's time
        lineage = column_lineage(sql, known, dialect) if wanted else {}
        read = sorted({s.table for sources in lineage.values() for s in sources})
        inputs: list[DatasetRef] = []
        for dep in node["depends_on"]["nodes"]:
            upstream = models.get(dep) or manifest.get("sources", {}).get(dep)
            if upstream is None:
                continue
            upstream_table = _node_table(upstream)
            upstream_meta = ddp_meta(upstream)
            if (
                upstream.get("resource_type") == "model"
                and upstream_meta.get("port")
                and upstream_meta.get("product") != product_id
                and upstream_table not in read
                and staging_schema is not None
            ):  # another product's port: read where it is published
                upstream_table = (upstream_table[0], upstream_meta["product"], upstream_table[2])
            inputs.append(table_ref(upstream_table))
        declared = {
            name: (col.get("data_type") or None)
            for name, col in (node.get("columns") or {}).items()
        }
        names = output_columns(sql, known, dialect) or list(declared)
        columns: dict[str, str | None] = {n: declared.get(n) for n in names}
        schemas[table] = {n: (t or "unknown") for n, t in columns.items()}
        contract = meta.get("contract")
        asset = AssetLineage(
            product_id,
            node["name"],
            "dbt",
            DatasetRef(namespace, table_name(*table), _key(path), table),
            inputs,
            description=node.get("description") or None,
            port=meta.get("port"),
            contract=str(contract) if contract else None,
            sql=sql,
            unique_id=uid,
            columns=columns,
            column_descriptions={
                n: c["description"]
                for n, c in (node.get("columns") or {}).items()
                if c.get("description")
            },
            column_lineage=lineage,
            key_path=path,
        )
        add(asset)
        if table in published:
            _publish_columns(published[table], schemas[table], schemas, asset)
    owner = {a.output.table: a.key for a in assets.values() if a.output.table}
    for asset in assets.values():
        asset.inputs = [
            replace(i, asset=owner.get(i.table)) if i.table and i.asset is None else i
            for i in asset.inputs
        ]
    edges = [
        ProductEdge(port.upstream_product, port.upstream_port, product.id, port.name)
        for product in registry.products.values()
        for port in product.spec.input_ports
        if isinstance(port, ProductInputPort) and port.upstream_product in registry.products
    ]
    return LineageGraph(
        namespace, assets, sorted(edges, key=lambda e: (e.downstream, e.upstream)), dialect
    )


def _publish_columns(
    publisher: AssetLineage,
    columns: Mapping[str, str | None],
    schemas: dict[TableName, dict[str, str]],
    staged: AssetLineage | None = None,
) -> None:
    """A publish asset copies its staging table: same columns, each from itself."""
    source = publisher.inputs[0].table
    assert source is not None and publisher.output.table is not None
    publisher.columns = {n: (None if t == "unknown" else t) for n, t in columns.items()}
    if staged is not None:
        publisher.column_descriptions = dict(staged.column_descriptions)
        publisher.contract = staged.contract
    publisher.column_lineage = {n: [SourceColumn(source, n, "IDENTITY")] for n in columns}
    schemas[publisher.output.table] = {n: t or "unknown" for n, t in columns.items()}


def manifest_project(manifest: Mapping[str, Any]) -> str:
    """The dbt project's own package name (nodes of installed packages are not products)."""
    return str(manifest.get("metadata", {}).get("project_name") or "ddp")
