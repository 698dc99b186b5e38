"""``ddp import dbt``: a team's existing dbt project (tests/fixtures/dbt_shop) becomes governed
products that validate and materialize with no hand edits."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "dbt_shop"
DBT = str(Path(sys.executable).parent / "dbt")

PROFILE = """\
shop:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: {path}
      threads: 1
"""


def _dbt(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    return subprocess.run(
        [DBT, *args, "--project-dir", str(project), "--profiles-dir", str(project)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_fixture_is_a_working_dbt_project(tmp_path: Path) -> None:
    """The fixture builds green with plain dbt, so what the import maps is a real project."""
    project = tmp_path / "shop"
    shutil.copytree(FIXTURE, project)
    (project / "profiles.yml").write_text(PROFILE.format(path=tmp_path / "shop.duckdb"))
    assert _dbt(project, "deps").returncode == 0
    result = _dbt(project, "build")
    assert result.returncode == 0, result.stdout[-3000:]
    for expected in ("1 incremental model", "2 seeds", "1 unit test", "data tests"):
        assert expected in result.stdout
