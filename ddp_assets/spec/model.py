"""The data product spec: the typed model behind every product's ``defs.yaml``.

A product folder (``ddp_assets/defs/<domain>/<product>/``) holds one ``defs.yaml`` whose
``attributes`` are a :class:`ProductSpec`, the product's SQL models and its ODCS contracts.
Every model forbids unknown keys so that a typo is reported with a did-you-mean hint.
"""

from __future__ import annotations

import calendar
import re
import zoneinfo
from datetime import datetime, timedelta
from functools import cache
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ddp_assets.spec.errors import did_you_mean

SLUG = r"^[a-z][a-z0-9_]*$"
SEMVER = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
OWNER = r"^(team:[a-z0-9][a-z0-9_.-]*|[^@\s]+@[^@\s]+\.[^@\s]+)$"
DURATION = re.compile(r"^(?P<n>\d+)\s*(?P<unit>m|h|d)$")
CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
CRON_FIELD = re.compile(r"^[\d*/,?LW#A-Za-z-]+$")
CRON_MACROS = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")

Slug = Annotated[str, Field(pattern=SLUG, max_length=63)]

SPEC_ERROR = "value_error"
"""The pydantic error type of the checks below (a :class:`SpecValueError` in its context)."""


# The durations a freshness SLO may use: at least a minute, at most ten years (what every
# consumer of the timedelta, Dagster's freshness policies included, handles without overflow).
MIN_DURATION = timedelta(minutes=1)
MAX_DURATION = timedelta(days=3650)
_UNIT_MINUTES = {"m": 1, "h": 60, "d": 24 * 60}


def duration(text: str) -> timedelta:
    """'30m', '6h', '2d' → a timedelta (the text was validated against DURATION)."""
    match = DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like '6h'")
    unit = {"m": "minutes", "h": "hours", "d": "days"}[match["unit"]]
    return timedelta(**{unit: int(match["n"])})


def duration_problem(text: str) -> str | None:
    """Why a duration is out of bounds (:data:`MIN_DURATION`..:data:`MAX_DURATION`), or None.

    Compared in minutes, as integers: a huge number never reaches ``timedelta`` (which
    overflows past 999999999 days).
    """
    match = DURATION.match(text)
    if match is None:
        return f"{text!r} is not a duration"
    minutes = int(match["n"]) * _UNIT_MINUTES[match["unit"]]
    if minutes < MIN_DURATION.total_seconds() // 60:
        return f"{text!r} is shorter than a minute"
    if minutes > MAX_DURATION.total_seconds() // 60:
        return f"{text!r} is longer than {MAX_DURATION.days} days"
    return None


# -- cron expressions ---------------------------------------------------------------------

_CRON_FIELDS = (  # name, lowest, highest, names
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    (
        "month",
        1,
        12,
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    ),
    ("weekday", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
_DAYS_IN_MONTH = {
    1: 31,
    2: 29,
    3: 31,
    4: 30,
    5: 31,
    6: 30,
    7: 31,
    8: 31,
    9: 30,
    10: 31,
    11: 30,
    12: 31,
}


class _CronFieldError(ValueError):
    pass


def _cron_values(text: str, index: int) -> set[int] | None:
    """The values one cron field matches; None for the special forms (L, W, #) and '*'/'?'."""
    name, lowest, highest, names = _CRON_FIELDS[index]
    if text in ("*", "?") or any(c in text.upper() for c in "LW#"):
        return None

    def number(token: str) -> int:
        lowered = token.lower()
        if lowered in names:
            return names.index(lowered) + (1 if index == 3 else 0)
        if not token.isdigit():
            raise _CronFieldError(f"{name} {token!r} is not a number")
        value = int(token)
        if not lowest <= value <= highest:
            raise _CronFieldError(f"{name} {value} is out of range {lowest}-{highest}")
        return value

    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise _CronFieldError(f"{name} step {step_text!r} is not a positive number")
            step = int(step_text)
        if base == "*":
            start, end = lowest, highest
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = number(first), number(last)
        else:
            start = number(base)
            end = highest if step_text else start
        span = (
            range(start, end + 1)
            if start <= end
            else [*range(start, highest + 1), *range(lowest, end + 1)]
        )
        values.update(list(span)[::step])
    return values


def cron_problem(expression: str) -> str | None:
    """Why Dagster would not schedule ``expression``, or why it would never fire; None if fine.

    The fields are read as Dagster's cron parser reads them (5 fields, ranges, steps, names,
    L/W/#), and the expression is then given to Dagster itself (a ``ScheduleDefinition``, as
    the code location builds for it): what ``ddp validate`` accepts, the load accepts. Last,
    croniter (the library Dagster's schedules iterate with) must find a next time it fires.

    Why a field reader of our own before croniter: croniter's errors do not say which field is
    wrong (``[61 25 * * *] is not acceptable, out of range``); these name it, its range, and the
    months a day does not exist in, at the spec's line.
    """
    if expression in CRON_MACROS:
        return None
    fields = expression.split()
    if len(fields) != 5 or not all(CRON_FIELD.match(f) for f in fields):
        return f"{expression!r} is not a cron expression"
    try:
        expanded = [_cron_values(text, index) for index, text in enumerate(fields)]
    except _CronFieldError as error:
        return f"{expression!r} is not a valid cron expression: {error}"
    days, months = expanded[2], expanded[3]
    weekday_any = fields[4] in ("*", "?")
    if days is not None and weekday_any:  # else some day of every month matches
        possible = [
            m for m in (months or range(1, 13)) if any(d <= _DAYS_IN_MONTH.get(m, 31) for d in days)
        ]
        if not possible:
            named = [calendar.month_name[m] for m in sorted(months or range(1, 13))]
            listed = ", ".join(str(d) for d in sorted(days))
            verb = "has" if len(named) == 1 else "have"
            return f"{expression!r} never fires: {' and '.join(named)} {verb} no day {listed}"
    import dagster as dg  # here: only a spec with a schedule pays for the import

    try:
        dg.ScheduleDefinition(
            name="ddp_validate",
            cron_schedule=expression,
            target=dg.AssetSelection.all(),
        )
    except dg.DagsterInvalidDefinitionError:
        return f"{expression!r} is not a cron expression Dagster can schedule"
    from croniter import CroniterBadCronError, CroniterBadDateError, croniter

    try:
        croniter(expression, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        return f"{expression!r} never fires"
    except (CroniterBadCronError, ValueError) as error:
        return f"{expression!r} is not a valid cron expression: {error}"
    return None


class SpecValueError(ValueError):
    """A check's error with a hint; ``loc`` is the field below the validated model, if any.

    A ``ValueError``, which pydantic reports as a ``value_error`` with the exception in the
    error's context: Dagster, which rebuilds validation errors with their source position when
    it loads a component, accepts only pydantic's own error types (a custom type made its load
    fail with ``KeyError: Invalid error type``). The loader reads ``message``, ``hint`` and
    ``loc`` back, so that a check spanning several fields still names the one to change.
    """

    def __init__(self, message: str, hint: str | None = None, loc: tuple[str | int, ...] = ()):
        super().__init__(f"{message} (hint: {hint})" if hint else message)
        self.message = message
        self.hint = hint
        self.loc = loc


def spec_error(message: str, hint: str | None = None, *loc: str | int) -> SpecValueError:
    """A validation error with a hint; ``loc`` is the field below the validated model, if any."""
    return SpecValueError(message, hint, loc)


@cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _check_timezone(value: str) -> str:
    if value not in _timezones():
        raise spec_error(
            f"unknown time zone {value!r}",
            did_you_mean(value, _timezones()) or "use an IANA name, e.g. 'UTC' or 'Europe/Paris'",
        )
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Description(_Strict):
    """What the product is for, what it does not do, and how to use it."""

    purpose: str = Field(
        min_length=1, description="Why the product exists, in one or two sentences."
    )
    limitations: str | None = Field(default=None, description="Known gaps and caveats.")
    usage: str | None = Field(
        default=None, description="How consumers should use the output ports."
    )


class ContractRequirement(_Strict):
    """The contract an input port expects from its upstream port (checked by the contracts)."""

    id: str = Field(description="The upstream contract's id.")
    version: str = Field(default="*", description="A version range, e.g. '>=1.0.0,<2.0.0'.")


class FileInputPort(_Strict):
    """Landing-zone files ingested into a raw table ``<product>.<name>``."""

    name: Slug = Field(description="Port name; also the raw table's name.")
    type: Literal["file"]
    path: str = Field(
        min_length=1,
        description="Glob relative to the landing zone, e.g. 'orders/orders*.csv'.",
    )
    format: Literal["csv", "parquet", "json"]
    description: str | None = None

    @field_validator("path")
    @classmethod
    def _inside_landing_zone(cls, value: str) -> str:
        hint = "write a glob relative to the landing zone, e.g. 'orders/*.csv'"
        if value.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", value):
            raise spec_error(f"{value!r} is an absolute path", hint)
        if ".." in re.split(r"[/\\]", value):
            raise spec_error(f"{value!r} leaves the landing zone ('..')", hint)
        return value


class TableInputPort(_Strict):
    """An existing warehouse table, referenced as ``source('<product>', '<name>')``."""

    name: Slug
    type: Literal["table"]
    table: str = Field(pattern=r"^[A-Za-z_][\w]*\.[A-Za-z_][\w]*$", description="schema.table")
    description: str | None = None


class ProductInputPort(_Strict):
    """Another product's output port, written ``product.port``; SQL refers to its model."""

    name: Slug
    type: Literal["product"]
    product: str = Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$", description="product.port")
    contract: ContractRequirement | None = None
    description: str | None = None
    pin: int | None = Field(
        default=None,
        ge=1,
        description="A version of the upstream port this consumer keeps: its retention never "
        "drops it (read it with ?version=N or <port>__v<N>; models read the published one).",
    )

    @property
    def upstream_product(self) -> str:
        return self.product.split(".", 1)[0]

    @property
    def upstream_port(self) -> str:
        return self.product.split(".", 1)[1]


class DepotInputPort(_Strict):
    """Data loaded by dlt from a depot (``depots/<name>.yaml``) into ``<product>.<name>``.

    One of ``table`` or ``query`` (a postgres/sql depot), ``resource`` (a rest_api depot) or
    ``files`` (a filesystem depot). With a ``cursor`` only what is newer than the last load's
    greatest value is loaded (dlt's incremental state, kept per port); with a ``primary_key``
    changed rows are merged, else appended (without a cursor the table is replaced).
    """

    name: Slug = Field(description="Port name; also the raw table's name.")
    type: Literal["depot"]
    depot: Slug = Field(description="The depot's name: its file depots/<depot>.yaml.")
    table: str | None = Field(
        default=None, pattern=r"^([A-Za-z_][\w]*\.)?[A-Za-z_][\w]*$", description="[schema.]table"
    )
    query: str | None = Field(default=None, min_length=1, description="A SELECT to load.")
    resource: str | None = Field(
        default=None, min_length=1, description="An API path relative to the depot's base_url."
    )
    files: str | None = Field(
        default=None, min_length=1, description="A glob relative to the depot's bucket_url."
    )
    format: Literal["csv", "parquet", "jsonl"] | None = Field(
        default=None, description="The files' format (with 'files')."
    )
    cursor: str | None = Field(
        default=None,
        description="Incremental cursor column or JSON field, e.g. 'updated_at'.",
    )
    initial_value: str | int | float | None = Field(
        default=None, description="The cursor's value before the first load."
    )
    primary_key: list[str] = Field(
        default_factory=list, description="Columns identifying a row: changed rows are merged."
    )
    cursor_param: str | None = Field(
        default=None,
        description="The API query parameter that receives the last cursor value.",
    )
    params: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Query parameters of the API resource."
    )
    data_selector: str | None = Field(
        default=None, description="JSONPath of the records in an API response, e.g. 'data'."
    )
    paginator: str | dict[str, str | int | float | bool | None] | None = Field(
        default=None,
        description="dlt's paginator: a type ('page_number', 'offset', 'cursor', 'json_link', "
        "'header_link') or its settings, e.g. {type: json_link, next_url_path: next}.",
    )
    description: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DepotInputPort:
        given = [f for f in ("table", "query", "resource", "files") if getattr(self, f)]
        if len(given) != 1:
            raise spec_error(
                "a depot port loads exactly one of 'table', 'query', 'resource' or 'files'"
                + (f" (found {', '.join(given)})" if given else ""),
                "e.g. 'table: public.customers' with 'cursor: updated_at'",
            )
        if self.files and self.format is None:
            raise spec_error("'files' needs a 'format'", "add 'format: parquet'", "format")
        if self.cursor_param and not self.resource:
            raise spec_error("'cursor_param' is for an API 'resource'", "remove it", "cursor_param")
        if self.cursor_param and not self.cursor:
            raise spec_error(
                "'cursor_param' needs a 'cursor'",
                "name the field of the records it compares, e.g. 'cursor: updated_at'",
                "cursor",
            )
        return self


InputPort = Annotated[
    FileInputPort | TableInputPort | ProductInputPort | DepotInputPort,
    Field(discriminator="type"),
]


class ModelSelection(_Strict):
    """Which dbt models the product owns: every SQL file under these folders."""

    paths: list[str] = Field(
        default_factory=lambda: ["models"],
        min_length=1,
        description="Folders relative to the product folder.",
    )


class PythonModel(_Strict):
    """A model computed in Python; its result is written to ``<product>.<name>``."""

    name: Slug
    entrypoint: str = Field(
        pattern=r"^[\w./-]+\.py:[A-Za-z_]\w*$",
        description="'file.py:function', relative to the product folder.",
    )
    inputs: list[str] = Field(
        default_factory=list,
        description="Models of this product or input port names the function reads.",
    )
    description: str | None = None


class Retention(_Strict):
    """How many published versions of an output port are kept (rollback, time travel)."""

    versions: int = Field(default=3, ge=1, le=1000, description="Newest versions kept.")


PARTITION_COLUMN = r"^[A-Za-z_][A-Za-z0-9_]*$"


def partition_start(value: str) -> datetime | None:
    """A ``partitions.start`` as a (naive) datetime: a day, or a day and time; None if neither."""
    for layout in ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"):
        try:
            return datetime.strptime(value, layout)
        except ValueError:
            continue
    return None


class Partitioning(_Strict):
    """How a product is partitioned: each run builds, audits and publishes one partition (or a
    range of them) of every output port, and leaves the others as they were.

    Time windows (``by: hour|day|month``) of a timestamp or date column, from ``start`` on, in
    ``timezone``; static keys (``by: key``) of a column; or landing files (``by: file``): each
    file of the product's landing ports is a partition (a Dagster dynamic partition), whose key
    ddp writes into ``column`` of the landing table. The column is the landing data's
    (every model filters on it with ``{{ ddp_partition_filter('<column>') }}``); an output
    port whose relation names it differently says so with ``partition_column``.
    """

    by: Literal["hour", "day", "month", "key", "file"] = Field(
        description="hour, day or month windows of a time column, key: static keys, or file: "
        "each landing file a partition (its key written into the column)."
    )
    column: str = Field(
        pattern=PARTITION_COLUMN, max_length=63, description="The column partitions split on."
    )
    start: str | None = Field(
        default=None, description="The first window's start (time windows), e.g. '2026-01-01'."
    )
    timezone: str = Field(default="UTC", description="The windows' time zone (time windows).")
    keys: list[Annotated[str, Field(pattern=r"^[\w.-]+$", max_length=63)]] = Field(
        default_factory=list, description="The partition keys (by: key)."
    )
    batch: int = Field(
        default=31,
        ge=1,
        le=1000,
        description="Most partitions one run builds in a backfill (bounded batches).",
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_timezone(value)

    @field_validator("start")
    @classmethod
    def _start(cls, value: str | None) -> str | None:
        if value is not None and partition_start(value) is None:
            raise spec_error(
                f"start {value!r} is not a date", "write the first window's day, e.g. '2026-01-01'"
            )
        return value

    @model_validator(mode="after")
    def _kind(self) -> Partitioning:
        if self.by == "file":
            for name, value in (("start", self.start), ("keys", self.keys)):
                if value:
                    raise spec_error(
                        f"'{name}' is not for 'by: file' partitions",
                        f"remove '{name}': each landing file is its own partition, keyed by "
                        "its path in the landing zone (docs/partitions.md)",
                        name,
                    )
            return self
        if self.by == "key":
            if not self.keys:
                raise spec_error(
                    "static partitions need their keys",
                    "list them, e.g. 'keys: [emea, amer, apac]'",
                    "keys",
                )
            if len(set(self.keys)) != len(self.keys):
                raise spec_error("a partition key is listed twice", "list each key once", "keys")
        else:
            if self.start is None:
                raise spec_error(
                    f"{ {'hour': 'hourly', 'day': 'daily', 'month': 'monthly'}[self.by] } "
                    "windows need a start",
                    "write the first window's day, e.g. 'start: \"2026-01-01\"'",
                    "start",
                )
            if self.keys:
                raise spec_error(
                    "keys are for 'by: key' partitions",
                    f"remove 'keys' (windows of {self.by}s have no static keys)",
                    "keys",
                )
        return self


class OutputPort(_Strict):
    """A published relation consumers may read, governed by an ODCS contract."""

    name: Slug
    type: Literal["table", "view"] = "table"
    model: Slug = Field(description="The dbt or Python model behind the port.")
    contract: str = Field(min_length=1, description="ODCS contract file, relative to the product.")
    description: str | None = None
    retain: Retention | None = Field(
        default=None, description="Versions kept (default: the platform's, 3)."
    )
    partition_column: str | None = Field(
        default=None,
        pattern=PARTITION_COLUMN,
        max_length=63,
        description="The port's column holding the partition (default: partitions.column).",
    )


class Freshness(_Strict):
    """How fresh the output ports must be: a maximum age, or a daily deadline."""

    max_age: str | None = Field(default=None, description="e.g. '30m', '6h', '1d'.")
    deadline: str | None = Field(default=None, description="'HH:MM', data of today by then.")
    warn_after: str | None = Field(
        default=None,
        description="Age from which the SLO warns before it fails (default: 3/4 of max_age; "
        "with a deadline, how long before the deadline).",
    )
    timezone: str = "UTC"

    @field_validator("max_age", "warn_after")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        problem = None if value is None else duration_problem(value)
        if problem is not None:
            raise spec_error(
                problem,
                "write a number followed by m, h or d, from 1m to "
                f"{MAX_DURATION.days}d, e.g. 'max_age: 6h'",
            )
        return value

    @field_validator("deadline")
    @classmethod
    def _clock(cls, value: str | None) -> str | None:
        if value is not None and not CLOCK.match(value):
            raise spec_error(
                f"{value!r} is not a time of day",
                "write 'HH:MM' in quotes, e.g. deadline: '06:00'",
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return _check_timezone(value)

    @model_validator(mode="after")
    def _one_of(self) -> Freshness:
        if self.max_age is not None and self.deadline is not None:
            raise spec_error(
                "sets both 'max_age' and 'deadline'",
                "keep one: 'max_age' for a maximum age, or 'deadline' for a daily time",
                "deadline",
            )
        if self.max_age is None and self.deadline is None:
            raise spec_error(
                "needs 'max_age' or 'deadline'",
                "add e.g. 'max_age: 6h', or 'deadline: \"06:00\"'",
            )
        warn, fail = self.warn_after_delta, self.max_age_delta
        if warn is None and fail is not None and fail * 3 / 4 < MIN_DURATION:
            raise spec_error(
                f"max_age {self.max_age} leaves less than a minute to warn before the SLO fails "
                "(warn_after is 3/4 of max_age by default)",
                "write max_age: 2m or more, or set warn_after below max_age",
                "max_age",
            )
        if warn is not None and fail is not None and warn >= fail:
            raise spec_error(
                f"warn_after ({self.warn_after}) must be shorter than max_age ({self.max_age})",
                "warn before the SLO fails, e.g. max_age: 6h with warn_after: 4h",
                "warn_after",
            )
        return self

    @property
    def max_age_delta(self) -> timedelta | None:
        return duration(self.max_age) if self.max_age else None

    @property
    def warn_after_delta(self) -> timedelta | None:
        return duration(self.warn_after) if self.warn_after else None


class SLOs(_Strict):
    """Service levels: how the product is refreshed and how fresh it must be."""

    refresh: Literal["schedule", "on_upstream_change", "manual"] = "manual"
    schedule: str | None = Field(
        default=None, description="Cron expression, with 'refresh: schedule'."
    )
    timezone: str = "UTC"
    freshness: Freshness | None = None

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        problem = None if value is None else cron_problem(value)
        if problem is not None:
            hint = "write 5 fields 'minute hour day month weekday' in quotes, e.g. '0 5 * * *'"
            if "never fires" in problem:
                hint = "pick a day that exists in the month, e.g. '0 0 28 2 *' or '0 0 L 2 *'"
            elif "out of range" in problem:
                hint = "minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-7; e.g. '0 5 * * *'"
            raise spec_error(problem, hint)
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return _check_timezone(value)

    @model_validator(mode="after")
    def _schedule_needed(self) -> SLOs:
        if self.refresh == "schedule" and not self.schedule:
            raise spec_error(
                "'refresh: schedule' needs a 'schedule'",
                "add a cron expression under slos, e.g. schedule: '0 5 * * *'",
                "schedule",
            )
        if self.schedule and self.refresh != "schedule":
            raise spec_error(
                f"'schedule' is only used with 'refresh: schedule', not '{self.refresh}'",
                "set 'refresh: schedule', or remove 'schedule'",
                "schedule",
            )
        return self


CONSUMER = r"^(role:[a-z][a-z0-9_-]*|[a-z0-9][a-z0-9_.@-]*)$"
COLUMN = r"^[A-Za-z_][A-Za-z0-9_]*$"

FilterOp = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "is_null", "not_null"]
MaskStrategy = Literal["hash", "redact"]
Scalar = str | int | float | bool
NO_VALUE_OPS = ("is_null", "not_null")
LIST_OPS = ("in", "not_in")


class RowCondition(_Strict):
    """One condition on a column of the port: a column, an operator and a value.

    Row filters are data, never SQL text: the ports layer compiles them into parameterized
    SQL (DuckDB views, PostgreSQL security-barrier views), so a spec cannot inject SQL.
    """

    column: str = Field(pattern=COLUMN, max_length=63, description="A column of the port.")
    op: FilterOp = Field(description="eq, ne, lt, le, gt, ge, in, not_in, is_null, not_null.")
    value: Scalar | list[Scalar] | None = Field(
        default=None,
        description="A value; a non-empty list for 'in'/'not_in'; nothing for the null tests.",
    )

    @model_validator(mode="after")
    def _value_fits_op(self) -> RowCondition:
        if self.op in NO_VALUE_OPS:
            if self.value is not None:
                raise spec_error(
                    f"'{self.op}' takes no value",
                    f"remove 'value', or use 'eq' to compare with {self.value!r}",
                    "value",
                )
        elif self.op in LIST_OPS:
            if not isinstance(self.value, list) or not self.value:
                raise spec_error(
                    f"'{self.op}' needs a non-empty list of values",
                    f"write e.g. {{column: {self.column}, op: {self.op}, value: [DE, FR]}}",
                    "value",
                )
        elif self.value is None or isinstance(self.value, list):
            found = "no value" if self.value is None else "a list"
            raise spec_error(
                f"'{self.op}' needs one value, found {found}",
                "use 'in' to compare with a list"
                if isinstance(self.value, list)
                else f"add e.g. 'value: DE' to the condition on '{self.column}'",
                "value",
            )
        return self


class Grant(_Strict):
    """Who may read which output ports, which rows, and which classified columns in clear."""

    to: str = Field(
        pattern=CONSUMER,
        max_length=100,
        description="A consumer id (the id its API tokens are issued to) or 'role:<name>'.",
    )
    ports: list[str] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        description="Output port names of this product, or '*' for all of them.",
    )
    rows: list[RowCondition] = Field(
        default_factory=list,
        description="Row filter: the grantee sees only rows where every condition holds "
        "(empty: every row).",
    )
    cleared_for: list[str] = Field(
        default_factory=list,
        description="Column classifications (from the ODCS contracts, e.g. 'restricted') the "
        "grantee reads in clear; '*' for all. Other classified columns are masked.",
    )


class Policies(_Strict):
    """Access policies for the product's output ports (enforced by ``ddp_assets.ports``).

    A consumer reads a port when a grant names it or one of its roles; several matching grants
    add up (the rows of any of them, the clearances of all of them). A column whose contract
    ``classification`` is anything but 'public' or 'internal' is masked for a consumer not
    cleared for it: with the strategy ``masking`` gives its classification, else 'hash'.
    """

    classification: Literal["public", "internal", "confidential", "restricted"] = "internal"
    masking: dict[str, MaskStrategy] = Field(
        default_factory=dict,
        description="Column classification → 'hash' (salted SHA-256, joinable) or 'redact'.",
    )
    grants: list[Grant] = Field(default_factory=list)


class ProductSpec(_Strict):
    """A data product: one deployable unit of code, data, metadata and infrastructure."""

    id: Slug = Field(description="Unique id; also the dbt group, Dagster group and schema name.")
    name: str = Field(min_length=1)
    domain: Slug
    version: str = Field(pattern=SEMVER, description="Semantic version, e.g. '1.2.0'.")
    status: Literal["draft", "active", "deprecated"] = "draft"
    tier: Literal["bronze", "silver", "gold"] = "bronze"
    owners: list[Annotated[str, Field(pattern=OWNER)]] = Field(
        min_length=1, description="Emails or 'team:<name>'; the first one owns the dbt group."
    )
    description: Description
    tags: list[Annotated[str, Field(pattern=r"^[\w:.-]+$")]] = Field(default_factory=list)
    input_ports: list[InputPort] = Field(default_factory=list)
    models: ModelSelection = Field(default_factory=ModelSelection)
    python_models: list[PythonModel] = Field(default_factory=list)
    output_ports: list[OutputPort] = Field(min_length=1)
    partitions: Partitioning | None = Field(
        default=None, description="Partitioned runs: each builds and publishes one partition."
    )
    slos: SLOs = Field(default_factory=SLOs)
    policies: Policies = Field(default_factory=Policies)

    @model_validator(mode="after")
    def _unique_names(self) -> ProductSpec:
        for label, field, names in (
            ("input port", "input_ports", [p.name for p in self.input_ports]),
            ("output port", "output_ports", [p.name for p in self.output_ports]),
            ("python model", "python_models", [m.name for m in self.python_models]),
        ):
            seen: set[str] = set()
            for index, name in enumerate(names):
                if name in seen:
                    raise spec_error(
                        f"duplicate {label} name '{name}'",
                        f"{label} names are unique within a product; rename one of them",
                        field,
                        index,
                        "name",
                    )
                seen.add(name)
        backed: dict[str, str] = {}
        for index, port in enumerate(self.output_ports):
            if port.model in backed:
                raise spec_error(
                    f"model '{port.model}' already backs output port '{backed[port.model]}'",
                    "one output port per model: each port is audited and published as its "
                    "model's relation; add a model (e.g. a view over it) for the second port",
                    "output_ports",
                    index,
                    "model",
                )
            backed[port.model] = port.name
            if port.partition_column is not None and self.partitions is None:
                raise spec_error(
                    f"output port '{port.name}' names a partition_column, but the product is "
                    "not partitioned",
                    "declare 'partitions:' (by, column, start) or remove partition_column",
                    "output_ports",
                    index,
                    "partition_column",
                )
        if self.partitions is not None and self.python_models:
            raise spec_error(
                "a partitioned product cannot have Python models yet: their ports would be "
                "published whole by each partition's run",
                "move the Python model into an unpartitioned product that reads this one's "
                "ports (input port type: product), or remove 'partitions'",
                "python_models",
            )
        return self

    def partition_column(self, port: OutputPort) -> str | None:
        """The column of ``port``'s relation its partitions split on (None: unpartitioned)."""
        if self.partitions is None:
            return None
        return port.partition_column or self.partitions.column

    @property
    def source_aligned(self) -> bool:
        """True when the product ingests files or tables rather than other products."""
        return not any(isinstance(p, ProductInputPort) for p in self.input_ports)

    def output_port(self, name: str) -> OutputPort | None:
        return next((p for p in self.output_ports if p.name == name), None)

    @property
    def upstream_products(self) -> list[str]:
        return sorted(
            {p.upstream_product for p in self.input_ports if isinstance(p, ProductInputPort)}
        )

    @property
    def owner_email(self) -> str | None:
        return next((o for o in self.owners if "@" in o), None)
