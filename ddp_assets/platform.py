"""A project's Dagster definitions, built by the platform: every component instance under the
project's ``defs/`` folder, with each product's refresh and freshness policy completed once,
here, over the specs that lack it.

A code location module (this repository's ``ddp_assets/definitions.py``, or the one ``ddp init``
writes for a team) is three lines::

    @dg.definitions
    def defs() -> dg.Definitions:
        return build_definitions(Path(__file__).parent)
"""

import atexit
import gc
import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import dagster.components.core.decl as dagster_decl
import yaml
from dagster_shared.yaml_utils import YAML_TIMESTAMP_TAG
from dagster_shared.yaml_utils.source_position import (
    KeyPathSegment,
    LineCol,
    SourcePosition,
    SourcePositionTree,
    ValueAndSourcePositionTree,
)

from ddp_assets.automation.policies import apply_product_policies
from ddp_assets.components.context import platform_context
from ddp_assets.dbt.load_cache import load_scope
from ddp_assets.runtime import collector
from ddp_assets.settings import ProjectPaths

_FROZEN = False  # whether a build in this process has frozen what it built (once per process)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while the definitions are built; the first build of
    a process then moves what is alive into the collector's permanent generation.

    A build allocates a few hundred thousand objects that nearly all stay alive for the life of
    the process (the specs, the manifest, the component tree). The collector scanned them again
    and again while they were created, at every full collection after, and several times more
    when the process exits: a third of a 2000-model load's CPU (docs/performance.md,
    "Definitions"). ``gc.freeze()`` after start-up is the use Python documents for it. Once per
    process: a process that builds the definitions again (a test session) keeps the collector
    for what the later builds leave. Reference counting still frees whatever is dropped; only
    cycles that were already garbage at the freeze stay in memory (one build's worth, once).
    """
    global _FROZEN
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        if was_enabled and not _FROZEN:
            gc.freeze()
            # back to normal before the interpreter exits, so that its last collections free
            # what needs them (duckdb's nanobind types report leaks otherwise)
            atexit.register(gc.unfreeze)
            _FROZEN = True
    finally:
        if was_enabled:
            gc.enable()


_CParser: Any = getattr(yaml, "CSafeLoader", None)  # PyYAML built with libyaml (the wheels are)


def _positions_loader(filename: str) -> type[Any]:
    """dagster_shared's ``SourcePositionLoader`` on libyaml's parser instead of the pure-Python
    one: the same values and source positions (each node's marks), parsed in C."""

    class Loader(_CParser):
        def construct_object(self, node: Any, deep: Any = False) -> ValueAndSourcePositionTree:
            position = SourcePosition(
                filename=filename,
                start=LineCol(line=node.start_mark.line + 1, col=node.start_mark.column + 1),
                end=LineCol(line=node.end_mark.line + 1, col=node.end_mark.column + 1),
            )
            value = super().construct_object(node, True)
            children: dict[KeyPathSegment, SourcePositionTree] = {}
            if isinstance(value, dict):
                raw: Any = {}
                for k, v in value.items():
                    raw[k.value] = v.value
                    children[k.value] = SourcePositionTree(
                        position=k.source_position_tree.position,
                        children=v.source_position_tree.children,
                    )
            elif isinstance(value, list):
                raw = []
                for i, v in enumerate(value):
                    raw.append(v.value)
                    children[i] = v.source_position_tree
            else:
                raw = value
            return ValueAndSourcePositionTree(
                raw, SourcePositionTree(position=position, children=children)
            )

    # as dagster's loader: date-like strings stay strings
    resolvers: Mapping[Any, Sequence[Any]] = Loader.yaml_implicit_resolvers
    Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in pairs if tag != YAML_TIMESTAMP_TAG]
        for first, pairs in resolvers.items()
    }
    return Loader


def _parse_component_yaml(
    src: str, filename: str = "<string>", implicits_to_remove: Sequence[str] = ()
) -> list[ValueAndSourcePositionTree]:
    stream = io.StringIO(src)
    stream.name = filename  # type: ignore[attr-defined]  # libyaml names the file in its errors
    return list(yaml.load_all(stream, Loader=_positions_loader(filename)))


@contextmanager
def _component_yaml_in_c() -> Iterator[None]:
    """Dagster's component loader parses every ``defs.yaml`` with PyYAML's pure-Python parser
    (to keep each value's source position): 10 % of a 200-product load. During the build, its
    parser is this one, which gives the same trees from libyaml's parser.

    Private: ``dagster.components.core.decl`` binds ``parse_yamls_with_source_position`` at
    import (dagster 1.13, pinned in pyproject.toml) and offers no option for the parser;
    tests/test_load_cost.py checks that both give the same trees for every spec of the demo.
    """
    name = "parse_yamls_with_source_position"
    original = getattr(dagster_decl, name)
    if _CParser is None:  # PyYAML without libyaml: dagster's own parser
        yield
        return
    setattr(dagster_decl, name, _parse_component_yaml)
    try:
        yield
    finally:
        setattr(dagster_decl, name, original)


def build_definitions(path_within_project: Path) -> dg.Definitions:
    """The definitions of the ddp project holding ``path_within_project`` (its code location
    package's folder): its products, the platform's components, one in-process executor."""
    collector.tune()  # every process that loads a code location (runtime/collector.py)
    paths = ProjectPaths.discover(path_within_project)
    # Every component of the build shares one reading of the defs folder (or none at all, when
    # nothing changed since the last build: ddp_assets/dbt/load_cache.py).
    with (
        _collector_paused(),
        _component_yaml_in_c(),
        load_scope(paths) as registry,
        platform_context(paths, registry),
    ):
        registry.raise_for_errors()  # before Dagster reads (and expands) any defs.yaml
        merged = dg.Definitions.merge(
            dg.load_from_defs_folder(path_within_project=path_within_project),
            # Every step writes the one DuckDB file, so steps run one at a time anyway (the
            # `duckdb_writer` pool): running them in the run's own process saves loading the
            # code location again for every step, as the multiprocess executor would.
            dg.Definitions(executor=dg.in_process_executor),
        )
        return apply_product_policies(merged, registry)
