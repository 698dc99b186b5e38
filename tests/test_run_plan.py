"""How ``ddp materialize`` splits a selection into runs (runtime.materialize.run_plan), on real
Dagster definitions: a partitioned product shares the unpartitioned run before it only when
neither reads the other (a failed step skips every step downstream of it in its run)."""

from __future__ import annotations

import dagster as dg

from ddp_assets.runtime.materialize import PartitionSelection, run_plan
from ddp_assets.settings import ProjectPaths

DAYS = dg.DailyPartitionsDefinition(start_date="2025-01-01")


def _plan(*assets: dg.AssetsDefinition) -> list[tuple[str | None, list[str], tuple[str, ...]]]:
    defs = dg.Definitions(assets=list(assets))
    graph = defs.resolve_asset_graph()
    keys = sorted(graph.get_all_asset_keys())
    with dg.DagsterInstance.ephemeral() as instance:
        parts = run_plan(
            ProjectPaths.discover(),
            graph,
            keys,
            instance,
            PartitionSelection(("2025-01-02",)),
        )
    return [(p.product, sorted(k.to_user_string() for k in p.keys), p.partitions) for p in parts]


@dg.asset(group_name="customers")
def customers() -> None: ...


@dg.asset(group_name="events", partitions_def=DAYS)
def events() -> None: ...


@dg.asset(group_name="events", partitions_def=DAYS, deps=[customers])
def events_by_customer() -> None: ...


@dg.asset(group_name="metrics", deps=[events])
def metrics() -> None: ...


def test_an_independent_partitioned_product_shares_the_run_before_it() -> None:
    assert _plan(customers, events, metrics) == [
        ("events", ["customers", "events"], ("2025-01-02",)),
        (None, ["metrics"], ()),
    ]


def test_a_partitioned_product_that_reads_the_run_before_it_keeps_its_own() -> None:
    assert _plan(customers, events_by_customer) == [
        (None, ["customers"], ()),
        ("events", ["events_by_customer"], ("2025-01-02",)),
    ]
