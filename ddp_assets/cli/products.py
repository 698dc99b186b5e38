"""``ddp validate``, ``ddp list``, ``ddp show``, ``ddp new``: working with product specs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ddp_assets.catalog.describe import summary
from ddp_assets.catalog.entries import show_details
from ddp_assets.cli.console import (
    Table,
    out,
    print_json,
    print_problems,
    say,
    say_err,
    styled,
)
from ddp_assets.dbt.load_cache import load_registry
from ddp_assets.scaffold import scaffold_product
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.errors import SpecErrors, SpecProblem, relative, unique_problems
from ddp_assets.spec.registry import Registry

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def validate(
    as_json: JsonFlag = False,
    dbt: Annotated[
        bool, typer.Option("--dbt/--no-dbt", help="Also parse dbt and check it agrees.")
    ] = True,
) -> None:
    """Check every product spec, contract path and SQL reference; exit 1 on any error."""
    paths = ProjectPaths.discover()
    registry = Registry.load(paths.defs_dir, paths.root)
    problems, _ = check_project(paths, registry, dbt)
    from ddp_assets.ports import access

    stored = access.stored_grants(paths)
    errors = [p for p in problems if p.severity == "error"]
    if as_json:
        print_json(
            {
                "valid": not errors,
                "products": sorted(registry.products),
                "problems": [p.to_dict() for p in problems],
                "access_grants": stored,
            }
        )
    else:
        print_problems(problems)
        if stored:
            say("grants store: {} approved access grant(s) (ddp access grants)", len(stored))
        if errors:
            say_err("[red]{} error(s)[/red] in {} product(s)", len(errors), len(registry.products))
        else:
            warnings = len(problems) - len(errors)
            say(
                "[green]ok[/green]: {} products valid{}",
                len(registry.products),
                f", {warnings} warning(s)" if warnings else "",
            )
    if errors:
        raise typer.Exit(1)


def check_project(
    paths: ProjectPaths, registry: Registry, dbt: bool = True, contract_base: str | None = None
) -> tuple[list[SpecProblem], dict[str, Any] | None]:
    """Every problem ``ddp validate`` reports (``ddp ci`` runs the same), and dbt's prepared
    manifest (None without dbt, or when the specs have errors). Breaking contract changes are
    checked since ``contract_base`` (None: ``DDP_CONTRACT_BASE``, default ``HEAD``; ``""``:
    not checked, as ``ddp ci`` diffs the contracts itself)."""
    problems: list[SpecProblem] = list(registry.problems)
    manifest: dict[str, Any] | None = None
    if not registry.errors:  # what the run would reject: SQL, contract columns, Python imports
        from ddp_assets.spec.checks import validate_problems

        problems.extend(validate_problems(registry))
    if dbt and not registry.errors:
        from ddp_assets.dbt.agreement import check_agreement
        from ddp_assets.dbt.project import prepare

        try:
            prepared = prepare(paths, registry)
            manifest = prepared.manifest
            problems.extend(
                check_agreement(registry, prepared.manifest, contract_base=contract_base)
            )
            from ddp_assets.dbt.macro_check import undefined_macro_problems

            problems.extend(undefined_macro_problems(registry, prepared.manifest, paths.dbt_dir))
            from ddp_assets.dbt.type_check import type_problems  # contract vs SQL types
            from ddp_assets.ingest.files import landing_files

            problems.extend(type_problems(registry, prepared.manifest, paths, landing_files))
        except SpecErrors as errors:
            problems.extend(errors.problems)
    elif not registry.errors:  # contracts are checked with or without dbt
        from ddp_assets.contracts.validation import contract_problems

        problems.extend(contract_problems(registry, contract_base))
    from ddp_assets.ingest.depot_assets import depot_problems  # the depots ports name

    problems.extend(depot_problems(registry, paths))
    from ddp_assets.ports import access  # the grants store beside the spec's grants

    if not registry.errors:
        problems.extend(access.validate_problems(registry, paths))
        from ddp_assets.contracts.pins import pin_problems  # pins of versions never retained

        problems.extend(pin_problems(registry, paths))
    return unique_problems(problems), manifest


def list_products(as_json: JsonFlag = False) -> None:
    """List products: id, name, domain, owners, version, status and ports."""
    paths = ProjectPaths.discover()
    registry = load_registry(paths)
    rows = [summary(registry.products[pid], registry) for pid in sorted(registry.products)]
    if as_json:
        print_json(rows)
        return
    table = Table(
        "id", "name", "domain", "owners", "version", "status", "input ports", "output ports"
    )
    for row in rows:
        table.add_row(
            row["id"],
            row["name"],
            row["domain"],
            "\n".join(row["owners"]),
            row["version"],
            row["status"],
            "\n".join(
                f"{p['name']} ({p.get('product') or p.get('path') or p.get('table')})"
                for p in row["input_ports"]
            ),
            "\n".join(f"{p['name']} → {p['relation']}" for p in row["output_ports"]),
        )
    out.print(table)


def show(
    product: Annotated[str, typer.Argument(help="Product id.")], as_json: JsonFlag = False
) -> None:
    """Show one product: description, ports, contracts, models, SLOs, neighbours."""
    from ddp_assets.catalog.status import instance_if_any

    paths = ProjectPaths.discover()
    registry = load_registry(paths)
    found = registry.get(product)
    info = show_details(found, registry, instance_if_any(paths))
    from ddp_assets.contracts.rollback import read_version_histories

    histories = read_version_histories(paths, [found.id], registry) or {}
    info["versions"] = histories.get(found.id, {})
    if as_json:
        print_json(info)
        return
    # info["status"] is the materialization status (show_details); the headline has the spec's.
    say(
        "[bold]{}[/bold] ({}) v{} — {}",
        info["name"],
        info["id"],
        info["version"],
        found.spec.status,
    )
    say(
        "domain: {}   tier: {}   owners: {}",
        info["domain"],
        info["tier"],
        ", ".join(info["owners"]),
    )
    say("spec: {}", info["spec_file"])
    for key, value in info["description"].items():
        say("{}: {}", key, value)
    table = Table("port", "kind", "details", title="input ports")
    for port in info["input_ports"]:
        table.add_row(port["name"], port["type"], port.get("product") or port.get("path") or "")
    out.print(table)
    table = Table("port", "relation", "contract", title="output ports")
    for port in info["output_ports"]:
        table.add_row(port["name"], port["relation"], port["contract"])
    out.print(table)
    say("models: {}", ", ".join(info["models"]["sql"]))
    if info["models"]["python"]:
        say("python models: {}", ", ".join(m["name"] for m in info["models"]["python"]))
    say("slos: {}", info["slos"])
    say("upstream: {}", ", ".join(info["upstream"]) or "-")
    say("downstream: {}", ", ".join(info["downstream"]) or "-")
    _print_contracts(info["contracts"])
    _print_versions(info["versions"])
    _print_status(info["status"])
    if info["catalog_url"]:
        say("catalog: {}", info["catalog_url"])


def _print_contracts(contracts: list[dict[str, Any]]) -> None:
    for contract in contracts:
        title = (
            f"contract of port {contract['port']}: {contract['contract_id'] or '?'} "
            f"v{contract['contract_version'] or '?'}"
        )
        table = Table("column", "type", "rules", title=title)
        for column in contract["columns"]:
            table.add_row(column["name"], column["type"], ", ".join(column["rules"]))
        out.print(table)
        if contract["rules"]:
            say("  table rules: {}", "; ".join(contract["rules"]))


def _print_versions(ports: dict[str, list[dict[str, Any]]]) -> None:
    """Each port's versions, newest first: contract, rows, audit, state, rollbacks."""
    for port, listed in sorted(ports.items()):
        table = Table(
            "version", "product version", "contract", "rows", "published at", "audit", "state",
            "moves", title=f"versions of port {port}",
        )  # fmt: skip
        for v in reversed(listed):
            audit = v["audit"]
            audited = (
                "-"
                if audit is None
                else "passed"
                if audit["passed"]
                else "failed: " + ", ".join(audit["failed_checks"])
            )
            state = styled(v["state"], {"published": "green", "dropped": "dim"}.get(v["state"], ""))
            if v["pinned_by"]:
                state += f" (pinned by {', '.join(v['pinned_by'])})"
            moves = "; ".join(
                f"{m['action']} by {m['actor']}" + (f" ({m['reason']})" if m["reason"] else "")
                for m in v["moves"]
                if m["action"] != "publish"
            )
            table.add_row(
                f"v{v['version']}",
                str(v["product_version"]),
                f"{v['contract_id']} {v['contract_version']}",
                str(v["rows"]),
                v["published_at"],
                audited,
                state,
                moves or "-",
            )
        out.print(table)


def _print_status(status: dict[str, Any] | None) -> None:
    if not status or not status["materialized"]:
        say("last materialization: never")
        return
    last = status["last_materialization"]
    say(
        "last materialization: {at} (run {run_id}, {run_status}; {assets}/{of_assets} assets)",
        **last,
    )
    checks = status["checks"]
    colour = {"passing": "green", "failing": "red"}.get(checks["status"], "yellow")
    failed = " — failed: " + ", ".join(checks["failed"]) if checks["failed"] else ""
    state = styled(checks["status"], colour)
    say("checks: {} ({}/{}){}", state, checks["passed"], checks["total"], failed)


def new(
    product: Annotated[str, typer.Argument(help="The new product's id, e.g. 'returns'.")],
    domain: Annotated[str, typer.Option(help="The domain folder, e.g. 'sales'.")],
    owner: Annotated[str | None, typer.Option(help="Owner email or team:<name>.")] = None,
    port: Annotated[
        str | None, typer.Option(help="The output port's name (default: the product id).")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Its dbt model's name (default: the port's name).")
    ] = None,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from-file",
            help="A landing file (CSV, Parquet, JSON lines): a source-aligned product over it, "
            "its columns and types read from the file.",
        ),
    ] = None,
) -> None:
    """Scaffold a working product: spec, a dbt model and its contract.

    Example: ddp new returns --domain sales --from-file exports/returns.csv --port returns
    """
    paths = ProjectPaths.discover()
    if from_file is not None:
        from ddp_assets.onboard.landing import scaffold_from_file

        written = scaffold_from_file(
            paths, product, domain, from_file, owner=owner, port=port, model=model
        )
    else:
        written = scaffold_product(paths, product, domain, owner, port=port, model=model)
    for path in written:
        say("[green]created[/green] {}", relative(path, paths.root))
    say("next: edit the files, then `ddp validate` and `ddp materialize {}`", product)
