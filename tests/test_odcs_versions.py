"""ODCS versions: ddp writes v3.2.0 and reads v3.0.x and v3.1.0, each contract checked against
the official JSON Schema of its own apiVersion, the schema named in every message."""

from __future__ import annotations

import hashlib
import importlib.resources
import textwrap
from pathlib import Path

import pytest
import yaml

import ddp_assets.standards as standards
from ddp_assets.scaffold import scaffold_product
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.odcs import (
    SUPPORTED_API_VERSIONS,
    WRITTEN_API_VERSION,
    load_contract,
    schema_problems,
)

ROOT = Path(__file__).resolve().parents[1]

# One contract in the shape each release wants: v3.0.x names a library rule `rule`, v3.1.0
# renamed it `metric`, v3.2.0 adds `enum` and `deprecated` to properties.
V30 = """\
apiVersion: {api}
kind: DataContract
id: urn:test:t
version: 1.0.0
status: active
schema:
  - name: t
    physicalType: table
    properties:
      - name: status
        logicalType: string
        physicalType: varchar
        quality:
          - type: library
            rule: nullValues
            mustBe: 0
"""
V31 = V30.replace("rule: nullValues", "metric: nullValues")
V32 = (
    V31
    + """\
        deprecated: true
        enum:
          - value: open
            label: Open
          - value: closed
"""
)


def _write(tmp_path: Path, text: str, name: str = "c.odcs.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_ddp_writes_v3_2_0_and_reads_every_v3_release() -> None:
    assert WRITTEN_API_VERSION == "v3.2.0"
    assert set(SUPPORTED_API_VERSIONS) == {"v3.0.0", "v3.0.1", "v3.0.2", "v3.1.0", "v3.2.0"}
    assert set(SUPPORTED_API_VERSIONS) == {*standards.ODCS_SCHEMAS, "v3.2.0"}


@pytest.mark.parametrize(
    ("api", "text"),
    [
        ("v3.0.0", V30),
        ("v3.0.1", V30),
        ("v3.0.2", V30),
        ("v3.1.0", V31),
        ("v3.2.0", V32),
    ],
)
def test_each_version_conforms_to_its_own_schema(tmp_path: Path, api: str, text: str) -> None:
    path = _write(tmp_path, text.format(api=api))
    assert schema_problems(path, tmp_path) == []
    assert load_contract(path).api_version == api


@pytest.mark.parametrize(
    ("api", "text", "wrong", "source"),
    [
        # v3.1.0's `metric` is not v3.0.2's `rule`: the v3.0.2 schema, not a later one, decides
        ("v3.0.2", V31, "'rule' is a required property", "odcs-json-schema-v3.0.2.json"),
        ("v3.0.0", V31, "'rule' is a required property", "odcs-json-schema-v3.0.0.json"),
        # v3.0's `rule` is gone in v3.1.0
        ("v3.1.0", V30, "'metric' is a required property", "odcs-json-schema-v3.1.0.json"),
        # v3.2.0's enum and deprecated are not v3.1.0 fields
        ("v3.1.0", V32, "'deprecated', 'enum' were unexpected", "odcs-json-schema-v3.1.0.json"),
        ("v3.2.0", V30, "'metric' is a required property", "open-data-contract-standard 3."),
    ],
)
def test_a_contract_of_another_release_fails_naming_the_schema_version(
    tmp_path: Path, api: str, text: str, wrong: str, source: str
) -> None:
    path = _write(tmp_path, text.format(api=api))
    problems = schema_problems(path, tmp_path)
    assert problems and all(p.severity == "error" and p.line for p in problems)
    messages = " | ".join(p.message for p in problems)
    assert wrong in messages
    assert all(
        f"does not conform to the ODCS {api} schema ({source}" in p.message for p in problems
    )
    assert all(p.file == "c.odcs.yaml" for p in problems)


def test_the_same_invalid_field_names_each_version(tmp_path: Path) -> None:
    for api, text in (("v3.0.1", V30), ("v3.1.0", V31), ("v3.2.0", V32)):
        path = _write(tmp_path, text.format(api=api) + "        unique: maybe\n", f"{api}.yaml")
        (problem,) = schema_problems(path, tmp_path)
        assert problem.field == "schema[0].properties[0].unique"
        assert f"ODCS {api} schema" in problem.message


def test_an_api_version_ddp_does_not_read_has_no_schema_and_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, V30.format(api="v2.2.2"))
    (problem,) = schema_problems(path, tmp_path)
    assert (problem.severity, problem.line, problem.field) == ("error", 1, "apiVersion")
    assert "v2.2.2" in problem.message and "v3.2.0" in (problem.hint or "")


def _git_blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.mark.parametrize("api", sorted(standards.ODCS_SCHEMAS))
def test_shipped_schemas_are_the_release_files_byte_for_byte(api: str) -> None:
    shipped = standards.ODCS_SCHEMAS[api]
    data = importlib.resources.files(standards).joinpath(shipped.file).read_bytes()
    assert _git_blob(data) == shipped.blob, f"{shipped.file} is not the file of tag {shipped.tag}"
    schema = standards.odcs_schema(api).schema
    assert schema["properties"]["apiVersion"]["default"] == api
    assert shipped.tag == api


def test_v3_2_0_comes_from_the_standard_package_and_is_the_shared_copy(shared_spec: Path) -> None:
    standard = standards.odcs_schema("v3.2.0")
    assert standard.source.startswith("open-data-contract-standard 3.2")
    copy = shared_spec / "odcs" / "odcs-json-schema-v3.2.0.json"
    assert standard.schema == yaml.safe_load(copy.read_text(encoding="utf-8"))


def test_a_missing_shipped_schema_is_an_error_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = standards.ShippedSchema("odcs-json-schema-v3.1.0-gone.json", "v3.1.0", "0", "0")
    monkeypatch.setitem(standards.ODCS_SCHEMAS, "v3.1.0", gone)
    standards.odcs_schema.cache_clear()
    try:
        path = _write(tmp_path, V31.format(api="v3.1.0"))
        (problem,) = schema_problems(path, tmp_path)
    finally:
        standards.odcs_schema.cache_clear()
    assert problem.severity == "error"
    assert "ODCS v3.1.0 JSON Schema odcs-json-schema-v3.1.0-gone.json cannot be read" in (
        problem.message
    )
    assert problem.hint and "reinstall ddp" in problem.hint


def test_a_broken_schema_in_a_schema_folder_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "schemas"
    folder.mkdir()
    (folder / "odcs-json-schema-v3.1.0.json").write_text("{not json", encoding="utf-8")
    path = _write(tmp_path, V31.format(api="v3.1.0"))
    (problem,) = schema_problems(path, tmp_path, folder)
    assert problem.severity == "error" and "cannot be read" in problem.message
    assert problem.hint


def test_a_package_carrying_another_release_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A newer open-data-contract-standard (another schema) is an error, not v3.2.0's check."""
    monkeypatch.setattr(standards, "ODCS_PACKAGE_API_VERSION", "v3.3.0")
    with pytest.raises(standards.SchemaUnavailable) as raised:
        standards._odcs_package_schema()
    assert "is the ODCS v3.2.0 schema, not v3.3.0" in str(raised.value)
    assert "open-data-contract-standard" in raised.value.hint


def test_ddp_new_writes_a_v3_2_0_contract_that_conforms(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "acme"\n[tool.dg]\ndirectory_type = "project"\n'
        '[tool.dg.project]\nroot_module = "acme"\n',
        encoding="utf-8",
    )
    files = scaffold_product(ProjectPaths(tmp_path), "returns", "sales")
    (contract,) = [f for f in files if f.name.endswith(".odcs.yaml")]
    assert yaml.safe_load(contract.read_text())["apiVersion"] == WRITTEN_API_VERSION
    assert schema_problems(contract, tmp_path) == []


@pytest.mark.parametrize(
    "path", sorted((ROOT / "ddp_assets" / "defs").rglob("*.odcs.yaml")), ids=lambda p: p.name
)
def test_the_demo_contracts_are_v3_2_0(path: Path) -> None:
    assert yaml.safe_load(path.read_text())["apiVersion"] == WRITTEN_API_VERSION
    assert schema_problems(path, ROOT) == []
