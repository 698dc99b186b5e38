"""A peer's test suite on ddp's output: datacontract-cli lints and tests every exported contract.

datacontract-cli (Apache-2.0) is a tool nobody here wrote. It runs in its own virtual
environment with its own pins (it pins duckdb<1.6, ddp runs DuckDB 2.0), made with pip from
PyPI on first use and reused while its version is the same (``$DDP_DATACONTRACT_VENV``, else
``$XDG_CACHE_HOME/ddp/datacontract-cli-<version>``). Every output port's contract is exported
with ``ddp contract export`` (so it carries the ``servers`` block of the built demo warehouse),
then ``datacontract lint`` and ``datacontract test`` run on it in subprocesses: each must
pass, with checks actually run (their JSON results are read), none failed. ``test`` opens the
built demo warehouse with the venv's DuckDB 1.x (ddp writes its files in a storage version
DuckDB >= 1.4 reads, ``tests/test_duckdb_compat.py``) and checks the published view of each
port against its contract: schema, types, required, unique, quality rules.

Without the venv the test fails in CI (``CI`` set) and is skipped elsewhere (offline machine).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ddp_assets.cli.app import app
from ddp_assets.dbt.load_cache import load_registry
from ddp_assets.settings import ProjectPaths

pytestmark = [pytest.mark.slow, pytest.mark.integration]

VERSION = "1.2.8"
REQUIREMENT = f"datacontract-cli[duckdb,postgres]=={VERSION}"
INSTALL_TIMEOUT = 900
WORKERS = 2  # datacontract runs at once (each is one process; CI has 2 cores)


class VenvUnavailable(Exception):
    """The datacontract-cli virtual environment could not be made."""


def venv_dir() -> Path:
    explicit = os.environ.get("DDP_DATACONTRACT_VENV")
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "ddp" / f"datacontract-cli-{VERSION}"


def _clean_env() -> dict[str, str]:
    """The environment without ddp's own virtual environment (its python, its packages)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(
        p
        for p in env.get("PATH", "").split(os.pathsep)
        if Path(p).resolve() != Path(sys.executable).parent.resolve()
    )
    return env


def ensure_venv() -> tuple[Path, float]:
    """The venv's ``datacontract`` executable, made when missing (a lock keeps two pytest
    processes from making it at once), and the seconds spent making it (0 when reused)."""
    root = venv_dir()
    marker = root / ".ddp-installed"
    exe = root / "bin" / "datacontract"
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text() == REQUIREMENT and exe.is_file():
            return exe, 0.0
        started = time.perf_counter()
        shutil.rmtree(root, ignore_errors=True)  # a half-made venv is never reused
        steps = [
            [sys.executable, "-m", "venv", str(root)],
            [str(root / "bin" / "python"), "-m", "pip", "install", "--quiet", REQUIREMENT],
        ]
        for step in steps:
            try:
                done = subprocess.run(
                    step,
                    capture_output=True,
                    text=True,
                    timeout=INSTALL_TIMEOUT,
                    env=_clean_env(),
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as error:
                raise VenvUnavailable(f"{' '.join(step)}: {error}") from None
            if done.returncode != 0:
                tail = (done.stdout + done.stderr)[-3000:]
                raise VenvUnavailable(f"{' '.join(step)} exited {done.returncode}:\n{tail}")
        if not exe.is_file():
            raise VenvUnavailable(f"{REQUIREMENT} installed no {exe}")
        marker.write_text(REQUIREMENT)
        return exe, time.perf_counter() - started


@pytest.fixture(scope="session")
def datacontract() -> Path:
    try:
        exe, seconds = ensure_venv()
    except VenvUnavailable as error:
        message = f"cannot make the datacontract-cli venv at {venv_dir()}: {error}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    if seconds:
        print(f"\nmade the datacontract-cli {VERSION} venv in {seconds:.1f}s")
    return exe


@dataclass(frozen=True)
class Exported:
    product: str
    port: str
    path: Path
    document: dict[str, Any]

    @property
    def server(self) -> str:
        return self.document["servers"][0]["server"]


@pytest.fixture(scope="module")
def exported(built_demo: Any, demo_env: Any, tmp_path_factory: Any) -> Iterator[list[Exported]]:
    """Every output port's contract of the built demo, through ``ddp contract export``."""
    paths: ProjectPaths = demo_env.paths
    folder = tmp_path_factory.mktemp("exported_contracts")
    found = []
    for product in load_registry(paths).products.values():
        for port in product.spec.output_ports:
            path = folder / f"{product.id}.{port.name}.odcs.yaml"
            args = ["contract", "export", product.id, port.name, "--output", str(path)]
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 0, result.output
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
            found.append(Exported(product.id, port.name, path, document))
    yield found


def run_datacontract(exe: Path, command: list[str], out: Path) -> dict[str, Any]:
    """``datacontract COMMAND --output-format json --output OUT``: its JSON result, with
    the exit code and output kept for messages."""
    done = subprocess.run(
        [str(exe), *command, "--output-format", "json", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**_clean_env(), "COLUMNS": "200"},
        check=False,
    )
    assert out.is_file(), f"datacontract {command} wrote no result:\n{done.stdout}{done.stderr}"
    result = json.loads(out.read_text(encoding="utf-8"))
    result["_exit"] = done.returncode
    result["_output"] = done.stdout[-4000:] + done.stderr[-2000:]
    return result


def each(exported: list[Exported], run: Callable[[Exported], dict[str, Any]]) -> list[Any]:
    """``run`` on every contract, ``WORKERS`` at a time, results in ``exported``'s order."""
    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(run, exported))


def outcome(result: dict[str, Any]) -> tuple[int, list[str]]:
    """(checks run, descriptions of the checks that did not pass: the failed or erred ones,
    then how many were not run at all)."""
    checks = result.get("checks") or []
    bad = [
        f"{c.get('model')}.{c.get('field')}: {c.get('name')} → {c.get('result')}: "
        f"{c.get('reason') or ''}"
        for c in checks
        if c.get("result") not in ("passed", None)
    ]
    not_run = sum(1 for c in checks if c.get("result") is None)
    if not_run:
        bad.append(f"{not_run} of {len(checks)} checks not run")
    return len(checks), bad


def test_venv_has_its_own_pins(datacontract: Path) -> None:
    """The peer runs with its own dependencies, not ddp's (DuckDB 1.x against ddp's 2.0)."""
    python = datacontract.parent / "python"
    probe = (
        "import importlib.metadata as m; print(m.version('datacontract-cli'), m.version('duckdb'))"
    )
    shown = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, check=True, env=_clean_env()
    ).stdout.split()
    import duckdb

    assert shown[0] == VERSION
    assert shown[1].startswith("1."), shown
    assert shown[1] != duckdb.__version__


def test_every_port_is_exported_with_the_demo_warehouse(
    exported: list[Exported], demo_env: Any
) -> None:
    registry = load_registry(demo_env.paths)
    ports = {(p.id, o.name) for p in registry.products.values() for o in p.spec.output_ports}
    assert {(e.product, e.port) for e in exported} == ports
    assert len(ports) >= 13
    warehouse = str(demo_env.paths.warehouse_path.absolute())
    for e in exported:
        server = e.document["servers"][0]
        assert (server["type"], server["database"], server["schema"]) == (
            "duckdb",
            warehouse,
            e.product,
        )
        # the published relation is a view over the port's published version
        model = registry.products[e.product].spec.output_port(e.port).model  # type: ignore[union-attr]
        named = [o["physicalType"] for o in e.document["schema"] if o["physicalName"] == model]
        assert named == ["view"], e.path.name


def test_datacontract_lint_passes_on_every_contract(
    datacontract: Path, exported: list[Exported], tmp_path: Path
) -> None:
    started, total, failures = time.perf_counter(), 0, []
    results = each(
        exported,
        lambda e: run_datacontract(
            datacontract, ["lint", str(e.path)], tmp_path / f"{e.product}.{e.port}.lint.json"
        ),
    )
    for e, result in zip(exported, results, strict=True):
        checks, bad = outcome(result)
        total += checks
        if result["_exit"] != 0 or result.get("result") != "passed" or not checks or bad:
            failures.append(f"{e.path.name}: {result.get('result')} {bad}\n{result['_output']}")
    assert not failures, "\n\n".join(failures)
    print(
        f"\ndatacontract lint: {len(exported)} contracts, {total} checks passed "
        f"in {time.perf_counter() - started:.1f}s"
    )


def test_datacontract_test_passes_on_every_contract(
    datacontract: Path, exported: list[Exported], tmp_path: Path
) -> None:
    """datacontract-cli reads the built warehouse itself and checks every port's published
    relation against its exported contract."""
    started, total, failures = time.perf_counter(), 0, []
    results = each(
        exported,
        lambda e: run_datacontract(
            datacontract,
            ["test", str(e.path), "--server", e.server],
            tmp_path / f"{e.product}.{e.port}.test.json",
        ),
    )
    for e, result in zip(exported, results, strict=True):
        checks, bad = outcome(result)
        total += checks
        # a check per column at least: its presence and type are always checked
        columns = sum(len(o.get("properties") or []) for o in e.document["schema"])
        if result["_exit"] != 0 or result.get("result") != "passed" or checks < columns or bad:
            failures.append(f"{e.path.name}: {result.get('result')} {bad}\n{result['_output']}")
    assert not failures, "\n\n".join(failures)
    print(
        f"\ndatacontract test: {len(exported)} contracts, {total} checks passed "
        f"in {time.perf_counter() - started:.1f}s"
    )
