"""Which files of the landing zone a file input port may read, and their fingerprint.

Only regular files inside the landing zone are ever read: a symbolic link, a FIFO, a socket, a
device, a directory, or a path that resolves outside the landing zone is refused (looked at
with ``lstat`` only, never opened). Plain Python (no Dagster, no warehouse): the landing assets,
the landing sensor, the file screen and the lineage graph all list files through here.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path


def landing_entries(landing_dir: Path, pattern: str) -> list[Path]:
    """Everything the port's glob matches (hidden names left out), whatever its kind.

    An absolute pattern matches nothing (the port's path is relative to the landing zone);
    one that climbs out with ``..`` matches, and :func:`refusal_reason` refuses what it finds.
    """
    if Path(pattern).is_absolute():
        return []
    return sorted(p for p in landing_dir.glob(pattern) if not p.name.startswith("."))


def _kind(mode: int) -> str | None:
    """What a non-regular entry is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    return "not a regular file"


def refusal_reason(path: Path, landing_dir: Path) -> str | None:
    """Why a landing entry must not be read, or None for a regular file inside the zone.

    Looks with ``lstat`` only (the entry is never opened: reading a FIFO would block), and
    resolves the path, so a file reached through a linked folder outside the zone is refused.
    """
    try:
        mode = os.lstat(path).st_mode
    except OSError as error:
        return f"cannot be inspected: {error.strerror or error}"
    kind = _kind(mode)
    if kind == "a symbolic link":
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return (
            f"is a symbolic link (to {target}); landing files must be regular files, "
            "links are never followed"
        )
    if kind is not None:
        return f"is {kind}, not a regular file"
    zone = landing_dir.resolve()
    resolved = path.resolve()
    if not resolved.is_relative_to(zone):
        return (
            f"resolves to {resolved}, outside the landing zone {zone} (through a linked "
            "folder or '..' in the port's path)"
        )
    return None


def landing_files(landing_dir: Path, pattern: str) -> list[Path]:
    """The port's files that may be read: regular files inside the landing zone."""
    return [p for p in landing_entries(landing_dir, pattern) if not refusal_reason(p, landing_dir)]


def file_stamp(path: Path) -> str:
    """``name:size:mtime_ns`` of an entry, from ``lstat`` (a link is not followed)."""
    try:
        info = os.lstat(path)
    except OSError:
        return f"{path.name}:missing"
    return f"{path.name}:{info.st_size}:{info.st_mtime_ns}"


def files_fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{file_stamp(path)}\n".encode())
    return digest.hexdigest()[:24]
