"""The tables printed at the end of a run, and the targets from the issue."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table

E2E_TARGET_DBT = 1.5  # end to end ≤ 1.5x plain dbt build at 100k rows
E2E_TARGET_FLOOR = 1.5  # end to end ≤ 1.5x the floor F at 10M rows
DEFS_TARGET = 1.25  # loading definitions ≤ 1.25x plain dagster-dbt
CONTRACTS_TARGET = 0.25  # all contract checks ≤ 0.25x the build
LINEAGE_TARGET = 1.02  # a run with lineage on ≤ 1.02x the same run with lineage off
PEER_TARGET = 0.9  # issue 20: end to end ≤ 0.9x plain dagster-dbt at 10M rows (A/D)
PHYSICAL_TARGET = 1.8  # issue 20: end to end ≤ 1.8x the physical floor F0 at 10M rows (A/F0)
MEMORY_FLAT = 1.25  # "flat": the checks' peak RSS at the largest scale ≤ 1.25x the smallest


def contract_memory(scales: list[dict[str, Any]]) -> tuple[float | None, list[float]]:
    """Peak RSS of the contract checks' process at the largest scale over the smallest."""
    rss = [s["peak_rss_mb"].get("C") for s in sorted(scales, key=lambda s: s["scale"])]
    known = [float(r) for r in rss if r]
    if len(known) < 2:
        return None, known
    return known[-1] / known[0], known


def _s(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.2f}"


def _x(value: float | None, limit: float | None = None) -> str:
    if value is None or math.isnan(value):
        return "—"
    text = f"{value:.2f}x"
    if limit is None:
        return text
    return f"[green]{text}[/green]" if value <= limit else f"[red]{text}[/red]"


def _parsed(details: dict[str, float]) -> str:
    """A warning when dbt could not reuse the prepared partial parse."""
    full = details.get("dbt_full_parse")
    return f"; [red]{full:.0f} full dbt parse(s)[/red]" if full else ""


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue: what was measured and whether it is met (None: not measured)."""
    rows: list[dict[str, Any]] = []
    scales = {s["scale"]: s for s in (results.get("e2e") or {}).get("scales", [])}
    at_100k = scales.get(100_000)
    rows.append(
        {
            "target": "end to end ≤ 1.5x plain dbt build at 100k rows (A/B)",
            "measured": at_100k["ratios"]["A/B"] if at_100k else None,
            "met": at_100k["ratios"]["A/B"] <= E2E_TARGET_DBT if at_100k else None,
            "floor": _floor(at_100k, "A/B"),
        }
    )
    at_10m = scales.get(10_000_000)
    rows.append(
        {
            "target": "end to end ≤ 1.5x the floor F at 10M rows (A/F)",
            "measured": at_10m["ratios"]["A/F"] if at_10m else None,
            "met": at_10m["ratios"]["A/F"] <= E2E_TARGET_FLOOR if at_10m else None,
            "floor": _floor(at_10m, "A/F"),
        }
    )
    for name, limit, label in (
        ("A/D", PEER_TARGET, "plain dagster-dbt"),
        ("A/F0", PHYSICAL_TARGET, "the physical floor F0"),
    ):
        measured = at_10m["ratios"].get(name) if at_10m else None
        rows.append(
            {
                "target": f"end to end ≤ {limit}x {label} at 10M rows ({name}; issue 20)",
                "measured": measured,
                "met": measured <= limit if measured is not None else None,
            }
        )
    for scale in sorted(scales.values(), key=lambda s: s["scale"]):
        contracts = scale["ratios"].get("C/B")
        rows.append(
            {
                "target": f"contract checks ≤ 0.25x the build at {scale['scale']:,} rows (C/B)",
                "measured": contracts,
                "met": contracts <= CONTRACTS_TARGET if contracts is not None else None,
            }
        )
        lineage = scale["ratios"].get("A/A-off")
        rows.append(
            {
                "target": f"lineage on/off ≤ 1.02 at {scale['scale']:,} rows (A/A-off)",
                "measured": lineage,
                "met": lineage <= LINEAGE_TARGET if lineage is not None else None,
            }
        )
    growth, _ = contract_memory(list(scales.values()))
    rows.append(
        {
            "target": "contract checks' peak memory flat as rows grow (largest/smallest scale)",
            "measured": growth,
            "met": growth <= MEMORY_FLAT if growth is not None else None,
        }
    )
    defs = results.get("defs")
    sizes = defs["sizes"] if defs else []
    worst = max((s["ratio_total"] for s in sizes), default=None)
    rows.append(
        {
            "target": "definitions ≤ 1.25x plain dagster-dbt (worst size, whole process)",
            "measured": worst,
            "met": worst <= DEFS_TARGET if worst is not None else None,
        }
    )
    linear = defs["growth"]["ddp"]["linear"] if defs else None
    rows.append(
        {
            "target": "definitions grow linearly with the model count",
            "measured": defs["growth"]["ddp"]["definitions_exponent"] if defs else None,
            "met": linear,
        }
    )
    parsed = any(s["dbt_parse_at_load"] for s in sizes) if sizes else None
    rows.append(
        {
            "target": "no dbt parse when the code location loads",
            "measured": None,
            "met": (not parsed) if parsed is not None else None,
        }
    )
    ripple = results.get("ripple")
    rows.append(
        {
            "target": "ripple: file lands → last downstream product published < 60 s (issue 5)",
            "measured": ripple["latency_s"] if ripple else None,
            "met": ripple["latency_s"] < ripple["target_s"] if ripple else None,
        }
    )
    incremental = results.get("incremental")
    if incremental:
        batch = incremental.get("batch_ratio")
        rows.append(
            {
                "target": "a 0.1 % batch on the largest history ≤ 1.3x on the smallest (issue 17)",
                "measured": batch,
                "met": batch <= incremental["batch_ratio_target"] if batch is not None else None,
            }
        )
        backfill = incremental["backfill"]
        rows.append(
            {
                "target": f"a backfill of {backfill['days']} daily partitions ≤ 1.2x one full "
                "build of the same rows (issue 17)",
                "measured": backfill["backfill_over_full"],
                "met": backfill["backfill_over_full"] <= backfill["target"],
            }
        )
    preview = results.get("preview")
    if preview:
        rows.append(
            {
                "target": "a preview of one changed product ≤ 1.2x its materialize in prod "
                "(issue 21)",
                "measured": preview["preview_over_prod"],
                "met": preview["preview_over_prod"] <= preview["preview_target"],
            }
        )
        rows.append(
            {
                "target": "a preview copies no row of an unchanged product (issue 21)",
                "measured": preview["rows_copied_of_unchanged_products"],
                "met": preview["rows_copied_of_unchanged_products"] == 0,
            }
        )
        rows.append(
            {
                "target": "ddp ci on an unchanged repository ≤ 1.5x ddp validate (issue 21)",
                "measured": preview["ci_over_validate"],
                "met": preview["ci_over_validate"] <= preview["ci_target"],
            }
        )
    return rows


def print_report(results: dict[str, Any], console: Console) -> None:
    machine = results["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    console.print(
        f"\n[bold]ddp bench[/bold] — {machine['cpus']} CPUs ({machine['cpu_model']}), "
        f"{machine['memory_gb']} GB, Python {machine['python']}, {versions}"
    )
    console.print(
        f"load average at start {machine['loadavg_at_start']}, at end "
        f"{machine.get('loadavg_at_end')}; bytecode cache: {results['settings']['bytecode_cache']}"
        f"; warm-up run: {results['settings']['warmup']}; repeat: {results['settings']['repeat']}"
        " (median; the first measured run is included)"
    )
    if results.get("e2e"):
        _print_e2e(results["e2e"], console)
    if results.get("defs"):
        _print_defs(results["defs"], console)
    if results.get("ripple"):
        _print_ripple(results["ripple"], console)
    if results.get("incremental"):
        _print_incremental(results["incremental"], console)
    if results.get("preview"):
        _print_preview(results["preview"], console)
    _print_profiles(results, console)
    _print_targets(results["targets"], console)


def _print_e2e(e2e: dict[str, Any], console: Console) -> None:
    table = Table(
        title="end to end (seconds, median; the targets are on wall time, CPU is a "
        "contention-robust cross-check)",
        title_justify="left",
    )
    columns = ("landing rows", "", "A ddp", "A2 again", "B dbt", "B' raw+dbt+py", "D dg-dbt")
    for column in (*columns, "F floor", "F0 physical"):
        table.add_column(column, justify="right")
    for column in ("A/B", "A2/B", "A/B'", "A/F", "A/F0", "D/B", "A/D"):
        table.add_column(column, justify="right")
    for scale in e2e["scales"]:
        limit_b = E2E_TARGET_DBT if scale["scale"] == 100_000 else None
        at_10m = scale["scale"] == 10_000_000
        limit_f = E2E_TARGET_FLOOR if at_10m else None
        for label, key, ratios in (
            ("wall", "seconds", "ratios"),
            ("CPU", "cpu_seconds", "cpu_ratios"),
        ):
            s = {k: v["median"] for k, v in scale[key].items()}
            r = scale[ratios]
            wall = label == "wall"
            table.add_row(
                f"{scale['landing_rows']:,}" if wall else "",
                label,
                *(_s(s.get(m)) for m in ("A", "A2", "B", "B'", "D", "F", "F0")),
                _x(r["A/B"], limit_b if wall else None),
                _x(r["A2/B"], limit_b if wall else None),
                _x(r["A/B'"]),
                _x(r["A/F"], limit_f if wall else None),
                _x(r.get("A/F0"), PHYSICAL_TARGET if wall and at_10m else None),
                _x(r["D/B"]),
                _x(r["A/D"], PEER_TARGET if wall and at_10m else None),
            )
    console.print(table)
    for scale in e2e["scales"]:
        if "floors" in scale:
            i, idbt = scale["seconds"]["I"]["median"], scale["seconds"]["Idbt"]["median"]
            modules = scale["breakdown"].get("I", {}).get("modules", 0)
            console.print(
                f"  {scale['landing_rows']:,} rows: imports only: I {_s(i)} s ({modules:,.0f} "
                f"modules, what ddp materialize loads), Idbt {_s(idbt)} s (what dbt build "
                f"loads); floor A/B {_x(scale['floors']['A/B'])}, A/F "
                f"{_x(scale['floors']['A/F'])} (CPU {_x(scale['cpu_floors']['A/B'])}, "
                f"{_x(scale['cpu_floors']['A/F'])})"
            )
    for scale in e2e["scales"]:
        loads = {m: v for m, v in scale["loadavg_1m"].items() if v}
        console.print(
            f"  {scale['landing_rows']:,} rows: 1-min load average before each run {loads}; "
            f"waited {scale['waited_for_quiet_seconds']:.0f} s for a quieter machine"
        )

    _print_contracts_lineage(e2e, console)

    breakdown = Table(title="where the time goes (seconds, median)", title_justify="left")
    breakdown.add_column("landing rows", justify="right")
    breakdown.add_column("run", justify="left")
    breakdown.add_column("breakdown", justify="left")
    for scale in e2e["scales"]:
        b = scale["breakdown"]
        rows = f"{scale['landing_rows']:,}"
        for name in ("A", "A2"):
            a = b.get(name, {})
            breakdown.add_row(
                rows if name == "A" else "",
                f"{name} ddp",
                f"start→run created {_s(a.get('start_to_run_created'))} · "
                f"created→started {_s(a.get('run_created_to_started'))} · "
                f"loads {_s(a.get('steps_loads'))} · "
                f"dbt steps {_s(a.get('steps_dbt'))} ({a.get('dbt_steps', 0):.0f} steps, "
                f"{a.get('dbt_invocations', 0):.0f} dbt invocations; "
                f"dbt's own {_s(a.get('dbt_elapsed'))}{_parsed(a)}) · "
                f"python {_s(a.get('steps_python'))} · "
                f"port audit+publish {_s(a.get('steps_ports'))} · "
                f"other steps {_s(a.get('steps_other'))} · "
                f"between steps {_s(a.get('between_steps'))} · "
                f"{a.get('runs', 1):.0f} runs, between runs {_s(a.get('between_runs'))} · "
                f"end→exit {_s(a.get('run_end_to_exit'))}",
            )
        breakdown.add_row(
            "",
            "B dbt",
            f"process {_s(scale['seconds']['B']['median'])} · "
            f"dbt's own {_s(b.get('B', {}).get('dbt_elapsed'))}{_parsed(b.get('B', {}))}",
        )
        bp = b.get("B'", {})
        breakdown.add_row(
            "",
            "B'",
            f"raw loads {_s(bp.get('loads'))} · dbt build {_s(bp.get('dbt_build'))} · "
            f"python {_s(bp.get('python'))} · publish {_s(bp.get('publish'))}",
        )
        d = b.get("D", {})
        breakdown.add_row(
            "",
            "D dagster-dbt",
            f"start→run created {_s(d.get('start_to_run_created'))} (imports {_s(d.get('import'))}"
            f", defs {_s(d.get('defs'))}) · created→started {_s(d.get('run_created_to_started'))}"
            f" · dbt step {_s(d.get('steps_dbt'))} (dbt's own {_s(d.get('dbt_elapsed'))}"
            f"{_parsed(d)}) · end→exit {_s(d.get('run_end_to_exit'))}",
        )
        f = b.get("F", {})
        breakdown.add_row(
            "",
            "F floor",
            f"raw loads {_s(f.get('load'))} · models {_s(f.get('model'))} · "
            f"tests {_s(f.get('test'))} · python {_s(f.get('python'))} · "
            f"publish (rename + views) {_s(f.get('publish'))}",
        )
        f0 = b.get("F0", {})
        breakdown.add_row(
            "",
            "F0 physical",
            f"raw loads {_s(f0.get('load'))} · models {_s(f0.get('model'))} · "
            f"python {_s(f0.get('python'))} · ports as views {_s(f0.get('publish'))}",
        )
    console.print(breakdown)


def _print_contracts_lineage(e2e: dict[str, Any], console: Console) -> None:
    table = Table(
        title="contracts (C: every port's Soda/pandera checks as the audit runs them, in "
        "process; Csql: the same rules, one hand-written SQL query per port) and lineage "
        "(A-off: A with OPENLINEAGE_DISABLED=true)",
        title_justify="left",
    )
    for column in (
        "landing rows",
        "",
        "C checks",
        "Csql",
        "B dbt",
        "F floor",
        "C/B",
        "C/F",
        "C/Csql",
        "C peak MB",
        "A",
        "A-off",
        "A/A-off",
        "A end→exit",
        "A-off end→exit",
    ):
        table.add_column(column, justify="right")
    for scale in e2e["scales"]:
        if "C" not in scale["seconds"]:
            continue
        b = scale["breakdown"]
        for label, key, ratios in (
            ("wall", "seconds", "ratios"),
            ("CPU", "cpu_seconds", "cpu_ratios"),
        ):
            s = {k: v["median"] for k, v in scale[key].items()}
            r = scale[ratios]
            wall = label == "wall"
            table.add_row(
                f"{scale['landing_rows']:,}" if wall else "",
                label,
                *(_s(s.get(m)) for m in ("C", "Csql", "B", "F")),
                _x(r.get("C/B"), CONTRACTS_TARGET if wall else None),
                _x(r.get("C/F")),
                _x(r.get("C/Csql")),
                f"{scale['peak_rss_mb'].get('C', 0):.0f}" if wall else "",
                _s(s.get("A")),
                _s(s.get("A-off")),
                _x(r.get("A/A-off"), LINEAGE_TARGET if wall else None),
                _s(b.get("A", {}).get("run_end_to_exit")) if wall else "",
                _s(b.get("A-off", {}).get("run_end_to_exit")) if wall else "",
            )
    console.print(table)
    for scale in e2e["scales"]:
        c = scale["breakdown"].get("C", {})
        if c:
            console.print(
                f"  {scale['landing_rows']:,} rows: {c.get('ports', 0):.0f} ports, "
                f"{c.get('rules', 0):.0f} quality rules; publish (contracts/wap.py) on the same "
                f"tables: copy {_s(c.get('publish_copy_seconds'))} s, checksum scan "
                f"{_s(c.get('checksum_seconds'))} s, rename instead of copy "
                f"{_s(c.get('rename_seconds'))} s"
            )
    growth, rss = contract_memory(e2e["scales"])
    if growth is not None:
        console.print(
            f"  contract checks' peak RSS by scale (MB): {[round(r) for r in rss]} → "
            f"{growth:.2f}x from the smallest to the largest scale"
        )
    for scale in e2e["scales"]:
        for notes in scale.get("notes", []):
            if notes.get("C_disagreeing_rules"):
                console.print(
                    f"  [red]{scale['landing_rows']:,} rows: Soda and the SQL pass disagree on "
                    f"{notes['C_disagreeing_rules']}[/red]"
                )


def _print_defs(defs: dict[str, Any], console: Console) -> None:
    table = Table(title="definitions load (whole process, seconds, median)", title_justify="left")
    for column in (
        "models",
        "products",
        "ddp",
        "plain",
        "ddp/plain",
        "CPU ratio",
        "CPU until loaded",
        "defs only",
        "ddp MB",
        "plain MB",
        "ddp defs phase",
        "plain defs phase",
        "prepare",
        "parse at load",
    ):
        table.add_column(column, justify="right")
    for size in defs["sizes"]:
        ddp, plain = size["phases"]["ddp"], size["phases"]["plain"]
        table.add_row(
            str(size["models"]),
            str(size["products"]),
            _s(size["seconds"]["ddp"]["median"]),
            _s(size["seconds"]["plain"]["median"]),
            _x(size["ratio_total"], DEFS_TARGET),
            _x(size["ratio_cpu"]),
            _x(size["ratio_cpu_loaded"]) if "ratio_cpu_loaded" in size else "—",
            _x(size["ratio_definitions"]),
            f"{size['peak_rss_mb']['ddp']:.0f}",
            f"{size['peak_rss_mb']['plain']:.0f}",
            _s(ddp["project_import"] + ddp["definitions"] + ddp["asset_graph"]),
            _s(plain["project_import"] + plain["definitions"] + plain["asset_graph"]),
            _s(size["prepare"]["seconds"]),
            "[red]yes[/red]" if size["dbt_parse_at_load"] else "no",
        )
    console.print(table)
    growth = defs["growth"]
    for kind in ("ddp", "plain"):
        g = growth[kind]
        console.print(
            f"  {kind}: marginal ms/model between sizes {g['marginal_ms_per_model']}, "
            f"definitions-phase ms/model {g['definitions_ms_per_model']}, "
            f"exponent {g['definitions_exponent']} → "
            + ("linear" if g["linear"] else "[red]not linear[/red]")
        )


def _print_profiles(results: dict[str, Any], console: Console) -> None:
    profiles: list[tuple[str, dict[str, Any]]] = []
    for scale in (results.get("e2e") or {}).get("scales", []):
        if scale.get("profile"):
            profiles.append(
                (f"ddp materialize at {scale['landing_rows']:,} rows", scale["profile"])
            )
    for size in (results.get("defs") or {}).get("sizes", []):
        if size.get("profile"):
            profiles.append((f"ddp code location load, {size['models']} models", size["profile"]))
    for title, profile in profiles:
        table = Table(
            title=f"profile (CPU, cProfile; read the shares): {title}, "
            f"{profile['profiled_cpu_seconds']:.1f} s profiled",
            title_justify="left",
        )
        table.add_column("where")
        table.add_column("calls", justify="right")
        table.add_column("CPU s", justify="right")
        table.add_column("share", justify="right")
        for row in profile["hot_spots"]:
            table.add_row(row["label"], str(row["calls"]), _s(row["cpu_seconds"]), _pct(row))
        for row in profile["ddp_functions"][:12]:
            table.add_row(row["function"], str(row["calls"]), _s(row["cpu_seconds"]), _pct(row))
        console.print(table)


def _pct(row: dict[str, Any]) -> str:
    return "—" if row.get("share") is None else f"{100 * row['share']:.0f} %"


def _print_ripple(ripple: dict[str, Any], console: Console) -> None:
    table = Table(
        title=f"ripple at {ripple['scale']:,} landing rows under `ddp dev` (seconds after the "
        "file landed)",
        title_justify="left",
    )
    table.add_column("step")
    table.add_column("s", justify="right")
    for step, seconds in ripple["steps_after_drop_s"].items():
        table.add_row(step, _s(seconds))
    for run in ripple["runs"]:
        table.add_row(
            f"  run {run['run_id'][:8]} ({run['status']}): created / started / took",
            f"{_s(run['created_after_drop_s'])} / {_s(run['started_after_drop_s'])} / "
            f"{_s(run['duration_s'])}",
        )
    console.print(table)
    console.print(
        f"ripple latency {ripple['latency_s']:.1f} s = {ripple['ratio_to_target']:.2f}x the "
        f"{ripple['target_s']:.0f} s target"
    )


def _floor(scale: dict[str, Any] | None, name: str) -> float | None:
    """The import floor of a ratio (bench/e2e.py: floors), if this run measured it."""
    return (scale or {}).get("floors", {}).get(name)


def _print_targets(rows: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="targets (from the issue)", title_justify="left")
    table.add_column("target")
    table.add_column("measured", justify="right")
    table.add_column("floor", justify="right")
    table.add_column("status")
    for row in rows:
        shown = _s(row["measured"])
        status = {True: "[green]met[/green]", False: "[red]not met[/red]"}.get(
            row["met"], "not measured in this run"
        )
        table.add_row(row["target"], shown, _s(row.get("floor")), status)
    console.print(table)
    if any(row.get("floor") is not None for row in rows):
        console.print(
            "  floor: the lowest ratio a run could reach that loads ddp's libraries in one "
            "process (I, imports only) and does what plain dbt does after its imports (B - "
            "Idbt; at 10M also B' and C), with nothing for Dagster's own run"
        )


def _print_incremental(incremental: dict[str, Any], console: Console) -> None:
    table = Table(
        title="incremental: a late 0.1 % batch for one day of usage_events, then usage_metrics "
        "(seconds, wall)",
        title_justify="left",
    )
    for column in ("history (events)", "batch rows", "ddp materialize", "runs (partition: s)"):
        table.add_column(column, justify="right")
    for history in incremental["histories"]:
        runs = ", ".join(
            f"{run['partition'] or 'unpartitioned'}: {_s(run['seconds'])}"
            for run in history["runs"]
        )
        table.add_row(
            f"{history['events']:,}",
            f"{history['batch_rows']:,}",
            _s(history["batch"]["seconds"]),
            runs,
        )
    console.print(table)
    backfill = incremental["backfill"]
    console.print(
        f"backfill of {backfill['days']} days {_s(backfill['backfill']['seconds'])} s vs one "
        f"unpartitioned build of the same rows {_s(backfill['full_build']['seconds'])} s: "
        f"{backfill['backfill_over_full']:.2f}x"
    )


def _print_preview(preview: dict[str, Any], console: Console) -> None:
    console.print(
        f"preview at {preview['scale']:,} landing rows of {', '.join(preview['products'])}: "
        f"prod materialize {_s(preview['prod_materialize']['seconds'])} s, env create "
        f"{_s(preview['env_create']['seconds'])} s, preview materialize "
        f"{_s(preview['preview_materialize']['seconds'])} s ({preview['preview_over_prod']:.2f}x);"
        f" rows in tables of the {preview['unchanged_schemas']} unchanged products' schemas "
        f"{preview['rows_copied_of_unchanged_products']:,}, rows the preview built "
        f"{preview['rows_built_by_the_preview']:,}, warehouse growth "
        f"{preview['warehouse_growth_bytes'] / 1e6:.1f} MB; ddp ci unchanged "
        f"{_s(preview['ci_unchanged']['seconds'])} s vs ddp validate "
        f"{_s(preview['validate']['seconds'])} s ({preview['ci_over_validate']:.2f}x)"
    )
