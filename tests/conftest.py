"""Shared fixtures: the demo is generated and built once per session, then reused.

Tests run the real thing (dbt, DuckDB, Dagster) against a private data directory and Dagster
instance under pytest's tmp folder, never the developer's ``data/`` or ``.dagster_home/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ddp_assets.settings import ProjectPaths

ROOT = Path(__file__).resolve().parents[1]
SHARED_SPEC = ROOT.parent / "shared" / "spec"
DEMO_SCALE = 5_000


@dataclass(frozen=True)
class DemoEnv:
    paths: ProjectPaths
    data_dir: Path
    dagster_home: Path

    def env(self) -> dict[str, str]:
        """Environment for subprocesses (ddp, dagster dev) that share this demo."""
        return {
            **os.environ,
            "DDP_DATA_DIR": str(self.data_dir),
            "DAGSTER_HOME": str(self.dagster_home),
            "DDP_PROJECT_ROOT": str(self.paths.root),
        }


@pytest.fixture(scope="session")
def project_paths() -> ProjectPaths:
    return ProjectPaths(ROOT)


@pytest.fixture(scope="session")
def demo_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoEnv]:
    """A landing zone at small scale and an empty Dagster instance, set in this process's env."""
    from ddp_assets.demo.generator import generate_landing_zone

    data_dir = tmp_path_factory.mktemp("data")
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    saved = {key: os.environ.get(key) for key in ("DDP_DATA_DIR", "DAGSTER_HOME")}
    os.environ["DDP_DATA_DIR"] = str(data_dir)
    os.environ["DAGSTER_HOME"] = str(home)
    generate_landing_zone(data_dir / "landing", scale=DEMO_SCALE)
    yield DemoEnv(ProjectPaths(ROOT), data_dir, home)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def built_demo(demo_env: DemoEnv):
    """Every demo product materialized once, through the Dagster instance."""
    from ddp_assets.runtime.materialize import materialize

    outcome = materialize(demo_env.paths, None, log_level="ERROR")
    assert outcome.success, outcome.errors or outcome.failed_checks
    return outcome


@pytest.fixture(scope="session")
def shared_spec() -> Path:
    if not SHARED_SPEC.is_dir():
        pytest.skip(f"the official schemas are not at {SHARED_SPEC}")
    return SHARED_SPEC


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server (Debian's binaries), started on first use."""
    from tests.postgres_server import postgres_bin_dir, throwaway_postgres

    if postgres_bin_dir() is None and not os.environ.get("CI"):
        pytest.skip("no PostgreSQL server installed: run `make system-deps`")
    with throwaway_postgres() as server:
        yield server
