"""Environments: build and preview products beside prod, in the same warehouse, without ever
writing prod's published data (docs/architecture.md, "Environments").

An environment ``<env>`` (``DDP_ENV``, ``ddp --env``) names its schemas ``<env>__<product>`` and
``<env>__<product>__staging`` and keeps its ledger and audits in ``_ddp__<env>``
(:mod:`ddp_assets.naming`). :func:`create` makes, in the environment's product schemas, one
view per output port over the base environment's published version, so what is built in the
environment reads the unchanged products from the base with zero copies; :func:`promote`
publishes what the environment built into the base as new versions, in one transaction,
refused when a version the environment read changed there since :func:`create`.

The environment's own records are two tables of its meta schema: ``environment`` (one row:
created when, from which base) and ``pointers`` (each port's base version the environment's
view points at). The base's retention keeps the versions the pointers name
(:func:`ddp_assets.contracts.wap.environment_pins`) until :func:`drop` drops them.
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
from ddp_assets.contracts.compiler import compile_contract
from ddp_assets.contracts.partitioned import (
    HeldBack,
    key_columns,
    partition_map,
    publish_partitions,
)
from ddp_assets.contracts.rollback import pinned_versions
from ddp_assets.contracts.sql_rules import input_relations
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
from ddp_assets.partitions import windows
from ddp_assets.settings import ENVS_DIR, ProjectPaths
from ddp_assets.spec.errors import SpecErrors, SpecProblem, did_you_mean
from ddp_assets.spec.model import OutputPort
from ddp_assets.spec.registry import Product, Registry
from ddp_assets.warehouse import Connection, quote, relation, warehouse_for
from ddp_assets.warehouse.base import relation_exists

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
    partitions: list[str] | None = None  # a partitioned port: the partitions it published


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


@dataclass(frozen=True)
class _Planned:
    """A port to promote: the environment's version, and for a partitioned port the
    partitions that version holds (its map) with the contract's key columns."""

    product: Product
    port: OutputPort
    version: wap.PublishedVersion
    partitions: list[str] | None = None
    keys: list[tuple[str, ...]] = field(default_factory=list)


def _plan(
    connection: Connection,
    paths: ProjectPaths,
    registry: Registry,
    env: Environment,
    target: str,
) -> list[_Planned]:
    """The ports environment ``env`` built, each with its current version there; a located
    error, before anything is written, for a partitioned port that cannot be promoted."""
    planned: list[_Planned] = []
    with working_in(env.name):
        for pid in env.built:
            if pid not in registry.products:
                continue
            product = registry.products[pid]
            for port in product.spec.output_ports:
                version = wap.published_version(connection, pid, port.name)
                if version is None or not version.stored_as:
                    continue
                if not version.partitioned:
                    planned.append(_Planned(product, port, version))
                    continue
                held = partition_map(connection, pid, port.name, int(version.version or 0))
                partitions = [m.partition for m in held]
                keys = _keys(paths, registry, product, port)
                planned.append(_Planned(product, port, version, partitions, keys))
    problems = []
    with working_in(target):
        for item in planned:
            if item.partitions is None:
                continue
            name = f"{item.product.id}.{item.port.name}"
            now = wap.published_version(connection, item.product.id, item.port.name)
            if item.product.spec.partitions is None:
                problems.append(f"{name}: its product is not partitioned in this checkout")
            elif not item.partitions:
                problems.append(f"{name}: version v{item.version.version} holds no partition")
            elif now is not None and not now.partitioned:
                problems.append(
                    f"{name}: its version v{now.version} in '{target}' was published "
                    "unpartitioned, so the environment's partitions would be all it holds"
                )
    if problems:
        raise _problem(
            "NAME",
            f"cannot promote '{env.name}' into '{target}': " + "; ".join(problems),
            "build those products in the target instead (`ddp materialize PRODUCT`, a "
            "backfill of every partition), then preview again",
        )
    return planned


def _keys(
    paths: ProjectPaths, registry: Registry, product: Product, port: OutputPort
) -> list[tuple[str, ...]]:
    """The key columns a partitioned port keeps unique across partitions (its contract's)."""
    plan = compile_contract(
        product.folder / port.contract,
        port.model,
        paths.root,
        inputs=input_relations(product, registry),
    )
    return key_columns(plan)


def _publish(
    connection: Connection, item: _Planned, run_id: str, actor: str
) -> wap.PublishedVersion:
    """Publish one planned port in the target (the current environment), inside the
    promote's transaction: the environment's version is read where it is, copied once."""
    source = str(item.version.stored_as).partition(".")
    pid, port = item.product.id, item.port
    if item.partitions is None:
        return wap.publish(
            connection,
            product=pid,
            port=port.name,
            model=port.model,
            contract_id=item.version.contract_id,
            contract_version=item.version.contract_version,
            run_id=run_id,
            actor=actor,
            content=(item.version.rows, item.version.checksum),
            source=(source[0], source[2]),
            own_transaction=False,
        )
    spec = item.product.spec
    column = spec.partition_column(port)
    assert column is not None and spec.partitions is not None  # checked by _plan
    return publish_partitions(
        connection,
        product=pid,
        port=port.name,
        model=port.model,
        column=column,
        windows=windows(spec, item.partitions),
        contract_id=item.version.contract_id,
        contract_version=item.version.contract_version,
        run_id=run_id,
        keys=item.keys,
        actor=actor,
        source=(source[0], source[2]),
        own_transaction=False,
    )


def promote(paths: ProjectPaths, name: str, target: str = PROD) -> list[Promoted]:
    """Publish each output port environment ``name`` built (its current version there, audited
    before it was published) into ``target`` as the port's next version, all ports in one
    transaction (all or none), then apply each port's retention.

    An unpartitioned version is copied once into the target's version table
    (:func:`ddp_assets.contracts.wap.publish` with ``source``: the environment keeps its own).
    A partitioned version publishes exactly the partitions it holds (its map) on top of the
    target's current version, whose other partitions keep the target's rows
    (:func:`ddp_assets.contracts.partitioned.publish_partitions` with ``source``: its checks,
    its one append into the target's store, the map, the ledger row with its partitions).

    Refused, with nothing published, when the target's version of a port the environment read
    (or built over) changed since ``ddp env create``, and when a partitioned publish is held
    back (a key already in another partition of the target, another shape than the target's
    store)."""
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
        planned = _plan(connection, paths, registry, env, target)
        actor = f"ddp env promote {name}"
        published: list[tuple[_Planned, wap.PublishedVersion]] = []
        with working_in(target):
            try:
                with warehouse.transaction(connection):
                    for item in planned:
                        run_id = f"promote:{name}:{item.version.run_id}"
                        published.append((item, _publish(connection, item, run_id, actor)))
            except (HeldBack, LookupError) as error:
                raise _problem(
                    "NAME",
                    f"cannot promote '{name}' into '{target}', nothing was published: {error}",
                    "fix it in the environment and build again, or build the product in the target",
                ) from None
            # after the commit, as after any publish: each drop in its own small transaction
            for item, version in published:
                port = item.port
                wap.apply_retention(
                    connection,
                    item.product.id,
                    port.name,
                    port.retain.versions if port.retain else wap.RETAINED_VERSIONS,
                    tuple(pinned_versions(registry, item.product.id, port.name)),
                )
                out.append(
                    Promoted(
                        item.product.id,
                        port.name,
                        version.version,
                        version.relation,
                        version.rows,
                        version.partitions_written if version.partitioned else None,
                    )
                )
    return out
