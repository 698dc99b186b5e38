"""Discovery: catalog search, `ddp show` additions, and the static catalog in real Chromium."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ddp_assets.catalog import catalog_entries, catalog_url, search
from ddp_assets.cli.app import app
from ddp_assets.spec.registry import Registry

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def entries(project_paths) -> list[dict]:
    registry = Registry.load(project_paths.defs_dir, project_paths.root)
    return catalog_entries(registry)


def ids(hits) -> list[str]:
    return [h.product for h in hits]


def test_search_by_text(entries) -> None:
    assert ids(search(entries, "churn")) == ["customer_360"]
    assert ids(search(entries, "supplier scorecard"))[0] == "supplier_performance"
    assert search(entries, "no-such-thing-anywhere") == []


def test_search_by_column_name(entries) -> None:
    hits = search(entries, "line_amount")
    assert ids(hits) == ["orders"]
    assert "column: order_lines.line_amount" in hits[0].matches


def test_search_filters(entries) -> None:
    assert ids(search(entries, domain="sales")) == ["customers", "orders"]
    assert ids(search(entries, tag="pii")) == ["customer_360", "customers"]
    assert ids(search(entries, owner="team:sales-analytics")) == ["customers", "orders"]
    assert ids(search(entries, "customer", domain="marketing")) == ["customer_360"]


def test_catalog_command_json(project_paths) -> None:
    result = CliRunner().invoke(app, ["catalog", "order_id", "--domain", "sales", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    assert [h["id"] for h in hits] == ["orders"]
    assert hits[0]["domain"] == "sales" and hits[0]["purpose"]
    nothing = CliRunner().invoke(app, ["catalog", "zzzz"])
    assert nothing.exit_code == 1 and "no product matches" in nothing.output


def test_catalog_url_is_read_when_called(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DDP_CATALOG_URL", raising=False)
    assert catalog_url("orders") is None
    monkeypatch.setenv("DDP_CATALOG_URL", "https://catalog.example.com/")
    assert catalog_url("orders") == "https://catalog.example.com/products/orders.html"
    monkeypatch.setenv("DDP_CATALOG_URL", str(tmp_path))
    assert catalog_url("orders") == (tmp_path / "products" / "orders.html").as_uri()


@pytest.mark.slow
def test_show_gives_contracts_status_and_neighbours(built_demo, demo_env) -> None:
    result = CliRunner().invoke(app, ["show", "orders", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["upstream"] == ["customers"]
    assert info["downstream"] == ["customer_360", "supplier_performance"]
    ports = {c["port"]: c for c in info["contracts"]}
    assert ports["orders"]["contract_id"] == "urn:ddp:sales:orders:orders"
    order_id = next(c for c in ports["orders"]["columns"] if c["name"] == "order_id")
    assert "unique" in order_id["rules"] and "required" in order_id["rules"]
    status = info["status"]
    assert status["materialized"] is True
    assert status["last_materialization"]["run_id"]
    assert status["checks"]["status"] == "passing" and status["checks"]["total"] > 0
    text = CliRunner().invoke(app, ["show", "orders"])
    assert "last materialization:" in text.output and "checks: passing" in text.output


@pytest.mark.slow
@pytest.mark.integration
def test_static_catalog_in_headless_chromium(built_demo, demo_env, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    site = tmp_path / "catalog"
    result = CliRunner().invoke(app, ["catalog", "build", str(site)])
    assert result.exit_code == 0, result.output
    index = (site / "index.html").as_uri()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(index)  # from disk: no server
            assert page.locator(".card").count() == 8
            page.fill("#q", "churn")
            assert page.locator(".card:visible h3").all_inner_texts() == ["Customer 360"]
            page.fill("#q", "")
            page.select_option("#domain", "sales")
            assert page.locator(".card:visible h3").all_inner_texts() == ["Customers", "Orders"]
            page.select_option("#domain", "")
            page.fill("#q", "line_amount")  # a column name
            assert page.locator(".card:visible h3").all_inner_texts() == ["Orders"]
            page.screenshot(path=str(tmp_path / "index.png"), full_page=True)
            page.locator(".card:visible h3 a").click()
            assert page.url.endswith("/products/orders.html")
            assert "Every order and order line" in page.inner_text("main")
            assert "checks passing" in page.inner_text("#status")
            contract = page.locator("table", has_text="primary key").first.inner_text()
            assert "order_id\tbigint\trequired, unique, primary key" in contract
            width = page.evaluate("document.getElementById('lineage').naturalWidth")
            assert width > 0, "the lineage image did not load"
            page.screenshot(path=str(tmp_path / "orders.png"), full_page=True)
            page.locator("main p a[href='customer_360.html']").first.click()
            assert page.url.endswith("/products/customer_360.html")
            assert not errors, errors
        finally:
            browser.close()
    assert (tmp_path / "orders.png").stat().st_size > 10_000
