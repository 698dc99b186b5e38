"""The typed model of a depot file, ``depots/<name>.yaml``: one connection to a source system.

``kind`` selects the model: ``postgres`` (host, port, database, user, password), ``sql`` (any
SQLAlchemy URL, e.g. ``sqlite:///{data_dir}/crm.sqlite`` or ``mysql+pymysql://u@host/db``),
``rest_api`` (a base URL and its authentication) and ``filesystem`` (``s3://bucket/prefix`` on
AWS or any S3-compatible store with ``endpoint_url``, or a local folder). Every credential is a
secret reference (:mod:`.secrets`); a literal value is rejected where it is written.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from ddp_assets.depots.secrets import SECRET_REF, is_reference
from ddp_assets.spec.model import spec_error

SECRET_HINT = (
    "never write a credential in a depot file: write a reference, 'env:VARIABLE' "
    "(an environment variable; Dagster's '{{ env.VARIABLE }}' too) or 'file:PATH' "
    "(a mounted secret file)"
)


def _secret_reference(value: str) -> str:
    if not is_reference(value):
        raise spec_error("a literal secret is not allowed here", SECRET_HINT)
    return value


SecretRef = Annotated[
    str,
    AfterValidator(_secret_reference),
    Field(
        description="A secret reference: 'env:VARIABLE', '{{ env.VARIABLE }}' or 'file:PATH' "
        "(never the secret).",
        json_schema_extra={"pattern": SECRET_REF.pattern},
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Depot(_Strict):
    description: str | None = Field(default=None, description="What the source system is.")
    owner: str | None = Field(default=None, description="Who to ask about the source system.")


class PostgresDepot(_Depot):
    """A PostgreSQL database."""

    kind: Literal["postgres"]
    host: str = Field(min_length=1)
    port: int = Field(default=5432, ge=1, le=65535)
    database: str = Field(min_length=1)
    username: str = Field(min_length=1)
    password: SecretRef | None = None
    schema_: str = Field(default="public", alias="schema", description="The default schema.")
    sslmode: str | None = None


class SqlDepot(_Depot):
    """Any database SQLAlchemy reaches, by URL (without its password)."""

    kind: Literal["sql"]
    url: str = Field(
        min_length=1,
        description="A SQLAlchemy URL without a password; '{data_dir}' and '{project_root}' "
        "are replaced, e.g. 'sqlite:///{data_dir}/crm.sqlite'.",
    )
    password: SecretRef | None = Field(
        default=None, description="The password, set into the URL when connecting."
    )
    schema_: str | None = Field(default=None, alias="schema", description="The default schema.")

    @field_validator("url")
    @classmethod
    def _no_password(cls, value: str) -> str:
        if "://" not in value:
            raise spec_error(
                f"{value!r} is not a SQLAlchemy URL",
                "write e.g. 'postgresql+psycopg2://reader@db.example.com:5432/crm' or "
                "'sqlite:///{data_dir}/crm.sqlite'",
            )
        if _url_password(value):
            raise spec_error(
                "the URL holds a literal password",
                "remove it from the URL and set 'password: env:VARIABLE' (or file:PATH)",
            )
        return value


class BearerAuth(_Strict):
    type: Literal["bearer"]
    token: SecretRef


class ApiKeyAuth(_Strict):
    type: Literal["api_key"]
    name: str = Field(default="Authorization", description="The header or parameter name.")
    location: Literal["header", "query", "cookie"] = "header"
    api_key: SecretRef


class BasicAuth(_Strict):
    type: Literal["http_basic"]
    username: str = Field(min_length=1)
    password: SecretRef


ApiAuth = Annotated[BearerAuth | ApiKeyAuth | BasicAuth, Field(discriminator="type")]


class RestApiDepot(_Depot):
    """An HTTP JSON API."""

    kind: Literal["rest_api"]
    base_url: str = Field(description="e.g. 'https://api.example.com/v1/'.")
    auth: ApiAuth | None = None
    headers: dict[str, str] = Field(default_factory=dict, description="Headers sent always.")
    check_path: str = Field(
        default="", description="The path `ddp depot test` requests (default: the base URL)."
    )

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise spec_error(
                f"{value!r} is not an http(s) URL", "write e.g. 'https://api.x.com/v1/'"
            )
        if parts.password:
            raise spec_error("the URL holds a literal password", "use 'auth' with a reference")
        return value


class FilesystemDepot(_Depot):
    """Files in object storage (S3 or S3-compatible) or in a local folder."""

    kind: Literal["filesystem"]
    bucket_url: str = Field(
        description="'s3://bucket/prefix', 'file:///abs/folder' or a folder relative to the "
        "data directory."
    )
    endpoint_url: str | None = Field(
        default=None, description="An S3-compatible store's endpoint, e.g. 'http://minio:9000'."
    )
    region: str | None = None
    access_key_id: SecretRef | None = None
    secret_access_key: SecretRef | None = None

    @property
    def scheme(self) -> str:
        return urlsplit(self.bucket_url).scheme if "://" in self.bucket_url else "file"


Depot = Annotated[
    PostgresDepot | SqlDepot | RestApiDepot | FilesystemDepot, Field(discriminator="kind")
]
DepotModel = PostgresDepot | SqlDepot | RestApiDepot | FilesystemDepot

SECRET_FIELDS = ("password", "token", "api_key", "access_key_id", "secret_access_key")


def _url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


class DepotFile(_Strict):
    """Only for the JSON Schema of a depot file: the kinds, by their ``kind``."""

    depot: Depot
