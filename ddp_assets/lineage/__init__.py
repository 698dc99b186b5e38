"""OpenLineage events for every materialization, and the lineage graph behind ``ddp lineage``.

Start at :func:`~ddp_assets.lineage.emit.emit_run_lineage` (events of one finished run) and
:func:`~ddp_assets.lineage.run.static_graph` (lineage as the code declares it).
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ddp_assets.lineage.emit import emit_lineage_safely, emit_run_lineage, flush, lineage_dir

__all__ = ["emit_lineage_safely", "emit_run_lineage", "flush", "lineage_dir"]


def __getattr__(name: str) -> Any:
    """The emit API on first use: importing the OpenLineage client costs about 0.3 s, which a
    code location load (that imports this package for the lineage graph) does not need."""
    if name in __all__:
        from ddp_assets.lineage import emit

        return getattr(emit, name)
    raise AttributeError(f"module 'ddp_assets.lineage' has no attribute {name!r}")
