"""The policy engine: grants, clearances, masking and row filters, without a warehouse.

The demo products' policies are resolved for a few consumers; the compiled SQL runs against
small in-memory DuckDB tables, so each rule is checked on real query results.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import jsonschema
import pytest
from pydantic import ValidationError

from ddp_assets.ports.policy import (
    REDACTED,
    Consumer,
    PortAccess,
    PortColumn,
    PortError,
    coerce,
    policy_select,
    readable_ports,
    resolve,
)
from ddp_assets.ports.reads import parse_request, read_page
from ddp_assets.spec.model import RowCondition
from ddp_assets.spec.registry import Registry
from ddp_assets.spec.schema import spec_json_schema

ROOT = Path(__file__).resolve().parents[1]
EMEA = ["DE", "FR", "GB", "NL", "ES", "IT"]
SALT = "test-salt"


@pytest.fixture(scope="module")
def registry() -> Registry:
    registry = Registry.load(ROOT / "ddp_assets" / "defs", ROOT)
    assert not registry.errors, [p.format() for p in registry.errors]
    return registry


def masks(access: PortAccess) -> dict[str, str | None]:
    return {c.name: c.mask for c in access.columns if c.mask}


def test_uncleared_role_sees_restricted_columns_hashed(registry: Registry) -> None:
    access = resolve(registry.products["customers"], "customers", Consumer("a", ("analyst",)))
    assert masks(access) == {"first_name": "hash", "last_name": "hash", "email": "hash"}
    assert access.row_filter is None
    assert access.column("email") and access.column("email").output_type == "varchar"  # type: ignore[union-attr]


def test_cleared_role_reads_in_clear(registry: Registry) -> None:
    access = resolve(registry.products["customers"], "customers", Consumer("c", ("crm",)))
    assert masks(access) == {}


def test_consumer_grant_filters_rows(registry: Registry) -> None:
    access = resolve(registry.products["customers"], "customers", Consumer("emea-sales"))
    assert access.row_filter is not None
    (branch,) = access.row_filter
    assert [(c.column, c.op, c.value) for c in branch] == [("country", "in", EMEA)]


def test_grants_add_up_the_widest_rows_win(registry: Registry) -> None:
    both = Consumer("emea-sales", ("analyst",))
    assert resolve(registry.products["customers"], "customers", both).row_filter is None


def test_masking_strategy_comes_from_the_product(registry: Registry) -> None:
    product = registry.products["customer_360"]
    access = resolve(product, "customer_profile", Consumer("s", ("smb-team",)))
    assert masks(access) == {"email": "redact"}
    assert access.row_filter is not None
    with pytest.raises(PortError) as denied:
        resolve(product, "churn_scores", Consumer("s", ("smb-team",)))
    assert denied.value.status == 403


def test_no_grant_is_403_unknown_port_is_404(registry: Registry) -> None:
    product = registry.products["customers"]
    with pytest.raises(PortError) as denied:
        resolve(product, "customers", Consumer("stranger"))
    assert denied.value.status == 403 and "not granted" in denied.value.message
    assert denied.value.hint and "sales-data@example.com" in denied.value.hint
    with pytest.raises(PortError) as missing:
        resolve(product, "customer", Consumer("a", ("analyst",)))
    assert missing.value.status == 404 and missing.value.hint == "did you mean 'customers'?"


def test_readable_ports(registry: Registry) -> None:
    assert readable_ports(registry, Consumer("emea-sales")) == {
        "customers": ["customers"],
        "orders": ["orders"],
    }
    assert readable_ports(registry, Consumer("nobody")) == {}


# -- compiled SQL on real rows -------------------------------------------------------------


def people() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute(
        "create table people as select * from (values "
        "(1, 'ann@example.com', 'DE', 10.5), (2, 'bob@example.com', 'US', 3.0), "
        "(3, null, 'FR', null)) as t(id, email, country, spend)"
    )
    return connection


def access_for(
    mask: str | None, rows: tuple[tuple[RowCondition, ...], ...] | None = None
) -> PortAccess:
    return PortAccess(
        "p",
        "people",
        "people",
        Consumer("x"),
        (
            PortColumn("id", "bigint"),
            PortColumn("email", "varchar", "restricted", mask),  # type: ignore[arg-type]
            PortColumn("country", "varchar"),
            PortColumn("spend", "double"),
        ),
        rows,
        ("id",),
    )


def test_hash_is_salted_sha256_and_keeps_nulls() -> None:
    sql, params = policy_select(access_for("hash"), "people", SALT)
    rows = people().execute(sql + " order by id", params).fetchall()
    expected = hashlib.sha256(f"{SALT}ann@example.com".encode()).hexdigest()
    assert rows[0][1] == expected
    assert rows[2][1] is None
    assert hashlib.sha256(b"ann@example.com").hexdigest() != expected


def test_redact_hides_every_value() -> None:
    sql, params = policy_select(access_for("redact"), "people", SALT)
    values = [r[1] for r in people().execute(sql + " order by id", params).fetchall()]
    assert values == [REDACTED, REDACTED, None]


def test_row_filter_branches_are_or_of_and() -> None:
    rows = (
        (RowCondition(column="country", op="eq", value="DE"),),
        (
            RowCondition(column="country", op="eq", value="US"),
            RowCondition(column="spend", op="gt", value=5),
        ),
    )
    sql, params = policy_select(access_for(None, rows), "people", SALT)
    assert [r[0] for r in people().execute(sql, params).fetchall()] == [1]


def test_policy_filters_on_raw_values_of_a_masked_column() -> None:
    rows = ((RowCondition(column="email", op="eq", value="bob@example.com"),),)
    sql, params = policy_select(access_for("hash", rows), "people", SALT)
    found = people().execute(sql, params).fetchall()
    assert [r[0] for r in found] == [2]
    assert found[0][1] != "bob@example.com"


def test_requests_cannot_filter_or_sort_on_masked_columns() -> None:
    access = access_for("hash")
    for kwargs in ({"filters": ["email:eq:ann@example.com"]}, {"order": "email"}):
        with pytest.raises(PortError) as refused:
            parse_request(access, **kwargs)  # type: ignore[arg-type]
        assert refused.value.status == 400 and "masked" in refused.value.message


def test_request_filters_apply_within_the_policy() -> None:
    rows = ((RowCondition(column="country", op="in", value=["DE", "FR"]),),)
    access = access_for(None, rows)
    request = parse_request(access, filters=["country:ne:FR"], columns="id,country")
    page = read_page(people(), access, request, "people", SALT)
    assert page.rows == [(1, "DE")]
    request = parse_request(access, filters=["country:eq:US"])
    assert read_page(people(), access, request, "people", SALT).rows == []


def test_pages_are_ordered_and_link_to_the_next() -> None:
    access = access_for(None)
    first = read_page(people(), access, parse_request(access, limit=2), "people", SALT)
    assert [r[0] for r in first.rows] == [1, 2] and first.next_offset == 2
    last = read_page(people(), access, parse_request(access, limit=2, offset=2), "people", SALT)
    assert [r[0] for r in last.rows] == [3] and last.next_offset is None
    desc = parse_request(access, order="-spend", columns="id")
    assert [r[0] for r in read_page(people(), access, desc, "people", SALT).rows] == [1, 2, 3]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope:eq:1", "has no column 'nope'"),
        ("id:like:1", "unknown operator 'like'"),
        ("id:eq:one", "'one' is not an integer value"),
        ("id:eq", "'eq' needs a value"),
        ("id:is_null:x", "takes no value"),
        ("spend:gt:1e999999", "spend"),
        ("id", "is not <column>:<op>:<value>"),
        ("country:eq:a\x00b", "NUL"),
    ],
)
def test_bad_filters_are_400_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(PortError) as refused:
        parse_request(access_for(None), filters=[text])
    assert refused.value.status == 400
    assert message in refused.value.message


def test_values_are_coerced_to_the_column_type() -> None:
    assert coerce("42", PortColumn("n", "bigint")) == 42
    assert coerce("2024-01-31", PortColumn("d", "date")).isoformat() == "2024-01-31"
    assert coerce("true", PortColumn("b", "boolean")) is True
    for bad, kind in (("1; drop table x", "bigint"), ("2024-13-01", "date"), ("yes", "boolean")):
        with pytest.raises(ValueError):
            coerce(bad, PortColumn("c", kind))


# -- the spec model and its JSON Schema ------------------------------------------------------


def test_row_condition_shapes() -> None:
    RowCondition(column="c", op="in", value=["a"])
    RowCondition(column="c", op="is_null")
    for bad in (
        {"column": "c", "op": "in", "value": "a"},
        {"column": "c", "op": "eq"},
        {"column": "c", "op": "is_null", "value": 1},
        {"column": "c; drop", "op": "eq", "value": 1},
        {"column": "c", "op": "raw_sql", "value": "1=1"},
    ):
        with pytest.raises(ValidationError):
            RowCondition.model_validate(bad)


def test_json_schema_describes_policies() -> None:
    schema = spec_json_schema()
    validator = jsonschema.Draft202012Validator(schema)
    base = {
        "type": "ddp_assets.components.DataProduct",
        "attributes": {
            "id": "things",
            "name": "Things",
            "domain": "ops",
            "version": "0.1.0",
            "owners": ["team:ops"],
            "description": {"purpose": "x"},
            "output_ports": [{"name": "t", "model": "t", "contract": "c.yaml"}],
        },
    }
    good = {
        "masking": {"restricted": "redact"},
        "grants": [
            {"to": "role:analyst", "ports": ["t"], "cleared_for": ["restricted"]},
            {"to": "emea-sales", "rows": [{"column": "country", "op": "in", "value": ["DE"]}]},
        ],
    }
    base["attributes"]["policies"] = good  # type: ignore[index]
    assert list(validator.iter_errors(base)) == []
    base["attributes"]["policies"] = {"grants": [{"to": "x", "rows": "country = 'DE'"}]}  # type: ignore[index]
    assert list(validator.iter_errors(base))
    base["attributes"]["policies"] = {"masking": {"restricted": "encrypt"}}  # type: ignore[index]
    assert list(validator.iter_errors(base))
