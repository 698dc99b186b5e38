"""``ddp new`` with ``--port``/``--model`` names, and ``--from-file``: a source-aligned product
over a landing file, its columns and types read from the file (issue 16). Real DuckDB, dbt and
Dagster in a fresh ``ddp init`` project."""

from __future__ import annotations

from pathlib import Path

import duckdb
import yaml

from tests.test_import_dbt import _fresh_project

ROWS = (
    "id,customer id,amount,returned_at\n"
    "1,10,12.50,2026-01-02 10:00:00\n"
    "2,11,3.25,2026-01-03 11:30:00\n"
    "3,10,7.00,2026-01-04 09:15:00\n"
)


def test_a_product_from_a_landing_file_validates_and_builds(tmp_path: Path) -> None:
    project = _fresh_project(tmp_path)
    export = tmp_path / "exports" / "returns.csv"
    export.parent.mkdir()
    export.write_text(ROWS)
    new = project.ddp(
        "new", "returns", "--domain", "sales", "--from-file", str(export),
        "--port", "returns_out", "--model", "returns_model",
    )  # fmt: skip
    assert new.returncode == 0, new.stdout + new.stderr
    folder = project.root / "acme" / "defs" / "sales" / "returns"
    spec = yaml.safe_load((folder / "defs.yaml").read_text())["attributes"]
    assert spec["input_ports"] == [
        {
            "name": "raw_returns",
            "type": "file",
            "path": "returns/raw_returns/*.csv",
            "format": "csv",
            "description": "The landing file returns.csv and others like it.",
        }
    ]
    assert spec["output_ports"][0]["name"] == "returns_out"
    assert spec["output_ports"][0]["model"] == "returns_model"
    assert (project.data / "landing/returns/raw_returns/returns.csv").read_text() == ROWS
    contract = yaml.safe_load((folder / "contracts/returns_out.odcs.yaml").read_text())
    types = {p["name"]: p["physicalType"] for p in contract["schema"][0]["properties"]}
    # DuckDB's reader, not guesses; a name with a space becomes a SQL name
    assert types == {
        "id": "bigint",
        "customer_id": "bigint",
        "amount": "double",
        "returned_at": "timestamp",
    }
    validate = project.ddp("validate")
    assert validate.returncode == 0, validate.stdout + validate.stderr
    run = project.ddp("materialize", "returns")
    assert run.returncode == 0, run.stdout + run.stderr
    with duckdb.connect(str(project.data / "warehouse.duckdb"), read_only=True) as db:
        described = db.execute("describe returns.returns_model").fetchall()
        assert [(r[0], r[1]) for r in described] == [
            ("id", "BIGINT"),
            ("customer_id", "BIGINT"),
            ("amount", "DOUBLE"),
            ("returned_at", "TIMESTAMP"),
        ]
        assert db.execute("select sum(amount) from returns.returns_model").fetchone() == (22.75,)


def test_port_and_model_names_and_bad_files(tmp_path: Path) -> None:
    project = _fresh_project(tmp_path)
    named = project.ddp("new", "plain", "--domain", "sales", "--port", "p1", "--model", "m1")
    assert named.returncode == 0, named.stdout + named.stderr
    folder = project.root / "acme" / "defs" / "sales" / "plain"
    assert (folder / "models/m1.sql").is_file() and (folder / "contracts/p1.odcs.yaml").is_file()
    port = yaml.safe_load((folder / "defs.yaml").read_text())["attributes"]["output_ports"][0]
    assert (port["name"], port["model"], port["contract"]) == ("p1", "m1", "contracts/p1.odcs.yaml")
    validate = project.ddp("validate")
    assert validate.returncode == 0, validate.stdout + validate.stderr
    bad_name = project.ddp("new", "other", "--domain", "sales", "--port", "Bad-Port")
    assert bad_name.returncode == 1
    assert "port: 'Bad-Port' is not a valid port id" in bad_name.stdout + bad_name.stderr
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    bad_file = project.ddp("new", "other", "--domain", "sales", "--from-file", str(text))
    output = bad_file.stdout + bad_file.stderr
    assert bad_file.returncode == 1 and "is not a CSV, Parquet or JSON file" in output, output
    assert "Traceback" not in output
    assert not (project.root / "acme" / "defs" / "sales" / "other").exists()


def test_clashing_and_keyword_columns_in_a_file_at_the_landing_root(tmp_path: Path) -> None:
    project = _fresh_project(tmp_path)
    landing = project.data / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    (landing / "refunds.csv").write_text("Customer ID,customer-id,order,select\n1,2,3,4\n5,6,7,8\n")
    new = project.ddp(
        "new", "refunds", "--domain", "sales", "--from-file", str(landing / "refunds.csv")
    )
    assert new.returncode == 0, new.stdout + new.stderr
    folder = project.root / "acme" / "defs" / "sales" / "refunds"
    port = yaml.safe_load((folder / "defs.yaml").read_text())["attributes"]["input_ports"][0]
    assert port["path"] == "*.csv"  # the landing root: no "./"
    sql = (folder / "models/refunds.sql").read_text()
    assert '"order" as order_' in sql and '"select" as select_' in sql, sql
    contract = yaml.safe_load((folder / "contracts/refunds.odcs.yaml").read_text())
    names = [p["name"] for p in contract["schema"][0]["properties"]]
    assert names == ["customer_id", "customer_id_2", "order_", "select_"]
    validate = project.ddp("validate")
    assert validate.returncode == 0, validate.stdout + validate.stderr
    run = project.ddp("materialize", "refunds")
    assert run.returncode == 0, run.stdout + run.stderr
    with duckdb.connect(str(project.data / "warehouse.duckdb"), read_only=True) as db:
        rows = db.execute(
            "select customer_id, customer_id_2, order_, select_ from refunds.refunds order by 1"
        ).fetchall()
    assert rows == [(1, 2, 3, 4), (5, 6, 7, 8)]


def test_an_empty_or_missing_file_is_refused_with_a_hint(tmp_path: Path) -> None:
    project = _fresh_project(tmp_path)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    refused = project.ddp("new", "other", "--domain", "sales", "--from-file", str(empty))
    output = refused.stdout + refused.stderr
    assert refused.returncode == 1 and "is empty: there is no header" in output, output
    missing = project.ddp(
        "new", "other", "--domain", "sales", "--from-file", str(tmp_path / "nowhere.csv")
    )
    output = missing.stdout + missing.stderr
    assert missing.returncode == 1 and "nowhere.csv does not exist" in output, output
    assert "is not a CSV" not in output and "Traceback" not in output
    assert not (project.root / "acme" / "defs" / "sales" / "other").exists()
