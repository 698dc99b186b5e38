"""``ddp contract infer``: an output port's contract from its built relation and its dbt tests.

The columns and types are the warehouse's (``DESCRIBE`` of the published relation, else of its
staging build); required, unique and accepted values come from the model's dbt tests in the
prepared manifest (the team's own ``data_tests`` included) and its constraints; descriptions
from its dbt properties. An existing contract is refreshed by :func:`refresh_contract`, which
keeps what people wrote; with ``write=False`` nothing is written and the changes are the drift.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ddp_assets.naming import published_relation, staging_schema
from ddp_assets.onboard.contracts import (
    ColumnFacts,
    ObjectFacts,
    contract_text,
    physical_type,
    refresh_contract,
)
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.errors import SpecErrors, SpecProblem, did_you_mean, relative
from ddp_assets.spec.registry import Product, Registry
from ddp_assets.warehouse import quote, relation_exists, table_columns, warehouse_for


@dataclass
class Inferred:
    port: str
    contract: str
    relation: str
    changes: list[str] = field(default_factory=list)
    created: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "contract": self.contract,
            "relation": self.relation,
            "created": self.created,
            "changes": self.changes,
        }


def _not_built(product: Product, model: str) -> SpecErrors:
    return SpecErrors(
        [
            SpecProblem(
                "(command line)",
                None,
                "port",
                f"model '{model}' of product '{product.id}' is not built in the warehouse",
                f"build it first: `ddp materialize {product.id}`",
            )
        ]
    )


def _columns(
    paths: ProjectPaths, product: Product, model: str
) -> tuple[str, list[tuple[str, str]]]:
    """The published relation's columns (else its staging build's), as the warehouse has them."""
    warehouse = warehouse_for(paths)
    if not warehouse.exists():
        raise _not_built(product, model)
    with warehouse.reader() as connection:
        for schema, table in (
            published_relation(product.id, model),
            (staging_schema(product.id), model),
        ):
            if not relation_exists(connection, schema, table):
                continue
            if warehouse.kind == "duckdb":
                rows = connection.execute(f"describe {quote(schema)}.{quote(table)}").fetchall()
                return f"{schema}.{table}", [(str(r[0]), str(r[1])) for r in rows]
            return f"{schema}.{table}", table_columns(connection, schema, table)
    raise _not_built(product, model)


def _last_manifest(paths: ProjectPaths) -> dict[str, Any]:
    from ddp_assets.dbt.project import dbt_project

    try:
        return json.loads(dbt_project(paths).manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _test_facts(manifest: dict[str, Any], unique_id: str) -> dict[str, ColumnFacts]:
    facts: dict[str, ColumnFacts] = {}
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") != "test" or node.get("attached_node") != unique_id:
            continue
        column = node.get("column_name")
        metadata = node.get("test_metadata") or {}
        if not column or (node.get("config") or {}).get("where"):
            continue
        fact = facts.setdefault(column, ColumnFacts(column, ""))
        name = metadata.get("name")
        fact.required |= name == "not_null"
        fact.unique |= name == "unique"
        values = (metadata.get("kwargs") or {}).get("values")
        if name == "accepted_values" and isinstance(values, list):
            fact.valid_values = list(values)
    return facts


def infer_contracts(
    paths: ProjectPaths, product_id: str, port_name: str | None = None, *, write: bool = True
) -> list[Inferred]:
    """Refresh (or write) the contracts of a product's output ports; the changes of each."""
    from ddp_assets.dbt.project import prepare

    registry = Registry.load(paths.defs_dir, paths.root)  # a missing contract is what we write
    product = registry.get(product_id)
    ports = product.spec.output_ports
    if port_name is not None:
        ports = [p for p in ports if p.name == port_name]
        if not ports:
            names = [p.name for p in product.spec.output_ports]
            raise SpecErrors(
                [
                    SpecProblem(
                        relative(product.loaded.path, paths.root),
                        None,
                        "output_ports",
                        f"product '{product_id}' has no output port '{port_name}'",
                        did_you_mean(port_name, names) or f"its ports: {', '.join(names)}",
                    )
                ]
            )
    if all((product.folder / p.contract).is_file() for p in ports):
        manifest = prepare(paths, registry).manifest
    else:  # a contract to write: dbt cannot be prepared without it, its last manifest serves
        manifest = _last_manifest(paths)
    by_name = {
        n["name"]: n
        for n in manifest.get("nodes", {}).values()
        if n.get("resource_type") == "model"
    }
    results: list[Inferred] = []
    for port in ports:
        node = by_name.get(port.model, {})
        shown, columns = _columns(paths, product, port.model)
        tests = _test_facts(manifest, node.get("unique_id", ""))
        described = node.get("columns") or {}
        obj = ObjectFacts(port.model, node.get("description") or port.description)
        for name, data_type in columns:
            fact = tests.get(name) or ColumnFacts(name, "")
            fact.physical_type = physical_type(data_type)
            fact.description = (described.get(name) or {}).get("description") or None
            for constraint in (described.get(name) or {}).get("constraints") or []:
                fact.required |= constraint.get("type") == "not_null"
            obj.columns.append(fact)
        path = product.folder / port.contract
        result = Inferred(port.name, relative(path, paths.root), shown)
        if path.is_file():
            existing = path.read_text(encoding="utf-8")
            try:
                refreshed = refresh_contract(existing, obj)
            except ValueError as error:
                raise SpecErrors(
                    [SpecProblem(result.contract, None, "schema", str(error), "add one")]
                ) from None
            result.changes = refreshed.changes
            text = refreshed.text
        else:
            result.created = True
            result.changes = [f"contract written ({len(obj.columns)} columns)"]
            text = contract_text(
                contract_id=f"urn:ddp:{product.spec.domain}:{product.id}:{port.name}",
                name=port.name.replace("_", " ").title(),
                version=product.spec.version,
                domain=product.spec.domain,
                product=product.id,
                obj=obj,
            )
        if write and result.changes:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        results.append(result)
    return results
