"""Runs in an environment say so (issue 21): ``ddp materialize`` under ``ddp --env NAME`` (or
``DDP_ENV``) and a preview (``ddp ci --env NAME``) tag their runs ``ddp/env=NAME``, in NAME's own
Dagster instance (``$DAGSTER_HOME/envs/NAME``); prod's runs carry no such tag and stay in prod's
instance. Real runs of a ``ddp init`` project, read back from the instances' run storage."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ddp_assets.starter import init_project
from tests.test_environments import DDP, Project

THINGS_SQL = "shop/defs/sales/things/models/things.sql"


def _runs(home: Path, run_ids: list[str]) -> dict[str, dict[str, str] | None]:
    """Each run's tags in the Dagster instance at ``home`` (None: not a run of it)."""
    import dagster as dg

    saved = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)  # the project's dagster.yaml finds its storage by it
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            found = {run_id: instance.get_run_by_id(run_id) for run_id in run_ids}
            return {run_id: dict(run.tags) if run else None for run_id, run in found.items()}
    finally:
        if saved is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = saved


def _materialized(project: Project, *args: str) -> list[str]:
    done = json.loads(project.ddp(*args, "--json").stdout)
    assert done["success"], done
    assert done["runs"], done
    return list(done["runs"])


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A `ddp init` project with one product, in git (main), built in prod."""
    base = tmp_path_factory.mktemp("run_tags")
    project = Project(init_project(base / "shop").root, base / "home")
    (project.home / "data").mkdir(parents=True)
    project.ddp("new", "things", "--domain", "sales")
    project.git("init", "-q", "-b", "main")
    project.git("add", "-A")
    project.git("commit", "-q", "-m", "one product")
    return project


@pytest.mark.slow
def test_runs_in_an_environment_are_tagged_in_its_own_instance(project: Project) -> None:
    home = project.home / "dagster"
    prod_runs = _materialized(project, "materialize", "things")
    project.ddp("env", "create", "dev_a")
    env_runs = _materialized(project, "--env", "dev_a", "materialize", "things")

    in_env = _runs(home / "envs" / "dev_a", [*env_runs, *prod_runs])
    for run_id in env_runs:
        tags = in_env[run_id]
        assert tags is not None, f"run {run_id} is not in dev_a's instance"
        assert tags["ddp/env"] == "dev_a" and tags["ddp/command"] == "materialize", tags
    assert all(in_env[run_id] is None for run_id in prod_runs)  # prod's runs are not there

    in_prod = _runs(home, [*prod_runs, *env_runs])
    for run_id in prod_runs:
        tags = in_prod[run_id]
        assert tags is not None and tags["ddp/command"] == "materialize", tags
        assert "ddp/env" not in tags, tags  # prod's names and tags are as before environments
    assert all(in_prod[run_id] is None for run_id in env_runs)

    # DDP_ENV, as `ddp --env` sets it: the same tag
    project.ddp("env", "create", "dev_b")
    done = subprocess.run(
        [DDP, "materialize", "things", "--json"], cwd=project.root,
        env={**project.env(), "DDP_ENV": "dev_b"}, capture_output=True, text=True, check=False,
        timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    runs = json.loads(done.stdout)["runs"]
    tagged = _runs(home / "envs" / "dev_b", runs)
    assert runs and all(t is not None and t["ddp/env"] == "dev_b" for t in tagged.values()), tagged


@pytest.mark.slow
def test_a_previews_runs_are_tagged(project: Project) -> None:
    project.git("checkout", "-q", "-b", "feature")
    path = project.root / THINGS_SQL
    text = path.read_text(encoding="utf-8")
    old = "cast('example' as varchar) as label"
    assert text.count(old) == 1
    path.write_text(text.replace(old, "cast('changed' as varchar) as label"), encoding="utf-8")
    report = json.loads(project.ddp("ci", "--env", "pr_t", "--format", "json").stdout)
    preview = report["preview"]
    assert preview["succeeded"] and preview["built"] == ["things"], preview
    tagged = _runs(project.home / "dagster" / "envs" / "pr_t", preview["runs"])
    assert preview["runs"] and all(
        t is not None and t["ddp/env"] == "pr_t" and t["ddp/command"] == "ci"
        for t in tagged.values()
    ), tagged
