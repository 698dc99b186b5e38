"""OpenLineage events of real runs: schema-valid, complete, once per run, kept when delivery fails.

The demo is built once (``built_demo``); its ``ddp materialize`` emits through the default file
transport into ``$DAGSTER_HOME/lineage``. Failure and transport tests use small real Dagster runs
in their own temporary instance, and a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from typer.testing import CliRunner

from ddp_assets.cli.app import app
from ddp_assets.lineage.emit import Outbox, emit_run_lineage, flush, lineage_dir
from ddp_assets.lineage.run import static_graph
from ddp_assets.lineage.sensors import lineage_sensors
from ddp_assets.runtime.materialize import RunOutcome
from ddp_assets.spec.registry import Registry
from tests.test_lineage_schemas import schema_errors

pytestmark = pytest.mark.slow

TERMINAL = {"COMPLETE", "FAIL", "ABORT"}


def _events_of(home: Path, run_id: str) -> list[dict[str, Any]]:
    path = lineage_dir(home) / "events.jsonl"
    events = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [e for e in events if e["run"]["facets"]["parent"]["run"]["runId"] == run_id]


@pytest.fixture(scope="module")
def demo_events(built_demo: RunOutcome, demo_env) -> list[dict[str, Any]]:
    # the demo builds in a few runs: the unpartitioned products, usage_events' days, then
    # the products that read usage_events
    runs = built_demo.runs or [built_demo.run_id]
    events = [e for run_id in runs for e in _events_of(demo_env.dagster_home, run_id)]
    assert events, "ddp materialize emitted no OpenLineage event"
    return events


@pytest.fixture(scope="module")
def registry(demo_env) -> Registry:
    return Registry.load(demo_env.paths.defs_dir, demo_env.paths.root)


def _by_job(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    jobs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        jobs[event["job"]["name"]].append(event)
    return jobs


def _complete(events: list[dict[str, Any]], job: str) -> dict[str, Any]:
    found = [e for e in events if e["job"]["name"] == job and e["eventType"] == "COMPLETE"]
    assert len(found) == 1, f"{job}: {[e['eventType'] for e in events if e['job']['name'] == job]}"
    return found[0]


def _model_job(events: list[dict[str, Any]], product: str, model: str) -> str:
    """The job that runs a dbt model (``product.model``, or ``product.staging.model`` under WAP)."""
    names = {e["job"]["name"] for e in events if "sql" in e["job"]["facets"]}
    for name in (f"{product}.staging.{model}", f"{product}.{model}"):
        if name in names:
            return name
    raise AssertionError(f"no SQL job for {product}.{model} in {sorted(names)}")


# -- (1) events, facets and the official schemas ------------------------------------------


def test_every_event_validates_against_the_official_schemas(
    demo_events: list[dict[str, Any]], shared_spec: Path
) -> None:
    problems = {
        f"{e['job']['name']} {e['eventType']}: {error}"
        for e in demo_events
        for error in schema_errors(e, shared_spec / "openlineage")
    }
    assert not problems, "\n".join(sorted(problems)[:20])


def test_every_demo_product_emits(demo_events: list[dict[str, Any]], registry: Registry) -> None:
    products = {e["job"]["facets"]["ddp_dataProduct"]["product"] for e in demo_events}
    assert products == set(registry.products)
    # Python assets emit the same: a job with a schema on its output
    churn = [e for e in demo_events if e["job"]["name"].endswith("churn_scores")]
    assert churn and all(e["outputs"][0]["facets"]["schema"]["fields"] for e in churn)


def test_start_and_exactly_one_terminal_event_per_run(demo_events: list[dict[str, Any]]) -> None:
    by_run: dict[str, list[str]] = defaultdict(list)
    for event in demo_events:
        by_run[event["run"]["runId"]].append(event["eventType"])
    for run_id, types in by_run.items():
        counts = Counter(types)
        assert counts["START"] == 1, (run_id, types)
        assert sum(counts[t] for t in TERMINAL) == 1, (run_id, types)
        assert types[0] == "START"
    assert all(t == "COMPLETE" for types in by_run.values() for t in types[1:])


def test_parent_facet_links_the_dagster_run(
    demo_events: list[dict[str, Any]], built_demo: RunOutcome
) -> None:
    runs = built_demo.runs or [built_demo.run_id]
    for run_id in runs:
        run = dg.DagsterInstance.get().get_run_by_id(run_id)
        assert run is not None and run.job_name == "__ASSET_JOB"  # Dagster's internal name
    for event in demo_events:
        parent = event["run"]["facets"]["parent"]
        assert parent["run"]["runId"] in runs
        assert parent["job"]["namespace"] == "ddp"
        assert parent["root"]["run"]["runId"] == parent["run"]["runId"]
        # an ad-hoc run: ddp's own name, not Dagster's internal one (a run of one product, as
        # a partitioned product's runs are, is named after it)
        assert parent["job"]["name"] == parent["root"]["job"]["name"]
        assert parent["job"]["name"] in {"ddp.materialize", "ddp.materialize.usage_events"}


def test_every_dataset_names_its_data_source(demo_events: list[dict[str, Any]], demo_env) -> None:
    warehouse = f"duckdb://{demo_env.paths.warehouse_path}"
    landing = (demo_env.data_dir / "landing").resolve().as_uri()
    seen: Counter[tuple[str, str]] = Counter()
    for event in demo_events:
        for kind in ("inputs", "outputs"):
            for dataset in event[kind]:
                source = dataset["facets"]["dataSource"]
                assert source["name"] == dataset["namespace"], dataset
                expected = landing if dataset["namespace"] == "file" else warehouse
                if dataset["namespace"].startswith("sqlite://"):  # the demo depot's database
                    expected = dataset["namespace"]
                assert source["uri"] == expected, dataset
                seen[kind, dataset["namespace"]] += 1
    assert seen["inputs", "file"] and seen["inputs", warehouse] and seen["outputs", warehouse]


def test_every_event_and_facet_names_the_producer(demo_events: list[dict[str, Any]]) -> None:
    from ddp_assets.lineage.facets import producer

    assert {e["producer"] for e in demo_events} == {producer()}
    stamps = {
        facet["_producer"]
        for e in demo_events
        for facets in [e["run"]["facets"], e["job"]["facets"]]
        + [d["facets"] for d in e["inputs"] + e["outputs"]]
        for facet in facets.values()
    }
    assert stamps == {producer()}


def test_product_facet_names_product_version_domain_and_port(
    demo_events: list[dict[str, Any]],
) -> None:
    event = _complete(demo_events, "orders.orders")
    facet = event["job"]["facets"]["ddp_dataProduct"]
    assert (facet["product"], facet["version"], facet["domain"], facet["port"]) == (
        "orders",
        "1.0.0",
        "sales",
        "orders",
    )
    assert facet["contract"] == "urn:ddp:sales:orders:orders"
    output = event["outputs"][0]
    assert output["facets"]["ddp_dataProduct"]["port"] == "orders"
    assert output["facets"]["ownership"]["owners"]
    assert output["facets"]["documentation"]["description"]
    assert event["job"]["facets"]["jobType"]["processingType"] == "BATCH"


def test_datasets_follow_the_naming_conventions(
    demo_events: list[dict[str, Any]], demo_env
) -> None:
    warehouse = f"duckdb://{demo_env.paths.warehouse_path}"
    event = _complete(demo_events, "orders.orders")
    assert event["outputs"][0] == {**event["outputs"][0], "namespace": warehouse}
    assert event["outputs"][0]["name"] == "warehouse.orders.orders"
    landing = _complete(demo_events, "orders.raw_orders")
    assert landing["inputs"][0]["namespace"] == "file"
    assert landing["inputs"][0]["name"] == str(demo_env.data_dir / "landing/orders/orders.csv")
    assert landing["outputs"][0]["name"] == "warehouse.orders.raw_orders"
    rows = landing["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"]
    assert rows > 0


def test_sql_and_data_quality_assertions(demo_events: list[dict[str, Any]]) -> None:
    job = _model_job(demo_events, "orders", "orders")
    sql = _complete(demo_events, job)["job"]["facets"]["sql"]
    assert sql["dialect"] == "duckdb" and "order_lines" in sql["query"]
    assert "{{" not in sql["query"]  # compiled, not Jinja
    checks = [
        e
        for e in demo_events
        if e["eventType"] in TERMINAL and e["job"]["name"].endswith(".checks")
    ]
    assertions = [
        a
        for e in checks
        for a in e["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"]
    ]
    assert any(a["assertion"] == "unique" and a["column"] == "order_id" for a in assertions)
    assert all(a["success"] for a in assertions)


# -- (2) lineage edges and column lineage ------------------------------------------------


def test_known_lineage_edges(demo_events: list[dict[str, Any]]) -> None:
    def reads(job: str) -> set[str]:
        return {i["name"] for i in _complete(demo_events, job)["inputs"]}

    orders = reads(_model_job(demo_events, "orders", "orders"))
    assert "warehouse.customers.customers" in orders  # another product's published port
    profile = reads(_model_job(demo_events, "customer_360", "customer_profile"))
    assert {
        "warehouse.orders.orders",
        "warehouse.customers.customers",
        "warehouse.usage_metrics.customer_usage",
    } <= profile
    scorecard = reads(_model_job(demo_events, "supplier_performance", "supplier_scorecard"))
    assert "warehouse.inventory.suppliers" in scorecard
    assert reads(_model_job(demo_events, "orders", "stg_orders")) == {"warehouse.orders.raw_orders"}


def test_column_lineage_of_orders(demo_events: list[dict[str, Any]]) -> None:
    event = _complete(demo_events, _model_job(demo_events, "orders", "orders"))
    fields = event["outputs"][0]["facets"]["columnLineage"]["fields"]

    def sources(column: str) -> set[tuple[str, str, str | None]]:
        return {
            (f["name"], f["field"], f["transformations"][0].get("subtype"))
            for f in fields[column]["inputFields"]
        }

    assert sources("country") == {("warehouse.customers.customers", "country", "IDENTITY")}
    assert ("warehouse.orders.stg_orders", "customer_id", "IDENTITY") in sources("customer_id")
    revenue = {(name, field) for name, field, _ in sources("revenue")}
    assert any(field == "line_amount" and name.endswith(".order_lines") for name, field in revenue)
    assert "AGGREGATION" in {s for *_, s in sources("revenue")}


# -- (3) exactly once, disabled, failures, the sensor ------------------------------------


def test_a_run_is_emitted_once(built_demo: RunOutcome, demo_env) -> None:
    instance = dg.DagsterInstance.get()
    before = len(_events_of(demo_env.dagster_home, built_demo.run_id))
    result = emit_run_lineage(instance, built_demo.run_id, demo_env.paths)
    assert result.status == "already-emitted"
    assert len(_events_of(demo_env.dagster_home, built_demo.run_id)) == before


@pytest.fixture()
def small_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    """A temporary instance of its own; the working directory has no openlineage.yml."""
    monkeypatch.chdir(tmp_path)
    for name in ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG", "OPENLINEAGE_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home), set_dagster_home=False) as instance:
        yield instance


def _landing_run(instance: dg.DagsterInstance, *, fail: bool = False) -> str:
    """A real run of two assets keyed like the demo's orders assets."""

    @dg.asset(key=["orders", "raw_orders"])
    def raw_orders() -> dg.MaterializeResult:
        if fail:
            raise RuntimeError("the landing zone is unreachable")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": 3,
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn("order_id", "BIGINT")]
                ),
                "ddp/files": ["orders/orders.csv"],
            }
        )

    @dg.asset(key=["orders", "stg_orders"], deps=[raw_orders])
    def stg_orders() -> None:
        return None

    result = dg.materialize([raw_orders, stg_orders], instance=instance, raise_on_error=False)
    assert result.success is not fail
    return result.run_id


def test_failed_run_emits_fail_and_abort(
    small_instance: dg.DagsterInstance, demo_env, shared_spec: Path
) -> None:
    run_id = _landing_run(small_instance, fail=True)
    result = emit_run_lineage(small_instance, run_id, demo_env.paths)
    assert result.status == "emitted"
    events = _events_of(Path(small_instance.root_directory), run_id)
    jobs = {
        e["job"]["name"]: [x["eventType"] for x in events if x["job"] == e["job"]] for e in events
    }
    assert jobs == {"orders.raw_orders": ["START", "FAIL"], "orders.stg_orders": ["START", "ABORT"]}
    failed = next(e for e in events if e["eventType"] == "FAIL")
    assert "unreachable" in failed["run"]["facets"]["errorMessage"]["message"]
    for event in events:
        assert not schema_errors(event, shared_spec / "openlineage")
        # ``dg.materialize`` runs Dagster's ephemeral job: ad hoc, over one product
        assert event["run"]["facets"]["parent"]["job"]["name"] == "ddp.materialize.orders"


def test_producer_setting_and_the_parent_job_defined_in_code(
    small_instance: dg.DagsterInstance,
    demo_env,
    shared_spec: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``DDP_OPENLINEAGE_PRODUCER`` is read when the events are built; a run of a job defined in
    code is the parent of its assets' runs under that job's name."""

    @dg.asset(key=["orders", "raw_orders"])
    def raw_orders() -> None:
        return None

    defs = dg.Definitions(
        assets=[raw_orders], jobs=[dg.define_asset_job("orders_refresh", selection=[raw_orders])]
    )
    result = defs.resolve_job_def("orders_refresh").execute_in_process(instance=small_instance)
    assert result.success
    fork = "https://git.example.org/data/ddp/tree/v1.4.0"
    monkeypatch.setenv("DDP_OPENLINEAGE_PRODUCER", fork)
    assert emit_run_lineage(small_instance, result.run_id, demo_env.paths).status == "emitted"
    events = _events_of(Path(small_instance.root_directory), result.run_id)
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    for event in events:
        assert event["producer"] == fork
        facets = [*event["run"]["facets"].values(), *event["job"]["facets"].values()]
        facets += [f for d in event["inputs"] + event["outputs"] for f in d["facets"].values()]
        assert {f["_producer"] for f in facets} == {fork}
        parent = event["run"]["facets"]["parent"]
        assert (parent["job"]["namespace"], parent["job"]["name"]) == ("ddp", "orders_refresh")
        assert not schema_errors(event, shared_spec / "openlineage")
        (output,) = event["outputs"]
        assert output["facets"]["dataSource"]["name"] == output["namespace"]


def test_the_parent_of_a_scheduled_run_is_its_schedule(
    small_instance: dg.DagsterInstance, demo_env
) -> None:
    @dg.asset(key=["orders", "raw_orders"])
    def raw_orders() -> None:
        return None

    result = dg.materialize(
        [raw_orders], instance=small_instance, tags={"dagster/schedule_name": "orders__schedule"}
    )
    emit_run_lineage(small_instance, result.run_id, demo_env.paths)
    events = _events_of(Path(small_instance.root_directory), result.run_id)
    assert events
    assert {e["run"]["facets"]["parent"]["job"]["name"] for e in events} == {"orders__schedule"}


def test_openlineage_disabled_emits_nothing(
    small_instance: dg.DagsterInstance, demo_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _landing_run(small_instance)
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
    assert emit_run_lineage(small_instance, run_id, demo_env.paths).status == "disabled"
    assert not (lineage_dir(small_instance) / "events.jsonl").exists()


def test_run_status_sensor_emits_once(small_instance: dg.DagsterInstance, demo_env) -> None:
    run_id = _landing_run(small_instance)
    run = small_instance.get_run_by_id(run_id)
    assert run is not None
    (success,) = small_instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)
    assert success.dagster_event is not None
    sensor = next(s for s in lineage_sensors(demo_env.paths.root) if s.name.endswith("on_success"))
    for _ in range(2):  # the daemon may see a run again; the CLI may have emitted it already
        context = dg.build_run_status_sensor_context(
            sensor_name=sensor.name,
            dagster_instance=small_instance,
            dagster_run=run,
            dagster_event=success.dagster_event,
        )
        sensor(context)  # type: ignore[call-arg]
    events = _events_of(Path(small_instance.root_directory), run_id)
    assert Counter(e["eventType"] for e in events) == {"START": 2, "COMPLETE": 2}
    assert Outbox(lineage_dir(small_instance)).marker(run_id).exists()


# -- (4) HTTP transport down, outbox, flush ----------------------------------------------


class _Collector(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        type(self).received.append(json.loads(self.rfile.read(length)))
        self.send_response(201)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # silence the test output
        return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_http_down_keeps_events_and_flush_delivers_them_in_order_once(
    small_instance: dg.DagsterInstance,
    demo_env,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = _free_port()
    config = tmp_path / "openlineage.yml"  # the client's own configuration file
    config.write_text(
        "transport:\n"
        "  type: http\n"
        f"  url: http://127.0.0.1:{port}\n"
        "  endpoint: api/v1/lineage\n"
        "  timeout: 2\n"
        "  retry: {total: 0, connect: 0, read: 0}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(config))
    home = Path(small_instance.root_directory)

    runs = [_landing_run(small_instance), _landing_run(small_instance, fail=True)]
    for run_id in runs:
        result = emit_run_lineage(small_instance, run_id, demo_env.paths)  # must not raise
        assert result.status == "emitted" and result.flush is not None
        assert result.flush.delivered == 0 and result.flush.error
    kept = Outbox(lineage_dir(home)).pending()
    assert len(kept) == 8
    assert not (lineage_dir(home) / "events.jsonl").exists()  # nothing went to the default file

    _Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", port), _Collector)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.daemon = True
    thread.start()
    try:
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        monkeypatch.setenv("DDP_PROJECT_ROOT", str(demo_env.paths.root))  # cwd is tmp_path
        cli = CliRunner().invoke(app, ["lineage", "flush"])
        assert cli.exit_code == 0, cli.output
        assert "8 event(s) delivered" in cli.output
        assert flush(home).delivered == 0  # nothing twice
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    def identity(event: dict[str, Any]) -> tuple[str, str, str]:
        return (event["run"]["runId"], event["eventType"], event["eventTime"])

    assert [identity(e) for e in _Collector.received] == [identity(e) for e in kept]
    assert Outbox(lineage_dir(home)).pending() == []


def test_flush_with_the_endpoint_still_down_fails_clearly(
    small_instance: dg.DagsterInstance,
    demo_env,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = _free_port()
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "http")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__RETRY", '{"total": 0, "connect": 0, "read": 0}')
    emit_run_lineage(small_instance, _landing_run(small_instance), demo_env.paths)
    monkeypatch.setenv("DAGSTER_HOME", str(small_instance.root_directory))
    monkeypatch.setenv("DDP_PROJECT_ROOT", str(demo_env.paths.root))  # cwd is tmp_path
    result = CliRunner().invoke(app, ["lineage", "flush"])
    assert result.exit_code == 1
    assert "4 still pending" in result.output and "Traceback" not in result.output


# -- (5) `ddp lineage` -------------------------------------------------------------------


def test_lineage_command_json_and_mermaid(built_demo: RunOutcome, demo_env) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["lineage", "orders", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    edges = {(e["upstream"], e["port"], e["downstream"]) for e in data["products"]}
    assert ("customers", "customers", "orders") in edges
    assert ("orders", "orders", "customer_360") in edges
    assert ("orders", "order_lines", "supplier_performance") in edges
    tables = {(t["from"], t["to"]) for t in data["tables"]}
    assert ("warehouse.orders.raw_orders", "warehouse.orders.stg_orders") in tables
    mermaid = runner.invoke(app, ["lineage", "--format", "mermaid"])
    assert mermaid.exit_code == 0
    assert mermaid.output.startswith("flowchart LR")
    assert 'p_customers -->|"customers"| p_orders' in mermaid.output
    unknown = runner.invoke(app, ["lineage", "orderz"])
    assert unknown.exit_code != 0


def test_static_graph_column_lineage_matches_the_run(built_demo: RunOutcome, demo_env) -> None:
    graph = static_graph(demo_env.paths, instance=dg.DagsterInstance.get())
    orders = next(a for a in graph.assets.values() if a.kind == "dbt" and a.model == "orders")
    country = orders.column_lineage["country"]
    assert [(".".join(s.table), s.column) for s in country] == [
        ("warehouse.customers.customers", "country")
    ]


def test_console_transport_prints_events(
    small_instance: dg.DagsterInstance,
    demo_env,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "console")
    caplog.set_level(logging.INFO, logger="openlineage.client.transport.console")
    run_id = _landing_run(small_instance)
    result = emit_run_lineage(small_instance, run_id, demo_env.paths)
    assert result.flush is not None and result.flush.delivered == 4
    printed = [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith("console")]
    assert [e["eventType"] for e in printed if e["job"]["name"] == "orders.raw_orders"] == [
        "START",
        "COMPLETE",
    ]


def test_dataset_namespaces_by_the_naming_spec(project_paths) -> None:
    from ddp_assets.lineage.naming import warehouse_namespace

    postgres = {"type": "postgres", "host": "db.internal", "port": 5433, "dbname": "analytics"}
    assert warehouse_namespace(project_paths, postgres) == "postgres://db.internal:5433"
    duckdb = warehouse_namespace(project_paths, {"type": "duckdb"})
    assert duckdb == f"duckdb://{project_paths.warehouse_path}"


def test_a_check_only_run_emits_the_checks_not_the_asset(
    small_instance: dg.DagsterInstance, demo_env
) -> None:
    @dg.asset(key=["orders", "raw_orders"])
    def raw_orders() -> None:
        return None

    @dg.asset_check(asset=raw_orders)
    def has_rows() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=False, metadata={"column": "order_id"})

    result = dg.materialize(
        [raw_orders, has_rows],
        instance=small_instance,
        selection=dg.AssetSelection.checks(has_rows),
        raise_on_error=False,
    )
    emit_run_lineage(small_instance, result.run_id, demo_env.paths)
    events = _events_of(Path(small_instance.root_directory), result.run_id)
    assert {e["job"]["name"] for e in events} == {"orders.raw_orders.checks"}
    final = next(e for e in events if e["eventType"] != "START")
    assert final["eventType"] == "FAIL"  # a failed ERROR-severity check
    (assertion,) = final["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert assertion == {**assertion, "success": False, "column": "order_id", "name": "has_rows"}


def test_the_fast_serializer_writes_what_the_client_would(built_demo: RunOutcome, demo_env) -> None:
    """``event_dict`` (one pass) gives exactly ``Serde.to_dict`` for every event of a run."""
    from openlineage.client.serde import Serde

    from ddp_assets.lineage.emit import event_dict
    from ddp_assets.lineage.run import run_events

    events = run_events(dg.DagsterInstance.get(), built_demo.run_id, demo_env.paths)
    assert events
    for event in events:
        assert event_dict(event) == Serde.to_dict(event)
