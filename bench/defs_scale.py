"""Definitions at scale: loading the ddp code location vs plain dagster-dbt, 100 to 2000 models.

For each size a synthetic project (:mod:`bench.synth`) is generated and prepared once with
``ddp prepare`` (its dbt parse is reported, not counted in the load). Then, in alternation:

- ddp: a process that imports ``ddp_assets.definitions`` from the synthetic project
  (``PYTHONPATH``), calls ``defs()`` and resolves the asset graph;
- plain: a process that builds ``Definitions`` with one ``@dbt_assets`` over the same prepared
  ``manifest.json`` and resolves the asset graph.

Each prints phase marks (framework import, project import, definitions, asset graph). The
manifest and ddp's fingerprint are checked before and after every ddp load: a load that
re-parsed dbt is reported as such.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    Measured,
    Samples,
    Settings,
    fresh_dir,
    python_env,
    ratio,
    run_measured,
    tool,
    wait_for_quiet,
)
from bench.scripts import DDP_DEFS_LOAD, PLAIN_DEFS_LOAD, write_script
from bench.synth import MODELS_PER_PRODUCT, generate_project

LOADERS = ("ddp", "plain")
PHASES = ("interpreter_start", "framework_import", "project_import", "definitions", "asset_graph")


@dataclass
class SizeResult:
    models: int
    products: int
    prepare: dict[str, Any]
    seconds: dict[str, Samples] = field(default_factory=lambda: {k: Samples() for k in LOADERS})
    cpu: dict[str, Samples] = field(default_factory=lambda: {k: Samples() for k in LOADERS})
    # CPU until the definitions are loaded (the process's own clock, before it exits): what the
    # whole-process CPU less the interpreter's exit, whose collector passes grow with the heap
    cpu_loaded: dict[str, Samples] = field(default_factory=lambda: {k: Samples() for k in LOADERS})
    loadavg: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in LOADERS})
    rss: dict[str, Samples] = field(default_factory=lambda: {k: Samples() for k in LOADERS})
    phases: dict[str, dict[str, Samples]] = field(
        default_factory=lambda: {k: {p: Samples() for p in PHASES} for k in LOADERS}
    )
    assets: dict[str, int] = field(default_factory=dict)
    checks: dict[str, int] = field(default_factory=dict)
    parsed_at_load: bool = False
    profile: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "models": self.models,
            "products": self.products,
            "prepare": self.prepare,
            "seconds": {k: v.to_dict() for k, v in self.seconds.items()},
            "cpu_seconds": {k: v.to_dict() for k, v in self.cpu.items()},
            "loadavg_1m": self.loadavg,
            "ratio_cpu": round(ratio(self.cpu["ddp"].median, self.cpu["plain"].median), 3),
            "cpu_seconds_loaded": {k: v.to_dict() for k, v in self.cpu_loaded.items()},
            "ratio_cpu_loaded": round(
                ratio(self.cpu_loaded["ddp"].median, self.cpu_loaded["plain"].median), 3
            ),
            "peak_rss_mb": {k: round(v.median, 1) for k, v in self.rss.items()},
            "phases": {
                k: {p: round(s.median, 3) for p, s in phases.items()}
                for k, phases in self.phases.items()
            },
            "assets": self.assets,
            "checks": self.checks,
            "ratio_total": round(self.ratio_total, 3),
            "ratio_definitions": round(self.ratio_definitions, 3),
            "ms_per_model": {
                k: round(1000 * self.seconds[k].median / self.models, 2) for k in LOADERS
            },
            "dbt_parse_at_load": self.parsed_at_load,
            **({"profile": self.profile} if self.profile else {}),
        }

    @property
    def ratio_total(self) -> float:
        return ratio(self.seconds["ddp"].median, self.seconds["plain"].median)

    @property
    def ratio_definitions(self) -> float:
        """ddp/plain without the common framework import and interpreter start-up."""

        def own(loader: str) -> float:
            phases = self.phases[loader]
            return sum(phases[p].median for p in ("project_import", "definitions", "asset_graph"))

        return ratio(own("ddp"), own("plain"))


def _state(project: Path) -> tuple[int, str]:
    """The prepared manifest's mtime and ddp's fingerprint: both change if dbt re-parses."""
    target = project / "dbt_project" / "target" / "dev"
    manifest = target / "manifest.json"
    stamp = target / "ddp_fingerprint.txt"
    return (
        manifest.stat().st_mtime_ns if manifest.exists() else 0,
        stamp.read_text(encoding="utf-8") if stamp.exists() else "",
    )


class Loader:
    def __init__(self, settings: Settings, project: Path, scripts: Path, logs: Path):
        self.settings = settings
        self.project = project
        self.logs = logs
        self.manifest = project / "dbt_project" / "target" / "dev" / "manifest.json"
        self.ddp_script = write_script(scripts, "ddp_defs_load.py", DDP_DEFS_LOAD)
        self.plain_script = write_script(scripts, "plain_defs_load.py", PLAIN_DEFS_LOAD)
        self.data = fresh_dir(project.parent / "data")

    def env(self) -> dict[str, str]:
        return python_env(
            self.settings,
            PYTHONPATH=self.project,
            DDP_PROJECT_ROOT=self.project,
            DDP_DATA_DIR=self.data,
        )

    def prepare(self) -> dict[str, Any]:
        measured = run_measured(
            "ddp prepare",
            [tool("ddp"), "prepare"],
            env=self.env(),
            cwd=self.project,
            logs=self.logs,
        ).check()
        return measured.to_dict()

    def load(self, loader: str, label: str) -> tuple[Measured, dict[str, Any], bool]:
        """(the measured process, its phase marks, whether dbt re-parsed) of one load."""
        if loader == "ddp":
            command = [tool("python"), str(self.ddp_script)]
        else:
            command = [
                tool("python"),
                str(self.plain_script),
                str(self.manifest),
                str(self.project / "dbt_project"),
            ]
        before = _state(self.project)
        measured = run_measured(
            label, command, env=self.env(), cwd=self.project, logs=self.logs
        ).check()
        parsed = _state(self.project) != before
        marks = json.loads(measured.stdout.strip().splitlines()[-1])
        marks["interpreter_start"] = marks["wall0"] - measured.started_at
        return measured, marks, parsed


def run_size(
    settings: Settings, models: int, repeat: int, warmup: bool, log: Any, profile: bool = False
) -> tuple[SizeResult, dict[str, Any] | None]:
    folder = fresh_dir(settings.work / f"defs_{models}")
    project, products = generate_project(folder / "project", models)
    loader = Loader(settings, project, folder / "scripts", folder / "logs")
    log(f"  {models} models in {products} products: ddp prepare (dbt parse) ...")
    result = SizeResult(models, products, loader.prepare())
    warm: dict[str, Any] | None = None
    if warmup:
        warm = {k: round(loader.load(k, f"warmup {k}")[0].seconds, 3) for k in LOADERS}
        log(f"  warm-up loads (not counted): ddp {warm['ddp']:.2f} s, plain {warm['plain']:.2f} s")
    for index in range(repeat):
        for kind in LOADERS:  # alternate, so drifts in machine load hit both alike
            wait_for_quiet(settings)
            measured, marks, parsed = loader.load(kind, f"{kind} load {index + 1}")
            result.seconds[kind].add(measured.seconds)
            result.cpu[kind].add(measured.cpu_seconds)
            result.cpu_loaded[kind].add(float(marks["cpu_loaded"]))
            result.loadavg[kind].append(round(measured.loadavg[0], 2))
            result.rss[kind].add(measured.peak_rss_mb)
            for phase in PHASES:
                result.phases[kind][phase].add(float(marks[phase]))
            result.assets[kind] = int(marks["assets"])
            result.checks[kind] = int(marks["checks"])
            if kind == "ddp" and parsed:
                result.parsed_at_load = True
        log(
            f"    load {index + 1}/{repeat}: ddp {result.seconds['ddp'].values[-1]:.2f} s, "
            f"plain {result.seconds['plain'].values[-1]:.2f} s"
        )
    if profile:
        from bench.profile import profile_load

        log(f"  {models} models: profiling one more ddp load (not counted) ...")
        result.profile = profile_load(loader.env(), project, folder / "profile")
    if not settings.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return result, warm


def growth(results: Sequence[SizeResult]) -> dict[str, Any]:
    """Cost per model of the definitions phase at each size, its log-log exponent, and the
    whole-process marginal cost per model between consecutive sizes (informative: noisy)."""
    out: dict[str, Any] = {}
    for kind in LOADERS:
        sizes = [r.models for r in results]
        totals = [r.seconds[kind].median for r in results]
        definitions = [
            sum(r.phases[kind][p].median for p in ("project_import", "definitions", "asset_graph"))
            for r in results
        ]
        marginal = [
            1000 * (totals[i] - totals[i - 1]) / (sizes[i] - sizes[i - 1])
            for i in range(1, len(sizes))
        ]
        exponent = _exponent(sizes, definitions)
        per_model = [1000 * d / s for d, s in zip(definitions, sizes, strict=True)]
        out[kind] = {
            "marginal_ms_per_model": [round(m, 3) for m in marginal],
            "definitions_ms_per_model": [round(m, 3) for m in per_model],
            "definitions_exponent": round(exponent, 3),
            "linear": _linear(per_model, exponent),
        }
    return out


def _exponent(sizes: Sequence[int], seconds: Sequence[float]) -> float:
    """k in seconds ~ sizes**k, least squares on logs (1.0 = linear)."""
    points = [(math.log(s), math.log(t)) for s, t in zip(sizes, seconds, strict=True) if t > 0]
    if len(points) < 2:
        return float("nan")
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    return sxy / sxx if sxx else float("nan")


def _linear(per_model: Sequence[float], exponent: float) -> bool | None:
    """Linear when the definitions phase's cost per model does not grow with the size.

    With a fixed part, a linear cost per model falls as the size grows; a super-linear one
    rises. Allowed: the largest size's cost per model up to 25 % above the lowest before it
    (noise on a shared 2-core machine), and a log-log exponent up to 1.15.
    """
    if len(per_model) < 2:
        return None
    return per_model[-1] <= 1.25 * min(per_model[:-1]) and not exponent > 1.15


def run(
    settings: Settings, sizes: Sequence[int], repeat: int, warmup: bool, log: Any
) -> dict[str, Any]:
    for size in sizes:
        if size % MODELS_PER_PRODUCT:
            raise ValueError(f"sizes must be multiples of {MODELS_PER_PRODUCT}: {size}")
    log("definitions at scale")
    results: list[SizeResult] = []
    warmups: dict[str, Any] = {}
    for index, size in enumerate(sizes):
        largest = index == len(sizes) - 1
        # A warm-up at every size: each synthetic project is a new copy of ddp_assets, whose
        # first import compiles it into the bytecode cache (plain imports only site-packages),
        # and its files are not in the page cache yet. Both would fall on ddp's first sample.
        result, warm = run_size(settings, size, repeat, warmup, log, settings.profile and largest)
        results.append(result)
        if warm is not None:
            warmups[str(size)] = warm
    return {
        "models_per_product": MODELS_PER_PRODUCT,
        "warmup": warmups or None,
        "sizes": [r.to_dict() for r in results],
        "growth": growth(results),
    }
