"""Which warehouse: the active output of the dbt profile, read the way dbt reads it.

The choice of warehouse is configuration, and it lives in one place: ``dbt_project/profiles.yml``,
whose target is ``DDP_DBT_TARGET`` (``dev``: DuckDB, ``postgres``: PostgreSQL) and whose
outputs read their settings from environment variables. ddp renders the same file with the same
``env_var()`` (jinja2, as dbt does), so dbt's models and ddp's own tables (raw tables, Python
models, audits, published ports) always land in the same database.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import jinja2
import yaml

from ddp_assets.settings import ProjectPaths

DEFAULT_TARGET = "dev"


class WarehouseConfigError(ValueError):
    """The dbt profile cannot be read, or names a warehouse ddp does not support."""


def _env_var(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise WarehouseConfigError(
            f"dbt_project/profiles.yml: environment variable '{name}' is not set and has no default"
        )
    return value


def _as_number(value: Any) -> Any:
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        return float(text)


_JINJA = jinja2.Environment(undefined=jinja2.StrictUndefined)
_JINJA.globals["env_var"] = _env_var
_JINJA.filters["as_number"] = _as_number
_JINJA.filters["as_text"] = str
_JINJA.filters["as_bool"] = lambda v: str(v).strip().lower() in {"1", "true", "yes"}


@functools.lru_cache(maxsize=256)
def _template(source: str) -> jinja2.Template:
    """Compiled once per text (compiling is most of rendering); rendered on every call, so
    ``env_var()`` always reads the environment as it is."""
    return _JINJA.from_string(source)


def _render(value: Any) -> Any:
    if not isinstance(value, str) or "{{" not in value:
        return value
    try:
        # a single expression keeps its type (as_number gives an int), like dbt's native env
        template = _template(value)
        rendered = template.render()
    except jinja2.TemplateError as error:
        raise WarehouseConfigError(
            f"dbt_project/profiles.yml: cannot render {value!r}: {error}"
        ) from None
    stripped = value.strip()
    if stripped.startswith("{{") and stripped.endswith("}}") and "as_number" in stripped:
        return _as_number(rendered)
    return rendered


def target_name(paths: ProjectPaths) -> str:
    """The dbt target in use: ``DDP_DBT_TARGET``, else the profile's ``target``, else dev."""
    profile = _profile(paths)
    return os.environ.get("DDP_DBT_TARGET") or str(_render(profile.get("target")) or DEFAULT_TARGET)


# profiles.yml as parsed, by (path, mtime, size): every output port asks for the warehouse when
# the code location loads, and parsing the file each time was 10 % of a 200-product load.
_PARSED: dict[str, tuple[tuple[int, int], Any]] = {}


def _profile(paths: ProjectPaths) -> dict[str, Any]:
    path = paths.dbt_dir / "profiles.yml"
    try:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        known = _PARSED.get(str(path))
        if known is not None and known[0] == stamp:
            profiles = known[1]
        else:
            profiles = yaml.safe_load(path.read_text(encoding="utf-8"))
            _PARSED[str(path)] = (stamp, profiles)
    except OSError:
        return {}
    except yaml.YAMLError as error:
        raise WarehouseConfigError(f"{path}: not valid YAML: {error}") from None
    profile = next(iter((profiles or {}).values()), {}) if isinstance(profiles, dict) else {}
    return profile if isinstance(profile, dict) else {}


def dbt_target(paths: ProjectPaths) -> dict[str, Any]:
    """The active output of the project's dbt profile, with ``env_var()`` resolved.

    Without a profile (a bare checkout used as a library) this is the embedded DuckDB default.
    """
    profile = _profile(paths)
    if not profile:
        return {"type": "duckdb"}
    name = target_name(paths)
    outputs = profile.get("outputs") or {}
    if name not in outputs:
        raise WarehouseConfigError(
            f"{paths.dbt_dir / 'profiles.yml'}: DDP_DBT_TARGET={name!r} is not an output of the "
            f"profile; known: {', '.join(sorted(outputs))}"
        )
    return {key: _render(value) for key, value in (outputs[name] or {}).items()}


def target_type(paths: ProjectPaths) -> str:
    """The dbt adapter type of the active target (``duckdb`` when there is no profile)."""
    return str(dbt_target(paths).get("type", "duckdb"))


# Contracts spell column types as DuckDB does (the embedded default). For a PostgreSQL target
# the few names PostgreSQL lacks are translated where the types reach dbt; the others
# (bigint, integer, varchar, decimal(p,s), boolean, date, timestamp, ...) are the same.
_POSTGRES_TYPES = {
    "double": "double precision",
    "float8": "double precision",
    "float": "real",
    "float4": "real",
    "tinyint": "smallint",
    "int1": "smallint",
    "hugeint": "numeric(38,0)",
    "ubigint": "numeric(20,0)",
    "uinteger": "bigint",
    "usmallint": "integer",
    "utinyint": "smallint",
    "string": "text",
    "datetime": "timestamp",
    "blob": "bytea",
    "json": "jsonb",
}


def data_type_for(data_type: str, adapter: str) -> str:
    """A contract's column type in the dialect of the dbt adapter that enforces it."""
    if adapter != "postgres":
        return data_type
    return _POSTGRES_TYPES.get(data_type.strip().lower(), data_type)
