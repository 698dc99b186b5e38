"""Column types as contracts write them → a normalized family the checks can compare.

ODCS leaves ``physicalType`` free text: ``varchar(100)``, ``uuid``, ``json``, ``float(3,2)``,
``int2``, ``decimal(10,2)``, ``timestamp with time zone``, ``array<string>`` are all ordinary.
:func:`column_type` reads the text with sqlglot's parser (DuckDB's dialect, the spelling
contracts use) into a :class:`ColumnType`, or, when ddp has no dtype check for it (nested types,
geometry, intervals, text sqlglot cannot read), into an :class:`UncheckedType` saying why: the
compiler turns that into a located warning (``ddp validate``) and the pandera layer checks only
the column's name and nullability. Nothing here imports ibis or pandera, so compiling a contract
stays cheap; :mod:`ddp_assets.contracts.pandera_checks` compares a family with a table's
actual column types.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

Family = Literal[
    "string", "integer", "float", "decimal", "boolean", "date", "timestamp", "time", "binary"
]


@dataclass(frozen=True)
class ColumnType:
    """A column type ddp checks: its family, and the sizes that matter for the comparison."""

    text: str
    """The type as written in the contract."""
    family: Family
    bits: int | None = None
    """Integers: 8 to 128; floats: 32 or 64; None when any width matches."""
    unsigned: bool = False
    precision: int | None = None
    """Decimals: None when any precision matches (``decimal`` without arguments)."""
    scale: int | None = None
    timezone: bool = False
    """Timestamps: with a time zone (``timestamptz``)."""
    json: bool = False
    """``json`` (ddp's type for the logical types object and array): a nested value (struct,
    map, list, as a Python model writes a dict or a list) is one too."""

    def describe(self) -> str:
        """The family in words, as failure messages show it."""
        match self.family:
            case "integer":
                return f"{'u' if self.unsigned else ''}int{self.bits}"
            case "float":
                return f"float{self.bits}" if self.bits else "a floating-point number"
            case "decimal":
                if self.precision is None:
                    return "a decimal"
                return f"decimal({self.precision},{self.scale or 0})"
            case "timestamp":
                return "timestamp with time zone" if self.timezone else "timestamp"
            case "string" if self.json:
                return "json: text, or a struct, map or list"
            case "string":
                return "a string (varchar, text, uuid or json)"
            case _:
                return self.family


@dataclass(frozen=True)
class UncheckedType:
    """A column type ddp has no dtype check for: why, and what to do about it."""

    text: str
    reason: str
    hint: str


_NESTED_HINT = (
    "its name and nullability are still checked; check its contents with a 'type: sql' "
    "quality rule, or declare it as json"
)
_UNKNOWN_HINT = (
    "write a DuckDB type: varchar, bigint, integer, double, decimal(p,s), boolean, date, "
    "timestamp, timestamptz, time, blob (or their PostgreSQL spellings)"
)

# ODCS logical type names written as physical types, which SQL dialects do not all read.
_ALIASES = {"string": "varchar", "long": "bigint", "number": "double", "datetime": "timestamp"}
_NESTED_NAMES = {"object", "array", "record", "list", "struct", "map"}


@lru_cache(maxsize=1024)
def column_type(text: str) -> ColumnType | UncheckedType:
    """The family of the column type ``text`` (case and spaces as written do not matter)."""
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    written = " ".join(text.split())
    lowered = written.lower()
    if lowered in _NESTED_NAMES:
        return UncheckedType(
            written, "is a nested type, which pandera does not check", _NESTED_HINT
        )
    try:
        parsed = exp.DataType.build(_ALIASES.get(lowered, written), dialect="duckdb")
    except (SqlglotError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return UncheckedType(
            written,
            f"is not a column type DuckDB's SQL dialect reads ({first[:120]})",
            _UNKNOWN_HINT,
        )
    return _family(written, parsed)


def _family(written: str, parsed: object) -> ColumnType | UncheckedType:
    from sqlglot import exp

    assert isinstance(parsed, exp.DataType)
    kind = parsed.this
    name = str(kind.value) if isinstance(kind, exp.DataType.Type) else str(kind)
    params = _numbers(parsed)
    if name in _STRINGS:
        return ColumnType(written, "string", json=name in ("JSON", "JSONB"))
    if name in _INTEGERS:
        bits, unsigned = _INTEGERS[name]
        return ColumnType(written, "integer", bits=bits, unsigned=unsigned)
    if name in _FLOATS:
        # float(p) / float(p,s) (MySQL's spelling) says nothing reliable about the width
        return ColumnType(written, "float", bits=None if parsed.expressions else _FLOATS[name])
    if name in _DECIMALS:
        if params is None:
            return UncheckedType(
                written, "has a precision or scale that is not a number", "e.g. decimal(10,2)"
            )
        precision = params[0] if params else None
        scale = (params[1] if len(params) > 1 else 0) if params else None
        return ColumnType(written, "decimal", precision=precision, scale=scale)
    if name == "BOOLEAN":
        return ColumnType(written, "boolean")
    if name in ("DATE", "DATE32"):
        return ColumnType(written, "date")
    if name in _TIMESTAMPS:
        return ColumnType(written, "timestamp", timezone=name in ("TIMESTAMPTZ", "TIMESTAMPLTZ"))
    if name in ("TIME", "TIME_NS"):
        return ColumnType(written, "time")
    if name in _BINARIES:
        return ColumnType(written, "binary")
    if name in _NESTED or parsed.args.get("nested"):
        return UncheckedType(
            written,
            "is a nested type (array, struct or map), which pandera does not check",
            _NESTED_HINT,
        )
    if name == "USER-DEFINED":
        return UncheckedType(written, "is not a type DuckDB knows", _UNKNOWN_HINT)
    return UncheckedType(
        written,
        f"has no pandera dtype check in ddp (read as {name.lower()})",
        "its name and nullability are still checked; " + _UNKNOWN_HINT,
    )


def _numbers(parsed: object) -> list[int] | None:
    """The numeric arguments of a type (``decimal(10,2)`` → [10, 2]); None if one is not."""
    from sqlglot import exp

    assert isinstance(parsed, exp.DataType)
    numbers = []
    for param in parsed.expressions:
        value = param.this if isinstance(param, exp.DataTypeParam) else param
        if not isinstance(value, exp.Literal) or value.is_string:
            return None
        try:
            numbers.append(int(value.name))
        except ValueError:
            return None
    return numbers


_STRINGS = {
    "VARCHAR",
    "NVARCHAR",
    "CHAR",
    "NCHAR",
    "BPCHAR",
    "TEXT",
    "TINYTEXT",
    "MEDIUMTEXT",
    "LONGTEXT",
    "NAME",
    "FIXEDSTRING",
    "UUID",
    "JSON",
    "JSONB",
}
_INTEGERS = {
    "TINYINT": (8, False),
    "SMALLINT": (16, False),
    "SMALLSERIAL": (16, False),
    "MEDIUMINT": (32, False),
    "INT": (32, False),
    "SERIAL": (32, False),
    "BIGINT": (64, False),
    "BIGSERIAL": (64, False),
    "INT128": (128, False),
    "UTINYINT": (8, True),
    "USMALLINT": (16, True),
    "UMEDIUMINT": (32, True),
    "UINT": (32, True),
    "UBIGINT": (64, True),
    "UINT128": (128, True),
}
_FLOATS = {"FLOAT": 32, "DOUBLE": 64}
_DECIMALS = {"DECIMAL", "DECIMAL32", "DECIMAL64", "DECIMAL128", "BIGDECIMAL"}
_TIMESTAMPS = {
    "TIMESTAMP",
    "TIMESTAMPNTZ",
    "DATETIME",
    "DATETIME2",
    "SMALLDATETIME",
    "TIMESTAMP_S",
    "TIMESTAMP_MS",
    "TIMESTAMP_NS",
    "TIMESTAMPTZ",
    "TIMESTAMPLTZ",
}
_BINARIES = {"BINARY", "VARBINARY", "BLOB", "TINYBLOB", "MEDIUMBLOB", "LONGBLOB"}
_NESTED = {"ARRAY", "LIST", "STRUCT", "MAP", "OBJECT", "UNION", "NESTED", "SET"}
