"""A project's Dagster definitions, built by the platform: every component instance under the
project's ``defs/`` folder, with each product's refresh and freshness policy completed once,
here, over the specs that lack it.

A code location module (this repository's ``ddp_assets/definitions.py``, or the one ``ddp init``
writes for a team) is three lines::

    @dg.definitions
    def defs() -> dg.Definitions:
        return build_definitions(Path(__file__).parent)
"""

from pathlib import Path

import dagster as dg

from ddp_assets import compat
from ddp_assets.automation.policies import apply_product_policies
from ddp_assets.components.context import platform_context
from ddp_assets.dbt.load_cache import load_scope
from ddp_assets.settings import ProjectPaths


def build_definitions(path_within_project: Path) -> dg.Definitions:
    """The definitions of the ddp project holding ``path_within_project`` (its code location
    package's folder): its products, the platform's components, one in-process executor."""
    compat.tune_collector()  # every process that loads a code location
    paths = ProjectPaths.discover(path_within_project)
    # Every component of the build shares one reading of the defs folder (or none at all, when
    # nothing changed since the last build: ddp_assets/dbt/load_cache.py).
    with (
        compat.collector_paused(),
        compat.component_yaml_in_c(),
        compat.component_tree_walked_once(),
        load_scope(paths) as loaded,
        platform_context(paths, loaded.registry, loaded.depots),
    ):
        registry = loaded.registry
        registry.raise_for_errors()  # before Dagster reads (and expands) any defs.yaml
        merged = dg.Definitions.merge(
            dg.load_from_defs_folder(path_within_project=path_within_project),
            # Every step writes the one DuckDB file, so steps run one at a time anyway (the
            # `duckdb_writer` pool): running them in the run's own process saves loading the
            # code location again for every step, as the multiprocess executor would.
            dg.Definitions(executor=dg.in_process_executor),
        )
        return apply_product_policies(merged, registry)
