"""Synthetic ddp projects: P products of M/P chained SQL models each.

Product ``pNNNN`` lives in ``ddp_assets/defs/dK/pNNNN/`` (ten domains). Its models
``pNNNN_m00 .. pNNNN_mXX`` form a chain (each ``ref()``s the one before); the last one is the
output port ``out`` with its ODCS contract (three columns, a unique key, so one dbt test and
one asset check per product). The first model reads the previous product's output port through
a declared product input port; product 0 reads a landing-file input port instead.
"""

from __future__ import annotations

from pathlib import Path

from bench.common import copy_project

MODELS_PER_PRODUCT = 10
DOMAINS = 10

SPEC = """\
type: ddp_assets.components.DataProduct
attributes:
  id: {id}
  name: Synthetic {id}
  domain: {domain}
  version: 1.0.0
  status: active
  tier: bronze
  owners: [team:{domain}, {id}@example.com]
  description:
    purpose: Synthetic product {id} for the definitions benchmark.
  tags: [synthetic]
  input_ports:
{input_port}
  output_ports:
    - name: out
      type: table
      model: {output_model}
      contract: contracts/out.odcs.yaml
      description: The last model of the chain.
  slos:
    refresh: on_upstream_change
  policies:
    classification: internal
"""

FILE_PORT = """\
    - name: raw
      type: file
      path: synthetic/{id}*.csv
      format: csv"""

PRODUCT_PORT = """\
    - name: upstream
      type: product
      product: {upstream}.out
      contract:
        id: urn:ddp:{upstream_domain}:{upstream}:out
        version: ">=1.0.0,<2.0.0\""""

CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: urn:ddp:{domain}:{id}:out
name: Synthetic {id} out
version: 1.0.0
status: active
domain: {domain}
dataProduct: {id}
schema:
  - name: {output_model}
    physicalName: {output_model}
    physicalType: table
    description: One row per id.
    properties:
      - name: id
        logicalType: integer
        physicalType: bigint
        primaryKey: true
        required: true
        unique: true
      - name: value
        logicalType: integer
        physicalType: bigint
        required: true
      - name: label
        logicalType: string
        physicalType: varchar
"""

FIRST_FROM_SOURCE = """\
select
    cast(id as bigint) as id,
    cast(value as bigint) as value,
    cast('{id}' as varchar) as label
from {{{{ source('{id}', 'raw') }}}}
"""

FIRST_FROM_UPSTREAM = """\
select
    cast(id as bigint) as id,
    cast(value as bigint) as value,
    cast('{id}' as varchar) as label
from {{{{ ref('{upstream_model}') }}}}
"""

NEXT = """\
select
    id,
    cast(value + {step} as bigint) as value,
    label
from {{{{ ref('{previous}') }}}}
"""


def product_id(index: int) -> str:
    return f"p{index:04d}"


def domain_of(index: int) -> str:
    return f"d{index % DOMAINS}"


def model_name(index: int, step: int) -> str:
    return f"{product_id(index)}_m{step:02d}"


def write_product(defs_dir: Path, index: int, models: int) -> None:
    pid, domain = product_id(index), domain_of(index)
    folder = defs_dir / domain / pid
    (folder / "models").mkdir(parents=True)
    (folder / "contracts").mkdir()
    output_model = model_name(index, models - 1)
    if index == 0:
        port = FILE_PORT.format(id=pid)
    else:
        upstream = product_id(index - 1)
        port = PRODUCT_PORT.format(upstream=upstream, upstream_domain=domain_of(index - 1))
    values = {"id": pid, "domain": domain, "output_model": output_model}
    (folder / "defs.yaml").write_text(SPEC.format(input_port=port, **values), encoding="utf-8")
    (folder / "contracts" / "out.odcs.yaml").write_text(CONTRACT.format(**values), "utf-8")
    for step in range(models):
        if step == 0 and index == 0:
            sql = FIRST_FROM_SOURCE.format(id=pid)
        elif step == 0:
            upstream_model = model_name(index - 1, models - 1)
            sql = FIRST_FROM_UPSTREAM.format(id=pid, upstream_model=upstream_model)
        else:
            sql = NEXT.format(step=step, previous=model_name(index, step - 1))
        (folder / "models" / f"{model_name(index, step)}.sql").write_text(sql, "utf-8")


def generate_project(destination: Path, total_models: int) -> tuple[Path, int]:
    """A copy of this project whose defs hold ``total_models`` models in products of ten."""
    if total_models % MODELS_PER_PRODUCT:
        raise ValueError(f"the model count must be a multiple of {MODELS_PER_PRODUCT}")
    root = copy_project(destination, with_products=False)
    products = total_models // MODELS_PER_PRODUCT
    defs_dir = root / "ddp_assets" / "defs"
    for index in range(products):
        write_product(defs_dir, index, MODELS_PER_PRODUCT)
    return root, products
