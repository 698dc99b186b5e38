"""What changed since a base git ref, product by product.

The base (:func:`resolve_base`) is ``--base`` when given; otherwise the merge base of ``HEAD``
with the repository's default branch (``$GITHUB_BASE_REF`` in a GitHub pull request, else
``origin/HEAD``, ``origin/main``, ``origin/master``, ``main``, ``master``). When that merge base
is ``HEAD`` itself: on the default branch (a push to main), ``HEAD~``, the commit being pushed;
on another branch (no commit of its own yet), ``HEAD``, what is not committed. In a repository
with one commit, the empty tree (every product is new).

The changed files are the work tree against the base (``git diff``, so uncommitted edits count)
plus untracked files git does not ignore. A product changed when a file in its folder did (spec,
SQL, contracts, Python models), when a dbt macro one of its models uses did (directly or
through another macro, from dbt's manifest), when the depot file (``depots/<name>.yaml``) one of
its input ports loads from did, or when the dbt project's own settings did
(``dbt_project.yml``, ``packages.yml``: every product).
"""

from __future__ import annotations

import os
import subprocess
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ddp_assets.spec.errors import SpecErrors, SpecProblem
from ddp_assets.spec.model import DepotInputPort
from ddp_assets.spec.registry import Registry

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's empty tree: "nothing before"
_DBT_SETTINGS = ("dbt_project.yml", "packages.yml", "dependencies.yml")


@dataclass(frozen=True)
class Base:
    """The git ref compared with: as named, as a commit, and why it was chosen."""

    ref: str
    commit: str  # a commit id, or EMPTY_TREE
    how: str

    def to_dict(self) -> dict[str, str]:
        return {"ref": self.ref, "commit": self.commit, "how": self.how}


@dataclass(frozen=True)
class ChangedFile:
    path: str  # relative to the project root, POSIX
    status: str  # A (added, untracked included), M, D, T


@dataclass
class Changes:
    """The changed files and what they change."""

    files: list[ChangedFile]
    products: dict[str, list[str]] = field(default_factory=dict)  # id → why (files, macros)
    downstream: dict[str, str] = field(default_factory=dict)  # id → the changed product it reads
    removed_products: list[str] = field(default_factory=list)  # spec files gone since the base
    other_files: list[str] = field(default_factory=list)  # changed, but no product's

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": [{"path": f.path, "status": f.status} for f in self.files],
            "products": [{"id": k, "why": v} for k, v in sorted(self.products.items())],
            "downstream": [{"id": k, "via": v} for k, v in sorted(self.downstream.items())],
            "removed_products": self.removed_products,
            "other_files": self.other_files,
        }


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
        )
    except OSError as error:  # no git on the machine
        raise SpecErrors(
            [SpecProblem("(command line)", None, "--base", f"cannot run git: {error}", _GIT_HINT)]
        ) from error


_GIT_HINT = "ddp ci compares with a git ref: run it inside the project's git repository"


def _commit(root: Path, ref: str) -> str | None:
    found = _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    return found.stdout.strip() if found.returncode == 0 and found.stdout.strip() else None


def resolve_base(root: Path, given: str | None) -> Base:
    """The base to compare with (module docstring); a bad ``given`` ref is an error."""
    inside = _git(root, "rev-parse", "--is-inside-work-tree")
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        raise SpecErrors(
            [SpecProblem(str(root), None, "--base", "not inside a git repository", _GIT_HINT)]
        )
    if given:
        commit = _commit(root, given)
        if commit is None:
            raise SpecErrors(
                [
                    SpecProblem(
                        "(command line)",
                        None,
                        "--base",
                        f"'{given}' is not a commit of this repository",
                        "name a branch, tag or commit, e.g. --base origin/main (in CI, fetch "
                        "the history: actions/checkout with fetch-depth: 0)",
                    )
                ]
            )
        return Base(given, commit, "--base")
    head = _commit(root, "HEAD")
    if head is None:
        return Base("(empty tree)", EMPTY_TREE, "no commit yet: every product is new")
    candidates = []
    if os.environ.get("GITHUB_BASE_REF"):
        candidates.append(f"origin/{os.environ['GITHUB_BASE_REF']}")
    origin_head = _git(root, "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD")
    if origin_head.returncode == 0 and origin_head.stdout.strip():
        candidates.append(origin_head.stdout.strip())
    candidates += ["origin/main", "origin/master", "main", "master"]
    for candidate in candidates:
        if _commit(root, candidate) is None:
            continue
        merge_base = _git(root, "merge-base", "HEAD", candidate)
        commit = merge_base.stdout.strip()
        if merge_base.returncode != 0 or not commit:
            continue
        if commit != head:
            return Base(candidate, commit, f"the merge base of HEAD with {candidate}")
        branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD").stdout.strip()
        if branch not in ("HEAD", candidate.removeprefix("origin/")):
            # a branch with no commit of its own yet: what is not committed
            return Base("HEAD", head, f"HEAD: {branch} has no commit that {candidate} lacks")
        break  # HEAD is on the default branch (a push to it): what its last commit changed
    parent = _commit(root, "HEAD~")
    if parent is None:
        return Base("(empty tree)", EMPTY_TREE, "HEAD has no parent: every product is new")
    return Base("HEAD~", parent, "HEAD~: HEAD is on the default branch")


def changed_files(root: Path, base: Base) -> list[ChangedFile]:
    """Files of the project that differ from the base: tracked (work tree vs base) and untracked."""
    found: dict[str, str] = {}
    diff = _git(root, "diff", "--name-status", "--no-renames", "--relative", "-z", base.commit)
    if diff.returncode != 0:
        raise SpecErrors(
            [SpecProblem("(command line)", None, "--base", diff.stderr.strip(), _GIT_HINT)]
        )
    fields = diff.stdout.split("\0")
    for status, path in zip(fields[0::2], fields[1::2], strict=False):
        if path:
            found[path] = status[:1]
    untracked = _git(root, "ls-files", "--others", "--exclude-standard", "-z")
    for path in untracked.stdout.split("\0"):
        if path:
            found[path] = "A"
    return [ChangedFile(p, s) for p, s in sorted(found.items())]


def _folder(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _under(path: str, folder: str) -> bool:
    return folder in ("", ".") or path == folder or path.startswith(folder.rstrip("/") + "/")


def _macro_users(
    manifest: dict[str, Any], registry: Registry, changed: set[str], dbt_dir: str
) -> dict[str, list[str]]:
    """Product id → the changed macro files its models use (directly or through macros)."""
    macros = manifest.get("macros") or {}
    touched: dict[str, str] = {}  # macro unique id → the changed file behind it
    for uid, macro in macros.items():
        path = PurePosixPath(dbt_dir) / str(macro.get("original_file_path") or "")
        if path.as_posix() in changed:
            touched[uid] = path.as_posix()
    if not touched:
        return {}
    callers: dict[str, list[str]] = {}
    for uid, macro in macros.items():
        for callee in (macro.get("depends_on") or {}).get("macros") or []:
            callers.setdefault(callee, []).append(uid)
    queue = deque(touched)
    while queue:  # a macro calling a changed macro changes too
        callee = queue.popleft()
        for caller in callers.get(callee, []):
            if caller not in touched:
                touched[caller] = touched[callee]
                queue.append(caller)
    users: dict[str, list[str]] = {}
    for node in (manifest.get("nodes") or {}).values():
        if node.get("resource_type") not in ("model", "snapshot", "test"):
            continue
        owner = registry.model_owner.get(str(node.get("name")))
        if node.get("resource_type") == "test":
            attached = (node.get("attached_node") or "").rsplit(".", 1)[-1]
            owner = registry.model_owner.get(attached)
        if owner is None:
            continue
        for uid in (node.get("depends_on") or {}).get("macros") or []:
            if uid in touched and touched[uid] not in users.setdefault(owner, []):
                users[owner].append(touched[uid])
    return users


def _removed_product(root: Path, base: Base, path: str) -> str:
    """The id a spec file removed since the base had (its path when unreadable)."""
    from ruamel.yaml.error import YAMLError

    from ddp_assets.spec.loader import YamlLimitError, parse_yaml

    shown = _git(root, "show", f"{base.commit}:./{path}")
    try:
        document = parse_yaml(shown.stdout) or {}
        return str((document.get("attributes") or {})["id"])
    except (YAMLError, YamlLimitError, KeyError, TypeError, AttributeError):
        return path


def product_changes(
    registry: Registry,
    files: list[ChangedFile],
    dbt_dir: Path,
    manifest: dict[str, Any] | None,
    base: Base,
    depots_dir: Path | None = None,
) -> Changes:
    """Which products the changed files change, and every product downstream of them."""
    root = registry.root
    result = Changes(files)
    folders = {pid: _folder(p.folder, root) for pid, p in registry.products.items()}
    dbt_rel = _folder(dbt_dir, root)
    changed = {f.path for f in files}
    claimed: set[str] = set()
    for pid, folder in folders.items():
        for f in files:
            if _under(f.path, folder):
                result.products.setdefault(pid, []).append(f.path)
                claimed.add(f.path)
    settings = [f.path for f in files if f.path in {f"{dbt_rel}/{s}" for s in _DBT_SETTINGS}]
    if settings:
        for pid in registry.products:
            result.products.setdefault(pid, []).extend(settings)
        claimed.update(settings)
    if depots_dir is not None:  # a depot file changes the products loading from that depot
        depots_rel = _folder(depots_dir, root)
        for f in files:
            path = PurePosixPath(f.path)
            if path.suffix not in (".yaml", ".yml") or path.parent.as_posix() != depots_rel:
                continue
            for pid, product in registry.products.items():
                if any(
                    isinstance(p, DepotInputPort) and p.depot == path.stem
                    for p in product.spec.input_ports
                ):
                    result.products.setdefault(pid, []).append(f"depot {f.path}")
                    claimed.add(f.path)
    if manifest is not None:
        for pid, used in _macro_users(manifest, registry, changed, dbt_rel).items():
            result.products.setdefault(pid, []).extend(f"macro {m}" for m in used)
            claimed.update(used)
    for f in files:
        if f.status == "D" and PurePosixPath(f.path).name == "defs.yaml" and f.path not in claimed:
            result.removed_products.append(_removed_product(root, base, f.path))
            claimed.add(f.path)
    result.other_files = [f.path for f in files if f.path not in claimed]
    result.downstream = downstream_of(registry, list(result.products))
    return result


def downstream_of(registry: Registry, products: list[str]) -> dict[str, str]:
    """Every product reading one of ``products``, transitively: id → the product it reads
    that led to it (not ``products`` themselves)."""
    found: dict[str, str] = {}
    queue = deque(p for p in products if p in registry.products)
    while queue:
        current = queue.popleft()
        for reader in registry.downstream(current):
            if reader not in found and reader not in products:
                found[reader] = current
                queue.append(reader)
    return found
