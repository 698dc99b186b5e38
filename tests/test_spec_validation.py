"""Spec validation: every broken spec in ``tests/spec_corpus`` gives its expected problems.

Each corpus case is a small defs folder (``<domain>/<product>/defs.yaml`` with its models and
contracts) and an ``expected.yaml`` listing the problems it must produce: file (relative to the
case folder), line, field, and substrings of the message and the hint. A case passes when every
expected problem is reported and no other error is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from ddp_assets.spec.errors import SpecErrors, SpecProblem, did_you_mean, dotted
from ddp_assets.spec.loader import find_spec_files, load_spec
from ddp_assets.spec.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "spec_corpus"
CASES = sorted(path.parent.name for path in CORPUS.glob("*/expected.yaml"))


@dataclass(frozen=True)
class Expected:
    file: str
    line: int | None
    field: str
    message_contains: str
    hint_contains: str | None

    def matches(self, problem: SpecProblem) -> bool:
        return (
            problem.file == self.file
            and problem.line == self.line
            and problem.field == self.field
            and self.message_contains in problem.message
            and (self.hint_contains is None or self.hint_contains in (problem.hint or ""))
        )


def expected_problems(case: str) -> list[Expected]:
    data: Any = yaml.safe_load((CORPUS / case / "expected.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, list) and data, f"{case}/expected.yaml lists no problems"
    return [Expected(**item) for item in data]


def load_case(case: str) -> Registry:
    case_dir = CORPUS / case
    return Registry.load(case_dir, root=case_dir)


def describe(problems: list[SpecProblem]) -> str:
    return "\n".join(p.format() for p in problems) or "(no problems)"


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 24


@pytest.mark.parametrize("case", CASES)
def test_corpus_case(case: str) -> None:
    registry = load_case(case)
    errors = registry.errors
    for expected in expected_problems(case):
        assert any(expected.matches(p) for p in errors), (
            f"expected {expected} among:\n{describe(errors)}"
        )
    assert len(errors) == len(expected_problems(case)), f"unexpected errors:\n{describe(errors)}"


@pytest.mark.parametrize("case", CASES)
def test_corpus_problems_format(case: str) -> None:
    for problem in load_case(case).problems:
        text = problem.format()
        assert text.startswith(problem.file)
        if problem.line is not None:
            assert f"{problem.file}:{problem.line}" in text
        assert problem.field in text
        assert "Traceback" not in text
        assert problem.hint, f"no hint: {text}"


def test_corpus_spec_files_are_found() -> None:
    # every case but the one whose defs.yaml is a directory has at least one product spec
    for case in CASES:
        assert find_spec_files(CORPUS / case), case


def test_project_defs_have_no_errors() -> None:
    registry = Registry.load(ROOT / "ddp_assets" / "defs", root=ROOT)
    assert not registry.errors, describe(registry.errors)
    assert registry.products


# -- robustness ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"   \n# only a comment\n",
        b"- a\n- b\n",
        b"just text\n",
        b"42\n",
        b"type: ddp_assets.components.DataProduct\nattributes: [1, 2]\n",
        b"type: ddp_assets.components.DataProduct\nattributes:\n  id: [\n",
        b"type: ddp_assets.components.DataProduct\n---\ntype: other\n",
        b"\xff\xfe\x00t\x00y\x00p\x00e\x00",
        b"type: x\x07\n",
        b"type: ddp_assets.components.DataProduct\nattributes:\n  1: 2\n  ? [a, b]\n  : c\n",
        b"type: ddp_assets.components.DataProduct\nattributes:\n  output_ports: [[]]\n"
        b"  input_ports: [{type: product, product: 3}]\n  slos: {freshness: 6h}\n",
    ],
)
def test_registry_load_never_raises(tmp_path: Path, content: bytes) -> None:
    spec = tmp_path / "sales" / "odd" / "defs.yaml"
    spec.parent.mkdir(parents=True)
    spec.write_bytes(content)
    registry = Registry.load(tmp_path, root=tmp_path)
    assert registry.errors
    for problem in registry.problems:
        assert problem.file == "sales/odd/defs.yaml"
        assert "Traceback" not in problem.format()
        assert "could not be checked" not in problem.message, problem.format()


def test_registry_load_of_a_missing_folder(tmp_path: Path) -> None:
    registry = Registry.load(tmp_path / "nowhere", root=tmp_path)
    assert registry.problems == []
    assert registry.products == {}


# -- units --------------------------------------------------------------------------------


def test_did_you_mean() -> None:
    assert did_you_mean("ownrs", ["owners", "name", "id"]) == "did you mean 'owners'?"
    assert did_you_mean("modle", ["model", "name", "contract"]) == "did you mean 'model'?"
    assert did_you_mean("parqet", ["csv", "parquet", "json"]) == "did you mean 'parquet'?"
    assert did_you_mean("zzz", ["owners", "name"]) is None
    assert did_you_mean("x", []) is None


def test_dotted() -> None:
    assert dotted(("output_ports", 0, "model")) == "output_ports[0].model"
    assert dotted(("id",)) == "id"
    assert dotted(()) == ""


VALID_SPEC = """\
type: ddp_assets.components.DataProduct
attributes:
  id: orders
  name: Orders
  domain: sales
  version: 1.2.0
  owners: [orders-data@example.com, team:sales-analytics]
  description:
    purpose: Every order of the shop.
  input_ports:
    - name: raw_orders
      type: file
      path: orders/*.csv
      format: csv
    - name: customers
      type: product
      product: customers.customers
  output_ports:
    - name: orders
      model: orders
      contract: contracts/orders.odcs.yaml
    - name: order_lines
      model: order_lines
      contract: contracts/order_lines.odcs.yaml
  slos:
    refresh: schedule
    schedule: "0 5 * * *"
    freshness:
      max_age: 6h
"""


def test_load_spec_of_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "sales" / "orders" / "defs.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(VALID_SPEC, encoding="utf-8")
    loaded = load_spec(path, root=tmp_path)
    assert loaded.spec.id == "orders"
    assert loaded.spec.version == "1.2.0"
    assert loaded.spec.upstream_products == ["customers"]
    assert loaded.spec.owner_email == "orders-data@example.com"
    assert loaded.spec.slos.freshness is not None
    assert loaded.spec.slos.freshness.max_age_delta == timedelta(hours=6)
    assert loaded.display_path == "sales/orders/defs.yaml"
    assert loaded.folder == path.parent
    assert loaded.line_of("id") == 3
    assert loaded.line_of("input_ports", 1, "product") == 17
    assert loaded.line_of("output_ports", 1, "model") == 23
    assert loaded.line_of("slos", "freshness", "max_age") == 29
    # a missing field points at its closest parent, where it would be added
    assert loaded.line_of("slos", "timezone") == 25
    assert loaded.line_of("policies") == 2


def test_project_spec_lines() -> None:
    path = ROOT / "ddp_assets" / "defs" / "sales" / "orders" / "defs.yaml"
    loaded = load_spec(path, root=ROOT)
    assert loaded.display_path == "ddp_assets/defs/sales/orders/defs.yaml"
    lines = path.read_text(encoding="utf-8").splitlines()
    for index, port in enumerate(loaded.spec.output_ports):
        line = loaded.line_of("output_ports", index, "model")
        assert line is not None
        assert lines[line - 1].strip() == f"model: {port.model}"


def test_load_spec_raises_spec_errors(tmp_path: Path) -> None:
    path = tmp_path / "defs.yaml"
    path.write_text("type: ddp_assets.components.DataProduct\nattributes:\n  id: Bad-Id\n")
    with pytest.raises(SpecErrors) as raised:
        load_spec(path, root=tmp_path)
    fields = {p.field for p in raised.value.problems}
    assert {"id", "name", "domain", "version", "owners", "description", "output_ports"} <= fields
    assert all(p.file == "defs.yaml" for p in raised.value.problems)
    assert "defs.yaml:3" in str(raised.value)
