"""``ddp new``: a new product folder that validates and builds as soon as it is written."""

from __future__ import annotations

import re
from pathlib import Path

from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.errors import SpecErrors, SpecProblem
from ddp_assets.spec.model import SLUG
from ddp_assets.spec.odcs import WRITTEN_API_VERSION

SPEC_TEMPLATE = """\
type: ddp_assets.components.DataProduct
attributes:
  id: {id}
  name: {name}
  domain: {domain}
  version: 0.1.0
  status: draft
  tier: bronze
  owners: [{owner}]
  description:
    purpose: TODO say why {name} exists and who it serves.
    limitations: TODO what it does not cover.
    usage: TODO how consumers should read its output ports.
  tags: []
  # Bring data in: landing files, a warehouse table, or another product's output port.
  #   - {{name: raw_things, type: file, path: "things/*.csv", format: csv}}
  #   - {{name: customers, type: product, product: customers.customers}}
  input_ports: []
  output_ports:
    - name: {port}
      type: table
      model: {model}
      contract: contracts/{port}.odcs.yaml
  slos:
    refresh: manual
  policies:
    classification: internal
"""

MODEL_TEMPLATE = """\
-- The model behind the output port '{port}'. Replace this example with your logic, reading
-- input ports with source('{id}', '<port>') and other products with ref('<their model>').
select
    cast(1 as bigint) as id,
    cast('example' as varchar) as label,
    cast(current_date as date) as as_of
"""

CONTRACT_TEMPLATE = """\
apiVersion: {api_version}
kind: DataContract
id: urn:ddp:{domain}:{id}:{port}
name: {name}
version: 0.1.0
status: draft
domain: {domain}
dataProduct: {id}
schema:
  - name: {model}
    physicalName: {model}
    physicalType: view
    description: TODO describe one row.
    properties:
      - name: id
        logicalType: integer
        physicalType: bigint
        primaryKey: true
        required: true
        unique: true
      - name: label
        logicalType: string
        physicalType: varchar
      - name: as_of
        logicalType: date
        physicalType: date
        required: true
"""


def scaffold_product(
    paths: ProjectPaths,
    product_id: str,
    domain: str,
    owner: str | None = None,
    *,
    port: str | None = None,
    model: str | None = None,
) -> list[Path]:
    """Write ``defs/<domain>/<product>/`` with a spec, a SQL model and a contract; the output
    port and its model are named ``port`` and ``model`` (default: the product's id)."""
    port = port or product_id
    model = model or port
    problems: list[SpecProblem] = []
    checked = (("product", product_id), ("domain", domain), ("port", port), ("model", model))
    for label, value in checked:
        if not re.match(SLUG, value):
            problems.append(
                SpecProblem(
                    "(command line)",
                    None,
                    label,
                    f"{value!r} is not a valid {label} id",
                    "use lower-case letters, digits and '_', starting with a letter",
                )
            )
    folder = paths.defs_dir / domain / product_id
    if folder.exists():
        problems.append(
            SpecProblem(
                "(command line)",
                None,
                "product",
                f"{folder.relative_to(paths.root)} already exists",
                "choose another id, or edit the existing product",
            )
        )
    if problems:
        raise SpecErrors(problems)
    name = product_id.replace("_", " ").title()
    values = {
        "id": product_id,
        "domain": domain,
        "name": name,
        "owner": owner or f"team:{domain}",
        "api_version": WRITTEN_API_VERSION,
        "port": port,
        "model": model,
    }
    files = {
        folder / "defs.yaml": SPEC_TEMPLATE.format(**values),
        folder / "models" / f"{model}.sql": MODEL_TEMPLATE.format(**values),
        folder / "contracts" / f"{port}.odcs.yaml": CONTRACT_TEMPLATE.format(**values),
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(files)
