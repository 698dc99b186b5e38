"""The Dagster code location: every component instance under ``ddp_assets/defs``, with each
product's refresh and freshness policy applied once, here, over all asset specs."""

from pathlib import Path

import dagster as dg

from ddp_assets.automation.policies import apply_product_policies
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.registry import load_registry


@dg.definitions
def defs() -> dg.Definitions:
    here = Path(__file__).parent
    paths = ProjectPaths.discover(here)
    merged = dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=here),
        # Every step writes the one DuckDB file, so steps run one at a time anyway (the
        # `duckdb_writer` pool): running them in the run's own process saves loading the code
        # location again for every step, as the multiprocess executor would.
        dg.Definitions(executor=dg.in_process_executor),
    )
    return apply_product_policies(merged, load_registry(paths.defs_dir, paths.root))
