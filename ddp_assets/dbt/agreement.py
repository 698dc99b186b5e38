"""Do the product specs and dbt's own view of the project agree?

ddp generates each product's dbt properties, but a model's SQL ``config()`` can override them.
These checks read the parsed manifest and say exactly what to fix when the two disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddp_assets.contracts.validation import contract_problems
from ddp_assets.contracts.wap import staging_schema
from ddp_assets.naming import PROD, in_some_env
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.errors import SpecProblem, relative
from ddp_assets.spec.registry import Registry

if TYPE_CHECKING:
    from ddp_assets.dbt.project import PreparedProject


def agreement_errors(registry: Registry, prepared: PreparedProject) -> list[SpecProblem]:
    """The error-severity problems of :func:`check_agreement` for a code location load,
    remembered when there are none.

    Contract policy (JSON Schema conformance, breaking changes against a git base) is not part
    of it: that is ``ddp validate``'s and CI's job, so that an uncommitted contract edit never
    takes the UI's code location down. A clean result holds as long as dbt's inputs (specs,
    contracts, SQL, generated properties) are the ones it was computed on; only a clean result
    is kept: one that found errors is computed again until they are fixed.
    """
    if prepared.agreement_known_clean():
        return []
    problems = [
        p
        for p in check_agreement(registry, prepared.manifest, contract_policy=False)
        if p.severity == "error"
    ]
    if not problems:
        prepared.remember_agreement_clean()
    return problems


def check_agreement(
    registry: Registry,
    manifest: dict[str, Any],
    *,
    contract_policy: bool = True,
    contract_base: str | None = None,
) -> list[SpecProblem]:
    """Problems where the manifest contradicts the specs (empty when they agree), and with
    ``contract_policy`` the contracts' own (:func:`contract_problems`)."""
    problems: list[SpecProblem] = []
    nodes = {
        n["name"]: n for n in manifest.get("nodes", {}).values() if n["resource_type"] == "model"
    }
    for product in registry.products.values():
        for name, sql_path in product.sql_models.items():
            shown = relative(sql_path, registry.root)
            node = nodes.get(name)
            if node is None:
                problems.append(
                    SpecProblem(
                        shown,
                        None,
                        "model",
                        f"dbt did not parse model '{name}'",
                        "check dbt_project.yml model-paths and that the file is not disabled",
                    )
                )
                continue
            config = node.get("config", {})
            port = product.output_models.get(name)
            expected_access = "public" if port else "private"
            if node.get("group") != product.id:
                problems.append(
                    SpecProblem(
                        shown,
                        None,
                        "config.group",
                        f"dbt puts '{name}' in group '{node.get('group')}', "
                        f"but it belongs to product '{product.id}'",
                        "remove the group from the model's config(): ddp sets it from the spec",
                    )
                )
            if node.get("access") != expected_access:
                why = f"it backs output port '{port}'" if port else "it is not an output port"
                problems.append(
                    SpecProblem(
                        shown,
                        None,
                        "config.access",
                        f"'{name}' has access '{node.get('access')}' in dbt but {why}, "
                        f"so it must be '{expected_access}'",
                        "remove access from the model's config(), or change the product's "
                        "output_ports",
                    )
                )
            if port and not in_some_env(str(node.get("schema")), staging_schema(product.id, PROD)):
                problems.append(
                    SpecProblem(
                        shown,
                        None,
                        "config.schema",
                        f"output port model '{name}' is built in schema '{node.get('schema')}', "
                        f"not in '{staging_schema(product.id)}' where it is audited before it is "
                        "published",
                        "remove schema from the model's config(): ddp sets it from the spec",
                    )
                )
            if port and not (config.get("contract") or {}).get("enforced"):
                problems.append(
                    SpecProblem(
                        shown,
                        None,
                        "config.contract",
                        f"output port model '{name}' must have an enforced dbt contract",
                        "remove contract={'enforced': false} from the model's config()",
                    )
                )
    owned = {path.resolve() for p in registry.products.values() for path in p.sql_models.values()}
    paths = ProjectPaths(registry.root)
    defs_dir = paths.defs_dir
    for node in nodes.values():
        original = Path(node.get("original_file_path", ""))
        absolute = (paths.dbt_dir / original).resolve()
        if absolute.is_relative_to(defs_dir.resolve()) and absolute not in owned:
            problems.append(
                SpecProblem(
                    relative(absolute, registry.root),
                    None,
                    "model",
                    f"model '{node['name']}' is in the defs folder but no product owns it",
                    "move it under a product's models folder (models.paths in its spec)",
                    severity="warning",
                )
            )
    if contract_policy:
        problems.extend(contract_problems(registry, contract_base))
    return problems
