"""ddp's breaking-change perspectives next to datacontract-cli 1.2's own ``breaking``.

datacontract-cli (its own virtual environment, ``tests/test_datacontract_cli.py``) has
``breaking --perspective consumer|producer`` (exit 1: a breaking change). Its perspectives are
named from the other side: its ``consumer`` perspective ("changes that lead to unexpected data
for consumers") reads a contract as ddp's ``producer`` perspective does (an output port's
promise), its ``producer`` perspective ("changes that can make data contract tests fail") as
ddp's ``consumer`` perspective does (the data must still pass). Every change case of
``test_contracts_diff.py`` runs through both tools; where the verdicts differ, the case is one
of the differences docs/ports.md names, and every difference named there is still one.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from ddp_assets.contracts.diff import Perspective, diff_contracts
from ddp_assets.spec.odcs import Contract
from tests.test_contracts_diff import CASES, _orders
from tests.test_datacontract_cli import _clean_env, datacontract  # noqa: F401 (fixture)

pytestmark = [pytest.mark.slow, pytest.mark.integration]

# ddp's perspective → the datacontract-cli perspective that reads a contract the same way
SAME_SIDE: dict[Perspective, str] = {"producer": "consumer", "consumer": "producer"}

# The cases where the verdicts differ (docs/ports.md, "datacontract-cli 1.2"), per ddp perspective
DIFFERENT: dict[Perspective, set[str]] = {
    "producer": {
        "type narrowed bigint→integer",  # datacontract-cli: any type change breaks
        "type narrowed decimal scale",
        "contract id changed",  # datacontract-cli does not compare ids
    },
    "consumer": {
        "column added",  # datacontract-cli: any added column breaks its producer's tests
        "type widened bigint→hugeint",  # datacontract-cli: any type change breaks
        "type widened decimal",
        "primary key changed",  # datacontract-cli: not breaking (ddp: the key's joins are)
        "enum (v3.2.0) equal to the rule",  # datacontract-cli: a new enum field breaks
        "quality threshold changed",  # datacontract-cli: any quality change breaks
        "contract id changed",
    },
}


def _peer_breaking(exe: Path, old: Path, new: Path, perspective: str) -> bool:
    """datacontract-cli's ``breaking`` command on one pair (exit 1: breaking)."""
    done = subprocess.run(
        [str(exe), "breaking", str(old), str(new), "--perspective", perspective],
        capture_output=True,
        text=True,
        timeout=300,
        env={**_clean_env(), "COLUMNS": "200"},
        check=False,
    )
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    assert f"Perspective: {perspective}" in done.stdout, done.stdout[-2000:]
    return done.returncode == 1


# What the ``breaking`` command runs (datacontract/command_breaking.py), through the package's
# documented Python API, for many pairs in one interpreter: the command's start-up (about 4 s)
# paid once instead of once per pair.
PEER_BATCH = """
import json, sys
from datacontract.data_contract import DataContract
pairs = json.load(open(sys.argv[1]))
print(json.dumps([
    DataContract(data_contract_file=old, inline_references=True).breaking(
        DataContract(data_contract_file=new, inline_references=True), perspective=side
    ).is_breaking
    for old, new, side in pairs
]))
"""


def _peer_breaking_many(exe: Path, pairs: list[tuple[Path, Path, str]], folder: Path) -> list[bool]:
    listing = folder / "pairs.json"
    listing.write_text(json.dumps([[str(o), str(n), s] for o, n, s in pairs]), encoding="utf-8")
    done = subprocess.run(
        [str(exe.parent / "python"), "-c", PEER_BATCH, str(listing)],
        capture_output=True,
        text=True,
        timeout=600,
        env=_clean_env(),
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    verdicts = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(verdicts) == len(pairs)
    return [bool(v) for v in verdicts]


def test_each_perspective_agrees_with_the_peer_but_for_the_documented_cases(
    datacontract: Path,  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    base = _orders()
    old = tmp_path / "old.odcs.yaml"
    old.write_text(yaml.safe_dump(base, sort_keys=False), encoding="utf-8")
    ours: list[tuple[str, Perspective, bool]] = []
    pairs: list[tuple[Path, Path, str]] = []
    for index, (name, change, *_) in enumerate(CASES):
        document = copy.deepcopy(base)
        change(document)
        new = tmp_path / f"new_{index}.odcs.yaml"
        new.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        for perspective, peer_side in SAME_SIDE.items():
            breaking = any(
                c.breaking
                for c in diff_contracts(
                    Contract.model_validate(base), Contract.model_validate(document), perspective
                )
            )
            ours.append((name, perspective, breaking))
            pairs.append((old, new, peer_side))
    peer = _peer_breaking_many(datacontract, pairs, tmp_path)
    assert any(peer) and not all(peer)
    # the command itself gives the batch's verdicts (a breaking pair and a compatible one)
    for index in (peer.index(True), peer.index(False)):
        assert _peer_breaking(datacontract, *pairs[index]) == peer[index], ours[index]
    differ: dict[Perspective, set[str]] = {"producer": set(), "consumer": set()}
    for (name, perspective, breaking), theirs in zip(ours, peer, strict=True):
        if breaking != theirs:
            differ[perspective].add(name)
    assert differ == DIFFERENT


def test_the_documented_differences_are_the_tested_ones() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "ports.md").read_text("utf-8")
    section = docs.split("### Compared with datacontract-cli 1.2", 1)[1].split("\n## ", 1)[0]
    section = " ".join(section.split())  # the list wraps lines
    for perspective, names in DIFFERENT.items():
        for name in names:
            assert f"{perspective}: {name}" in section, (perspective, name)
