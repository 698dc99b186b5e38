"""What a code location load reads from the defs folder, kept beside the prepared manifest.

Every load reads each product spec and each contract with ruamel.yaml (kept for the line
numbers of error messages) and compiles the contracts: about 1.5 s at 100 products, most of what
ddp's load costs beyond plain dagster-dbt. The results (the registry and the compiled contract
plans) change only when a file in the defs folder or ddp's own code changes, so a load stores
them and the next loads read them back in a few milliseconds. The file is the project's build
output, like ``manifest.json`` beside it, and is trusted the same way; any change to its key
(file names, sizes and mtimes under the defs folder, ddp's code, the Python and pydantic
versions, the project root) makes the load read the files again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic

from ddp_assets.contracts.compiler import known_plans, remember_plans
from ddp_assets.depots.loader import Depots, load_depots
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.registry import Registry, folder_key

CACHE_FILE = "ddp_load_cache.pickle"


def _key(paths: ProjectPaths) -> str:
    from ddp_assets.dbt.project import code_fingerprint  # here: dagster-dbt is a 2 s import

    parts = (
        folder_key(paths.defs_dir),
        folder_key(paths.depots_dir),  # nothing when the project has no depots/
        code_fingerprint(paths),
        sys.version,
        pydantic.VERSION,
        str(paths.root),
    )
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _cache_file(paths: ProjectPaths) -> Path:
    from ddp_assets.dbt.project import dbt_project  # here: dagster-dbt is a 2 s import

    return dbt_project(paths).manifest_path.parent / CACHE_FILE


@dataclass(frozen=True)
class Loaded:
    """What one definitions build reads from the project's files: the registry of products and
    the depots (``depots/*.yaml``; None when the project has none)."""

    registry: Registry
    depots: Depots | None


def _project_depots(paths: ProjectPaths) -> Depots | None:
    return load_depots(paths) if paths.depots_dir.is_dir() else None


def _read_files(paths: ProjectPaths) -> Loaded:
    return Loaded(Registry.load(paths.defs_dir, paths.root), _project_depots(paths))


def _read(path: Path, key: str) -> tuple[Loaded, dict[Any, Any]] | None:
    try:
        with path.open("rb") as file:
            stored = pickle.load(file)
    except FileNotFoundError:
        return None
    except Exception:  # unreadable or from an incompatible version: read the files instead
        return None
    if not isinstance(stored, dict) or stored.get("key") != key:
        return None
    registry, depots, plans = stored.get("registry"), stored.get("depots"), stored.get("plans")
    if not isinstance(registry, Registry) or not isinstance(plans, dict):
        return None
    if depots is not None and not isinstance(depots, Depots):
        return None
    return Loaded(registry, depots), plans


def _write(path: Path, key: str, loaded: Loaded) -> None:
    """Best effort and atomic: a concurrent load reads the old file or the new one."""
    root = str(loaded.registry.root)
    plans = {k: v for k, v in known_plans().items() if k[0].startswith(root)}
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with temporary.open("wb") as file:
            stored = {
                "key": key,
                "registry": loaded.registry,
                "depots": loaded.depots,
                "plans": plans,
            }
            pickle.dump(stored, file, protocol=5)
        temporary.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)


def store(paths: ProjectPaths, registry: Registry) -> None:
    """Keep ``registry`` (with the depots) and the contract plans compiled so far for the next
    loads (``ddp prepare`` calls this, so even the first load after it reads no YAML)."""
    if not registry.errors:
        _write(_cache_file(paths), _key(paths), Loaded(registry, _project_depots(paths)))


@contextmanager
def load_scope(paths: ProjectPaths) -> Iterator[Loaded]:
    """The registry and depots of one definitions build (read once, handed to every component
    through the platform context), from the cache with its contract plans when nothing changed
    since they were stored; what the build read or compiled is stored for the next loads."""
    cache_file = _cache_file(paths)
    key = _key(paths)
    stored = _read(cache_file, key)
    if stored is not None:
        loaded, plans = stored
        remember_plans(plans)
        yield loaded
        if len(known_plans()) > len(plans):  # the build compiled a contract the cache lacked
            _write(cache_file, key, loaded)
        return
    loaded = _read_files(paths)
    yield loaded
    if not loaded.registry.errors:  # only a build that succeeded is worth keeping
        _write(cache_file, key, loaded)


def cached_registry(paths: ProjectPaths) -> Registry | None:
    """The registry stored by the last prepare or load, if nothing changed since; else None.

    CLI commands that only need the specs (``ddp materialize`` checking product names) take it
    from here instead of reading every YAML file with ruamel and validating the policies
    against every contract (about a second for the demo).
    """
    stored = _read(_cache_file(paths), _key(paths))
    return stored[0].registry if stored is not None else None


def load_registry(paths: ProjectPaths, *, cached: bool = False) -> Registry:
    """The project's registry; spec errors raise :class:`~ddp_assets.spec.errors.SpecErrors`
    with every problem listed (the CLI and the REST port stop on them).

    ``cached``: take the registry the last prepare or definitions load stored when no spec,
    contract or ddp code changed since (:func:`cached_registry`).
    """
    if cached:
        registry = cached_registry(paths)
        if registry is not None:
            return registry
    registry = Registry.load(paths.defs_dir, paths.root)
    registry.raise_for_errors()
    return registry
