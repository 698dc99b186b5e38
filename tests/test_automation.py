"""Automation and SLOs through Dagster's own test APIs: policies on the specs, schedules,
landing sensors (runs, cursor, quarantine), alerts and the health scorecard."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.freshness import CronFreshnessPolicy, TimeWindowFreshnessPolicy

from ddp_assets.automation.alerts import Alert, AlertSink, open_alerts, slo_state
from ddp_assets.automation.landing import evaluate_landing
from ddp_assets.runtime.instance import definitions
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.model import Freshness
from ddp_assets.spec.registry import Registry


@pytest.fixture(scope="module")
def registry(project_paths: ProjectPaths) -> Registry:
    return Registry.load(project_paths.defs_dir, project_paths.root)


@pytest.fixture(scope="module")
def defs(project_paths: ProjectPaths) -> dg.Definitions:
    return definitions(project_paths)


def test_refresh_policy_follows_the_spec(defs: dg.Definitions, registry: Registry) -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.materializable_asset_keys:
        node = graph.get(key)
        spec = registry.products[node.group_name or ""].spec
        condition = node.automation_condition
        if spec.slos.refresh == "on_upstream_change":
            assert condition is not None and "upstream change" in (condition.get_label() or ""), key
        else:
            assert condition is None, key


def test_freshness_slo_on_every_published_output_port(
    defs: dg.Definitions, registry: Registry
) -> None:
    graph = defs.resolve_asset_graph()
    for product in registry.products.values():
        freshness = product.spec.slos.freshness
        for port in product.spec.output_ports:
            node = graph.get(dg.AssetKey([product.id, port.model]))
            if freshness is None:
                assert node.freshness_policy is None
            elif freshness.max_age:
                policy = node.freshness_policy
                assert isinstance(policy, TimeWindowFreshnessPolicy), node.key
                assert policy.fail_window.to_timedelta() == freshness.max_age_delta
                assert policy.warn_window is not None
            else:
                assert isinstance(node.freshness_policy, CronFreshnessPolicy), node.key


def test_schedules_and_sensors_are_on_by_default(defs: dg.Definitions, registry: Registry) -> None:
    schedules = {s.name: s for s in defs.schedules or []}
    scheduled = [p for p in registry.products.values() if p.spec.slos.refresh == "schedule"]
    assert scheduled
    for product in scheduled:
        schedule = schedules[f"{product.id}__schedule"]
        assert isinstance(schedule, dg.ScheduleDefinition)
        assert schedule.cron_schedule == product.spec.slos.schedule
        assert schedule.execution_timezone == product.spec.slos.timezone
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    sensors = {s.name: s for s in defs.sensors or []}
    for name in (
        "ddp_automation",
        "ddp_run_failure_alerts",
        "ddp_slo_alerts",
        "ddp_ports_refresh",
        "customers__landing",
    ):
        assert sensors[name].default_status == dg.DefaultSensorStatus.RUNNING, name


@pytest.fixture
def landing_project(tmp_path: Path, project_paths: ProjectPaths, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DDP_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data" / "landing" / "customers").mkdir(parents=True)
    return ProjectPaths(project_paths.root)


def tick(product, paths: ProjectPaths, instance: dg.DagsterInstance, cursor: str | None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    result = evaluate_landing(context, product, paths)
    return result.run_requests or [], result.cursor


def write_customers(path: Path, first_id: int, rows: int = 3) -> None:
    lines = ["customer_id,first_name,last_name,email,country,segment,signup_date,updated_at"]
    for i in range(first_id, first_id + rows):
        lines.append(f"{i},Ada,Lovelace,ada{i}@example.com,GB,smb,2024-01-02,2024-01-03 04:05:06")
    path.write_text("\n".join(lines) + "\n")


def test_landing_sensor_runs_once_per_change_and_survives_restart(
    landing_project: ProjectPaths, registry: Registry
) -> None:
    product = registry.products["customers"]
    landing = landing_project.landing_dir / "customers"
    with dg.instance_for_test() as instance:
        assert tick(product, landing_project, instance, None)[0] == []
        write_customers(landing / "customers.csv", 1)
        requests, cursor = tick(product, landing_project, instance, None)
        assert len(requests) == 1 and requests[0].run_key
        assert requests[0].tags["ddp/trigger"] == "landing"
        # the same files again (also after a restart, from the stored cursor): no run
        assert tick(product, landing_project, instance, cursor)[0] == []
        write_customers(landing / "customers_2.csv", 100)
        again, cursor2 = tick(product, landing_project, instance, cursor)
        assert len(again) == 1 and again[0].run_key != requests[0].run_key
        assert tick(product, landing_project, instance, cursor2)[0] == []
        # the second file taken away: the files are back to an earlier state, a new change
        (landing / "customers_2.csv").unlink()
        back, _ = tick(product, landing_project, instance, cursor2)
        assert len(back) == 1 and back[0].run_key not in {requests[0].run_key, again[0].run_key}


def test_unreadable_file_is_quarantined_with_its_reason(
    landing_project: ProjectPaths, registry: Registry
) -> None:
    product = registry.products["usage_events"]
    landing = landing_project.landing_dir / "usage_events"
    landing.mkdir(parents=True)
    bad = landing / "broken.jsonl"
    bad.write_text('{"event_id": "e1", "customer_id": 1}\n{this is not json\n')
    with dg.instance_for_test() as instance:
        requests, _ = tick(product, landing_project, instance, None)
    assert requests == []
    assert not bad.exists()
    notes = list((landing_project.data_dir / "quarantine" / "usage_events").rglob("*.reason.json"))
    assert len(notes) == 1
    note = json.loads(notes[0].read_text())
    assert note["input_port"] == "raw_events" and "json" in note["reason"]
    assert (notes[0].parent / "broken.jsonl").exists()


def test_file_failing_its_input_contract_is_quarantined(
    landing_project: ProjectPaths, registry: Registry
) -> None:
    """A readable file that breaks the port's contract never reaches a run; good files do."""
    product = registry.products["inventory"]
    landing = landing_project.landing_dir / "inventory"
    landing.mkdir(parents=True)
    header = "supplier_id,supplier_name,country,lead_time_days\n"
    (landing / "suppliers.csv").write_text(header + "1,Northwind,ES,22\n2,Contoso,CA,2\n")
    # a lower-case country breaks the pattern the contract sets for the column
    bad = landing / "suppliers_fix.csv"
    bad.write_text(header + "3,Fabrikam,gb,5\n")
    with dg.instance_for_test() as instance:
        requests, cursor = tick(product, landing_project, instance, None)
        assert len(requests) == 1, "the good file still starts its run"
        assert not bad.exists() and (landing / "suppliers.csv").exists()
        notes = list((landing_project.data_dir / "quarantine" / "inventory").rglob("*.json"))
        assert len(notes) == 1
        note = json.loads(notes[0].read_text())
        assert note["input_port"] == "raw_suppliers"
        assert "input contract urn:ddp:supply_chain:inventory:raw_suppliers" in note["reason"]
        assert "country" in note["reason"]
        # the quarantined file is not looked at again, the good one is not re-validated
        assert tick(product, landing_project, instance, cursor)[0] == []
        assert json.loads(cursor or "{}")["_checked"]["raw_suppliers"] == [
            f"suppliers.csv:{(landing / 'suppliers.csv').stat().st_size}:"
            f"{(landing / 'suppliers.csv').stat().st_mtime_ns}"
        ]


@pytest.mark.slow
def test_files_already_loaded_start_no_run(built_demo, demo_env, registry: Registry) -> None:
    instance = dg.DagsterInstance.get()
    for product_id in ("customers", "orders", "inventory", "usage_events"):
        requests, _ = tick(registry.products[product_id], demo_env.paths, instance, None)
        assert requests == [], product_id


def test_slo_state_for_max_age_and_deadline() -> None:
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC).timestamp()
    hour = 3600.0
    six_hours = Freshness(max_age="6h")
    assert slo_state(six_hours, None, now) == "unknown"
    assert slo_state(six_hours, now - 1 * hour, now) == "pass"
    assert slo_state(six_hours, now - 5 * hour, now) == "warn"  # past 3/4 of 6h
    assert slo_state(six_hours, now - 7 * hour, now) == "fail"
    assert slo_state(Freshness(max_age="6h", warn_after="2h"), now - 3 * hour, now) == "warn"
    by_six = Freshness(deadline="06:00")
    assert slo_state(by_six, now - 2 * hour, now) == "pass"  # built today before noon
    assert slo_state(by_six, now - 40 * hour, now) == "fail"  # nothing in the day before 06:00
    assert slo_state(None, now, now) == "no_slo"


def test_alert_sink_and_open_alerts(tmp_path: Path) -> None:
    sink = AlertSink(tmp_path / "alerts.jsonl")
    sink.send(Alert("slo_fail", "slo:orders.orders", "orders", "stale"))
    sink.send(Alert("run_failure", "run:1", "orders", "boom"))
    assert {a.key for a in open_alerts(sink.path)} == {"slo:orders.orders", "run:1"}
    sink.send(Alert("slo_resolved", "slo:orders.orders", "orders", "fresh again"))
    assert [a.key for a in open_alerts(sink.path)] == ["run:1"]
    lines = sink.path.read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["at"] for line in lines)


def test_failure_sensor_writes_an_alert(
    tmp_path: Path, defs: dg.Definitions, registry: Registry
) -> None:
    from ddp_assets.automation.alerts import failure_sensor

    @dg.asset(key=["orders", "always_fails"])
    def always_fails() -> None:
        raise RuntimeError("the warehouse is on fire")

    sink = AlertSink(tmp_path / "alerts.jsonl")
    sensor = failure_sensor(registry, sink)
    with dg.instance_for_test() as instance:
        result = dg.materialize([always_fails], instance=instance, raise_on_error=False)
        assert not result.success
        failure = next(
            e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE
        )
        run = instance.get_run_by_id(result.run_id)
        assert run is not None
        context = dg.build_run_status_sensor_context(
            sensor_name=sensor.name,
            dagster_event=failure,
            dagster_instance=instance,
            dagster_run=run,
        ).for_run_failure()
        sensor(context)
    (alert,) = open_alerts(sink.path)
    assert alert.kind == "run_failure" and alert.product == "orders"
    assert result.run_id in alert.message


@pytest.mark.slow
def test_status_scorecard_after_the_demo_build(built_demo, demo_env) -> None:
    import subprocess
    import sys

    ddp = str(Path(sys.executable).parent / "ddp")
    result = subprocess.run(
        [ddp, "status", "--json"], capture_output=True, text=True, env=demo_env.env(), timeout=300
    )
    assert result.returncode == 0, result.stderr
    cards = {card["product"]: card for card in json.loads(result.stdout)}
    assert len(cards) >= 6
    for card in cards.values():
        assert card["state"] == "healthy", card
        assert card["last_run"]["status"] == "SUCCESS"
        assert all(f["state"] in ("pass", "no_slo") for f in card["freshness"]), card
    assert cards["orders"]["checks_evaluated"] > 0
    assert cards["orders"]["contract_pass_rate"] == 1.0


def test_assets_link_to_their_catalog_page(
    project_paths: ProjectPaths, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ddp_assets.automation.policies import apply_product_policies
    from ddp_assets.definitions import defs as build_defs

    monkeypatch.setenv("DDP_CATALOG_URL", str(tmp_path / "site"))
    registry = Registry.load(project_paths.defs_dir, project_paths.root)
    graph = apply_product_policies(build_defs(), registry).resolve_asset_graph()
    node = graph.get(dg.AssetKey(["orders", "orders"]))
    url = node.metadata["ddp/catalog"]
    assert getattr(url, "value", url) == (tmp_path / "site").as_uri() + "/products/orders.html"


@pytest.mark.slow
def test_ports_refresh_sensor_serves_what_was_published(
    built_demo, demo_env, registry: Registry
) -> None:
    """After a publish the serving snapshot is rebuilt; with nothing new it is left alone."""
    import duckdb

    from ddp_assets.ports.refresh import ports_refresh_sensor
    from ddp_assets.ports.serving import serving_path

    instance = dg.DagsterInstance.get()
    sensor = ports_refresh_sensor(registry, demo_env.paths, 15)
    path = serving_path(demo_env.paths)
    path.unlink(missing_ok=True)
    first = dg.build_sensor_context(instance=instance, cursor=None)
    result = sensor(first)
    assert "rebuilt" in str(result), result
    built = path.stat().st_mtime_ns
    again = dg.build_sensor_context(instance=instance, cursor=first.cursor)
    assert "no output port published" in str(sensor(again))
    assert path.stat().st_mtime_ns == built
    with duckdb.connect(str(path), read_only=True) as connection:
        served = {
            (schema, table)
            for schema, table in connection.execute(
                "select table_schema, table_name from information_schema.tables "
                "where table_schema <> '_ddp'"
            ).fetchall()
        }
    expected = {
        (product.id, port.name)
        for product in registry.products.values()
        for port in product.spec.output_ports
    }
    # beside each port, the retained versions an earlier build left (time travel)
    versions = {(schema, table) for schema, table in served if re.fullmatch(r".+__v\d+", table)}
    assert served - versions == expected
    assert {(schema, table.rsplit("__v", 1)[0]) for schema, table in versions} <= expected


def test_upstream_update_is_not_lost_when_the_consumer_updates_in_the_same_tick(
    registry: Registry,
) -> None:
    """A consumer run that read the old upstream may finish just as the upstream publishes:
    the next tick must still refresh the consumer (Dagster's eager() lets that reset win)."""
    from ddp_assets.policies import automation_condition

    condition = automation_condition(registry.products["customer_360"].spec)
    assert condition is not None

    def project(consumer_condition: dg.AutomationCondition) -> list[dg.AssetsDefinition]:
        @dg.asset(name="upstream")
        def upstream() -> None: ...

        @dg.asset(name="consumer", deps=[upstream], automation_condition=consumer_condition)
        def consumer() -> None: ...

        return [upstream, consumer]

    def requested(consumer_condition: dg.AutomationCondition) -> int:
        assets = project(consumer_condition)
        with dg.instance_for_test() as instance:
            dg.materialize(assets, instance=instance)
            first = dg.evaluate_automation_conditions(defs=assets, instance=instance)
            assert first.total_requested == 0
            # between two ticks: the consumer refreshes (on old data), then the upstream updates
            dg.materialize(assets, instance=instance, selection=["consumer"])
            dg.materialize(assets, instance=instance, selection=["upstream"])
            result = dg.evaluate_automation_conditions(
                defs=assets, instance=instance, cursor=first.cursor
            )
            return result.total_requested

    assert requested(condition) == 1
    assert requested(dg.AutomationCondition.eager()) == 0  # why ddp does not use eager() as is
