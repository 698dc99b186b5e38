"""``ddp contract test``: run a product's contracts against its published data.

The same compiled checks as the audit before publishing (Soda quality rules; the pandera
schema for ports written from Python), read-only, on ``<product>.<model>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ddp_assets.contracts.compiler import compile_contract
from ddp_assets.contracts.pandera_checks import validate_table
from ddp_assets.contracts.soda import RuleResult, run_quality
from ddp_assets.contracts.sql_rules import input_relations
from ddp_assets.contracts.wap import published_version, relation_exists
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.errors import SpecErrors, SpecProblem
from ddp_assets.spec.registry import Product, Registry
from ddp_assets.warehouse import WarehouseConfigError, WarehouseUnavailable, warehouse_for


@dataclass
class PortTest:
    port: str
    relation: str
    contract: str
    published: dict[str, Any] | None
    results: list[RuleResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not any(r.blocking_failure for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "relation": self.relation,
            "contract": self.contract,
            "published": self.published,
            "passed": self.passed,
            "checks": [
                {
                    "name": r.check_name,
                    "passed": r.passed,
                    "severity": r.severity,
                    "metric": r.metric,
                    "column": r.column,
                    "observed": r.observed,
                    "threshold": r.threshold,
                    "error": r.error,
                    "failing_rows_sample": r.sample,
                }
                for r in self.results
            ],
        }


def run_contract_tests(
    product: Product, paths: ProjectPaths, registry: Registry | None = None
) -> list[PortTest]:
    """Every output port's contract checks on its published relation (``registry``: for the
    relations its ``sql`` rules may read besides the port, the product's declared inputs)."""
    inputs = input_relations(product, registry) if registry is not None else ()
    try:
        warehouse = warehouse_for(paths)
    except WarehouseConfigError as error:
        profile = str(paths.dbt_dir / "profiles.yml")
        raise SpecErrors(
            [
                SpecProblem(
                    profile,
                    None,
                    "(warehouse)",
                    str(error).removeprefix(f"{profile}: "),
                    "set DDP_DBT_TARGET to dev (DuckDB) or postgres",
                )
            ]
        ) from None
    if not warehouse.exists():
        raise SpecErrors(
            [
                SpecProblem(
                    warehouse.location,
                    None,
                    "(warehouse)",
                    "no warehouse yet: nothing has been published",
                    f"run `ddp materialize {product.id}` first",
                )
            ]
        )
    tests: list[PortTest] = []
    try:
        with warehouse.reader() as connection:
            for port in product.spec.output_ports:
                plan = compile_contract(
                    product.folder / port.contract, port.model, paths.root, inputs=inputs
                )
                test = PortTest(
                    port.name,
                    f"{product.id}.{port.model}",
                    f"{plan.contract_id} {plan.contract_version}",
                    None,
                )
                tests.append(test)
                if not relation_exists(connection, product.id, port.model):
                    test.results.append(
                        RuleResult(
                            "published",
                            False,
                            "error",
                            None,
                            "exists",
                            "published",
                            error=f"{test.relation} has not been published",
                        )
                    )
                    continue
                version = published_version(connection, product.id, port.name)
                test.published = version.to_dict() if version else None
                test.results.extend(run_quality(connection, plan, product.id, port.model))
                if port.model in product.python_model_names:
                    frame = validate_table(connection, plan, product.id, port.model)
                    test.results.append(
                        RuleResult(
                            "pandera_schema",
                            frame.passed,
                            "error",
                            sum(frame.error_counts.values()),
                            "no schema or data error",
                            "pandera",
                            error=None if frame.passed else frame.summary(),
                            sample=frame.sample,
                        )
                    )
    except WarehouseUnavailable as error:
        message, _, hint = str(error).partition(" Hint: ")
        raise SpecErrors(
            [SpecProblem(warehouse.location, None, "(warehouse)", message, hint or None)]
        ) from None
    except Exception as error:
        if "lock" not in str(error).lower():
            raise
        raise SpecErrors(
            [
                SpecProblem(
                    warehouse.location,
                    None,
                    "(warehouse)",
                    "the warehouse is locked by a running build",
                    "retry when the running materialization has finished",
                )
            ]
        ) from None
    return tests
