"""File modes for files that hold unmasked data: the owner only, or a configured group.

The serving snapshot, the warehouse and the consumers' SQL ports hold rows a local user who is
not their owner must not read, yet DuckDB and SQLite create files ``0666 & ~umask`` (``0644``
under the usual umask). Every such file, and the folder it is built in, is set here:

- ``0600`` (folders ``0700``) by default;
- with ``DDP_DATA_GROUP`` set to a group name or id, ``0640`` (folders ``0750``) and owned by
  that group, so a service account in the group (a backup job, a BI server reading its SQL
  port) can read them without reading everything.

The folder's mode is what closes the window between a file's creation and its ``chmod`` (and
covers the write-ahead logs DuckDB and SQLite create beside a database as they write).
"""

from __future__ import annotations

import grp
import os
from dataclasses import dataclass
from pathlib import Path

GROUP_ENV = "DDP_DATA_GROUP"
SIDECARS = (".wal", "-wal", "-shm", "-journal")
"""Files a database engine writes beside its file: DuckDB's ``.wal``, SQLite's ``-wal``..."""


class PermissionsConfigError(ValueError):
    """``DDP_DATA_GROUP`` names no group of this machine."""

    def __init__(self, value: str):
        super().__init__(f"{GROUP_ENV}={value!r} is not a group on this machine")
        self.hint = (
            "set it to an existing group name or numeric id (see 'getent group'), "
            "or unset it to keep data files readable by their owner only"
        )


@dataclass(frozen=True)
class DataModes:
    """The modes and group given to files and folders holding unmasked data."""

    file: int
    folder: int
    gid: int | None

    @classmethod
    def from_env(cls) -> DataModes:
        value = os.environ.get(GROUP_ENV, "").strip()
        if not value:
            return cls(0o600, 0o700, None)
        try:
            gid = int(value) if value.isdigit() else grp.getgrnam(value).gr_gid
            if value.isdigit():
                grp.getgrgid(gid)
        except (KeyError, OverflowError):
            raise PermissionsConfigError(value) from None
        return cls(0o640, 0o750, gid)


def _apply(path: Path, mode: int, gid: int | None) -> bool:
    try:
        if gid is not None and path.stat().st_gid != gid:
            os.chown(path, -1, gid)
        os.chmod(path, mode)
    except FileNotFoundError:
        return False
    return True


def private_dir(path: Path, modes: DataModes | None = None) -> Path:
    """Create ``path`` (and parents) if missing; give it the data folder mode."""
    modes = modes or DataModes.from_env()
    path.mkdir(parents=True, exist_ok=True)
    _apply(path, modes.folder, modes.gid)
    return path


def private_file(path: Path, modes: DataModes | None = None) -> bool:
    """Give a data file, and the engine's files beside it, the data file mode.

    False if ``path`` does not exist. Call it on every database holding unmasked data right
    after it is created (DuckDB creates the file at ``connect``, before writing any row) and
    after it is swapped in.
    """
    modes = modes or DataModes.from_env()
    found = _apply(path, modes.file, modes.gid)
    for suffix in SIDECARS:
        _apply(path.with_name(path.name + suffix), modes.file, modes.gid)
    return found


def protect_database(path: Path) -> bool:
    """For the warehouse's owners: restrict ``warehouse.duckdb`` (and its WAL) as above.

    The folder holding it is left alone (``$DDP_DATA_DIR`` holds the landing zone and logs
    too); a DuckDB WAL written later is restricted at the next call.
    """
    return private_file(path)
