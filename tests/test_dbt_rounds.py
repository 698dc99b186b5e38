"""How the dbt step orders its work: rounds of dbt models, each followed by its ports' publish."""

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import dagster as dg

from ddp_assets.components.dbt_products import _StepPlan
from ddp_assets.settings import ProjectPaths


def _plan(ports: list[dg.AssetKey]) -> _StepPlan:
    # the round planner only looks a port up by its key; the value stands for the PortAsset
    return _StepPlan(
        registry=cast(Any, None),
        paths=ProjectPaths(Path(".")),
        ports={key: cast(Any, key) for key in ports},
    )


def _context(deps: dict[dg.AssetKey, list[dg.AssetKey]]) -> Any:
    return SimpleNamespace(
        selected_asset_keys=set(deps),
        assets_def=SimpleNamespace(asset_deps={k: set(v) for k, v in deps.items()}),
    )


def test_consumers_wait_for_the_publish_of_what_they_read() -> None:
    k = dg.AssetKey
    stg_a, port_a = k(["a", "staging", "m"]), k(["a", "m"])
    b_model, stg_b, port_b = k(["b", "x"]), k(["b", "staging", "n"]), k(["b", "n"])
    c_model = k(["c", "y"])
    lone = k(["d", "z"])
    deps = {
        stg_a: [],
        port_a: [stg_a],
        b_model: [port_a],
        stg_b: [b_model],
        port_b: [stg_b],
        c_model: [port_b, port_a],
        lone: [],
    }
    rounds = _plan([port_a, port_b]).rounds(_context(deps))
    assert [(r.models, r.ports) for r in rounds] == [
        ({stg_a, lone}, [port_a]),
        ({b_model, stg_b}, [port_b]),
        ({c_model}, []),
    ]


def test_a_chain_thousands_of_models_deep_is_planned_without_recursion() -> None:
    keys = [dg.AssetKey(["p", f"m{i}"]) for i in range(5000)]
    deps = {key: ([keys[i - 1]] if i else []) for i, key in enumerate(keys)}
    rounds = _plan([]).rounds(_context(deps))
    assert len(rounds) == 1 and rounds[0].models == set(keys)
