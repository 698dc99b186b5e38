"""ddp as a team installs it: the built wheel in a fresh virtual environment outside this
repository, `ddp init` (empty and `--demo`), `ddp new`, `ddp validate`, `ddp materialize --all`,
`dg check defs`, `dagster definitions validate` and `ddp dev` without DAGSTER_HOME, and contracts
validated against the ODCS schema the distribution carries (an invalid one fails).

Nothing here reads this checkout at run time: the projects live under pytest's tmp folder,
with no ``../shared`` beside them, and the commands run from the fresh environment's ``bin``.
The environment is installed with the versions of ``uv.lock`` (as constraints), from uv's cache
where ``make setup`` already filled it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.dagster_process import running, wait_for

ROOT = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).parent / "uv"

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@dataclass(frozen=True)
class Installed:
    bin: Path
    wheel: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DDP_", "DAGSTER_"))}
        env.pop("VIRTUAL_ENV", None)
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env.update(extra)
        return env

    def run(
        self, args: Sequence[str], cwd: Path, *, ok: bool = True, timeout: float = 600, **env: str
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            cwd=cwd,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if ok:
            assert result.returncode == 0, (
                f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
            )
        return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel built from this checkout, installed in a new venv (with dagster-dg-cli)."""
    if not UV.exists():
        pytest.fail(f"uv is not installed next to {sys.executable} (make setup installs it)")
    work = tmp_path_factory.mktemp("install")
    subprocess.run(
        [str(UV), "build", "--wheel", "--out-dir", str(work / "dist"), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = (work / "dist").glob("ddp-*.whl")
    constraints = work / "constraints.txt"
    subprocess.run(
        [str(UV), "export", "--frozen", "--no-hashes", "--extra", "dev", "--no-emit-project"],
        cwd=ROOT,
        check=True,
        stdout=constraints.open("w"),
        timeout=120,
    )
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [
            str(UV),
            "pip",
            "install",
            "--python",
            str(venv / "bin" / "python"),
            "-c",
            str(constraints),
            str(wheel),
            "dagster-dg-cli",
        ],
        check=True,
        capture_output=True,
        timeout=900,
    )
    return Installed(venv / "bin", wheel)


def test_the_wheel_carries_what_the_platform_reads_at_run_time(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for needed in (
        "ddp_assets/dbt/macros/ref.sql",
        "ddp_assets/dbt/macros/generate_schema_name.sql",
        "ddp_assets/standards/odps-json-schema-v1.0.0.json",
        "ddp_assets/standards/odps-json-schema-v1.1.0.json",
        "ddp_assets/starter/templates/project/pyproject.toml",
        "ddp_assets/starter/templates/project/__package__/definitions.py",
        "ddp_assets/defs/sales/orders/defs.yaml",  # the demo, for `ddp init --demo`
    ):
        assert needed in names, needed
    # the ODCS schema comes from the standard's own package, a dependency of the wheel
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = zipfile.ZipFile(installed.wheel).read(metadata).decode()
    assert "Requires-Dist: open-data-contract-standard" in requires


def test_outside_a_project_ddp_says_so(installed: Installed, tmp_path: Path) -> None:
    result = installed.run(["ddp", "list"], tmp_path, ok=False)
    assert result.returncode == 1
    assert "not inside a ddp project" in result.stderr and "ddp init" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_empty_project_works_at_once(installed: Installed, tmp_path: Path) -> None:
    installed.run(["ddp", "init", "acme-data"], tmp_path)
    project = tmp_path / "acme-data"
    assert (project / "acme_data" / "definitions.py").is_file()
    assert not list(project.rglob("ddp_assets")), "no platform code in the team's repository"
    assert "ddp" in (project / "pyproject.toml").read_text()

    assert "0 products valid" in installed.run(["ddp", "validate"], project).stdout
    # Dagster's own tools, with no DAGSTER_HOME set
    installed.run(["dg", "check", "defs"], project)
    installed.run(["dagster", "definitions", "validate", "-w", "workspace.yaml"], project)

    _ddp_dev_serves_the_project(installed, project, tmp_path / "dev.log")

    installed.run(["ddp", "new", "returns", "--domain", "sales", "--owner", "a@b.co"], project)
    installed.run(["ddp", "validate"], project)
    done = installed.run(["ddp", "materialize", "--all", "--json"], project)
    assert '"success": true' in done.stdout
    assert (project / "data" / "warehouse.duckdb").is_file()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


_LOCATIONS = (
    '{"query": "{ workspaceOrError { ... on Workspace { locationEntries { name '
    'locationOrLoadError { __typename } } } } }"}'
)


def _ddp_dev_serves_the_project(installed: Installed, project: Path, log: Path) -> None:
    """`ddp dev` (webserver and daemon) serves the project's code location, loaded."""
    port = _free_port()

    def loaded() -> bool:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/graphql",
            data=_LOCATIONS.encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                entries = json.load(answer)["data"]["workspaceOrError"]["locationEntries"]
        except (OSError, ValueError, KeyError, TypeError):
            return False
        kinds = {e["name"]: (e["locationOrLoadError"] or {}).get("__typename") for e in entries}
        assert kinds.get("acme_data") != "PythonError", kinds
        return kinds.get("acme_data") == "RepositoryLocation"

    command = [str(installed.bin / "ddp"), "dev", "--port", str(port)]
    with running(command, env=installed.env(), log=log, cwd=project):
        wait_for("ddp dev to serve the project's code location", loaded, timeout=240)


def test_the_demo_project_builds_and_contracts_use_the_packaged_schema(
    installed: Installed, tmp_path: Path
) -> None:
    installed.run(["ddp", "init", "shop", "--demo"], tmp_path)
    project = tmp_path / "shop"
    assert (project / "shop" / "defs" / "sales" / "orders" / "defs.yaml").is_file()
    installed.run(["ddp", "demo", "--scale", "1000"], project)
    installed.run(["ddp", "validate"], project)
    done = installed.run(["ddp", "materialize", "--all", "--json"], project, timeout=900)
    assert '"success": true' in done.stdout
    installed.run(["dg", "check", "defs"], project)

    # a contract the official schema rejects fails validate, naming the packaged schema
    contract = project / "shop" / "defs" / "sales" / "customers" / "contracts"
    path = contract / "customers.odcs.yaml"
    text = path.read_text()
    path.write_text(re.sub(r"(?m)^status: .*$", "status: [not, a, string]", text, count=1))
    failed = installed.run(["ddp", "validate", "--no-dbt"], project, ok=False)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "open-data-contract-standard" in failed.stderr, failed.stderr
    assert "customers.odcs.yaml" in failed.stderr
