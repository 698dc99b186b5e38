"""The ODCS ``servers`` block of an exported contract: where a port's data can be read.

A contract in a product's folder says what the data is; the contract ddp hands out (``ddp
contract export``, the REST port's contract endpoint) also says where it is, so that a
consumer following the contract, or a third-party tool such as datacontract-cli's ``test``,
finds the published relation. One owner for that: this module.

- The server is the **active warehouse target** (``dbt_project/profiles.yml``,
  ``DDP_DBT_TARGET``), named after it: a dbt target is dbt's own name for an environment
  (``dev``, ``prod``), so the export of each environment names its own server.
- DuckDB: ``type: duckdb``, ``database`` the warehouse file (absolute path), ``schema`` the
  product's schema. PostgreSQL: ``host``, ``port``, ``database``, ``schema``.
- The relation consumers read is :func:`ddp_assets.naming.published_relation` (the view
  ``<product>.<model>`` over the published version); the schema object of the port's model
  gets its name as ``physicalName`` and ``physicalType: view``.
- Never a credential: a PostgreSQL server names the environment variables that hold them.

Servers the contract's author wrote are kept, after ddp's; one with the same name is replaced.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ddp_assets.naming import published_relation
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.errors import SpecErrors, SpecProblem, did_you_mean
from ddp_assets.spec.odcs import load_contract_file, plain
from ddp_assets.spec.registry import Product
from ddp_assets.warehouse import WarehouseConfigError, warehouse_from_target
from ddp_assets.warehouse.config import dbt_target, target_name
from ddp_assets.warehouse.duckdb import DuckDBWarehouse

POSTGRES_CREDENTIALS = (
    "No credentials here: connect with your own user and password (ddp's processes read "
    "DDP_PG_USER and DDP_PG_PASSWORD; datacontract-cli reads DATACONTRACT_POSTGRES_USERNAME "
    "and DATACONTRACT_POSTGRES_PASSWORD)."
)


def contract_servers(paths: ProjectPaths, product: str, model: str) -> list[dict[str, Any]]:
    """The ODCS ``servers`` entries where ``product``'s output port over ``model`` is
    published."""
    target = dbt_target(paths)
    name = target_name(paths)
    kind = str(target.get("type", "duckdb"))
    schema, _ = published_relation(product, model)
    if kind == "duckdb":
        warehouse = warehouse_from_target(paths, target)
        assert isinstance(warehouse, DuckDBWarehouse)
        return [
            {
                "server": name,
                "type": "duckdb",
                "environment": name,
                "description": f"ddp's DuckDB warehouse (dbt target '{name}'); open it "
                "read-only, ddp's runs write to it.",
                "database": str(Path(warehouse.path).absolute()),
                "schema": schema,
            }
        ]
    if kind == "postgres":
        from ddp_assets.warehouse.postgres import PostgresSettings

        settings = PostgresSettings.from_target(dict(target))
        return [
            {
                "server": name,
                "type": "postgres",
                "environment": name,
                "description": f"ddp's PostgreSQL warehouse (dbt target '{name}'). "
                + POSTGRES_CREDENTIALS,
                "host": settings.host,
                "port": settings.port,
                "database": settings.dbname,
                "schema": schema,
            }
        ]
    raise WarehouseConfigError(
        f"{paths.dbt_dir / 'profiles.yml'}: dbt adapter '{kind}' is not a ddp warehouse; "
        "use a duckdb or postgres output"
    )


def with_servers(
    document: dict[str, Any], servers: list[dict[str, Any]], model: str, relation: str
) -> dict[str, Any]:
    """A copy of ``document`` (plain JSON data) with ``servers`` first, the author's other
    servers after, and the schema object of ``model`` named ``relation`` (physicalName, a
    view)."""
    ours = {s["server"] for s in servers}
    exported = copy.deepcopy(document)
    theirs = [
        s
        for s in exported.get("servers") or []
        if not (isinstance(s, dict) and s.get("server") in ours)
    ]
    exported["servers"] = [*copy.deepcopy(servers), *theirs]
    objects = [o for o in exported.get("schema") or [] if isinstance(o, dict)]
    port_object = next(
        (o for o in objects if model in (o.get("physicalName"), o.get("name"))), None
    )
    if port_object is None and len(objects) == 1:
        port_object = objects[0]
    if port_object is not None:
        port_object["physicalName"] = relation
        port_object["physicalType"] = "view"  # over the published version (naming.py)
    return exported


def exported_contract(paths: ProjectPaths, product: Product, port: str) -> dict[str, Any]:
    """The ODCS contract of ``product``'s output ``port`` as ddp hands it out: the file's
    content (plain JSON data) with the ``servers`` block of the active warehouse target.

    Raises :class:`~ddp_assets.spec.errors.SpecErrors` (file, line, field) for a port that
    does not exist or a contract that cannot be read.
    """
    output = product.spec.output_port(port)
    if output is None:
        names = [p.name for p in product.spec.output_ports]
        raise SpecErrors(
            [
                SpecProblem(
                    "(command line)",
                    None,
                    "port",
                    f"product '{product.id}' has no output port '{port}'",
                    did_you_mean(port, names) or "output ports: " + (", ".join(names) or "none"),
                )
            ]
        )
    # a contract ddp cannot read is not handed out: SpecErrors at its file and line
    loaded = load_contract_file(product.folder / output.contract, paths.root)
    document = plain(loaded.document)
    _, relation = published_relation(product.id, output.model)
    servers = contract_servers(paths, product.id, output.model)
    return with_servers(document, servers, output.model, relation)
