"""A bad query parameter of the REST port gets a hint about that parameter (not the filter
syntax for every one). Fast: no demo build; the app runs in-process (Starlette's TestClient)
over the project's own product specs, with a real token in the real SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ddp_assets.ports import tokens
from ddp_assets.ports.files import FORMATS
from ddp_assets.ports.reads import FILTER_SYNTAX
from ddp_assets.ports.store import Store
from ddp_assets.settings import ProjectPaths

ROOT = Path(__file__).resolve().parent.parent
PORT = "/products/customers/ports/customers"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    from ddp_assets.ports.rest.app import create_app

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DDP_DATA_DIR", str(tmp_path_factory.mktemp("param_hints")))
        paths = ProjectPaths(ROOT)
        token = tokens.issue(Store.open(paths), "hint-reader", ["analyst"]).token or ""
        with TestClient(create_app(paths)) as test_client:
            yield test_client, token


@pytest.mark.parametrize(
    ("path", "params", "field", "hint"),
    [
        ("/rows", {"version": "abc"}, "version", f"retained version: GET {PORT}/versions"),
        ("/rows", {"version": "0"}, "version", f"retained version: GET {PORT}/versions"),
        ("/file", {"version": "abc"}, "version", f"retained version: GET {PORT}/versions"),
        ("/file", {"format": "xml"}, "format", "format is one of: " + ", ".join(FORMATS)),
        ("/rows", {"limit": "0"}, "limit", "limit is 1 to"),
    ],
    ids=["version-text", "version-zero", "file-version", "format", "limit"],
)
def test_each_bad_parameter_gets_its_own_hint(
    client: tuple[TestClient, str], path: str, params: dict[str, str], field: str, hint: str
) -> None:
    test_client, token = client
    response = test_client.get(
        PORT + path, params=params, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["message"].startswith(f"bad request: {field}:"), error
    assert hint in error["hint"], error
    assert "filter=" not in error["hint"], error  # the filter syntax is for filter only


def test_a_bad_filter_still_gets_the_filter_syntax(client: tuple[TestClient, str]) -> None:
    test_client, token = client
    response = test_client.get(
        PORT + "/rows",
        params={"filter": "x" * 5000},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 400, response.text
    assert FILTER_SYNTAX in response.json()["error"]["hint"]
