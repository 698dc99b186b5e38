"""The file port: a port exported as Parquet or CSV, as one consumer sees it, with its contract.

The rows come from the same policy query as the REST and SQL ports (masked, filtered), read
from the serving snapshot in Arrow batches and written with pyarrow, so a large port never
sits in memory whole. The ODCS contract is written beside the data file, with a note of the
columns masked for this consumer and the published version the file holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from ddp_assets.ports.policy import PortAccess, policy_select
from ddp_assets.ports.serving import ServedPort, snapshot_relation
from ddp_assets.ports.versions import ServedVersion
from ddp_assets.spec.loader import read_yaml
from ddp_assets.spec.odcs import plain
from ddp_assets.spec.registry import Product

FileFormat = Literal["parquet", "csv"]
FORMATS: tuple[FileFormat, ...] = ("parquet", "csv")
BATCH_ROWS = 100_000


@dataclass(frozen=True)
class ExportedPort:
    data: Path
    contract: Path
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"data": str(self.data), "contract": str(self.contract), "rows": self.rows}


def export_port(
    cursor: duckdb.DuckDBPyConnection,
    product: Product,
    access: PortAccess,
    served: ServedPort,
    salt: str,
    out_dir: Path,
    file_format: FileFormat = "parquet",
    *,
    source: str | None = None,
    version: ServedVersion | None = None,
) -> ExportedPort:
    """Write ``<port>.<format>`` and ``<port>.odcs.json`` into ``out_dir``; ``source`` and
    ``version``: a retained version instead of the published one (time travel)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = out_dir / f"{access.port}.{file_format}"
    source = source or snapshot_relation(access.product, access.port)
    sql, params = policy_select(access, source, salt)
    reader = cursor.execute(sql, params).to_arrow_reader(BATCH_ROWS)
    assert reader is not None, "a select always has a result"
    rows = 0
    partial = data.with_name(data.name + ".partial")
    writer: pq.ParquetWriter | pa_csv.CSVWriter
    if file_format == "parquet":
        writer = pq.ParquetWriter(partial, reader.schema)
    else:
        writer = pa_csv.CSVWriter(partial, reader.schema)
    with writer:
        for batch in reader:
            writer.write_batch(batch)
            rows += batch.num_rows
        if rows == 0:
            writer.write_table(pa.Table.from_batches([], schema=reader.schema))
    partial.replace(data)
    contract = out_dir / f"{access.port}.odcs.json"
    contract.write_text(
        json.dumps(contract_for(product, access, served, version), indent=2, default=str) + "\n",
        encoding="utf-8",
    )
    return ExportedPort(data, contract, rows)


def contract_for(
    product: Product, access: PortAccess, served: ServedPort, version: ServedVersion | None = None
) -> dict[str, Any]:
    """The port's ODCS contract as JSON, with what this copy holds under ``customProperties``
    (for a retained version: its number, run and the contract version it was published under)."""
    output = product.spec.output_port(access.port)
    assert output is not None
    document: dict[str, Any] = plain(read_yaml(product.folder / output.contract))
    masked = {c.name: c.mask for c in access.columns if c.mask}
    note = [
        {"property": "ddp.consumer", "value": access.consumer.id},
        {"property": "ddp.maskedColumns", "value": masked},
        {"property": "ddp.rowFiltered", "value": access.row_filter is not None},
        {"property": "ddp.publishedRunId", "value": version.run_id if version else served.run_id},
        {
            "property": "ddp.publishedAt",
            "value": version.published_at if version else served.published_at,
        },
    ]
    if version is not None:
        note += [
            {"property": "ddp.version", "value": version.version},
            {
                "property": "ddp.versionContract",
                "value": f"{version.contract_id} {version.contract_version}",
            },
        ]
    document["customProperties"] = [*document.get("customProperties", []), *note]
    return document
