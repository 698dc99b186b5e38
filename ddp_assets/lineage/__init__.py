"""OpenLineage events for every materialization, and the lineage graph behind ``ddp lineage``.

Start at :func:`~ddp_assets.lineage.emit.emit_run_lineage` (events of one finished run) and
:func:`~ddp_assets.lineage.run.static_graph` (lineage as the code declares it).
"""

from ddp_assets.lineage.emit import emit_lineage_safely, emit_run_lineage, flush, lineage_dir

__all__ = ["emit_lineage_safely", "emit_run_lineage", "flush", "lineage_dir"]
