"""The Dagster code location: every component instance under ``ddp_assets/defs``, with each
product's refresh and freshness policy applied once, here, over all asset specs."""

from pathlib import Path

import dagster as dg

from ddp_assets.automation.policies import apply_product_policies
from ddp_assets.dbt.load_cache import load_scope
from ddp_assets.settings import ProjectPaths


@dg.definitions
def defs() -> dg.Definitions:
    here = Path(__file__).parent
    paths = ProjectPaths.discover(here)
    # Every component of the build shares one reading of the defs folder (or none at all, when
    # nothing changed since the last build: ddp_assets/dbt/load_cache.py).
    with load_scope(paths) as registry:
        merged = dg.Definitions.merge(
            dg.load_from_defs_folder(path_within_project=here),
            # Every step writes the one DuckDB file, so steps run one at a time anyway (the
            # `duckdb_writer` pool): running them in the run's own process saves loading the
            # code location again for every step, as the multiprocess executor would.
            dg.Definitions(executor=dg.in_process_executor),
        )
        return apply_product_policies(merged, registry)
