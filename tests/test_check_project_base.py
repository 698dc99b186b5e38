"""``check_project``'s contract base is a parameter (``ddp ci`` passes ``""``), not the process's
``DDP_CONTRACT_BASE``: the demo project in a real git repository with a breaking contract
change since ``HEAD``, checked in process without dbt."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ddp_assets.cli.products import check_project
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.registry import Registry
from ddp_assets.starter import init_project

ORDERS_CONTRACT = "shop/defs/sales/orders/contracts/orders.odcs.yaml"


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


def test_the_contract_base_is_a_parameter_and_the_environment_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = init_project(tmp_path / "shop", demo=True).root
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "the demo project")
    contract = root / ORDERS_CONTRACT
    required = (
        "      - name: channel\n        logicalType: string\n        physicalType: varchar\n"
        "        required: true\n"
    )
    text = contract.read_text(encoding="utf-8")
    assert text.count(required) == 1
    contract.write_text(text.replace(required, required.replace("        required: true\n", "")))
    monkeypatch.setenv("DDP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DDP_CONTRACT_BASE", "HEAD")
    paths = ProjectPaths(root)
    registry = Registry.load(paths.defs_dir, paths.root)

    def breaking(problems: list) -> list[str]:
        return [p.message for p in problems if "breaking change" in p.message]

    default, _ = check_project(paths, registry, dbt=False)  # ddp validate: the environment's
    assert any("channel" in m for m in breaking(default)), [p.message for p in default]
    skipped, _ = check_project(paths, registry, dbt=False, contract_base="")  # ddp ci
    assert breaking(skipped) == []
    assert os.environ["DDP_CONTRACT_BASE"] == "HEAD"
    explicit, _ = check_project(paths, registry, dbt=False, contract_base="HEAD")
    assert breaking(explicit) == breaking(default)
