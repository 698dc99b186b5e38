"""The GitHub Actions workflows ``ddp init`` writes (issue 21): ``ci.yml`` checks every push and
pull request and, when the repository configures a shared warehouse, previews a pull request in
environment ``pr_<number>``; ``preview-cleanup.yml`` drops it when the pull request closes (and
promotes it first on a merge when asked).

The workflows are read as rendered, with PyYAML. Their ``${{ ... }}`` expressions are evaluated
(a small evaluator of the GitHub expression syntax they use) with the contexts a pull request
gives, and their steps' ``run:`` scripts are run as the runner would (bash, the step's env) in a
``ddp init`` project built in prod, a local DuckDB file standing in for the shared warehouse: a
wrong command, flag, condition or environment name fails here."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ddp_assets.starter import init_project
from tests.test_environments import Project

BIN = str(Path(sys.executable).parent)
REPOSITORY = "acme/shop"
# the settings of the shared warehouse, set on the preview's steps; a local DuckDB stands in
WAREHOUSE = "DDP_DBT_TARGET"


# --- GitHub expressions: the syntax these workflows use --------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<op>&&|\|\||==|!=|!|\(|\)|,)|(?P<number>\d+)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.-]*))"
)


def _format(template: str, *args: Any) -> str:
    def text(value: Any) -> str:
        return "true" if value is True else "false" if value is False else str(value)

    return re.sub(r"\{(\d+)\}", lambda m: text(args[int(m.group(1))]), template)


def evaluate(expression: str, contexts: dict[str, Any], functions: dict[str, Callable]) -> Any:
    """A GitHub expression (``&&``, ``||``, ``==``, ``!=``, ``!``, literals, context properties,
    function calls): ``&&`` and ``||`` give an operand, as GitHub's do; a missing property is
    null, a missing variable or secret the empty string (as on GitHub)."""
    python: list[str] = []
    position = 0
    expression = expression.strip()
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        assert match and match.end() > position, f"cannot read {expression[position:]!r}"
        position = match.end()
        if match["string"] is not None:
            python.append(repr(match["string"][1:-1].replace("''", "'")))
        elif match["op"] is not None:
            python.append({"&&": " and ", "||": " or ", "!": " not "}.get(match["op"], match["op"]))
        elif match["number"] is not None:
            python.append(match["number"])
        else:
            name = match["name"]
            if expression[position:].lstrip().startswith("("):
                assert name in functions, f"unknown function {name}"
                python.append(f"_f[{name!r}]")
            elif name in ("true", "false", "null"):
                python.append({"true": "True", "false": "False", "null": "None"}[name])
            else:
                python.append(f"_c({name!r})")

    def lookup(path: str) -> Any:
        root, *rest = path.split(".")
        assert root in contexts, f"unknown context {root}"
        value: Any = contexts[root]
        for part in rest:
            value = value.get(part) if isinstance(value, dict) else None
        if value is None and root in ("vars", "secrets"):
            return ""
        return value

    return eval("".join(python), {"__builtins__": {}, "_c": lookup, "_f": functions})


def substitute(text: str, contexts: dict[str, Any], functions: dict[str, Callable]) -> str:
    """A workflow string with each ``${{ expression }}`` replaced by its value."""

    def value(match: re.Match[str]) -> str:
        result = evaluate(match.group(1), contexts, functions)
        return "" if result is None else _format("{0}", result)

    return re.sub(r"\$\{\{(.*?)\}\}", value, text, flags=re.DOTALL)


def condition(text: str | bool | None, contexts: dict[str, Any], functions: dict) -> bool:
    """A job's or step's ``if:`` (with or without ``${{ }}``; none is ``success()``)."""
    if text is None:
        return bool(functions["success"]())
    if isinstance(text, bool):
        return text
    text = text.strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    return bool(evaluate(text, contexts, functions))


def functions_in(root: Path, failed: bool = False) -> dict[str, Callable]:
    def hash_files(*patterns: str) -> str:
        found = sorted(p for pattern in patterns for p in root.glob(pattern) if p.is_file())
        return hashlib.sha256(b"".join(p.read_bytes() for p in found)).hexdigest() if found else ""

    return {
        "format": _format,
        "always": lambda: True,
        "success": lambda: not failed,
        "failure": lambda: failed,
        "hashFiles": hash_files,
    }


def pull_request(
    number: int = 7,
    *,
    fork: bool = False,
    target: str | None = "postgres",
    action: str = "synchronize",
    merged: bool = False,
    promote: bool = False,
) -> dict[str, Any]:
    """The contexts of a pull request's workflow run (``vars``: the repository's variables)."""
    head = "someone/shop" if fork else REPOSITORY
    variables = {"DDP_DBT_TARGET": target} if target is not None else {}
    if promote:
        variables["DDP_PROMOTE_ON_MERGE"] = "true"
    secrets = (
        {}
        if fork
        else {
            "DDP_PG_HOST": "warehouse.internal",
            "DDP_PG_USER": "ci",
            "DDP_PG_PASSWORD": "secret",
            "DDP_PG_DBNAME": "analytics",
        }
    )
    return {
        "github": {
            "event_name": "pull_request",
            "repository": REPOSITORY,
            "run_id": "1001",
            "token": "token",
            "event": {
                "action": action,
                "number": number,
                "pull_request": {
                    "number": number,
                    "merged": merged,
                    "merge_commit_sha": "f" * 40 if merged else None,
                    "head": {"repo": {"full_name": head}},
                    "base": {"ref": "main", "sha": "b" * 40},
                },
            },
        },
        "vars": variables,
        "secrets": secrets,
        "env": {},
    }


def push(target: str | None = "postgres") -> dict[str, Any]:
    contexts = pull_request(target=target)
    contexts["github"] = {
        "event_name": "push",
        "repository": REPOSITORY,
        "run_id": "1002",
        "token": "token",
        "event": {"ref": "refs/heads/main"},
    }
    return contexts


# --- the rendered workflows ----------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init_project(tmp_path_factory.mktemp("workflows") / "shop").root


def _workflow(root: Path, name: str) -> dict[Any, Any]:
    document = yaml.safe_load((root / ".github" / "workflows" / name).read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    # PyYAML reads the key `on` as YAML 1.1's boolean true
    document["on"] = document.pop(True, document.get("on"))
    return document


def _job_env(job: dict[str, Any], contexts: dict[str, Any], root: Path) -> dict[str, str]:
    functions = functions_in(root)
    return {k: substitute(str(v), contexts, functions) for k, v in job.get("env", {}).items()}


def _steps_run(
    job: dict[str, Any], contexts: dict[str, Any], root: Path
) -> list[tuple[str, dict[str, Any]]]:
    """The steps of ``job`` whose ``if:`` holds (no step failing), by name or first command."""
    env = _job_env(job, contexts, root)
    contexts = {**contexts, "env": env}
    functions = functions_in(root)
    return [
        (str(step.get("name") or step.get("run") or step.get("uses")), step)
        for step in job["steps"]
        if condition(step.get("if"), contexts, functions)
    ]


def _names(steps: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [name for name, _ in steps]


CI_STEP = "ddp ci"
DROP_STEP = "preview, a fresh environment (the previous push's dropped)"
PREVIEW_STEP = "ddp ci, with a preview in the pull request's environment"


def test_the_workflows_are_valid_and_rendered_untouched(rendered: Path) -> None:
    templates = Path(__file__).resolve().parents[1] / "ddp_assets/starter/templates/project"
    for name in ("ci.yml", "preview-cleanup.yml"):
        text = (rendered / ".github" / "workflows" / name).read_text(encoding="utf-8")
        # nothing of the starter's placeholders; GitHub's ${{ }} left as written
        assert text == (templates / "_dot_github" / "workflows" / name).read_text()
        workflow = _workflow(rendered, name)
        assert workflow["name"] and workflow["on"] and workflow["jobs"]
        for job in workflow["jobs"].values():
            assert job["runs-on"] == "ubuntu-latest"
            for step in job["steps"]:
                assert ("run" in step) != ("uses" in step), step
                assert set(step) <= {"name", "if", "env", "run", "uses", "with", "shell"}, step
                # every expression is one the evaluator reads (GitHub's syntax, no typo)
                for value in [step.get("if"), step.get("run"), *step.get("env", {}).values()]:
                    for expression in re.findall(r"\$\{\{(.*?)\}\}", str(value or ""), re.S):
                        evaluate(expression, pull_request(), functions_in(rendered))
    cleanup = _workflow(rendered, "preview-cleanup.yml")
    assert cleanup["on"] == {"pull_request": {"types": ["closed"]}}


def test_ci_previews_a_pull_request_only_with_a_shared_warehouse(rendered: Path) -> None:
    job = _workflow(rendered, "ci.yml")["jobs"]["ci"]
    cases = {
        "a pull request, a shared warehouse": (pull_request(7), "pr_7"),
        "no warehouse configured": (pull_request(7, target=None), ""),
        "the runner's own DuckDB file": (pull_request(7, target="dev"), ""),
        "a pull request from a fork": (pull_request(7, fork=True), ""),
        "a push": (push(), ""),
    }
    for case, (contexts, env) in cases.items():
        assert _job_env(job, contexts, rendered)["DDP_PREVIEW_ENV"] == env, case
        names = _names(_steps_run(job, contexts, rendered))
        if env:
            assert CI_STEP not in names and names.index(DROP_STEP) < names.index(PREVIEW_STEP)
        else:  # as before previews: one `ddp ci` that builds nothing
            assert CI_STEP in names and DROP_STEP not in names and PREVIEW_STEP not in names
        assert "dg check defs" in names and "python -m pytest" in names, case

    steps = {str(step.get("name")): step for step in job["steps"]}
    report_files = ["--format", "markdown", "--output", "ddp-ci.md", "--junit", "ddp-ci.xml"]
    assert steps[CI_STEP]["run"].split() == ["ddp", "ci", *report_files]
    assert steps[PREVIEW_STEP]["run"].split()[:4] == ["ddp", "ci", "--env", '"$DDP_PREVIEW_ENV"']
    # the same report files: the summary, comment and artifact steps read them either way
    assert steps[PREVIEW_STEP]["run"].split()[4:] == steps[CI_STEP]["run"].split()[2:]

    # one preview of a pull request at a time, in the group preview-cleanup.yml waits in
    functions = functions_in(rendered)
    group = substitute(job["concurrency"]["group"], pull_request(7), functions)
    assert group == "ddp-preview-pr_7" and job["concurrency"]["cancel-in-progress"] is False
    cleanup = _workflow(rendered, "preview-cleanup.yml")["jobs"]["cleanup"]
    closed = pull_request(7, action="closed")
    assert substitute(cleanup["concurrency"]["group"], closed, functions) == group
    assert substitute(job["concurrency"]["group"], push(), functions) == "ddp-ci-1002"


def test_the_preview_steps_set_what_the_starters_profile_reads(rendered: Path) -> None:
    """The preview's warehouse: the variables dbt_project/profiles.yml's postgres target reads,
    from the repository's secrets; none on the steps that only check."""
    profile = (rendered / "dbt_project" / "profiles.yml").read_text(encoding="utf-8")
    postgres = yaml.safe_load(profile)["ddp"]["outputs"]["postgres"]
    read = {m for v in postgres.values() for m in re.findall(r"env_var\('(DDP_\w+)'", str(v))}
    assert read == {
        f"DDP_PG_{s}" for s in ("HOST", "PORT", "USER", "PASSWORD", "DBNAME", "SSLMODE")
    }
    job = _workflow(rendered, "ci.yml")["jobs"]["ci"]
    steps = {str(step.get("name")): step for step in job["steps"]}
    cleanup = _workflow(rendered, "preview-cleanup.yml")["jobs"]["cleanup"]
    functions = functions_in(rendered)
    contexts = pull_request(7)
    for env in (steps[DROP_STEP]["env"], steps[PREVIEW_STEP]["env"], cleanup["env"]):
        assert set(env) - {"DDP_PREVIEW_ENV"} == {WAREHOUSE, *read}
        values = {k: substitute(str(v), contexts, functions) for k, v in env.items()}
        assert values[WAREHOUSE] == "postgres"
        assert values["DDP_PG_HOST"] == "warehouse.internal"
        assert values["DDP_PG_DBNAME"] == "analytics" and values["DDP_PG_PASSWORD"] == "secret"
        # unset, dbt's env_var would read "" (not its default): `as_number` would fail
        assert values["DDP_PG_PORT"] == "5432" and values["DDP_PG_SSLMODE"] == "prefer"
    assert "env" not in steps[CI_STEP] and set(job["env"]) == {"DDP_PREVIEW_ENV"}


def test_the_cleanup_drops_and_promotes_only_when_asked(rendered: Path) -> None:
    job = _workflow(rendered, "preview-cleanup.yml")["jobs"]["cleanup"]
    functions = functions_in(rendered)
    for contexts, runs in (
        (pull_request(7, action="closed"), True),
        (pull_request(7, action="closed", fork=True), False),
        (pull_request(7, action="closed", target=None), False),
        (pull_request(7, action="closed", target="dev"), False),
    ):
        assert condition(job["if"], contexts, functions) is runs
    assert _job_env(job, pull_request(7, action="closed"), rendered)["DDP_PREVIEW_ENV"] == "pr_7"
    promote = "promote the preview into prod (merged, DDP_PROMOTE_ON_MERGE)"
    drop = "drop the preview environment"
    for merged, asked, promoted in (
        (True, True, True),
        (True, False, False),
        (False, True, False),
    ):
        contexts = pull_request(7, action="closed", merged=merged, promote=asked)
        names = _names(_steps_run(job, contexts, rendered))
        assert (promote in names) is promoted and drop in names
        checkout = substitute(job["steps"][0]["with"]["ref"], contexts, functions)
        assert checkout == ("f" * 40 if merged else "b" * 40)
    # the drop runs after a failed promote too (the merged preview cannot be built again)
    step = next(s for s in job["steps"] if s.get("name") == drop)
    assert condition(step["if"], pull_request(7), functions_in(rendered, failed=True))


# --- the scripts, run in a built project -------------------------------------------------------

SKIPPED = ("python -m pip install", "gh pr comment", "dg check defs", "python -m pytest")


def _shell(step: dict[str, Any]) -> list[str]:
    """The runner's command for a step's script (GitHub's defaults for ubuntu)."""
    shell = step.get("shell")
    if shell == "bash":
        return ["bash", "--noprofile", "--norc", "-eo", "pipefail"]
    assert shell is None, f"no runner command for shell {shell!r}"
    return ["bash", "-e"]


def run_job(
    project: Project, workflow: str, job_id: str, contexts: dict[str, Any]
) -> list[tuple[str, str]]:
    """Run a job's scripts as the runner would (a fresh checkout: no report files), in order,
    each in the project with the job's and the step's env; the warehouse settings dropped, so
    the project's local DuckDB file stands in for the shared warehouse. The steps that install,
    comment or test are left out. Each step run: (name, its output)."""
    for stale in project.root.glob("ddp-ci.*"):
        stale.unlink()
    job = _workflow(project.root, workflow)["jobs"][job_id]
    assert condition(job.get("if"), contexts, functions_in(project.root)), "the job does not run"
    job_env = _job_env(job, contexts, project.root)
    at_step = {**contexts, "env": job_env}
    summary = project.home / "summary.md"  # $GITHUB_STEP_SUMMARY, a new one per job
    summary.unlink(missing_ok=True)
    done: list[tuple[str, str]] = []
    for step in job["steps"]:
        # evaluated when the step is reached (hashFiles sees what the steps before it wrote)
        if "run" not in step or not condition(step.get("if"), at_step, functions_in(project.root)):
            continue
        name = str(step.get("name") or step["run"])
        script = substitute(step["run"], at_step, functions_in(project.root))
        if script.startswith(SKIPPED):
            continue
        step_env = {
            k: substitute(str(v), at_step, functions_in(project.root))
            for k, v in step.get("env", {}).items()
        }
        env = {**project.env(), **job_env, **step_env}
        for setting in [k for k in env if k == WAREHOUSE or k.startswith("DDP_PG_")]:
            env.pop(setting)  # the local DuckDB file stands in for the shared warehouse
        env["PATH"] = BIN + os.pathsep + env["PATH"]
        env["GITHUB_STEP_SUMMARY"] = str(summary)
        if contexts["github"]["event_name"] == "pull_request":
            env["GITHUB_BASE_REF"] = "main"  # as the runner sets it
        result = subprocess.run(
            [*_shell(step), "-c", script], cwd=project.root, env=env, capture_output=True,
            text=True, check=False, timeout=900,
        )  # fmt: skip
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"step {name!r} failed:\n{script}\n{output}"
        assert "Traceback" not in output, output
        done.append((name, output))
    return done


def _edit(project: Project, relative: str, old: str, new: str) -> None:
    path = project.root / relative
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, (relative, old)
    path.write_text(text.replace(old, new), encoding="utf-8")


THINGS_SQL = "shop/defs/sales/things/models/things.sql"
OTHERS_SQL = "shop/defs/sales/others/models/others.sql"
LABEL = "cast('example' as varchar) as label"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A `ddp init` project with two products, in git (main), built in prod."""
    if shutil.which("jq") is None:
        message = "the workflows' scripts use jq (on GitHub's runners): run `make system-deps`"
        if os.environ.get("CI"):  # CI installs it (make system-deps): never skip there
            pytest.fail(message)
        pytest.skip(message)
    base = tmp_path_factory.mktemp("preview")
    project = Project(init_project(base / "shop").root, base / "home")
    (project.home / "data").mkdir(parents=True)
    project.ddp("new", "things", "--domain", "sales")
    project.ddp("new", "others", "--domain", "sales")
    project.git("init", "-q", "-b", "main")
    project.git("add", "-A")
    project.git("commit", "-q", "-m", "two products")
    project.ddp("materialize", "--all")
    return project


def _environments(project: Project) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in json.loads(project.ddp("env", "list", "--json").stdout)}


def _prod_versions(project: Project) -> list[tuple[Any, ...]]:
    return project.query("select product, port, version from _ddp.published_versions order by all")


@pytest.mark.slow
def test_a_pull_requests_preview_its_pushes_and_its_cleanup(built: Project) -> None:
    project = built
    before = _prod_versions(project)
    assert before == [("others", "others", 1), ("things", "things", 1)]

    # the first push of pull request 7: things changed, previewed in pr_7
    project.git("checkout", "-q", "-b", "feature")
    _edit(project, THINGS_SQL, LABEL, "cast('changed' as varchar) as label")
    project.git("commit", "-q", "-am", "things: a new label")
    steps = run_job(project, "ci.yml", "ci", pull_request(7))
    assert [name for name, _ in steps] == [DROP_STEP, PREVIEW_STEP, "report in the job summary"]
    report = (project.root / "ddp-ci.md").read_text(encoding="utf-8")
    assert "preview in environment 'pr_7' (created from 'prod'): built things" in report
    assert "others.others" in report  # read from prod through a view
    assert "preview" in (project.root / "ddp-ci.xml").read_text(encoding="utf-8")
    assert (project.home / "summary.md").read_text(encoding="utf-8") == report
    assert _environments(project)["pr_7"]["built"] == ["things"]
    assert project.query("select label from pr_7__things.things") == [("changed",)]
    assert _prod_versions(project) == before
    assert project.query("select label from things.things") == [("example",)]

    # a second push: things' change reverted, others changed; the preview is recreated, so it
    # holds this push's change only (a reused environment would still hold things)
    _edit(project, THINGS_SQL, "cast('changed' as varchar) as label", LABEL)
    _edit(project, OTHERS_SQL, LABEL, "cast('other' as varchar) as label")
    project.git("commit", "-q", "-am", "others instead")
    steps = run_job(project, "ci.yml", "ci", pull_request(7))
    assert "dropped environment pr_7" in steps[0][1]
    report = (project.root / "ddp-ci.md").read_text(encoding="utf-8")
    assert "preview in environment 'pr_7' (created from 'prod'): built others" in report
    assert _environments(project)["pr_7"]["built"] == ["others"]
    assert project.query("select label from pr_7__others.others") == [("other",)]
    assert _prod_versions(project) == before

    # a push to main, and a pull request without the warehouse: `ddp ci` only, nothing built
    steps = run_job(project, "ci.yml", "ci", pull_request(8, target=None))
    assert [name for name, _ in steps] == [CI_STEP, "report in the job summary"]
    assert "Preview" not in (project.root / "ddp-ci.md").read_text(encoding="utf-8")
    assert set(_environments(project)) == {"pr_7"}

    # pull request 7 merged, promotion asked: others' preview is prod's next version, then
    # the environment is dropped
    merged = pull_request(7, action="closed", merged=True, promote=True)
    steps = run_job(project, "preview-cleanup.yml", "cleanup", merged)
    assert [name for name, _ in steps] == [
        "promote the preview into prod (merged, DDP_PROMOTE_ON_MERGE)",
        "drop the preview environment",
    ]
    assert _prod_versions(project) == [
        ("others", "others", 1),
        ("others", "others", 2),
        ("things", "things", 1),
    ]
    assert project.query("select label from others.others") == [("other",)]
    assert _environments(project) == {}
    schemas = [s for (s,) in project.query("select schema_name from information_schema.schemata")]
    assert not [s for s in schemas if s.startswith("pr_7__") or s == "_ddp__pr_7"]
    assert not (project.home / "dagster" / "envs" / "pr_7").exists()

    # the cleanup again (a re-run), and a pull request that never had a preview: nothing to
    # drop or promote, and no failure
    steps = run_job(project, "preview-cleanup.yml", "cleanup", merged)
    assert "pr_7 built nothing: nothing to promote" in steps[0][1]
    assert "no environment pr_7 in the warehouse: nothing to drop" in steps[1][1]
    closed = pull_request(9, action="closed")
    steps = run_job(project, "preview-cleanup.yml", "cleanup", closed)
    assert [name for name, _ in steps] == ["drop the preview environment"]
    assert "no environment pr_9" in steps[0][1]
    assert _prod_versions(project)[-1] == ("things", "things", 1)
