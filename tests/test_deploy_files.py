"""Static checks of deploy/: what can be checked where no Docker engine or Kubernetes runs.

deploy/dagster.yaml itself runs in tests/test_postgres_instance.py against a real PostgreSQL;
here it is validated with Dagster's own config schemas, and the Dockerfile, the docker compose
file and the Helm values are checked for agreeing with it, with each other and with the
project (module, ports, paths, environment variables).
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
MODULE = "ddp_assets.definitions"
LOCATION = "ddp"
GRPC_PORT = 4000
DAGSTER_SERVICES = ("user_code", "webserver", "daemon")


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _env_names(node: Any) -> Iterator[str]:
    """Every ``{env: NAME}`` in a Dagster config."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            yield node["env"]
        for value in node.values():
            yield from _env_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _env_names(value)


@pytest.fixture(scope="module")
def instance_config() -> dict[str, Any]:
    return _load(DEPLOY / "dagster.yaml")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load(DEPLOY / "docker-compose.yaml")


@pytest.fixture(scope="module")
def helm() -> dict[str, Any]:
    return _load(DEPLOY / "helm" / "values.yaml")


def test_every_yaml_file_parses() -> None:
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert {f.relative_to(DEPLOY).as_posix() for f in files} >= {
        "dagster.yaml",
        "docker-compose.yaml",
        "workspace.yaml",
        "helm/values.yaml",
    }
    for path in files:
        assert isinstance(_load(path), dict), path


# --------------------------------------------------------------------------------------------
# deploy/dagster.yaml


PG_ENV = {
    "DAGSTER_PG_HOST": "db.example",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "secret",
    "DAGSTER_PG_DB": "dagster",
}


def test_instance_config_is_valid_for_dagster(
    instance_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dagster's own schema: the instance file, then each configurable class's config."""
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.instance.ref import InstanceRef
    from dagster._serdes.config_class import ConfigurableClass, class_from_code_pointer

    assert set(_env_names(instance_config)) == set(PG_ENV)
    for key, value in PG_ENV.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())
    _, custom_class = dagster_instance_config(str(tmp_path))  # raises on a schema error
    assert custom_class is None

    ref = InstanceRef.from_dir(str(tmp_path))
    storages = {
        "run": ref.run_storage_data,
        "event_log": ref.event_storage_data,
        "schedule": ref.schedule_storage_data,
    }
    for name, data in storages.items():
        assert data is not None and data.module_name.startswith("dagster_postgres"), name
    assert ref.storage_data is not None and ref.run_coordinator_data is not None
    resolved = {}
    for data in (ref.storage_data, ref.run_coordinator_data, ref.run_launcher_data):
        assert data is not None
        cls = cast(
            "type[ConfigurableClass]", class_from_code_pointer(data.module_name, data.class_name)
        )
        result = process_config(cls.config_type(), yaml.safe_load(data.config_yaml) or {})
        assert result.success, (data.class_name, result.errors)
        resolved[data.class_name] = result.value
    postgres = resolved["DagsterPostgresStorage"]["postgres_db"]
    assert (postgres["hostname"], postgres["port"]) == ("db.example", 5432)  # from the env
    assert ref.run_coordinator_data.class_name == "QueuedRunCoordinator"
    assert ref.run_launcher_data is not None
    assert ref.run_launcher_data.class_name == "DefaultRunLauncher"


def test_instance_config_has_queue_limits_monitoring_and_retries(instance_config) -> None:
    pg = instance_config["storage"]["postgres"]["postgres_db"]
    # dagster-postgres needs psycopg2; SQLAlchemy 2.1 would pick psycopg 3 for postgresql://
    assert pg["scheme"] == "postgresql+psycopg2"
    concurrency = instance_config["concurrency"]
    assert concurrency["pools"]["default_limit"] == 1  # the duckdb_writer pool
    assert concurrency["pools"]["granularity"] == "op"  # also serializes `ddp materialize`
    assert concurrency["runs"]["max_concurrent_runs"] > 1
    assert concurrency["runs"]["tag_concurrency_limits"]
    monitoring = instance_config["run_monitoring"]
    assert monitoring["enabled"] is True
    assert monitoring["max_resume_run_attempts"] == 0  # the DefaultRunLauncher cannot resume
    assert monitoring["free_slots_after_run_end_seconds"] > 0  # a dead run's writer slot
    retries = instance_config["run_retries"]
    assert retries["enabled"] is True and retries["max_retries"] >= 1
    assert retries["retry_on_asset_or_op_failure"] is False


def test_local_and_production_instances_share_the_writer_pool_limit(instance_config) -> None:
    local = _load(ROOT / "dagster.yaml")
    assert (
        local["concurrency"]["pools"]["default_limit"]
        == instance_config["concurrency"]["pools"]["default_limit"]
    )


# --------------------------------------------------------------------------------------------
# deploy/Dockerfile


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    value: str

    def words(self) -> list[str]:
        """The arguments: the JSON (exec) form or shell words."""
        if self.value.startswith("["):
            return list(yaml.safe_load(self.value))  # a JSON array is YAML too
        return shlex.split(self.value)


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions with their continuation lines joined and comments dropped.

    Hand-written rather than a dependency: these checks need the instruction and its
    arguments only, not variable expansion or multi-stage semantics.
    """
    instructions: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, value = full.partition(" ")
        instructions.append(Instruction(start, keyword.upper(), value.strip()))
    return instructions


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return parse_dockerfile(DEPLOY / "Dockerfile")


def _all(instructions: list[Instruction], keyword: str) -> list[Instruction]:
    return [i for i in instructions if i.keyword == keyword]


def _env(instructions: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in _all(instructions, "ENV"):
        for word in instruction.words():
            key, _, value = word.partition("=")
            env[key] = value
    return env


def _ignored(patterns: list[str], source: str) -> bool:
    import fnmatch

    return any(
        fnmatch.fnmatch(source, pattern.removeprefix("**/"))
        or fnmatch.fnmatch(source, pattern)
        or source.startswith(pattern.rstrip("/") + "/")
        for pattern in patterns
    )


def test_dockerfile_builds_the_locked_project_on_python_311(dockerfile) -> None:
    keywords = {i.keyword for i in dockerfile}
    assert keywords <= {
        "FROM",
        "ENV",
        "RUN",
        "WORKDIR",
        "COPY",
        "USER",
        "EXPOSE",
        "HEALTHCHECK",
        "CMD",
        "ARG",
        "LABEL",
    }, keywords
    (base,) = _all(dockerfile, "FROM")
    assert re.fullmatch(r"python:3\.11(\.\d+)?(-[a-z]+)*", base.value), base
    runs = " && ".join(i.value for i in _all(dockerfile, "RUN"))
    assert "uv sync --frozen" in runs  # exactly the versions in uv.lock
    make_uv = re.search(r'"uv==([\d.]+)"', (ROOT / "Makefile").read_text())
    assert make_uv is not None
    assert f'"uv=={make_uv.group(1)}"' in runs, "the same uv as the Makefile"
    assert "ddp prepare" in runs  # dbt parsed at build time, not at every start
    # ... for the target the image runs with (a build argument, default the embedded DuckDB)
    assert _env(dockerfile)["DDP_DBT_TARGET"] == "$DDP_DBT_TARGET"
    (arg,) = _all(dockerfile, "ARG")
    assert arg.value == "DDP_DBT_TARGET=dev"
    assert arg.line < next(i.line for i in _all(dockerfile, "RUN") if "ddp prepare" in i.value)


def test_dockerfile_copies_existing_files_not_ignored(dockerfile) -> None:
    ignore = [
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = []
    for instruction in _all(dockerfile, "COPY"):
        words = [w for w in instruction.words() if not w.startswith("--")]
        for source in words[:-1]:
            assert (ROOT / source).exists(), f"Dockerfile:{instruction.line}: no {source}"
            assert not _ignored(ignore, source), f"Dockerfile:{instruction.line}: {source}"
            copied.append(source)
    # what `uv sync` builds: the package, its readme, the lock; and what the code needs
    assert {"pyproject.toml", "uv.lock", "README.md", "ddp_assets", "dbt_project", "depots"} <= set(
        copied
    )
    assert {"deploy/dagster.yaml", "deploy/workspace.yaml"} <= set(copied)
    assert _ignored(ignore, ".venv") and _ignored(ignore, "data")


def test_dockerfile_runs_the_code_server_as_a_non_root_user(dockerfile) -> None:
    users = _all(dockerfile, "USER")
    assert users and users[-1].value not in ("root", "0"), users
    assert users[-1].line < _all(dockerfile, "CMD")[0].line
    (expose,) = _all(dockerfile, "EXPOSE")
    assert expose.value == str(GRPC_PORT)
    (cmd,) = _all(dockerfile, "CMD")
    command = cmd.words()
    assert command[:3] == ["dagster", "code-server", "start"], command
    assert _option(command, "-m") == MODULE
    assert _option(command, "-p") == str(GRPC_PORT)
    assert _option(command, "-h") == "0.0.0.0"
    assert _option(command, "--location-name") == LOCATION
    (health,) = _all(dockerfile, "HEALTHCHECK")
    assert f'"grpc-health-check", "-p", "{GRPC_PORT}"' in health.value
    env = _env(dockerfile)
    copy_instance = next(i for i in _all(dockerfile, "COPY") if "deploy/dagster.yaml" in i.value)
    assert copy_instance.words()[-1] == f"{env['DAGSTER_HOME']}/dagster.yaml"
    assert {"DDP_DATA_DIR", "DDP_PROJECT_ROOT"} <= set(env)


def _option(command: list[str], flag: str) -> str | None:
    return command[command.index(flag) + 1] if flag in command else None


def test_the_code_server_module_is_the_project_code_location() -> None:
    assert importlib.util.find_spec(MODULE) is not None
    workspace = _load(ROOT / "workspace.yaml")
    module = workspace["load_from"][0]["python_module"]
    assert (module["module_name"], module["location_name"]) == (MODULE, LOCATION)


# --------------------------------------------------------------------------------------------
# deploy/docker-compose.yaml (PyYAML resolves its anchors and `<<` merge keys as compose does)


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(w) for w in command]


def test_compose_runs_postgres_user_code_webserver_and_daemon(compose, dockerfile) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", *DAGSTER_SERVICES}
    assert re.fullmatch(r"postgres:\d+(\.\d+)?", services["postgres"]["image"])
    for name in DAGSTER_SERVICES:
        build = services[name]["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == (
            DEPLOY / "Dockerfile"
        ).resolve()
    images = {services[name]["image"] for name in DAGSTER_SERVICES}
    assert len(images) == 1, "webserver and daemon run the image user_code builds"

    user_code = _command(services["user_code"])
    assert user_code == _all(dockerfile, "CMD")[0].words()
    assert _command(services["webserver"])[0] == "dagster-webserver"
    assert _command(services["daemon"])[:2] == ["dagster-daemon", "run"]


def test_compose_gives_every_dagster_container_the_instance_settings(
    compose, instance_config, dockerfile
) -> None:
    services = compose["services"]
    needed = set(_env_names(instance_config))
    home = _env(dockerfile)["DAGSTER_HOME"]
    for name in DAGSTER_SERVICES:
        environment = services[name]["environment"]
        assert needed <= set(environment), (name, needed - set(environment))
        mounts = {
            volume.split(":")[1]: volume.split(":")[0] for volume in services[name]["volumes"]
        }
        # the instance file is deploy/dagster.yaml itself, mounted over the image's copy
        assert (DEPLOY / mounts[f"{home}/dagster.yaml"]).resolve() == DEPLOY / "dagster.yaml"
    env = services["user_code"]["environment"]
    postgres = services["postgres"]
    assert env["DAGSTER_PG_HOST"] == "postgres"
    assert env["DAGSTER_PG_USERNAME"] == postgres["environment"]["POSTGRES_USER"]
    assert env["DAGSTER_PG_DB"] == postgres["environment"]["POSTGRES_DB"]
    assert env["DAGSTER_PG_PASSWORD"] == postgres["environment"]["POSTGRES_PASSWORD"]
    assert env["DAGSTER_PG_PASSWORD"].startswith("${DAGSTER_PG_PASSWORD:?"), "no default password"


def test_compose_volumes_ports_and_healthchecks_agree(compose, dockerfile) -> None:
    services = compose["services"]
    declared = set(compose["volumes"])
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, (name, source)
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition == {"condition": "service_healthy"}, (name, dependency)
            assert dependency in services
    # runs happen in user_code (DefaultRunLauncher): the warehouse volume is mounted there
    data_dir = _env(dockerfile)["DDP_DATA_DIR"]
    assert f"ddp_data:{data_dir}" in services["user_code"]["volumes"]
    webserver = _command(services["webserver"])
    assert (
        f"{_option(webserver, '-p')}:{_option(webserver, '-p')}" in services["webserver"]["ports"]
    )
    assert str(GRPC_PORT) in " ".join(services["user_code"]["healthcheck"]["test"])


def test_compose_workspace_points_at_the_user_code_service(compose, dockerfile) -> None:
    workspace = _load(DEPLOY / "workspace.yaml")
    (entry,) = workspace["load_from"]
    server = entry["grpc_server"]
    assert server["host"] in compose["services"]
    assert server["port"] == GRPC_PORT
    assert server["location_name"] == LOCATION
    workdir = _all(dockerfile, "WORKDIR")[-1].value
    for name in ("webserver", "daemon"):
        path = _option(_command(compose["services"][name]), "-w")
        assert path == "deploy/workspace.yaml", (name, path)  # copied under WORKDIR
    copy = next(i for i in _all(dockerfile, "COPY") if "deploy/workspace.yaml" in i.value)
    assert copy.words()[-1] in ("./deploy/workspace.yaml", f"{workdir}/deploy/workspace.yaml")


# --------------------------------------------------------------------------------------------
# deploy/helm/values.yaml, for the official chart (helm/dagster in dagster-io/dagster).
# Facts taken from the chart's values schema (helm/dagster/schema/schema/charts/...): keep them
# few. The chart renders `concurrency` (pools/runs, camelCase to snake_case),
# `dagsterDaemon.runMonitoring` into `run_monitoring` and appends `additionalInstanceConfig`.
CHART_TOP_LEVEL = {
    "global",
    "dagsterWebserver",
    "dagster-user-deployments",
    "postgresql",
    "generatePostgresqlPasswordSecret",
    "runLauncher",
    "dagsterDaemon",
    "concurrency",
    "computeLogManager",
    "pythonLogs",
    "telemetry",
    "retention",
    "additionalInstanceConfig",
}
CHART_USER_DEPLOYMENT = {
    "name",
    "image",
    "dagsterApiGrpcArgs",
    "codeServerArgs",
    "port",
    "includeConfigInLaunchedRuns",
    "env",
    "envConfigMaps",
    "envSecrets",
    "resources",
    "labels",
    "annotations",
}
CHART_POSTGRESQL = {
    "enabled",
    "image",
    "postgresqlHost",
    "postgresqlUsername",
    "postgresqlPassword",
    "postgresqlDatabase",
    "postgresqlParams",
    "postgresqlScheme",
    "service",
}
CHART_QUEUED_COORDINATOR = {
    "maxConcurrentRuns",
    "tagConcurrencyLimits",
    "dequeueIntervalSeconds",
    "dequeueNumWorkers",
    "dequeueUseThreads",
}
CHART_RUN_MONITORING = {  # value key -> dagster.yaml key
    "enabled": "enabled",
    "startTimeoutSeconds": "start_timeout_seconds",
    "cancelTimeoutSeconds": "cancel_timeout_seconds",
    "maxResumeRunAttempts": "max_resume_run_attempts",
    "pollIntervalSeconds": "poll_interval_seconds",
    "freeSlotsAfterRunEndSeconds": "free_slots_after_run_end_seconds",
}
CHART_POOLS = {
    "defaultLimit": "default_limit",
    "granularity": "granularity",
    "opGranularityRunBuffer": "op_granularity_run_buffer",
}
CHART_RUNS = {
    "maxConcurrentRuns": "max_concurrent_runs",
    "tagConcurrencyLimits": "tag_concurrency_limits",
}


def test_helm_values_use_the_chart_keys(helm) -> None:
    assert set(helm) <= CHART_TOP_LEVEL, set(helm) - CHART_TOP_LEVEL
    (deployment,) = helm["dagster-user-deployments"]["deployments"]
    assert helm["dagster-user-deployments"]["enabled"] is True
    assert set(deployment) <= CHART_USER_DEPLOYMENT, set(deployment) - CHART_USER_DEPLOYMENT
    assert set(deployment["image"]) == {"repository", "tag", "pullPolicy"}
    assert set(helm["postgresql"]) <= CHART_POSTGRESQL
    assert set(helm["postgresql"]["service"]) == {"port"}
    daemon = helm["dagsterDaemon"]
    coordinator = daemon["runCoordinator"]
    assert coordinator["enabled"] is True and coordinator["type"] == "QueuedRunCoordinator"
    assert set(coordinator["config"]) == {"queuedRunCoordinator"}
    assert set(coordinator["config"]["queuedRunCoordinator"]) <= CHART_QUEUED_COORDINATOR
    assert set(daemon["runMonitoring"]) <= set(CHART_RUN_MONITORING)
    assert set(helm["concurrency"]) <= {"enabled", "pools", "runs"}
    assert set(helm["concurrency"]["pools"]) <= set(CHART_POOLS)
    assert set(helm["concurrency"]["runs"]) <= set(CHART_RUNS)


def test_the_image_dagster_home_is_where_the_chart_mounts_its_instance(dockerfile) -> None:
    # the chart's `dagsterHome` default; its instance ConfigMap is mounted there in every pod
    assert _env(dockerfile)["DAGSTER_HOME"] == "/opt/dagster/dagster_home"


def test_helm_values_launch_runs_on_kubernetes_from_the_ddp_image(helm) -> None:
    assert helm["runLauncher"]["type"] == "K8sRunLauncher"
    assert set(helm["runLauncher"]["config"]) == {"k8sRunLauncher"}
    (deployment,) = helm["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    assert _option(args, "-m") == MODULE
    assert deployment["port"] == GRPC_PORT
    # Dagster's storage is an existing server; its password stays in a Secret
    assert helm["postgresql"]["enabled"] is False
    assert "postgresqlPassword" not in helm["postgresql"]
    assert helm["generatePostgresqlPasswordSecret"] is False


def test_helm_values_select_the_postgres_warehouse_target(helm) -> None:
    """Run pods cannot share one DuckDB file: on Kubernetes the products write the PostgreSQL
    warehouse target, configured by the variables dbt's profile reads."""
    (deployment,) = helm["dagster-user-deployments"]["deployments"]
    env = {item["name"]: item.get("value") for item in deployment["env"]}
    profiles_file = ROOT / "dbt_project" / "profiles.yml"
    outputs = _load(profiles_file)["ddp"]["outputs"]
    if env["DDP_DBT_TARGET"] not in outputs:
        pytest.skip(f"no `{env['DDP_DBT_TARGET']}` target in {profiles_file} in this checkout")
    assert outputs[env["DDP_DBT_TARGET"]]["type"] == "postgres"
    profiles = profiles_file.read_text()
    for name in env:
        if name != "DDP_DBT_TARGET":
            assert f"env_var('{name}'" in profiles, f"{name} is not read by profiles.yml"
    # the password comes from the Secret in envSecrets, read by the profile too
    assert deployment["envSecrets"] and "env_var('DDP_PG_PASSWORD'" in profiles


def test_helm_values_render_the_same_policies_as_deploy_dagster_yaml(helm, instance_config) -> None:
    """What the chart writes into its dagster.yaml equals deploy/dagster.yaml's sections."""
    daemon = helm["dagsterDaemon"]
    monitoring = {CHART_RUN_MONITORING[k]: v for k, v in daemon["runMonitoring"].items()}
    assert monitoring == instance_config["run_monitoring"]
    concurrency = helm["concurrency"]
    assert concurrency["enabled"] is True
    rendered = {
        "pools": {CHART_POOLS[k]: v for k, v in concurrency["pools"].items()},
        "runs": {CHART_RUNS[k]: v for k, v in concurrency["runs"].items()},
    }
    assert rendered == instance_config["concurrency"]
    # retries: the chart's runRetries cannot set retry_on_asset_or_op_failure
    assert daemon["runRetries"]["enabled"] is False
    assert helm["additionalInstanceConfig"]["run_retries"] == instance_config["run_retries"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    coordinator = instance_config["run_coordinator"]["config"]
    for key, name in {
        "dequeueIntervalSeconds": "dequeue_interval_seconds",
        "dequeueUseThreads": "dequeue_use_threads",
        "dequeueNumWorkers": "dequeue_num_workers",
    }.items():
        assert queued[key] == coordinator[name], key
