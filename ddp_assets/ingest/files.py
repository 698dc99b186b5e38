"""Which files of the landing zone a file input port may read, and their fingerprint.

Only regular files inside the landing zone are ever read: a symbolic link, a FIFO, a socket, a
device, a directory, or a path that resolves outside the landing zone is refused (looked at
with ``lstat`` only, never opened). Plain Python (no warehouse; Dagster only when a partitioned
product's file is placed in its partitions): the landing assets, the landing sensor, the file
screen and the lineage graph all list files through here.

In a partitioned product each landing file belongs to one partition, named in its path
(:func:`file_partition`, the rule below); in a product partitioned by file, each file *is* a
partition, keyed by its path (:func:`~ddp_assets.partitions.file_partition_key`).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ddp_assets.spec.model import Partitioning, ProductSpec


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


# --- partitions named by file names ----------------------------------------------------------
#
# In a partitioned product every landing file belongs to one partition, named in its path
# relative to the landing zone (folders included), so the sensor and the load know a file's
# partition without opening it:
#
# - ``by: day``: the first date ``YYYY-MM-DD`` in the path (``orders/orders_2026-01-05.csv``,
#   ``orders/2026-01-05/part-1.csv``);
# - ``by: hour``: the first date and hour ``YYYY-MM-DD-HH``, ``YYYY-MM-DDTHH`` or
#   ``YYYY-MM-DD-HH:00`` (Dagster's own hourly key); minutes other than ``00`` name no hour;
# - ``by: month``: the first ``YYYY-MM`` (``orders_2026-01.csv``; ``orders_2026-01-05.csv``
#   names January);
# - ``by: key``: one of the product's keys as a part of the path delimited by ``/``, ``_``,
#   ``-``, ``.`` or the path's ends (``emea/orders.csv``, ``orders_emea.csv``,
#   ``orders-emea.csv``); a path naming two keys names none.
# - ``by: file``: every file is its own partition, keyed by its path relative to the landing
#   zone (``receipts/receipts_a.csv``; other characters than letters, digits and ``_.=+@/-``
#   give a derived key with the path's digest: ``partitions.file_partition_key``).
#
# Dates and hours are in the partitions' time zone (``partitions.timezone``), as Dagster's keys
# are. A digit run longer than the pattern (``20260105``, ``12026-01-05``) is not a date.

_DAY = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
_HOUR = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})[-T](\d{2})(?::(\d{2}))?(?!\d)")
_MONTH = re.compile(r"(?<!\d)(\d{4})-(\d{2})(?!\d)")
_KEY_EDGE = "/_.-"


@dataclass(frozen=True)
class FilePartition:
    """The partition a landing file's name names.

    ``key``: the Dagster partition key (None: the name names none; ``reason`` says why);
    ``opens``: set when the key is well formed but its window is not a partition yet (it has
    not ended): the file waits, it is not refused.
    """

    key: str | None
    reason: str | None = None
    opens: datetime | None = None

    @property
    def ok(self) -> bool:
        """The file belongs to a partition the product has now."""
        return self.key is not None and self.reason is None and self.opens is None


def _shown(relative_path: str | Path) -> str:
    return Path(relative_path).as_posix()


def _named_time_key(by: str, path: str) -> tuple[str | None, str | None]:
    """The key a time-partitioned file's path names, or why it names none."""
    if by == "day":
        found = _DAY.search(path)
        if found is None:
            return None, "its name holds no date YYYY-MM-DD"
        year, month, day = found.groups()
        try:
            date(int(year), int(month), int(day))
        except ValueError:
            return None, f"'{found.group(0)}' in its name is not a date"
        return f"{year}-{month}-{day}", None
    if by == "hour":
        found = _HOUR.search(path)
        if found is None:
            return None, "its name holds no date and hour YYYY-MM-DD-HH"
        year, month, day, hour, minute = found.groups()
        try:
            datetime(int(year), int(month), int(day), int(hour))
        except ValueError:
            return None, f"'{found.group(0)}' in its name is not a date and hour"
        if minute not in (None, "00"):
            return None, f"'{found.group(0)}' in its name is not the start of an hour"
        return f"{year}-{month}-{day}-{hour}:00", None
    found = _MONTH.search(path)
    if found is None:
        return None, "its name holds no month YYYY-MM"
    year, month = found.groups()
    if not 1 <= int(month) <= 12:
        return None, f"'{found.group(0)}' in its name is not a month"
    return f"{year}-{month}-01", None


def _named_static_key(keys: list[str], path: str) -> tuple[str | None, str | None]:
    spans: list[tuple[int, int, str]] = []
    for key in keys:
        pattern = re.compile(
            rf"(?:^|(?<=[{re.escape(_KEY_EDGE)}])){re.escape(key)}(?=$|[{re.escape(_KEY_EDGE)}])"
        )
        spans.extend((m.start(), m.end(), key) for m in pattern.finditer(path))
    # a key inside a longer key's match (eu in eu-west) is that longer key's
    named = {
        key
        for start, end, key in spans
        if not any(s <= start and end <= e and (s, e) != (start, end) for s, e, _ in spans)
    }
    if not named:
        return None, f"its path names none of the keys {', '.join(keys)}"
    if len(named) > 1:
        return None, f"its path names several partitions ({', '.join(sorted(named))})"
    return named.pop(), None


def file_partition(spec: ProductSpec, relative_path: str | Path) -> FilePartition:
    """The partition the file at ``relative_path`` (relative to the landing zone) belongs to.

    A key is checked against the product's partitions (``partitions_def(spec)``): a window
    before ``partitions.start`` is refused; a window that is not a partition *yet* (it has not
    ended, or lies in the future) sets ``opens``. An unpartitioned product has no partitions.
    """
    from ddp_assets.partitions import partitions_def

    partitioning = spec.partitions
    definition = partitions_def(spec)
    if partitioning is None or definition is None:
        return FilePartition(None, f"product '{spec.id}' is not partitioned")
    path = _shown(relative_path)
    if partitioning.by == "file":
        from ddp_assets.partitions import file_partition_key

        return FilePartition(file_partition_key(path))
    if partitioning.by == "key":
        key, reason = _named_static_key(list(partitioning.keys), path)
        return FilePartition(key, reason)
    key, reason = _named_time_key(partitioning.by, path)
    if key is None:
        return FilePartition(None, reason)
    import dagster as dg

    assert isinstance(definition, dg.TimeWindowPartitionsDefinition)
    window = definition.time_window_for_partition_key(key)
    first = definition.get_first_partition_window()
    if first is None or window.start < first.start:
        return FilePartition(
            None, f"it names {key}, before the product's first partition {partitioning.start}"
        )
    if not definition.has_partition_key(key):
        return FilePartition(key, opens=window.end)
    return FilePartition(key)


def partition_of_file(spec: ProductSpec, relative_path: str | Path) -> str | None:
    """The Dagster partition key of ``partitions_def(spec)`` the landing file belongs to, or
    None when its name names no partition the product has (see :func:`file_partition`)."""
    found = file_partition(spec, relative_path)
    return found.key if found.ok else None


def _example_token(partitioning: Partitioning) -> str:
    if partitioning.by == "key":
        return partitioning.keys[0]
    assert partitioning.start is not None
    day = partitioning.start[:10]
    if partitioning.by == "month":
        return day[:7]
    if partitioning.by == "hour":
        hour = partitioning.start[11:13] or "00"
        return f"{day}-{hour}"
    return day


def partition_file_example(spec: ProductSpec, pattern: str) -> str:
    """A file name the port's glob matches that names the product's first partition, e.g.
    ``orders/orders_2026-01-01.csv`` for ``orders/orders*.csv``."""
    assert spec.partitions is not None
    name = pattern.replace("**/", "")
    if spec.partitions.by == "file":  # any name: the file is its own partition
        return name.replace("*", "part-1").replace("?", "x")
    token = _example_token(spec.partitions)
    if "*" in name:
        at = name.index("*")
        before = name[:at]
        joint = "_" if before and before[-1].isalnum() else ""
        name = f"{before}{joint}{token}{name[at + 1 :]}"
    else:
        stem, dot, suffix = name.rpartition(".")
        name = f"{stem}_{token}.{suffix}" if dot and "/" not in suffix else f"{name}_{token}"
    return name.replace("*", "").replace("?", "x")


def partition_file_rule(spec: ProductSpec) -> str:
    """How a file of the product names its partition, in words (for refusals and hints)."""
    assert spec.partitions is not None
    by = spec.partitions.by
    if by == "day":
        return "its day as YYYY-MM-DD in its name"
    if by == "hour":
        return "its hour as YYYY-MM-DD-HH (or YYYY-MM-DDTHH) in its name"
    if by == "month":
        return "its month as YYYY-MM in its name"
    if by == "file":
        return "any name: each file is its own partition, keyed by its path in the landing zone"
    return (
        f"one of the keys {', '.join(spec.partitions.keys)} as a part of its path (a folder, "
        "or a part of the name after '_' or '-')"
    )
