"""The platform context: what one code-location load reads once and hands to every component.

:func:`ddp_assets.platform.build_definitions` reads the registry of products once (from the
load cache beside the prepared manifest when nothing changed), and the dbt project is prepared
at most once; the components Dagster's loader instantiates from ``defs.yaml`` files take them
from here instead of each reading the defs folder again. The context is bound for the duration
of the build (a :class:`~contextvars.ContextVar`, so concurrent builds in threads don't see
each other's), and nothing outlives it.

A component built outside :func:`build_definitions` (a code location that calls Dagster's
``load_from_defs_folder`` itself) gets a context of its own, read for that one component.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.registry import Product, Registry

if TYPE_CHECKING:
    from ddp_assets.dbt.project import PreparedProject
    from ddp_assets.depots.loader import Depots


@dataclass
class PlatformContext:
    """One project's registry and depots, and its dbt project prepared on first use."""

    paths: ProjectPaths
    registry: Registry
    _depots: Depots | None = field(default=None, repr=False)
    _prepared: PreparedProject | None = field(default=None, repr=False)
    _by_folder: dict[Path, Product] | None = field(default=None, repr=False)

    def product_in(self, folder: Path) -> Product | None:
        """The product whose folder is ``folder`` (resolved), if the registry has one."""
        if self._by_folder is None:
            self._by_folder = {p.folder.resolve(): p for p in self.registry.products.values()}
        return self._by_folder.get(folder.resolve())

    def depots(self) -> Depots:
        """The project's depots (from the load cache when the build had them), read once."""
        if self._depots is None:
            from ddp_assets.depots.loader import load_depots

            self._depots = load_depots(self.paths)
        return self._depots

    def prepared(self) -> PreparedProject:
        """The dbt project with its manifest, prepared (parsed only if an input changed) once."""
        if self._prepared is None:
            from ddp_assets.dbt.project import prepare

            self._prepared = prepare(self.paths, self.registry)
        return self._prepared


_CURRENT: ContextVar[PlatformContext | None] = ContextVar("ddp_platform_context", default=None)


@contextmanager
def platform_context(
    paths: ProjectPaths, registry: Registry, depots: Depots | None = None
) -> Iterator[PlatformContext]:
    """Bind the context of one definitions build."""
    context = PlatformContext(paths, registry, depots)
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)


def context_for(load_context: dg.ComponentLoadContext) -> PlatformContext:
    """The context of the build loading this component (or one of its own, read now).

    Raises :class:`~ddp_assets.spec.errors.SpecErrors` when the specs have errors.
    """
    root = Path(load_context.project_root).resolve()
    current = _CURRENT.get()
    if current is None or current.paths.root.resolve() != root:
        paths = ProjectPaths(root)
        current = PlatformContext(paths, Registry.load(paths.defs_dir, paths.root))
    current.registry.raise_for_errors()
    return current
