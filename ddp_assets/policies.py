"""A product's refresh and freshness policy, as Dagster objects: pure functions of its spec.

A product's ``slos`` decide, for every asset in its group, the automation condition (refresh on
upstream change, gated on upstream blocking checks) and, for its output ports, the freshness
policy. Nothing here names an asset.

The asset factories (landing, Python models, the dbt translator, the output ports) give their
specs these policies where they create them (:func:`asset_policies`, :func:`refresh_condition`);
the root pass (``automation/policies.py::apply_product_policies``) completes any spec that did
not get them. Like :mod:`ddp_assets.metadata`, this module only translates a spec into Dagster
objects: it sits below the asset factories and above ``spec`` (which stays Dagster-free).
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from ddp_assets.spec.model import ProductSpec


def automation_condition(spec: ProductSpec) -> dg.AutomationCondition | None:
    """Refresh when any upstream updates, only once upstream blocking checks passed.

    This is Dagster's ``eager()`` but for what resets it: ``eager`` treats the asset's own update
    as handling its upstream's, and when both land between two ticks (a consumer run that read
    the old upstream finishing while the upstream publishes) the reset wins and the consumer
    keeps stale data. Here only a request of the asset resets the trigger, so an upstream update
    always leads to a run that starts after it (at worst one extra refresh).

    A partitioned product refreshes *any* partition whose upstream partition updated (a late
    file for an old day republishes that day), not only the latest window as ``eager`` does; a
    partition that is merely missing is not requested (its landing files bring it: the landing
    sensor requests that partition).
    """
    if spec.slos.refresh != "on_upstream_change":
        return None
    condition = dg.AutomationCondition
    if spec.partitions is None:
        window = condition.in_latest_time_window()
        trigger = condition.newly_missing() | condition.any_deps_updated()
    else:
        window = None
        trigger = condition.any_deps_updated()
    upstream_changed = trigger.since(condition.newly_requested() | condition.initial_evaluation())
    gate = (window & upstream_changed) if window is not None else upstream_changed
    return (
        gate
        & ~condition.any_deps_missing()
        & ~condition.any_deps_in_progress()
        & ~condition.in_progress()
        & condition.all_deps_blocking_checks_passed()
    ).with_label("ddp: refresh on upstream change")


def deadline_cron(deadline: str) -> str:
    hours, minutes = deadline.split(":")
    return f"{int(minutes)} {int(hours)} * * *"


def freshness_policy(spec: ProductSpec) -> dg.FreshnessPolicy | None:
    """The product's freshness SLO as a Dagster freshness policy (shown in the UI)."""
    freshness = spec.slos.freshness
    if freshness is None:
        return None
    if freshness.max_age is not None:
        fail = freshness.max_age_delta
        assert fail is not None
        warn = freshness.warn_after_delta or fail * 3 / 4
        return dg.FreshnessPolicy.time_window(fail_window=fail, warn_window=warn)
    assert freshness.deadline is not None
    return dg.FreshnessPolicy.cron(
        deadline_cron=deadline_cron(freshness.deadline),
        lower_bound_delta=timedelta(days=1),
        timezone=freshness.timezone,
    )


class ProductPolicies:
    """One product's policies, built once per product spec (a condition per asset spec was a
    quarter of a 1000-model load: docs/performance.md)."""

    def __init__(self, spec: ProductSpec) -> None:
        self.spec = spec
        self.condition = automation_condition(spec)
        self.freshness = freshness_policy(spec)
        self.published = {port.model for port in spec.output_ports}


# id(spec) -> policies; each entry holds its spec, so an id is not reused while it is here
_BY_SPEC: dict[int, ProductPolicies] = {}


def product_policies(spec: ProductSpec) -> ProductPolicies:
    """The policies of product ``spec``, built on first use (the root pass reads them too)."""
    found = _BY_SPEC.get(id(spec))
    if found is None or found.spec is not spec:
        if len(_BY_SPEC) > 10_000:  # a long-lived process loading many registries
            _BY_SPEC.clear()
        found = _BY_SPEC[id(spec)] = ProductPolicies(spec)
    return found


def is_published_port(spec: ProductSpec, key: dg.AssetKey) -> bool:
    """The published relation of an output port: key ``[product, model]`` (the staging relation
    ``[product, "staging", model]`` is not what consumers read)."""
    path = key.path
    return len(path) == 2 and path[0] == spec.id and path[1] in product_policies(spec).published


def refresh_condition(spec: ProductSpec) -> dg.AutomationCondition | None:
    """The automation condition every asset of product ``spec`` gets (one object per product)."""
    return product_policies(spec).condition


def asset_policies(
    spec: ProductSpec, key: dg.AssetKey
) -> tuple[dg.AutomationCondition | None, dg.FreshnessPolicy | None]:
    """(automation condition, freshness policy) of the asset ``key`` of product ``spec``.

    For the code that creates a product's specs: ``condition, freshness =
    asset_policies(product.spec, key)``, then ``automation_condition=condition,
    freshness_policy=freshness`` on the ``AssetSpec`` / ``@dg.asset``. The condition object is
    shared by every asset of the product.
    """
    policies = product_policies(spec)
    return policies.condition, policies.freshness if is_published_port(spec, key) else None
