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

import dagster as dg
import pytest
import yaml
from pydantic import ValidationError

from ddp_assets.policies import freshness_policy
from ddp_assets.spec import loader
from ddp_assets.spec.checks import parse_model, selected_columns, strip_jinja, validate_problems
from ddp_assets.spec.errors import SpecErrors, SpecProblem, did_you_mean, dotted
from ddp_assets.spec.loader import (
    MAX_YAML_BYTES,
    YamlLimitError,
    find_spec_files,
    load_spec,
    parse_yaml,
    read_document,
)
from ddp_assets.spec.model import ProductSpec, cron_problem, duration_problem
from ddp_assets.spec.registry import Registry, _cycles

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


def case_problems(case: str) -> list[SpecProblem]:
    """What ``ddp validate`` reports for the case: the registry's problems, then (when it has
    none, as the command does) the checks that read contracts, SQL and Python in depth."""
    registry = load_case(case)
    if registry.errors:
        return registry.problems
    return [*registry.problems, *validate_problems(registry)]


def describe(problems: list[SpecProblem]) -> str:
    return "\n".join(p.format() for p in problems) or "(no problems)"


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 24


@pytest.mark.parametrize("case", CASES)
def test_corpus_case(case: str) -> None:
    errors = [p for p in case_problems(case) if p.severity == "error"]
    for expected in expected_problems(case):
        assert any(expected.matches(p) for p in errors), (
            f"expected {expected} among:\n{describe(errors)}"
        )
    assert len(errors) == len(expected_problems(case)), f"unexpected errors:\n{describe(errors)}"


@pytest.mark.parametrize("case", CASES)
def test_corpus_problems_format(case: str) -> None:
    for problem in case_problems(case):
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


def test_project_passes_the_validate_checks() -> None:
    # no false alarm on the project's own models, contracts and Python models
    registry = Registry.load(ROOT / "ddp_assets" / "defs", root=ROOT)
    problems = validate_problems(registry)
    assert not [p for p in problems if p.severity == "error"], describe(problems)
    # the column check ran: most output port models name their columns
    ports = [
        (product, name)
        for product in registry.products.values()
        for name in product.output_models
        if name in product.sql_models
    ]
    parsed = [parse_model(p.sql_models[name], name)[0] for p, name in ports]
    assert sum(selected_columns(s) is not None for s in parsed if s is not None) >= 5


# -- what the run checks: schedules, durations ----------------------------------------------


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("0 5 * * *", None),
        ("@daily", None),
        ("*/15 8-18 * * MON-FRI", None),
        ("0 0 29 2 *", None),  # fires in leap years
        ("0 0 L 2 *", None),
        ("0 0 31 1-12/3 *", None),  # January has a 31st
        ("0 5 30 2 *", "never fires: February has no day 30"),
        ("0 5 31 2,4 *", "never fires: February and April have no day 31"),
        ("0 5 31 feb-jun/2 *", "never fires"),
        ("61 25 * * *", "minute 61 is out of range 0-59"),
        ("0 25 * * *", "hour 25 is out of range 0-23"),
        ("0 5 * * 8", "weekday 8 is out of range 0-7"),
        ("*/0 * * * *", "step '0' is not a positive number"),
        ("0 5 1W * *", "not a cron expression Dagster can schedule"),
        ("0 5 * *", "is not a cron expression"),
    ],
)
def test_cron_problem(expression: str, problem: str | None) -> None:
    found = cron_problem(expression)
    if problem is None:
        assert found is None
        # what validate accepts, Dagster schedules
        dg.ScheduleDefinition(name="s", cron_schedule=expression, target=dg.AssetSelection.all())
    else:
        assert found is not None and problem in found


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("1m", None),
        ("3650d", None),
        ("87600h", None),
        ("0m", "shorter than a minute"),
        ("3651d", "longer than 3650 days"),
        ("999999999d", "longer than 3650 days"),
        ("9" * 40 + "d", "longer than 3650 days"),
        ("6 hours", "is not a duration"),
    ],
)
def test_duration_problem(text: str, problem: str | None) -> None:
    found = duration_problem(text)
    assert found is None if problem is None else (found is not None and problem in found)


def _spec_with_freshness(freshness: dict[str, str]) -> ProductSpec:
    data: Any = yaml.safe_load(VALID_SPEC)["attributes"]
    data["slos"]["freshness"] = freshness
    return ProductSpec.model_validate(data)


@pytest.mark.parametrize(
    "freshness", [{"max_age": "2m"}, {"max_age": "3650d"}, {"max_age": "2m", "warn_after": "1m"}]
)
def test_accepted_freshness_builds_the_dagster_policy(freshness: dict[str, str]) -> None:
    assert freshness_policy(_spec_with_freshness(freshness)) is not None


def test_a_max_age_without_time_to_warn_is_rejected() -> None:
    with pytest.raises(ValidationError, match="less than a minute to warn"):
        _spec_with_freshness({"max_age": "1m"})


# -- bounded YAML -----------------------------------------------------------------------------


def _bomb(levels: int) -> str:
    text = 'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for i in range(1, levels + 1):
        text += f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]\n"
    return text


def test_yaml_alias_bomb_is_refused_at_its_alias() -> None:
    with pytest.raises(YamlLimitError) as raised:
        parse_yaml(_bomb(8))
    assert raised.value.line == 9  # the first '*l7', on the line of l8
    assert "'*l7' of the anchor '&l7' on line 8" in raised.value.message


def test_yaml_aliases_within_the_limit_are_read() -> None:
    document = parse_yaml(_bomb(4))  # 9^5 = 59049 values
    assert document["l4"][0] is document["l3"]


def test_yaml_many_plain_values_are_read_and_too_many_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(loader, "MAX_YAML_VALUES", 1000)  # ruamel reads 10^5 values slowly
    parse_yaml("values: [" + ", ".join(["1"] * 990) + "]\n")
    with pytest.raises(YamlLimitError, match="1,003 values, more than the 1,000 allowed"):
        parse_yaml("values: [" + ", ".join(["1"] * 1001) + "]\n")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: 1\nb: " + "[" * 70 + "]" * 70 + "\n", 2),
        ("a: 1\nb: " + "[" * 2000 + "]" * 2000 + "\n", 2),  # ruamel would recurse too deep
        ("".join("  " * i + f"k{i}:\n" for i in range(70)) + "  " * 70 + "x: 1\n", 65),
    ],
)
def test_yaml_nesting_is_bounded(text: str, line: int) -> None:
    with pytest.raises(YamlLimitError, match="nested more than 64 levels") as raised:
        parse_yaml(text)
    assert raised.value.line == line


def test_yaml_brackets_in_strings_and_comments_are_not_nesting() -> None:
    text = "a: '" + "[" * 100 + "'\n# " + "{" * 100 + '\nb: "' + "[" * 100 + '"\n'
    assert parse_yaml(text)["a"] == "[" * 100


def test_yaml_file_too_large_is_located(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("a: '" + "x" * (MAX_YAML_BYTES + 10) + "'\n")
    with pytest.raises(SpecErrors) as raised:
        read_document(path, "big.yaml")
    [problem] = raised.value.problems
    assert (problem.file, problem.line) == ("big.yaml", 1)
    assert "too large" in problem.message


def test_dbt_does_not_read_product_yaml() -> None:
    # dbt reads every .yml/.yaml under its model-paths, which include the defs folder: the
    # specs and contracts (read bounded by ddp) must be ignored, the generated properties not
    from dbt.parser.read_files import generate_dbt_ignore_spec
    from dbt_common.clients.system import find_matching

    dbt_dir = ROOT / "dbt_project"
    spec = generate_dbt_ignore_spec(str(dbt_dir))
    found = [
        f["relative_path"]
        for pattern in ("*.yml", "*.yaml")
        for f in find_matching(str(dbt_dir), ["models", "../ddp_assets/defs"], pattern, spec)
    ]
    assert not [f for f in found if f.endswith(("defs.yaml", ".odcs.yaml"))], found
    assert any(f.startswith("_ddp/") for f in found) or not (dbt_dir / "models" / "_ddp").is_dir()


# -- model graph, SQL ------------------------------------------------------------------------


def test_cycles_of_a_long_chain_do_not_recurse() -> None:
    chain = {f"m{i}": [f"m{i + 1}"] for i in range(5000)}
    assert _cycles(chain) == []
    chain["m5000"] = ["m0"]
    assert len(_cycles(chain)[0]) == 5001


def test_strip_jinja_keeps_lines() -> None:
    sql = "{{ config(materialized='table') }}\nselect a,\n  {# note\n #} b\nfrom {{\n ref('x') }}\n"
    stripped = strip_jinja(sql)
    assert stripped is not None
    assert stripped.count("\n") == sql.count("\n")
    assert stripped.splitlines()[0].strip() == ""
    assert "__ddp_jinja__" in stripped.splitlines()[4]
    assert strip_jinja("{% if x %}select 1{% endif %}") is None


def test_spec_errors_survive_dagster_rebuilding_them() -> None:
    # Dagster's component loader rebuilds a spec's validation errors with their source position
    # (ValidationError.from_exception_data): only pydantic's own error types survive that (a
    # custom type made the load fail with "KeyError: Invalid error type")
    data: Any = yaml.safe_load(VALID_SPEC)["attributes"]
    data["slos"]["freshness"] = {"max_age": "999999999d"}
    data["slos"]["schedule"] = "61 25 * * *"
    with pytest.raises(ValidationError) as raised:
        ProductSpec.model_validate(data)
    rebuilt = ValidationError.from_exception_data(
        title="ProductSpec",
        line_errors=[
            {**error, "loc": [f"{'.'.join(map(str, error['loc']))} at defs.yaml:1"]}
            for error in raised.value.errors()
        ],  # type: ignore[arg-type]  # error details, passed back as Dagster does
        input_type="json",
        hide_input=False,
    )
    text = str(rebuilt)
    assert "'999999999d' is longer than 3650 days (hint: " in text
    assert "minute 61 is out of range 0-59" in text
