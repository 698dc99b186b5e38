"""Rolling a data product back (or forward) to a retained version: a pointer move.

A product version is what one run published: the ports it published, each as a new port version
(:mod:`ddp_assets.contracts.wap`). The state of the product *at* product version ``V`` is, per
port, the newest port version published at or before ``V``. A rollback points the published
views of the product's ports (all of them, or one) at their versions of that state, in one
transaction; nothing is copied, and nothing is deleted, so rolling forward again is the same
move towards a newer version.

Before moving, every consumer that reads a moving port through an input port is checked: the
target version's contract must satisfy the consumer's ``contract`` requirement, and a move that
changes the contract's major version is breaking for every consumer of the port. Either refuses
the rollback, naming the consumers, unless it is forced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from packaging.version import InvalidVersion, Version

from ddp_assets.contracts.validation import requirement_problem
from ddp_assets.contracts.wap import (
    PublishedVersion,
    environment_pins,
    move_pointers,
    published_version,
    versions,
)
from ddp_assets.spec.model import ProductInputPort
from ddp_assets.spec.registry import Registry
from ddp_assets.warehouse import Connection


class RollbackError(ValueError):
    """A rollback that cannot be done as asked: the message says why, the hint what to do."""

    def __init__(self, message: str, hint: str | None = None, consumers: list[str] | None = None):
        super().__init__(message)
        self.hint = hint
        self.consumers = consumers or []


@dataclass(frozen=True)
class ProductVersion:
    """One product version: the run that published it and the port versions it created."""

    number: int
    run_id: str
    published_at: str
    created: dict[str, PublishedVersion]  # port -> the version this run published
    state: dict[str, PublishedVersion]  # port -> the version consumers read at this version

    def retained(self) -> bool:
        return all(v.dropped_at is None for v in self.state.values())

    def to_dict(self, current: Mapping[str, int | None]) -> dict[str, Any]:
        return {
            "product_version": self.number,
            "run_id": self.run_id,
            "published_at": self.published_at,
            "retained": self.retained(),
            "current": bool(self.state)
            and all(current.get(p) == v.version for p, v in self.state.items()),
            "ports": {
                port: {
                    "version": v.version,
                    "new": port in self.created,
                    "rows": v.rows,
                    "checksum": v.checksum,
                    "contract": f"{v.contract_id} {v.contract_version}",
                    "retained": v.dropped_at is None,
                }
                for port, v in sorted(self.state.items())
            },
        }


def product_versions(connection: Connection, product: str) -> list[ProductVersion]:
    """The product's versions, oldest first, each with its ports' state."""
    found: dict[int, list[PublishedVersion]] = {}
    for version in versions(connection, product):
        found.setdefault(int(version.product_version or 0), []).append(version)
    state: dict[str, PublishedVersion] = {}
    listed = []
    for number in sorted(found):
        created = {v.port: v for v in found[number]}
        state = {**state, **created}
        first = found[number][0]
        listed.append(ProductVersion(number, first.run_id, first.published_at, created, state))
    return listed


@dataclass(frozen=True)
class PortMove:
    port: str
    model: str
    current: PublishedVersion | None
    target: PublishedVersion


@dataclass
class RollbackResult:
    product: str
    moves: list[PortMove]
    forced: bool
    consumers_refused: list[str] = field(default_factory=list)
    actor: str = ""
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "forced": self.forced,
            "overridden_consumers": self.consumers_refused,
            "actor": self.actor,
            "reason": self.reason,
            "ports": [
                {
                    "port": m.port,
                    "from_version": m.current.version if m.current else None,
                    "to_version": m.target.version,
                    "product_version": m.target.product_version,
                    "contract": f"{m.target.contract_id} {m.target.contract_version}",
                    "rows": m.target.rows,
                    "checksum": m.target.checksum,
                }
                for m in self.moves
            ],
        }


def _model(registry: Registry, product: str, port: str) -> str:
    output = registry.get(product).spec.output_port(port)
    if output is None:
        names = ", ".join(p.name for p in registry.get(product).spec.output_ports)
        raise RollbackError(
            f"product '{product}' has no output port '{port}'", f"its output ports: {names}"
        )
    return output.model


def plan(
    connection: Connection,
    registry: Registry,
    product: str,
    *,
    to: int | None = None,
    steps: int | None = None,
    port: str | None = None,
) -> list[PortMove]:
    """The pointer moves a rollback makes: to product version ``to`` (with ``port``: to that
    port's version ``to``), or ``steps`` versions back from the one consumers read now."""
    if to is not None and steps is not None:
        raise RollbackError("give --to or --steps, not both")
    if steps is not None and steps < 1:
        raise RollbackError(f"--steps {steps}: a rollback goes back at least one version")
    ports = [port] if port else [p.name for p in registry.get(product).spec.output_ports]
    models = {name: _model(registry, product, name) for name in ports}
    current = {name: published_version(connection, product, name) for name in ports}
    if port is not None:
        history = [v for v in versions(connection, product, port)]
        if not history:
            raise RollbackError(f"{product}.{port} has no published version yet")
        now = current[port]
        numbers = [int(v.version or 0) for v in history]
        if to is None:
            at = numbers.index(int(now.version or 0)) if now and now.version in numbers else 0
            index = at - (steps or 1)
            if index < 0:
                raise RollbackError(
                    f"{product}.{port} has {at} version(s) before the published one "
                    f"(v{numbers[at]}); --steps {steps or 1} goes further back",
                    f"see 'ddp versions {product} {port}'",
                )
            to = numbers[index]
        target = next((v for v in history if v.version == to), None)
        if target is None:
            raise RollbackError(
                f"{product}.{port} has no version {to}",
                f"its versions: {', '.join(f'v{n}' for n in numbers)}",
            )
        moves = [PortMove(port, models[port], now, target)]
    else:
        listed = product_versions(connection, product)
        if not listed:
            raise RollbackError(f"product '{product}' has no published version yet")
        numbers = [pv.number for pv in listed]
        if to is None:
            reading = {n: v.product_version for n, v in current.items() if v is not None}
            at_number = max((int(n or 0) for n in reading.values()), default=numbers[-1])
            at = numbers.index(at_number) if at_number in numbers else len(numbers) - 1
            index = at - (steps or 1)
            if index < 0:
                raise RollbackError(
                    f"product '{product}' has {at} version(s) before the one published now "
                    f"(product version {numbers[at]}); --steps {steps or 1} goes further back",
                    f"see 'ddp versions {product}'",
                )
            to = numbers[index]
        chosen = next((pv for pv in listed if pv.number == to), None)
        if chosen is None:
            raise RollbackError(
                f"product '{product}' has no product version {to}",
                f"its product versions: {', '.join(str(n) for n in numbers)}",
            )
        moves = [
            PortMove(name, models[name], current[name], chosen.state[name])
            for name in ports
            if name in chosen.state
        ]
    gone = [m for m in moves if m.target.dropped_at is not None]
    if gone:
        raise RollbackError(
            "outside retention: "
            + ", ".join(f"{product}.{m.port} v{m.target.version}" for m in gone)
            + " was dropped",
            "raise the port's 'retain: {versions: N}' in its spec to keep more versions, or pin "
            "one on a consumer's input port ('pin: N')",
        )
    return moves


def _major(version: str) -> int | None:
    try:
        return Version(version).major
    except InvalidVersion:
        return None


def refusals(registry: Registry, product: str, moves: list[PortMove]) -> list[str]:
    """Why consumers of the moving ports would break: one line per consumer and port."""
    problems = []
    for move in moves:
        target, current = move.target, move.current
        breaking = current is not None and (
            current.contract_id != target.contract_id
            or _major(current.contract_version) != _major(target.contract_version)
        )
        for consumer in registry.products.values():
            for port in consumer.spec.input_ports:
                if not (
                    isinstance(port, ProductInputPort)
                    and port.upstream_product == product
                    and port.upstream_port == move.port
                ):
                    continue
                reason = (
                    requirement_problem(port.contract, target.contract_id, target.contract_version)
                    if port.contract is not None
                    else None
                )
                if reason is None and breaking and current is not None:
                    reason = (
                        f"v{target.version} has contract {target.contract_id} "
                        f"{target.contract_version}, a breaking change from the published "
                        f"{current.contract_id} {current.contract_version}"
                    )
                if reason:
                    problems.append(
                        f"consumer '{consumer.id}' (input port '{port.name}') of "
                        f"{product}.{move.port}: {reason}"
                    )
    return problems


def rollback(
    connection: Connection,
    registry: Registry,
    product: str,
    *,
    to: int | None = None,
    steps: int | None = None,
    port: str | None = None,
    force: bool = False,
    reason: str = "",
    actor: str = "",
) -> RollbackResult:
    """Plan, check the consumers' contracts, then move the pointers in one transaction."""
    moves = plan(connection, registry, product, to=to, steps=steps, port=port)
    moving = [m for m in moves if m.current is None or m.current.version != m.target.version]
    if not moving:
        raise RollbackError(
            f"product '{product}' already reads "
            + ", ".join(f"{m.port} v{m.target.version}" for m in moves),
            f"see 'ddp versions {product}'",
        )
    refused = refusals(registry, product, moving)
    if refused and not force:
        raise RollbackError(
            "rollback refused: it would break its consumers:\n  " + "\n  ".join(refused),
            "roll back to a version within the consumers' contract ranges, or pass --force",
            refused,
        )
    move_pointers(
        connection,
        product,
        [(m.port, m.model, int(m.target.version or 0)) for m in moving],
        action="rollback",
        actor=actor,
        reason=reason,
    )
    return RollbackResult(product, moving, force, refused, actor, reason)


def _audits(connection: Connection, product: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(port, run id) → that run's audit of the port (the last, if it audited it twice)."""
    import json

    from ddp_assets.naming import meta_schema
    from ddp_assets.warehouse import relation, relation_exists

    if not relation_exists(connection, meta_schema(), "audits"):
        return {}
    rows = connection.execute(
        f"select port, run_id, passed, failed_checks, audited_at from "
        f"{relation(meta_schema(), 'audits')} where product = ? order by audited_at",
        [product],
    ).fetchall()
    return {
        (str(port), str(run)): {
            "passed": bool(passed),
            "failed_checks": json.loads(failed) if failed else [],
            "audited_at": at,
        }
        for port, run, passed, failed, at in rows
    }


def version_history(
    connection: Connection, product: str, registry: Registry | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Each port of the product → its versions, oldest first: number, product version,
    contract, rows, checksum, run, when published, state (published, retained or dropped),
    the audit it passed, the pointer moves to it (publishes and rollbacks: who, when, why),
    the environments whose views read it (``environment <name>``, kept by retention like a pin)
    and, with the ``registry``, the consumers that pin it. What ``ddp show`` and the catalog
    list."""
    from ddp_assets.contracts.wap import moves

    audits = _audits(connection, product)
    history = moves(connection, product)
    found: dict[str, list[dict[str, Any]]] = {}
    current: dict[str, int | None] = {}
    pins: dict[str, dict[int, list[str]]] = {}
    for version in versions(connection, product):
        if version.port not in pins:
            pins[version.port] = who_pins(connection, registry, product, version.port)
        if version.port not in current:
            now = published_version(connection, product, version.port)
            current[version.port] = now.version if now else None
        state = (
            "published"
            if version.version == current[version.port]
            else "dropped"
            if version.dropped_at
            else "retained"
        )
        found.setdefault(version.port, []).append(
            {
                "version": version.version,
                "product_version": version.product_version,
                "contract_id": version.contract_id,
                "contract_version": version.contract_version,
                "rows": version.rows,
                "checksum": version.checksum,
                "run_id": version.run_id,
                "published_at": version.published_at,
                "dropped_at": version.dropped_at,
                # a partitioned port's version: the partitions its run wrote (else None)
                "partitions": version.partitions_written if version.partitioned else None,
                "state": state,
                "audit": audits.get((version.port, version.run_id)),
                "pinned_by": pins.get(version.port, {}).get(int(version.version or 0), []),
                "moves": [
                    {
                        "action": m.action,
                        "from_version": m.previous_version,
                        "actor": m.actor,
                        "reason": m.reason,
                        "at": m.moved_at,
                    }
                    for m in history
                    if m.port == version.port and m.version == version.version
                ],
            }
        )
    for listed in found.values():
        listed.sort(key=lambda v: int(v["version"] or 0))
    return found


def read_version_histories(
    paths: Any, products: list[str], registry: Registry | None = None
) -> dict[str, dict[str, list[dict[str, Any]]]] | None:
    """:func:`version_history` of each product from the project's warehouse (read-only), or
    None when there is no warehouse yet."""
    from ddp_assets.warehouse import warehouse_for

    warehouse = warehouse_for(paths)
    if not warehouse.exists():
        return None
    with warehouse.reader() as connection:
        return {product: version_history(connection, product, registry) for product in products}


def pinned_versions(registry: Registry, product: str, port: str) -> dict[int, list[str]]:
    """Version → the consumers whose input ports pin it (``pin: N``): retention keeps them."""
    pins: dict[int, list[str]] = {}
    for consumer in registry.products.values():
        for input_port in consumer.spec.input_ports:
            if (
                isinstance(input_port, ProductInputPort)
                and input_port.pin is not None
                and (input_port.upstream_product, input_port.upstream_port) == (product, port)
            ):
                pins.setdefault(input_port.pin, []).append(consumer.id)
    return pins


def who_pins(
    connection: Connection, registry: Registry | None, product: str, port: str
) -> dict[int, list[str]]:
    """Version → what keeps it from retention: the consumers whose input ports pin it (with the
    ``registry``) and ``environment <name>`` for each environment whose views read it."""
    pins = pinned_versions(registry, product, port) if registry is not None else {}
    for number, envs in environment_pins(connection, product, port).items():
        pins.setdefault(number, []).extend(f"environment {env}" for env in envs)
    return pins
