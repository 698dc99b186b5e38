"""Screening one landing file before any run reads it: kind, header, types, readability.

Everything happens in an in-memory DuckDB (never the warehouse, so a screen never waits for
the writer), and the cheap checks come first:

1. the entry is a regular file inside the landing zone (``lstat``; never opened otherwise);
2. it is not empty;
3. ``DESCRIBE`` of DuckDB's reader gives its header and sniffed types (a sample, not a scan);
4. the header names the port's expected columns (:class:`ExpectedColumns`);
5. a column whose sniffed type differs from the expected one is scanned with ``try_cast``,
   so a column DuckDB typed loosely (an empty one reads as VARCHAR) passes while a value that
   cannot become the expected type is reported with its row and line;
6. the whole file reads without error (a bad value past the sniffer's sample).

The expected columns of a port come from its input contract when it has one
(``contracts/<port>.odcs.yaml``: exactly those columns, with their physical types), else from
the columns the raw table was last loaded with, else from the port's first accepted file.
Without a contract a file may add columns (the export grew; a warning is logged) but may not
lose or retype one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ddp_assets.contracts.compiler import ContractPlan
from ddp_assets.ingest.files import refusal_reason
from ddp_assets.warehouse import quote
from ddp_assets.warehouse.duckdb import file_reader

if TYPE_CHECKING:
    import duckdb  # imported where used: not at a definitions load

# A type name as a contract or the warehouse catalog spells one: letters, digits, spaces,
# parentheses and commas (DECIMAL(10,2), TIMESTAMP WITH TIME ZONE); never SQL of its own.
_TYPE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_ ]*(\(\s*\d+\s*(,\s*\d+\s*)?\))?$")


@dataclass(frozen=True)
class ExpectedColumns:
    """The columns a port's files must have: name → DuckDB type, and where that comes from."""

    columns: tuple[tuple[str, str], ...]
    source: str  # e.g. "the input contract urn:…@1.0.0", in messages
    exact: bool  # True: no other column is allowed (a contract names all of them)

    @classmethod
    def of_contract(cls, plan: ContractPlan) -> ExpectedColumns:
        return cls(
            tuple((c.name, c.data_type) for c in plan.columns),
            f"the input contract {plan.contract_id}@{plan.contract_version}",
            exact=True,
        )


@dataclass(frozen=True)
class Screened:
    """The verdict on one file: why it is refused (None: accepted), its columns, and notes."""

    reason: str | None
    columns: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def describe(
    connection: duckdb.DuckDBPyConnection, path: Path, file_format: str
) -> tuple[tuple[str, str], ...]:
    """The file's columns and sniffed types, as the load's reader sees them (no full scan)."""
    rows = connection.execute(f"describe select * from {file_reader([path], file_format)}")
    return tuple((str(name), str(kind)) for name, kind, *_ in rows.fetchall())


def canonical_type(connection: duckdb.DuckDBPyConnection, type_name: str) -> str | None:
    """DuckDB's own spelling of a type (``integer`` → ``INTEGER``), None if it is not one."""
    import duckdb

    if not _TYPE_NAME.match(type_name.strip()):
        return None
    try:
        row = connection.execute(f"select typeof(cast(null as {type_name}))").fetchone()
    except duckdb.Error:
        return None
    return str(row[0]) if row else None


def _where(row: int, file_format: str) -> str:
    if file_format == "csv":
        return f"row {row} (line {row + 1})"
    if file_format == "json":
        return f"line {row}"
    return f"row {row}"


def _first_uncastable(
    connection: duckdb.DuckDBPyConnection,
    path: Path,
    file_format: str,
    column: str,
    target: str,
) -> tuple[int, str] | None:
    """The first value of ``column`` that does not cast to ``target``, with its row number."""
    name = quote(column)
    row = connection.execute(
        f"select n, cast(v as varchar) from (select row_number() over () as n, {name} as v "
        f"from {file_reader([path], file_format)}) "
        f"where v is not null and try_cast(cast(v as varchar) as {target}) is null "
        "order by n limit 1"
    ).fetchone()
    return (int(row[0]), str(row[1])) if row else None


def header_mismatch(
    found: tuple[tuple[str, str], ...], expected: ExpectedColumns
) -> tuple[str | None, tuple[str, ...]]:
    """Why the header does not fit (None when it does), and the columns it adds.

    Names compare case-insensitively, as DuckDB's identifiers and its union by name do.
    """
    have = {name.lower(): name for name, _ in found}
    want = {name.lower(): name for name, _ in expected.columns}
    missing = [want[key] for key in want if key not in have]
    extra = tuple(have[key] for key in have if key not in want)
    problems = []
    if missing:
        problems.append("missing " + ", ".join(missing))
    if extra and expected.exact:
        problems.append("unexpected " + ", ".join(extra))
    if not problems:
        return None, extra
    header = ", ".join(name for name, _ in found) or "(none)"
    return (
        f"its header does not match {expected.source}: {'; '.join(problems)} (header: {header})"
    ), extra


def type_mismatches(
    connection: duckdb.DuckDBPyConnection,
    path: Path,
    file_format: str,
    found: tuple[tuple[str, str], ...],
    expected: ExpectedColumns,
) -> list[str]:
    """One message per column whose values cannot all become the expected type."""
    sniffed = {name.lower(): (name, kind) for name, kind in found}
    problems = []
    for name, wanted in expected.columns:
        if name.lower() not in sniffed:
            continue
        column, kind = sniffed[name.lower()]
        target = canonical_type(connection, wanted)
        if target is None or target == "VARCHAR" or target == kind:
            continue  # a type DuckDB does not know is not judged; anything reads as text
        bad = _first_uncastable(connection, path, file_format, column, target)
        if bad is not None:
            row, value = bad
            problems.append(
                f"column {column}: {value!r} at {_where(row, file_format)} is not {target}, "
                f"its type in {expected.source} (the file reads as {kind})"
            )
    return problems


def screen_file(
    connection: duckdb.DuckDBPyConnection,
    path: Path,
    file_format: str,
    landing_dir: Path,
    expected: ExpectedColumns | None,
) -> Screened:
    """Screen one landing entry; the contract's data checks (pandera) are the caller's."""
    import duckdb

    refused = refusal_reason(path, landing_dir)
    if refused is not None:
        return Screened(refused)
    try:
        size = os.lstat(path).st_size
    except OSError as error:
        return Screened(f"cannot be inspected: {error.strerror or error}")
    if size == 0:
        return Screened("the file is empty")
    try:
        found = describe(connection, path, file_format)
    except duckdb.Error as error:
        return Screened(f"cannot be read as {file_format}: {_first_line(error)}")
    notes: tuple[str, ...] = ()
    if expected is not None:
        mismatch, extra = header_mismatch(found, expected)
        if mismatch is not None:
            return Screened(mismatch, found)
        if extra:
            notes = (f"adds column(s) {', '.join(extra)} not in {expected.source}",)
        try:
            problems = type_mismatches(connection, path, file_format, found, expected)
        except duckdb.Error as error:
            return Screened(f"cannot be read as {file_format}: {_first_line(error)}", found)
        if problems:
            return Screened("; ".join(problems), found)
    try:
        connection.execute(f"select count(*) from {file_reader([path], file_format)}").fetchall()
    except duckdb.Error as error:
        return Screened(f"cannot be read as {file_format}: {_first_line(error)}", found)
    return Screened(None, found, notes)
