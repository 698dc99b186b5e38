"""``python -m bench [e2e|defs|ripple|incremental|preview|all|rest|publish] [--scales ...]``
(``make bench``)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import defs_scale, e2e, incremental, preview, ripple
from bench.common import RESULTS_DIR, BenchError, Settings, machine_info
from bench.report import print_report, targets
from bench.synth import MODELS_PER_PRODUCT

DEFAULT_SIZES = (100, 500, 1000)
BIG_SIZE = 2000


def _ints(text: str) -> list[int]:
    try:
        values = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers: {text!r}") from error
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers: {text!r}")
    return values


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="ddp benchmarks: end to end vs dbt, dagster-dbt and the DuckDB floor; "
        "definitions load at scale vs plain dagster-dbt. Prints ratios, writes JSON.",
    )
    p.add_argument(
        "mode",
        nargs="?",
        choices=("e2e", "defs", "ripple", "incremental", "preview", "all", "rest"),
        default="all",
    )
    p.add_argument(
        "--scales",
        type=_ints,
        default=[100_000],
        help="landing rows for the end-to-end runs, e.g. 100000,1000000 (default 100000); "
        "for incremental: usage events of history, e.g. 100000,10000000",
    )
    p.add_argument("--repeat", type=int, default=1, help="runs per measurement; the median is kept")
    p.add_argument("--big", action="store_true", help=f"also load {BIG_SIZE} models")
    p.add_argument(
        "--sizes",
        type=_ints,
        default=None,
        help="model counts for the definitions runs (default 100,500,1000; multiples of 10)",
    )
    p.add_argument("--name", default=None, help="results file name (bench/results/<name>.json)")
    p.add_argument("--no-warmup", action="store_true", help="skip the (reported) warm-up runs")
    p.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="run with this environment's PYTHONDONTWRITEBYTECODE as is (see bench/common.py)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary folder and logs")
    p.add_argument(
        "--profile",
        action="store_true",
        help="also profile one extra ddp materialize per scale and one ddp load at the largest "
        "size (not counted in the figures)",
    )
    p.add_argument(
        "--max-load",
        type=float,
        default=float(os.cpu_count() or 1),
        help="before each measurement, wait for the 1-min load average to drop to this "
        "(default: the CPU count)",
    )
    p.add_argument(
        "--max-wait",
        type=float,
        default=30.0,
        help="longest wait for --max-load before measuring anyway, in seconds (default 30; "
        "0 never waits)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(argv if argv is not None else sys.argv[1:])
    if raw[:1] == ["rest"]:  # the REST port's benchmark has options of its own: bench/rest.py
        from bench import rest

        return rest.main(raw[1:])
    if raw[:1] == ["publish"]:  # the versioned publish's own costs: bench/publish.py
        from bench import publish

        return publish.main(raw[1:])
    args = parser().parse_args(argv)
    if args.repeat < 1:
        parser().error("--repeat must be at least 1")
    if args.sizes and any(size % MODELS_PER_PRODUCT for size in args.sizes):
        parser().error(f"--sizes must be multiples of {MODELS_PER_PRODUCT} (models per product)")
    sizes: list[int] = list(args.sizes or DEFAULT_SIZES)
    if args.big and BIG_SIZE not in sizes:
        sizes.append(BIG_SIZE)
    sizes.sort()
    console = Console(width=None if sys.stdout.isatty() else 160)
    progress = Console(stderr=True, highlight=False)

    def log(message: str) -> None:
        progress.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}")

    work = Path(tempfile.mkdtemp(prefix="ddp-bench-"))
    settings = Settings(
        work=work,
        bytecode_cache=not args.no_bytecode_cache,
        keep=args.keep,
        max_load=args.max_load,
        max_wait=args.max_wait,
        profile=args.profile,
    )
    name = args.name or time.strftime(f"%Y%m%d-%H%M%S-{args.mode}")
    results: dict[str, Any] = {
        "name": name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": ["python", "-m", "bench", *(argv if argv is not None else sys.argv[1:])],
        "settings": {
            "mode": args.mode,
            "scales": args.scales,
            "sizes": sizes,
            "repeat": args.repeat,
            "warmup": not args.no_warmup,
            "bytecode_cache": settings.bytecode_cache,
            "first_run_included": True,
            "max_load": args.max_load,
            "max_wait": args.max_wait,
            "profile": args.profile,
        },
        "machine": machine_info(),
    }
    started = time.perf_counter()
    log(f"work folder {work}")
    try:
        if args.mode in ("e2e", "all"):
            results["e2e"] = e2e.run(settings, args.scales, args.repeat, not args.no_warmup, log)
        if args.mode in ("defs", "all"):
            results["defs"] = defs_scale.run(settings, sizes, args.repeat, not args.no_warmup, log)
        if args.mode in ("ripple", "all"):
            results["ripple"] = ripple.run(settings, args.scales[0], log)
        if args.mode == "incremental":
            results["incremental"] = incremental.run(settings, args.scales, log)
        if args.mode == "preview":
            results["preview"] = preview.run(settings, args.scales[0], log)
    except BenchError as error:
        progress.print(f"[red]error:[/red] {error}")
        progress.print(f"the work folder is kept for its logs: {work}")
        return 1
    if args.keep:
        log(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    results["targets"] = targets(results)
    print_report(results, console)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    console.print(f"results: {path} ({results['wall_seconds']:.0f} s in all)")
    return 0
