"""What every benchmark shares: project snapshots, measured subprocesses, the environment.

Every measured command runs in a subprocess started here; its wall time is taken around
``Popen``/``os.wait4``, its CPU time is the ``rusage`` that ``wait4`` reports (the process and
the children it waited for), and its peak memory is ``/usr/bin/time``'s ``%M`` (the largest
resident set of the process and of the children it waited for; see ``TIME_BINARY``).
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
RESULTS_DIR = REPO / "bench" / "results"
# A bytecode cache owned by the harness (bench/results/ is git-ignored): see python_env().
PYCACHE_DIR = RESULTS_DIR / ".pycache"

# Environment variables that would point a measured process at someone else's state.
_SCRUBBED = (
    "DDP_DATA_DIR",
    "DDP_PROJECT_ROOT",
    "DDP_DBT_TARGET",
    "DAGSTER_HOME",
    "DBT_TARGET_PATH",
    "DBT_PROFILES_DIR",
    "DBT_PROJECT_DIR",
    "DBT_LOG_PATH",
    "PYTHONPATH",
)


def tool(name: str) -> str:
    """An executable of this virtualenv (ddp, dbt, python)."""
    candidate = VENV_BIN / name
    return str(candidate) if candidate.exists() else name


@dataclass(frozen=True)
class Settings:
    """Options shared by the benchmarks."""

    work: Path  # the harness's temporary folder
    bytecode_cache: bool = True
    keep: bool = False
    max_load: float = float(os.cpu_count() or 1)  # wait for the 1-min load average to drop to ...
    max_wait: float = 30.0  # ... at most this long before each measurement
    profile: bool = False  # also profile one extra (uncounted) run of each kind


def wait_for_quiet(settings: Settings) -> float:
    """Wait (up to ``settings.max_wait`` s) for the machine's 1-minute load average to fall to
    ``settings.max_load``: other people's processes on a shared machine distort wall times.
    Returns the seconds waited (the load at the start of each measurement is recorded)."""
    started = time.monotonic()
    while os.getloadavg()[0] > settings.max_load and time.monotonic() - started < settings.max_wait:
        time.sleep(2)
    return time.monotonic() - started


def python_env(settings: Settings, **extra: str | Path) -> dict[str, str]:
    """The environment of a measured process: this one, scrubbed, plus ``extra``.

    This machine sets ``PYTHONDONTWRITEBYTECODE=1`` and the virtualenv holds no ``.pyc``
    files, so every Python process would compile each module it imports from source (about
    7 s of CPU for a process that imports dagster and dbt). That is not how an installed
    platform runs, so measured processes get a bytecode cache of their own
    (``PYTHONPYCACHEPREFIX``, under ``bench/results/``), which never touches the virtualenv.
    ``--no-bytecode-cache`` measures the environment as it is.
    """
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    # As in an activated virtualenv: `dbt` (which dagster-dbt looks up on PATH) is this one.
    env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", "")])
    if settings.bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE_DIR)
    env.update({k: str(v) for k, v in extra.items()})
    return env


@dataclass
class Measured:
    """One measured subprocess."""

    label: str
    seconds: float
    peak_rss_mb: float
    returncode: int
    started_at: float  # time.time() just before the process was started
    ended_at: float  # time.time() just after it was reaped
    stdout_path: Path
    stderr_path: Path
    cpu_seconds: float = 0.0  # user + system CPU of the process and the children it waited for
    loadavg: tuple[float, float, float] = (0.0, 0.0, 0.0)  # load averages before the run

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def tail(self, lines: int = 30) -> str:
        text = self.stderr_path.read_text(encoding="utf-8", errors="replace")
        text += self.stdout_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def check(self) -> Measured:
        if self.returncode != 0:
            raise BenchError(
                f"{self.label} failed (exit {self.returncode}); last lines of its output:\n"
                f"{self.tail()}\n(full logs: {self.stdout_path.parent})"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 3),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "returncode": self.returncode,
            "loadavg_1m": round(self.loadavg[0], 2),
        }


class BenchError(RuntimeError):
    """A measured command failed: the benchmark cannot go on honestly."""


def run_measured(
    label: str,
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    logs: Path,
) -> Measured:
    """Run ``command`` to completion; its wall time and peak RSS (logs go to files)."""
    logs.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
    out_path, err_path = logs / f"{safe}.stdout", logs / f"{safe}.stderr"
    rss_path = logs / f"{safe}.maxrss"
    argv = list(command)
    if TIME_BINARY.exists():
        argv = [str(TIME_BINARY), "-f", "%M", "-o", str(rss_path), *argv]
    load = os.getloadavg()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started_at = time.time()
        started = time.perf_counter()
        process = subprocess.Popen(argv, env=dict(env), cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        ended_at = time.time()
    process.returncode = os.waitstatus_to_exitcode(status)
    return Measured(
        label=label,
        seconds=seconds,
        peak_rss_mb=_peak_rss_mb(rss_path, usage.ru_maxrss),
        returncode=process.returncode,
        started_at=started_at,
        ended_at=ended_at,
        stdout_path=out_path,
        stderr_path=err_path,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        loadavg=load,
    )


# Linux keeps a process's peak RSS across fork and exec: a child started straight from this
# harness (which holds dagster, DuckDB and data) would report at least the harness's own peak.
# /usr/bin/time is small when it forks the measured command, so its %M is the command's own.
TIME_BINARY = Path("/usr/bin/time")


def _peak_rss_mb(path: Path, fallback_kb: int) -> float:
    try:
        lines = path.read_text(encoding="utf-8").split()
        return int(lines[-1]) / 1024
    except (OSError, ValueError, IndexError):
        return fallback_kb / 1024


def median(values: Iterable[float]) -> float:
    items = list(values)
    return statistics.median(items) if items else float("nan")


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


@dataclass
class Samples:
    """Repeated measurements of one quantity (seconds unless said otherwise)."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return median(self.values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "median": round(self.median, 3),
            "samples": [round(v, 3) for v in self.values],
            "first_included": True,
        }


# -- project snapshots -------------------------------------------------------------------------

_PROJECT_FILES = ("pyproject.toml", "dagster.yaml", "workspace.yaml")


def copy_project(destination: Path, *, with_products: bool = True) -> Path:
    """A copy of this project (code, dbt project, instance config) at ``destination``.

    Measurements run against a snapshot so that engineers editing the checkout meanwhile
    cannot change the project halfway through a run, and so that nothing is written into the
    checkout's ``dbt_project/target`` or ``data/``. Without products, ``ddp_assets/defs`` keeps
    only its ``__init__.py`` and ``_platform`` (the synthetic projects fill it).
    """
    destination.mkdir(parents=True, exist_ok=True)
    for name in _PROJECT_FILES:
        shutil.copy2(REPO / name, destination / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    package = REPO / "ddp_assets"
    if with_products:
        shutil.copytree(package, destination / "ddp_assets", ignore=skip)
        if (REPO / "depots").is_dir():  # the depots the demo's products read
            shutil.copytree(REPO / "depots", destination / "depots", ignore=skip)
    else:

        def skip_products(folder: str, names: list[str]) -> set[str]:
            ignored = set(skip(folder, names))
            if Path(folder) == package / "defs":
                ignored |= {n for n in names if n not in ("__init__.py", "_platform")}
            return ignored

        shutil.copytree(package, destination / "ddp_assets", ignore=skip_products)
    shutil.copytree(
        REPO / "dbt_project",
        destination / "dbt_project",
        ignore=shutil.ignore_patterns("target", "logs", "_ddp", "dbt_packages"),
    )
    return destination


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


# -- machine -----------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return float("nan")


def machine_info() -> dict[str, Any]:
    versions = {}
    for package in ("dagster", "dagster-dbt", "dbt-core", "dbt-duckdb", "duckdb", "polars"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": _memory_gb(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
