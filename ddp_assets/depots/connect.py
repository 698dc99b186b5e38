"""Opening a depot: its credentials resolved, a connection checked, its lineage namespace.

Nothing here runs at import: SQLAlchemy, httpx and s3fs are imported by the function that
needs them. Every message a failure produces is redacted (:func:`~.secrets.redact`) and
located at the depot field to change (the password line for a refused login, the host line
for an unreachable server).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ddp_assets.depots.loader import LoadedDepot
from ddp_assets.depots.model import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    FilesystemDepot,
    PostgresDepot,
    RestApiDepot,
    SqlDepot,
)
from ddp_assets.depots.secrets import Resolver, SecretError, redact
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.errors import SpecErrors, SpecProblem

_AUTH_WORDS = (
    "password",
    "authentication",
    "access denied",
    "login",
    "credential",
    "invalidaccesskeyid",
    "signaturedoesnotmatch",
    "invalid access key",
    "forbidden",
    "unauthorized",
)


class DepotError(SpecErrors):
    """A depot that cannot be opened: a located problem, without any secret in it."""


def _first_line(error: BaseException) -> str:
    text = " ".join(str(error).split("\n")[:2]).strip() or type(error).__name__
    return redact(text)[:400]


def secret(loaded: LoadedDepot, paths: ProjectPaths, field: str, reference: str | None) -> str:
    """The value of a depot's secret field ('' when it has none), or a located DepotError."""
    if reference is None:
        return ""
    try:
        return Resolver(paths.root).resolve(reference).reveal()
    except SecretError as error:
        raise DepotError([loaded.problem(field, error.message, error.hint)]) from None


def expand(text: str, paths: ProjectPaths) -> str:
    return text.replace("{data_dir}", str(paths.data_dir)).replace(
        "{project_root}", str(paths.root)
    )


# -- SQL ----------------------------------------------------------------------------------


def sql_url(loaded: LoadedDepot, paths: ProjectPaths) -> Any:
    """The SQLAlchemy URL of a postgres or sql depot, its password set (a ``URL``, whose
    ``str`` masks the password)."""
    from sqlalchemy.engine import URL, make_url

    depot = loaded.depot
    if isinstance(depot, PostgresDepot):
        query = {"sslmode": depot.sslmode} if depot.sslmode else {}
        return URL.create(
            "postgresql+psycopg2",
            username=depot.username,
            password=secret(loaded, paths, "password", depot.password) or None,
            host=depot.host,
            port=depot.port,
            database=depot.database,
            query=query,
        )
    assert isinstance(depot, SqlDepot)
    try:
        url = make_url(expand(depot.url, paths))
    except Exception as error:  # sqlalchemy's ArgumentError
        raise DepotError([loaded.problem("url", _first_line(error), "check the URL")]) from None
    password = secret(loaded, paths, "password", depot.password)
    return url.set(password=password) if password else url


def sql_engine(loaded: LoadedDepot, paths: ProjectPaths) -> Any:
    from sqlalchemy import create_engine

    try:
        return create_engine(sql_url(loaded, paths), pool_pre_ping=True)
    except DepotError:
        raise
    except Exception as error:  # a missing driver, an unknown dialect
        raise DepotError(
            [
                loaded.problem(
                    "url" if isinstance(loaded.depot, SqlDepot) else "host",
                    f"cannot create a connection: {_first_line(error)}",
                    "install the database's SQLAlchemy driver, or fix the URL's dialect",
                )
            ]
        ) from None


def default_schema(loaded: LoadedDepot) -> str | None:
    depot = loaded.depot
    if isinstance(depot, (PostgresDepot, SqlDepot)):
        return depot.schema_
    return None


def connection_problem(
    loaded: LoadedDepot, error: BaseException, action: str = "cannot connect"
) -> DepotError:
    """A failure to connect, located at the field to change, redacted."""
    depot = loaded.depot
    message = _first_line(error)
    auth = any(word in message.lower() for word in _AUTH_WORDS)
    if isinstance(depot, (PostgresDepot, SqlDepot)):
        where = (
            "password"
            if auth and depot.password
            else ("host" if isinstance(depot, PostgresDepot) else "url")
        )
        if auth and not depot.password:
            where = "username" if isinstance(depot, PostgresDepot) else "url"
        hint = (
            "the database refused the credentials: check the secret the password refers to "
            f"({depot.password})"
            if auth and depot.password
            else "check that the server is reachable from here (host, port, firewall)"
        )
    elif isinstance(depot, RestApiDepot):
        where = _auth_field(depot) if auth else "base_url"
        hint = (
            "the API refused the credentials: check the secret the auth refers to"
            if auth
            else "check the base URL and that the API is reachable"
        )
    else:
        assert isinstance(depot, FilesystemDepot)
        where = "secret_access_key" if auth and depot.secret_access_key else "bucket_url"
        hint = (
            "the store refused the credentials: check the secrets the keys refer to"
            if auth
            else "check the bucket URL (and endpoint_url for an S3-compatible store)"
        )
    if action != "cannot connect" and not auth:
        hint = (
            "nothing of this load was committed and the port's cursor did not move: "
            "fix the cause and run the port again"
        )
    return DepotError([loaded.problem(where, f"depot '{loaded.name}': {action}: {message}", hint)])


def _auth_field(depot: RestApiDepot) -> str:
    auth = depot.auth
    if isinstance(auth, BearerAuth):
        return "auth.token"
    if isinstance(auth, ApiKeyAuth):
        return "auth.api_key"
    if isinstance(auth, BasicAuth):
        return "auth.password"
    return "auth"


# -- REST ---------------------------------------------------------------------------------


def rest_auth(loaded: LoadedDepot, paths: ProjectPaths) -> dict[str, Any] | None:
    """The depot's auth as dlt's rest_api client config takes it."""
    depot = loaded.depot
    assert isinstance(depot, RestApiDepot)
    auth = depot.auth
    if isinstance(auth, BearerAuth):
        return {"type": "bearer", "token": secret(loaded, paths, "auth.token", auth.token)}
    if isinstance(auth, ApiKeyAuth):
        return {
            "type": "api_key",
            "name": auth.name,
            "location": auth.location,
            "api_key": secret(loaded, paths, "auth.api_key", auth.api_key),
        }
    if isinstance(auth, BasicAuth):
        return {
            "type": "http_basic",
            "username": auth.username,
            "password": secret(loaded, paths, "auth.password", auth.password),
        }
    return None


def _http_headers(loaded: LoadedDepot, paths: ProjectPaths) -> tuple[dict[str, str], Any]:
    import base64

    depot = loaded.depot
    assert isinstance(depot, RestApiDepot)
    headers = dict(depot.headers)
    params: dict[str, str] = {}
    auth = rest_auth(loaded, paths)
    if auth and auth["type"] == "bearer":
        headers["Authorization"] = f"Bearer {auth['token']}"
    elif auth and auth["type"] == "http_basic":
        raw = f"{auth['username']}:{auth['password']}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
    elif auth and auth["type"] == "api_key":
        if auth["location"] == "query":
            params[auth["name"]] = auth["api_key"]
        else:
            headers[auth["name"]] = auth["api_key"]
    return headers, params


# -- filesystem ---------------------------------------------------------------------------


def bucket_url(loaded: LoadedDepot, paths: ProjectPaths) -> str:
    """The depot's bucket URL; a relative local folder is relative to the data directory."""
    depot = loaded.depot
    assert isinstance(depot, FilesystemDepot)
    url = expand(depot.bucket_url, paths)
    if "://" not in url:
        folder = Path(url)
        return (folder if folder.is_absolute() else paths.data_dir / folder).resolve().as_uri()
    return url


def aws_credentials(loaded: LoadedDepot, paths: ProjectPaths) -> dict[str, Any]:
    depot = loaded.depot
    assert isinstance(depot, FilesystemDepot)
    values = {
        "aws_access_key_id": secret(loaded, paths, "access_key_id", depot.access_key_id),
        "aws_secret_access_key": secret(
            loaded, paths, "secret_access_key", depot.secret_access_key
        ),
        "endpoint_url": depot.endpoint_url,
        "region_name": depot.region,
    }
    return {key: value for key, value in values.items() if value}


def _s3fs(loaded: LoadedDepot, paths: ProjectPaths) -> Any:
    import s3fs

    creds = aws_credentials(loaded, paths)
    client: dict[str, Any] = {}
    if "endpoint_url" in creds:
        client["endpoint_url"] = creds["endpoint_url"]
    if "region_name" in creds:
        client["region_name"] = creds["region_name"]
    return s3fs.S3FileSystem(
        key=creds.get("aws_access_key_id"),
        secret=creds.get("aws_secret_access_key"),
        anon=False,
        client_kwargs=client,
        skip_instance_cache=True,
    )


# -- checking a connection ----------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    name: str
    kind: str
    target: str  # where it connected, redacted
    detail: str


def check_connection(loaded: LoadedDepot, paths: ProjectPaths) -> CheckResult:
    """Connect to the depot once; raise a located :class:`DepotError` when it fails."""
    depot = loaded.depot
    target = redact(source_namespace(loaded, paths))
    try:
        if isinstance(depot, (PostgresDepot, SqlDepot)):
            from sqlalchemy import inspect, text

            engine = sql_engine(loaded, paths)
            try:
                with engine.connect() as connection:
                    connection.execute(text("select 1"))
                    tables = inspect(connection).get_table_names(schema=default_schema(loaded))
            finally:
                engine.dispose()
            return CheckResult(loaded.name, depot.kind, target, f"{len(tables)} table(s)")
        if isinstance(depot, RestApiDepot):
            import httpx

            headers, params = _http_headers(loaded, paths)
            url = depot.base_url.rstrip("/") + "/" + depot.check_path.lstrip("/")
            response = httpx.get(url, headers=headers, params=params, timeout=15)
            if response.status_code in (401, 403):
                raise PermissionError(f"HTTP {response.status_code} unauthorized for {url}")
            if response.status_code >= 400:
                raise ConnectionError(f"HTTP {response.status_code} for {url}")
            return CheckResult(loaded.name, depot.kind, target, f"HTTP {response.status_code}")
        assert isinstance(depot, FilesystemDepot)
        url = bucket_url(loaded, paths)
        if depot.scheme == "s3":
            entries = _s3fs(loaded, paths).ls(url.removeprefix("s3://"), refresh=True)
        else:
            folder = Path(urlsplit(url).path)
            if not folder.is_dir():
                raise FileNotFoundError(f"no folder {folder}")
            entries = list(folder.iterdir())
        return CheckResult(loaded.name, depot.kind, target, f"{len(entries)} entr(y/ies)")
    except DepotError:
        raise
    except Exception as error:
        raise connection_problem(loaded, error) from None


# -- lineage ------------------------------------------------------------------------------


def source_namespace(loaded: LoadedDepot, paths: ProjectPaths) -> str:
    """The OpenLineage namespace of the depot's datasets (never holds a credential).

    ``postgres://host:port`` (PostgreSQL), ``<dialect>://host:port`` for another SQLAlchemy
    database, ``sqlite://<absolute file>`` for a file database (as ddp names its DuckDB
    warehouse, ``duckdb://<file>``), ``s3://bucket`` (S3), ``file`` (local files), the scheme
    and authority of an API.
    """
    depot = loaded.depot
    if isinstance(depot, PostgresDepot):
        return f"postgres://{depot.host}:{depot.port}"
    if isinstance(depot, SqlDepot):
        url = expand(depot.url, paths)
        scheme = url.split("://", 1)[0].split("+", 1)[0]
        scheme = "postgres" if scheme == "postgresql" else scheme
        parts = urlsplit(url)
        if not parts.hostname:
            database = _database_file(url)
            return f"{scheme}://{database}" if database else scheme
        port = f":{parts.port}" if parts.port else ""
        return f"{scheme}://{parts.hostname}{port}"
    if isinstance(depot, RestApiDepot):
        parts = urlsplit(depot.base_url)
        return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"
    assert isinstance(depot, FilesystemDepot)
    if depot.scheme == "s3":
        return f"s3://{urlsplit(depot.bucket_url).netloc}"
    return "file"


def source_dataset(loaded: LoadedDepot, paths: ProjectPaths, what: str) -> tuple[str, str]:
    """``(namespace, name)`` of what a port loads from a depot (OpenLineage naming).

    ``what``: a table (``schema.table`` or ``table``), an API path, or a file glob.
    """
    namespace = source_namespace(loaded, paths)
    depot = loaded.depot
    if isinstance(depot, PostgresDepot):
        table = what if "." in what else f"{depot.schema_}.{what}"
        return namespace, f"{depot.database}.{table}"
    if isinstance(depot, SqlDepot):
        url = expand(depot.url, paths)
        parts = urlsplit(url)
        if not parts.hostname:  # a file database: the file is the namespace, as for DuckDB
            schema = depot.schema_ or "main"
            return namespace, what if "." in what else f"{schema}.{what}"
        database = parts.path.lstrip("/")
        schema = depot.schema_
        table = what if "." in what or not schema else f"{schema}.{what}"
        return namespace, f"{database}.{table}" if database else table
    if isinstance(depot, RestApiDepot):
        base = urlsplit(depot.base_url).path.rstrip("/")
        return namespace, f"{base}/{what.lstrip('/')}"
    assert isinstance(depot, FilesystemDepot)
    url = bucket_url(loaded, paths)
    if depot.scheme == "s3":
        prefix = urlsplit(url).path.strip("/")
        return namespace, f"{prefix}/{what}" if prefix else what
    return namespace, str(Path(urlsplit(url).path) / what)


def _database_file(url: str) -> str | None:
    """The absolute path of a file database's URL (``sqlite:///rel`` is relative to the
    working folder, ``sqlite:////abs`` absolute), None for an in-memory one. Parsed as
    SQLAlchemy does, without importing it (the code location names lineage at load)."""
    rest = url.split("://", 1)[1].split("?", 1)[0]
    database = rest[1:] if rest.startswith("/") else ""
    if not database or database == ":memory:":
        return None
    return str(Path(database).absolute())


def problems_of(error: BaseException) -> list[SpecProblem]:
    return error.problems if isinstance(error, SpecErrors) else []
