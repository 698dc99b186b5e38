"""Environments: build and preview products beside prod, in the same warehouse, without ever
writing prod's published data (docs/architecture.md, "Environments").

An environment ``<env>`` (``DDP_ENV``, ``ddp --env``) names its schemas ``<env>__<product>`` and
``<env>__<product>__staging`` and keeps its ledger and audits in ``_ddp__<env>``
(:mod:`ddp_assets.naming`). :func:`create` makes, in the environment's product schemas, one
view per output port over the base environment's published version, so what is built in the
environment reads the unchanged products from the base with zero copies; :func:`promote`
publishes what the environment built into the base as new versions, refused when a version the
environment read changed there since :func:`create`.

The environment's own records are two tables of its meta schema: ``environment`` (one row:
created when, from which base) and ``pointers`` (each port's base version the environment's
view points at).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from ddp_assets.contracts import wap
from ddp_assets.contracts.rollback import pinned_versions
from ddp_assets.naming import (
    ENV_SEPARATOR,
    ENV_TABLE,
    ENV_VAR,
    META_SCHEMA,
    POINTERS_TABLE,
    PROD,
    BadEnvironmentName,
    check_env,
    env_prefix,
    meta_schema,
    product_schema,
    published_relation,
    staging_schema,
)
from ddp_assets.settings import ENVS_DIR, ProjectPaths
from ddp_assets.spec.errors import SpecErrors, SpecProblem, did_you_mean
from ddp_assets.spec.registry import Registry
from ddp_assets.warehouse import Connection, quote, relation, warehouse_for, warehouse_of
from ddp_assets.warehouse.base import relation_exists, relation_kind

_ENV_COLUMNS = "name text, based_on text, created_at text"
_POINTER_COLUMNS = (
    "product text, port text, model text, base_version integer, base_relation text, "
    "rows_at_create bigint, checksum_at_create text, contract_id text, contract_version text"
)


_POINTER_NAMES = ", ".join(c.split()[0] for c in _POINTER_COLUMNS.split(", "))


def _problem(field_: str, message: str, hint: str | None = None) -> SpecErrors:
    return SpecErrors([SpecProblem("(environment)", None, field_, message, hint)])


def checked_name(name: str, field_: str = "NAME") -> str:
    """An environment name from the command line, as a located error when it is not one."""
    try:
        return check_env(name)
    except BadEnvironmentName as error:
        raise _problem(field_, str(error), "name it like `dev` or `pr_42`") from None


def _not_prod(name: str, what: str) -> str:
    name = checked_name(name)
    if name == PROD:
        raise _problem(
            "NAME", f"cannot {what} '{PROD}': it is the environment every other one is based on"
        )
    return name


@contextmanager
def working_in(env: str) -> Iterator[None]:
    """Name schemas as in ``env`` inside the block (``DDP_ENV``; ddp's naming reads it when
    called), and as before after it."""
    before = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = env
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = before


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _schemas(connection: Connection) -> set[str]:
    rows = connection.execute("select schema_name from information_schema.schemata").fetchall()
    return {str(row[0]) for row in rows}


@dataclass
class Pointer:
    """An output port of the base the environment reads through a view (zero copies)."""

    product: str
    port: str
    model: str
    base_version: int | None  # None: the base's published view (a port published unversioned)
    base_relation: str  # schema.table the view reads
    rows_at_create: int | None = None
    checksum_at_create: str | None = None
    contract_id: str | None = None
    contract_version: str | None = None


@dataclass
class Environment:
    name: str
    based_on: str
    created_at: str
    pointers: list[Pointer] = field(default_factory=list)
    built: list[str] = field(default_factory=list)  # products published in the environment
    missing: list[str] = field(default_factory=list)  # ports the base never published

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read(connection: Connection, name: str) -> Environment | None:
    meta = meta_schema(name)
    if not relation_exists(connection, meta, ENV_TABLE):
        return None
    row = connection.execute(
        f"select name, based_on, created_at from {relation(meta, ENV_TABLE)} limit 1"
    ).fetchone()
    if row is None:
        return None
    env = Environment(str(row[0]), str(row[1]), str(row[2]))
    if relation_exists(connection, meta, POINTERS_TABLE):
        rows = connection.execute(
            f"select {_POINTER_NAMES} from {relation(meta, POINTERS_TABLE)} order by product, port"
        ).fetchall()
        env.pointers = [Pointer(*r) for r in rows]
    env.built = _built(connection, name)
    return env


def _built(connection: Connection, name: str) -> list[str]:
    """The products with a version published in the environment (its own ledger)."""
    meta = meta_schema(name)
    if not relation_exists(connection, meta, "published_versions"):
        return []
    rows = connection.execute(
        f"select distinct product from {relation(meta, 'published_versions')} order by product"
    ).fetchall()
    return [str(r[0]) for r in rows]


def _unknown(name: str, known: list[str]) -> SpecErrors:
    hint = did_you_mean(name, known) or (
        "the environments: " + ", ".join(known) if known else "create it with `ddp env create`"
    )
    return _problem("NAME", f"no environment '{name}' in this warehouse", hint)


def _base_pointer(connection: Connection, product: str, port: str, model: str) -> Pointer | None:
    """What the current environment (the base) publishes for a port: its version's table, or
    its published view when it has no version; None when it never published the port."""
    version = wap.published_version(connection, product, port)
    if version is not None and version.version is not None and version.stored_as:
        schema, _, table = version.stored_as.partition(".")
        if relation_exists(connection, schema, table):
            return Pointer(
                product,
                port,
                model,
                int(version.version),
                version.stored_as,
                version.rows,
                version.checksum,
                version.contract_id,
                version.contract_version,
            )
    schema, name = published_relation(product, model)
    if relation_exists(connection, schema, name):
        return Pointer(
            product,
            port,
            model,
            None,
            f"{schema}.{name}",
            version.rows if version else None,
            version.checksum if version else None,
            version.contract_id if version else None,
            version.contract_version if version else None,
        )
    return None


def create(paths: ProjectPaths, name: str, base: str = PROD) -> Environment:
    """Create environment ``name`` over ``base``: in ``<name>__<product>``, a view per output
    port over the base's published version (no row is copied), and the environment's records.
    Refused for prod, for an environment that exists, and for a base that does not."""
    name = _not_prod(name, "create")
    base = checked_name(base, "--from")
    if base == name:
        raise _problem("--from", f"'{name}' cannot be based on itself")
    registry = Registry.load(paths.defs_dir, paths.root)
    warehouse = warehouse_for(paths)
    with warehouse.writer() as connection:
        if _read(connection, name) is not None:
            raise _problem(
                "NAME",
                f"environment '{name}' exists already",
                f"use it (`ddp --env {name} ...`), or drop it first (`ddp env drop {name}`)",
            )
        if base != PROD and _read(connection, base) is None:
            raise _unknown(base, environments_in(connection))
        env = Environment(name, base, _now())
        with working_in(base):
            for product in sorted(registry.products.values(), key=lambda p: p.id):
                for port in product.spec.output_ports:
                    pointer = _base_pointer(connection, product.id, port.name, port.model)
                    if pointer is None:
                        env.missing.append(f"{product.id}.{port.name}")
                    else:
                        env.pointers.append(pointer)
        meta = meta_schema(name)
        with warehouse.transaction(connection):
            connection.execute(f"create schema if not exists {quote(meta)}")
            connection.execute(warehouse.meta_table_ddl(relation(meta, ENV_TABLE), _ENV_COLUMNS))
            connection.execute(
                warehouse.meta_table_ddl(relation(meta, POINTERS_TABLE), _POINTER_COLUMNS)
            )
            connection.execute(
                f"insert into {relation(meta, ENV_TABLE)} values (?, ?, ?)",
                [env.name, env.based_on, env.created_at],
            )
            for p in env.pointers:
                schema = product_schema(p.product, name)
                target_schema, _, target_table = p.base_relation.partition(".")
                connection.execute(f"create schema if not exists {quote(schema)}")
                warehouse.point_view(connection, schema, p.model, target_schema, target_table)
                connection.execute(
                    f"insert into {relation(meta, POINTERS_TABLE)} ({_POINTER_NAMES}) "
                    "values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    list(asdict(p).values()),
                )
    return env


def environments_in(connection: Connection) -> list[str]:
    """The environments of a warehouse (their meta schemas with ddp's records), sorted."""
    prefix = f"{META_SCHEMA}{ENV_SEPARATOR}"
    found = []
    for schema in sorted(_schemas(connection)):
        if not schema.startswith(prefix):
            continue
        name = schema[len(prefix) :]
        try:
            check_env(name)
        except BadEnvironmentName:
            continue
        if relation_exists(connection, schema, ENV_TABLE):
            found.append(name)
    return found


def list_environments(paths: ProjectPaths) -> list[Environment]:
    """Every environment of the warehouse, with what it was based on and built."""
    warehouse = warehouse_for(paths)
    if not warehouse.exists():
        return []
    with warehouse.reader() as connection:
        out = []
        for name in environments_in(connection):
            env = _read(connection, name)
            if env is not None:
                out.append(env)
        return out


def get(paths: ProjectPaths, name: str) -> Environment:
    """One environment's records; a located error when it does not exist."""
    name = checked_name(name)
    warehouse = warehouse_for(paths)
    with warehouse.reader() as connection:
        env = _read(connection, name)
        if env is None:
            raise _unknown(name, environments_in(connection))
        return env


@dataclass
class Dropped:
    name: str
    schemas: list[str]
    instance: str | None  # the Dagster instance folder removed


def _env_schemas(connection: Connection, name: str, registry: Registry) -> list[str]:
    """The schemas environment ``name`` owns: ``<name>__*`` and ``_ddp__<name>``; never a
    schema of prod's products (a product whose id starts ``<name>__``)."""
    prefix = env_prefix(name)
    prods = {product_schema(p, PROD) for p in registry.products}
    prods |= {staging_schema(p, PROD) for p in registry.products}
    found = [s for s in _schemas(connection) if s.startswith(prefix) and s not in prods]
    if meta_schema(name) in _schemas(connection):
        found.append(meta_schema(name))
    return sorted(found)


def drop(paths: ProjectPaths, name: str) -> Dropped:
    """Drop environment ``name``: its schemas (views, tables, ledger) and its Dagster instance
    folder; nothing of prod or another environment. Refused for prod."""
    name = _not_prod(name, "drop")
    registry = Registry.load(paths.defs_dir, paths.root)
    warehouse = warehouse_for(paths)
    with warehouse.writer() as connection:
        if _read(connection, name) is None:
            raise _unknown(name, environments_in(connection))
        schemas = _env_schemas(connection, name, registry)
        with warehouse.transaction(connection):
            for schema in schemas:
                connection.execute(f"drop schema if exists {quote(schema)} cascade")
    folder = paths.base_dagster_home / ENVS_DIR / name
    removed = None
    if folder.is_dir():
        shutil.rmtree(folder)
        removed = str(folder)
    return Dropped(name, schemas, removed)


# --- promote ---------------------------------------------------------------------------------


@dataclass
class Promoted:
    product: str
    port: str
    version: int | None
    relation: str
    rows: int


@dataclass
class Conflict:
    product: str
    port: str
    at_create: int | None
    now: int | None


def _upstream_closure(registry: Registry, products: list[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(products)
    while stack:
        pid = stack.pop()
        for up in registry.upstream(pid):
            if up not in seen:
                seen.add(up)
                stack.append(up)
    return seen


def conflicts(
    connection: Connection, env: Environment, registry: Registry, target: str
) -> list[Conflict]:
    """The ports the environment read, or built over, whose version in ``target`` changed
    since the environment was created (compared with its recorded base versions)."""
    if env.based_on != target:  # nothing recorded for another target: every port is a conflict
        return [Conflict(p.product, p.port, p.base_version, None) for p in env.pointers]
    relevant = set(env.built) | _upstream_closure(registry, env.built)
    found = []
    with working_in(target):
        for p in env.pointers:
            if p.product not in relevant:
                continue
            now = wap.published_version(connection, p.product, p.port)
            number = now.version if now is not None else None
            if number != p.base_version or (
                number is None and now is not None and now.checksum != p.checksum_at_create
            ):
                found.append(Conflict(p.product, p.port, p.base_version, number))
    return found


def promote(paths: ProjectPaths, name: str, target: str = PROD) -> list[Promoted]:
    """Publish each output port environment ``name`` built (its current version there, audited
    before it was published) into ``target`` as the port's next version, through
    :func:`ddp_assets.contracts.wap.publish`.

    Refused, with nothing published, when the target's version of a port the environment read
    (or built over) changed since ``ddp env create``. On DuckDB the version is copied once into
    the target's staging schema (DuckDB renames a table only within its schema), then renamed
    into the target's version as any publish does."""
    name = _not_prod(name, "promote")
    target = checked_name(target, "--to")
    registry = Registry.load(paths.defs_dir, paths.root)
    warehouse = warehouse_for(paths)
    out: list[Promoted] = []
    with warehouse.writer() as connection:
        env = _read(connection, name)
        if env is None:
            raise _unknown(name, environments_in(connection))
        if not env.built:
            raise _problem(
                "NAME",
                f"environment '{name}' published nothing to promote",
                f"build in it first: `ddp --env {name} materialize PRODUCT` or `ddp ci --env "
                f"{name}`",
            )
        found = conflicts(connection, env, registry, target)
        if found:
            listed = ", ".join(
                f"{c.product}.{c.port} (v{c.at_create} at create, v{c.now} now)" for c in found
            )
            raise _problem(
                "--to",
                f"cannot promote '{name}' into '{target}': what it read changed in "
                f"'{target}' since `ddp env create`: {listed}",
                f"recreate the environment on the new versions (`ddp env drop {name}`, "
                f"`ddp env create {name}`), build it again, then promote",
            )
        with working_in(name):
            built = []
            for pid in env.built:
                if pid not in registry.products:
                    continue
                for port in registry.products[pid].spec.output_ports:
                    version = wap.published_version(connection, pid, port.name)
                    if version is not None and version.stored_as:
                        built.append((pid, port, version))
        partitioned = [f"{pid}.{port.name}" for pid, port, version in built if version.partitioned]
        if partitioned:
            raise _problem(
                "NAME",
                f"cannot promote '{name}': partitioned port(s) {', '.join(partitioned)} are "
                "published partition by partition, not as one version",
                "merge the change and build the product in prod (`ddp materialize PRODUCT`)",
            )
        for pid, port, version in built:
            schema, _, table = str(version.stored_as).partition(".")
            with working_in(target):
                staging = staging_schema(pid)
                connection.execute(f"create schema if not exists {quote(staging)}")
                if relation_kind(connection, staging, port.model) == "view":
                    connection.execute(f"drop view {relation(staging, port.model)}")
                warehouse_of(connection).copy_table(connection, schema, table, staging, port.model)
                published = wap.publish(
                    connection,
                    product=pid,
                    port=port.name,
                    model=port.model,
                    contract_id=version.contract_id,
                    contract_version=version.contract_version,
                    run_id=f"promote:{name}:{version.run_id}",
                    retain=port.retain.versions if port.retain else None,
                    actor=f"ddp env promote {name}",
                    pinned=tuple(pinned_versions(registry, pid, port.name)),
                    content=(version.rows, version.checksum),
                )
            out.append(
                Promoted(pid, port.name, published.version, published.relation, published.rows)
            )
    return out
