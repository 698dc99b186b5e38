"""The Dagster code location: every component instance under ``ddp_assets/defs``, with each
product's refresh and freshness policy completed once, here, over the specs that lack it."""

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from ddp_assets.automation.policies import apply_product_policies
from ddp_assets.dbt.load_cache import load_scope
from ddp_assets.settings import ProjectPaths

_FROZEN = False  # whether a build in this process has frozen what it built (once per process)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while the definitions are built; the first build of
    a process then moves what is alive into the collector's permanent generation.

    A build allocates a few hundred thousand objects that nearly all stay alive for the life of
    the process (the specs, the manifest, the component tree). The collector scanned them again
    and again while they were created, at every full collection after, and several times more
    when the process exits: a third of a 2000-model load's CPU (docs/performance.md,
    "Definitions"). ``gc.freeze()`` after start-up is the use Python documents for it. Once per
    process: a process that builds the definitions again (a test session) keeps the collector
    for what the later builds leave. Reference counting still frees whatever is dropped; only
    cycles that were already garbage at the freeze stay in memory (one build's worth, once).
    """
    global _FROZEN
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        if was_enabled and not _FROZEN:
            gc.freeze()
            _FROZEN = True
    finally:
        if was_enabled:
            gc.enable()


@dg.definitions
def defs() -> dg.Definitions:
    here = Path(__file__).parent
    paths = ProjectPaths.discover(here)
    # Every component of the build shares one reading of the defs folder (or none at all, when
    # nothing changed since the last build: ddp_assets/dbt/load_cache.py).
    with _collector_paused(), load_scope(paths) as registry:
        merged = dg.Definitions.merge(
            dg.load_from_defs_folder(path_within_project=here),
            # Every step writes the one DuckDB file, so steps run one at a time anyway (the
            # `duckdb_writer` pool): running them in the run's own process saves loading the
            # code location again for every step, as the multiprocess executor would.
            dg.Definitions(executor=dg.in_process_executor),
        )
        return apply_product_policies(merged, registry)
