"""Secret references and their redaction.

A depot never holds a credential itself, only a reference to one:

- ``env:NAME``: the environment variable ``NAME`` (what Dagster's ``dg.EnvVar("NAME")`` reads);
  ``{{ env.NAME }}``, Dagster's spelling of it in component YAML, is the same reference;
- ``file:PATH``: the content of a file (a mounted Kubernetes or Docker secret), without its
  trailing newline; a relative ``PATH`` is relative to the project root.

A reference is resolved only when a connection is opened, into a :class:`Secret` whose ``str``
and ``repr`` are ``***``. Every value resolved in this process is remembered by
:data:`REDACTOR`, and every message ddp shows about a depot (a log line, an error, a lineage or
catalog entry) passes through :func:`redact` first, which also hides the password of any URL.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

SECRET_REF = re.compile(
    r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:\S.*|\{\{\s*env\.[A-Za-z_][A-Za-z0-9_]*\s*\}\})$"
)
_DAGSTER_ENV = re.compile(r"^\{\{\s*env\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")
MASK = "***"
# user:password@ in a URL (any scheme), and password=... in a DSN or a query string
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)(?P<secret>[^@\s/]+)@")
_KEY_VALUE = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|secret|token|api_key|apikey|access_key|"
    r"secret_access_key|aws_secret_access_key)\s*[=:]\s*['\"]?)(?P<secret>[^\s'\"&,;}]+)",
    re.IGNORECASE,
)


class SecretError(ValueError):
    """A secret reference that cannot be resolved (variable unset, file unreadable)."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.message = message
        self.hint = hint


class Secret:
    """A resolved credential: shown as ``***``; :meth:`reveal` gives the value to a driver."""

    __slots__ = ("_value", "reference")

    def __init__(self, value: str, reference: str):
        self._value = value
        self.reference = reference

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({self.reference!r})"


class Redactor:
    """The secret values resolved in this process, replaced by ``***`` in any text."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        if value:
            with self._lock:
                self._values.add(value)

    def __call__(self, text: object) -> str:
        result = str(text)
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            result = result.replace(value, MASK)
        result = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", result)
        return _KEY_VALUE.sub(lambda m: f"{m['head']}{MASK}", result)


REDACTOR = Redactor()


def redact(text: object) -> str:
    """``text`` with every resolved secret and every URL or ``key=value`` password masked."""
    return REDACTOR(text)


def is_reference(value: str) -> bool:
    return bool(SECRET_REF.match(value))


@dataclass(frozen=True)
class Resolver:
    """Resolves references against a project root (for relative ``file:`` paths)."""

    root: Path

    def resolve(self, reference: str) -> Secret:
        dagster = _DAGSTER_ENV.match(reference)
        kind, _, target = ("env", "", dagster["name"]) if dagster else reference.partition(":")
        if kind == "env":
            value = os.environ.get(target)
            if value is None:
                raise SecretError(
                    f"environment variable {target} is not set",
                    f"set {target} in the environment of Dagster's code server and of `ddp`",
                )
        elif kind == "file":
            path = Path(target).expanduser()
            path = path if path.is_absolute() else self.root / path
            try:
                value = path.read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as error:
                raise SecretError(
                    f"secret file {path} cannot be read: {error.strerror or error}",
                    "mount the secret there, or point the reference to where it is",
                ) from None
        else:
            raise SecretError(
                f"{reference.split(':', 1)[0]!r} is not a kind of secret reference",
                "write env:VARIABLE or file:PATH",
            )
        REDACTOR.add(value)
        return Secret(value, reference)
