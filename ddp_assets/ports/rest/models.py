"""The REST port's response documents (they make its OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    status: int
    message: str
    hint: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    status: str
    snapshot: bool
    ports: int


class PortSummary(BaseModel):
    name: str
    description: str | None = None
    granted: bool = Field(description="Whether the caller may read the port.")
    published: bool = Field(description="Whether the port has a published version to serve.")


class ProductSummary(BaseModel):
    id: str
    name: str
    domain: str
    version: str
    status: str
    owners: list[str]
    purpose: str
    ports: list[PortSummary]


class Column(BaseModel):
    name: str
    type: str
    classification: str | None = None
    masked: str | None = Field(
        default=None, description="'hash' or 'redact' when masked for the caller."
    )
    description: str | None = None


class Version(BaseModel):
    version: int | None = Field(default=None, description="The port's version number.")
    rows: int
    run_id: str
    published_at: str
    contract_id: str
    contract_version: str
    checksum: str
    snapshot_at: str


class PortDetail(BaseModel):
    product: str
    port: str
    description: str | None = None
    version: Version | None
    columns: list[Column]
    primary_key: list[str]
    row_filtered: bool = Field(description="Whether the caller sees only some rows.")


class RowsPage(BaseModel):
    product: str
    port: str
    run_id: str
    version: int | None = Field(default=None, description="The version read (time travel).")
    columns: list[Column]
    rows: list[dict[str, Any]]
    limit: int
    offset: int
    next_offset: int | None
    filters: list[dict[str, Any]]


class PortVersion(BaseModel):
    version: int
    product_version: int | None = None
    rows: int | None = Field(
        default=None, description="Rows of the whole version (null when you see fewer)."
    )
    checksum: str | None = None
    contract_id: str
    contract_version: str
    run_id: str
    published_at: str
    dropped_at: str | None = None
    retained: bool = Field(description="Whether ?version= can read it.")
    published: bool = Field(description="Whether consumers read it now.")


class PortVersions(BaseModel):
    product: str
    port: str
    versions: list[PortVersion]
    moves: list[dict[str, Any]] = Field(description="Publishes and rollbacks, oldest first.")


class Alert(BaseModel):
    kind: str
    message: str
    at: str


class SloStatus(BaseModel):
    product: str
    port: str
    state: str = Field(description="pass, warn, fail (against the freshness SLO), unknown, no_slo")
    refresh: str
    last_materialized_at: str | None = None
    age_seconds: float | None = None
    max_age_seconds: float | None = None
    deadline: str | None = None
    open_alerts: list[Alert]
