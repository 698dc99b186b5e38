"""Reading ODCS v3 data contracts (the parts ddp enforces).

The Open Data Contract Standard has far more fields than ddp enforces; unknown fields are kept
(``extra="allow"``) so that nothing in a contract is silently lost when it is re-exported.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ddp_assets.spec.errors import SpecErrors, SpecProblem, dotted, relative
from ddp_assets.spec.loader import Positions, read_yaml

SUPPORTED_API_VERSIONS = ("v3.0.0", "v3.0.1", "v3.0.2", "v3.1.0", "v3.2.0")

# ODCS logical types → DuckDB types, used when a property has no physicalType.
LOGICAL_TO_DUCKDB = {
    "string": "varchar",
    "integer": "bigint",
    "number": "double",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp",
    "time": "time",
    "object": "json",
    "array": "json",
}


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)


class ContractProperty(_Open):
    """One column of a schema object."""

    name: str
    physical_name: str | None = Field(default=None, alias="physicalName")
    logical_type: str | None = Field(default=None, alias="logicalType")
    physical_type: str | None = Field(default=None, alias="physicalType")
    description: str | None = None
    required: bool = False
    unique: bool = False
    primary_key: bool = Field(default=False, alias="primaryKey")
    classification: str | None = None
    quality: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def column(self) -> str:
        return self.physical_name or self.name

    @property
    def data_type(self) -> str:
        if self.physical_type:
            return self.physical_type.lower()
        return LOGICAL_TO_DUCKDB.get((self.logical_type or "string").lower(), "varchar")


class SchemaObject(_Open):
    """A table or view described by the contract."""

    name: str
    physical_name: str | None = Field(default=None, alias="physicalName")
    physical_type: str | None = Field(default=None, alias="physicalType")
    description: str | None = None
    properties: list[ContractProperty] = Field(default_factory=list)
    quality: list[dict[str, Any]] = Field(default_factory=list)


class Contract(_Open):
    """An ODCS data contract."""

    api_version: str = Field(alias="apiVersion")
    kind: str = "DataContract"
    id: str
    version: str
    status: str
    name: str | None = None
    domain: str | None = None
    data_product: str | None = Field(default=None, alias="dataProduct")
    schema_: list[SchemaObject] = Field(default_factory=list, alias="schema")

    def object_for(self, model: str) -> SchemaObject | None:
        """The schema object describing ``model`` (by physical name or name), or the only one."""
        for obj in self.schema_:
            if model in (obj.physical_name, obj.name):
                return obj
        return self.schema_[0] if len(self.schema_) == 1 else None


@lru_cache(maxsize=256)
def _load_cached(path: Path, mtime_ns: int, root: Path | None) -> Contract:
    shown = relative(path, root)
    try:
        document = read_yaml(path)
    except Exception as error:  # ruamel raises many error types for bad YAML
        raise SpecErrors([SpecProblem(shown, None, "(yaml)", f"not valid YAML: {error}")]) from None
    positions = Positions(document)
    try:
        return Contract.model_validate(document)
    except ValidationError as error:
        problems = [
            SpecProblem(
                shown,
                positions.line(tuple(item["loc"])),
                dotted(tuple(item["loc"])),
                item["msg"],
                "see the ODCS v3 standard: https://bitol-io.github.io/open-data-contract-standard/",
            )
            for item in error.errors(include_url=False)
        ]
        raise SpecErrors(problems) from None


def load_contract(path: Path, root: Path | None = None) -> Contract:
    """Load an ODCS contract; raise :class:`SpecErrors` naming the file and line on problems."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as error:
        shown = relative(path, root)
        raise SpecErrors([SpecProblem(shown, None, "(file)", f"cannot read: {error}")]) from None
    return _load_cached(path.resolve(), mtime, root)
