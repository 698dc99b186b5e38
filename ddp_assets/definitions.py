"""The Dagster code location: every component instance under ``ddp_assets/defs``."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        # Every step writes the one DuckDB file, so steps run one at a time anyway (the
        # `duckdb_writer` pool): running them in the run's own process saves loading the code
        # location again for every step, as the multiprocess executor would.
        dg.Definitions(executor=dg.in_process_executor),
    )
