"""The few places where ddp reaches past a library's public API, each kept for a measured gain.

Everything else in ddp uses public APIs only (``docs/public-apis.md`` lists every hook that was
found and what became of it). A hook stays here only when it saves at least 0.5 s of a run or
5 % of a definitions load (``docs/performance.md``), and each one:

- is an explicit call or context manager (nothing happens when this module is imported);
- is active only for the library versions it was tested with (:func:`tested`); outside them,
  or when what it relies on is not there, the public path is used and ddp behaves as stock
  Dagster/dbt/Python would, only slower;
- has canary tests in ``tests/test_compat.py`` that fail on an upgrade that moves its target
  and check that the fallback gives the same result.

The hooks:

- :func:`tune_collector` and :func:`collector_paused`: Python's cyclic garbage collector in ddp's
  processes (public ``gc`` API, but a process-wide setting, hence here).
- :func:`component_yaml_in_c`: Dagster's component loader parses ``defs.yaml`` with libyaml.
- :func:`component_tree_walked_once`: Dagster's component tree maps its declarations once per
  build instead of once per component.
- :func:`in_process_dbt_supported` and :func:`plan_dbt_invocation`: what dagster-dbt's own
  ``DbtCliResource.cli`` computes before it starts dbt, for running dbt in process.
"""

from __future__ import annotations

import atexit
import gc
import importlib.metadata
import io
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

if TYPE_CHECKING:
    import dagster as dg
    from dagster_dbt import DagsterDbtTranslator, DbtProject

# The versions each hook was measured and tested with (pyproject.toml pins the same ranges).
TESTED: Mapping[str, str] = {
    "dagster": "==1.13.*",
    "dagster-dbt": "==0.29.*",
    "dbt-core": "==1.11.*",
}
# CPython's collector kept its three generations and thresholds through 3.13; 3.14 replaced
# them with an incremental collector, for which neither setting below was measured.
TESTED_PYTHON = SpecifierSet(">=3.11,<3.14")


@cache
def _installed(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def tested(distribution: str, installed: str | None = None) -> bool:
    """Whether ``distribution`` (its ``installed`` version, default: the one installed here) is
    in the range its hooks were tested with; unknown or unparsable versions are not."""
    if installed is None:
        installed = _installed(distribution)
        if installed is None:
            return False
    try:
        parsed = Version(installed)
    except InvalidVersion:
        return False
    return SpecifierSet(TESTED[distribution]).contains(parsed, prereleases=True)


def python_tested(implementation: str | None = None, version: str | None = None) -> bool:
    """Whether this interpreter's collector is the one the collector settings were measured on."""
    implementation = implementation or sys.implementation.name
    version = version or ".".join(str(part) for part in sys.version_info[:3])
    return implementation == "cpython" and TESTED_PYTHON.contains(version)


# -- Python's garbage collector -----------------------------------------------------------------

YOUNG_THRESHOLD = 50_000


def tune_collector(*, enabled: bool | None = None) -> None:
    """Raise the collector's young-generation threshold to :data:`YOUNG_THRESHOLD`.

    Measured gain: a ``ddp materialize --all`` of the demo (100,000 rows) spent 1.5 s of 10.5 s
    in 1,640 young, 150 middle and 11 full collections at CPython's default (700, 10, 10); with
    the young threshold at 50,000, 0.6 s in about 20 young and 2 middle ones (0.9 s per run,
    peak memory +1 %). docs/performance.md, "What changed (session 4)", item 1.

    Never lowers a setting (a user's higher threshold, or 0 for automatic collection off, stays).
    Call it once from a process's entry point (the ``ddp`` command, the code location's build),
    not at import. Public path (outside CPython 3.11 to 3.13, or ``enabled=False``): the
    interpreter's own thresholds, unchanged.
    """
    if not (python_tested() if enabled is None else enabled):
        return
    young, middle, old = gc.get_threshold()
    if 0 < young < YOUNG_THRESHOLD:
        gc.set_threshold(YOUNG_THRESHOLD, middle, old)


_FROZEN = False  # whether a build in this process has frozen what it built (once per process)


@contextmanager
def collector_paused(*, enabled: bool | None = None) -> Iterator[None]:
    """The cyclic collector off while the definitions are built; after the first build of a
    process, what is alive moves to the collector's permanent generation (``gc.freeze``).

    Measured gain: a 2000-model build leaves about 600,000 objects alive for the life of the
    process; the collector scanned them again and again while they were created (1.2 s of a
    4.2 s definitions phase) and at every full collection after. Whole process, 2000 models:
    7.02 s → 5.31 s of CPU (docs/performance.md, "What changed (session 3: definitions)", item 1,
    and the table under "Session 3: definitions").

    ``gc.freeze()`` after start-up is the use Python documents for it. Once per process: a
    process that builds again (a test session) keeps the collector for what later builds leave.
    At exit the frozen objects stay frozen (:func:`_unfreeze_for_leak_checks`): the
    interpreter's last collections then skip them, which at 2000 models saved 1.7 s of CPU of a
    process that loads the definitions and exits (its collections passed over 500,000 objects
    again; docs/performance.md, "Definitions (session 6)"); only when duckdb is loaded are they
    unfrozen first, so its nanobind types, which report leaks otherwise, are freed. Reference
    counting frees whatever is dropped as before. Public path (outside CPython 3.11 to 3.13, or
    ``enabled=False``): nothing is paused or frozen. The collector is always back on after the
    block if it was on before it.
    """
    global _FROZEN
    if not (python_tested() if enabled is None else enabled):
        yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        if was_enabled and not _FROZEN:
            gc.freeze()
            atexit.register(_unfreeze_for_leak_checks)
            _FROZEN = True
    finally:
        if was_enabled:
            gc.enable()


# Extensions built with nanobind, which list the objects of theirs still alive when the
# interpreter ends ("nanobind: leaked 27 instances!"): their objects must be collected at exit.
LEAK_CHECKING_EXTENSIONS = ("_duckdb", "duckdb")


def _unfreeze_for_leak_checks() -> bool:
    """At exit: unfreeze what :func:`collector_paused` froze if a leak-checking extension is
    loaded (the interpreter's last collections then free its objects); True if it did.

    Otherwise the frozen objects stay in the permanent generation, which the last collections
    skip: what they hold in reference cycles is not freed before the process ends (the
    operating system reclaims it, as after ``os._exit``), and finalizers registered with
    ``weakref.finalize`` or ``atexit`` still run. ddp imports duckdb when it first touches the
    warehouse, not when it loads the definitions, so a process that only loads them (``dg check
    defs``, ``dagster definitions validate``, a code server) exits without the passes.
    """
    if any(name in sys.modules for name in LEAK_CHECKING_EXTENSIONS):
        gc.unfreeze()
        return True
    return False


# -- Dagster's component loader: defs.yaml parsed by libyaml ------------------------------------

# The private target: the name dagster's component loader calls to parse a defs.yaml file. It
# is bound into this module of dagster at import (``from dagster_shared.yaml_utils import``).
COMPONENT_DECL_MODULE = "dagster.components.core.decl"
COMPONENT_YAML_PARSER = "parse_yamls_with_source_position"


def _libyaml_loader_base() -> Any:
    import yaml

    return getattr(yaml, "CSafeLoader", None)  # PyYAML built with libyaml (the wheels are)


def _positions_loader(filename: str, base: Any) -> type[Any]:
    """dagster_shared's ``SourcePositionLoader`` on libyaml's parser instead of the pure-Python
    one: the same values and source positions (each node's marks), parsed in C."""
    from dagster_shared.yaml_utils import YAML_TIMESTAMP_TAG
    from dagster_shared.yaml_utils.source_position import (
        KeyPathSegment,
        LineCol,
        SourcePosition,
        SourcePositionTree,
        ValueAndSourcePositionTree,
    )

    class Loader(base):
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


def parse_component_yaml(
    src: str, filename: str = "<string>", implicits_to_remove: Sequence[str] = ()
) -> list[Any]:
    """``dagster_shared.yaml_utils.parse_yamls_with_source_position`` on libyaml's parser (the
    same trees: ``tests/test_compat.py`` compares both on every ``defs.yaml`` of the demo)."""
    import yaml

    base = _libyaml_loader_base()
    if base is None:  # PyYAML without libyaml: dagster's own parser
        from dagster_shared.yaml_utils import parse_yamls_with_source_position

        return parse_yamls_with_source_position(src, filename)
    stream = io.StringIO(src)
    stream.name = filename  # type: ignore[attr-defined]  # libyaml names the file in its errors
    return list(yaml.load_all(stream, Loader=_positions_loader(filename, base)))


def component_yaml_in_c_supported() -> bool:
    """Dagster in the tested range, its loader's parser where the hook expects it, and libyaml."""
    if not tested("dagster") or _libyaml_loader_base() is None:
        return False
    module = sys.modules.get(COMPONENT_DECL_MODULE)
    if module is None:
        import importlib

        module = importlib.import_module(COMPONENT_DECL_MODULE)
    return callable(getattr(module, COMPONENT_YAML_PARSER, None))


@contextmanager
def component_yaml_in_c(*, enabled: bool | None = None) -> Iterator[None]:
    """During the block, Dagster's component loader parses each ``defs.yaml`` with
    :func:`parse_component_yaml` (libyaml) instead of PyYAML's pure-Python parser.

    Measured gain: 0.36 s → 0.10 s for the 203 ``defs.yaml`` files of a 200-product project,
    10 % of its definitions load (docs/performance.md, "What changed (session 3: definitions)",
    item 4). Dagster offers no option for the parser; its loader
    (``dagster.components.core.decl.build_component_decl_from_yaml_file``) calls the module
    global ``parse_yamls_with_source_position``, which this replaces for the block only and puts
    back after (a process-wide change while the block runs: use it around the build only).

    Public path (Dagster outside 1.13.*, no libyaml, the name gone, or ``enabled=False``):
    Dagster's own parser, nothing replaced.
    """
    if not (component_yaml_in_c_supported() if enabled is None else enabled):
        yield
        return
    module = sys.modules[COMPONENT_DECL_MODULE]
    original = getattr(module, COMPONENT_YAML_PARSER)
    setattr(module, COMPONENT_YAML_PARSER, parse_component_yaml)
    try:
        yield
    finally:
        setattr(module, COMPONENT_YAML_PARSER, original)


# -- Dagster's component tree: its declarations mapped once per build ---------------------------

# The private target: the method that maps every location of the tree to its declaration,
# walking the whole tree; the tree calls it once for every component it loads.
COMPONENT_TREE_MODULE = "dagster.components.core.component_tree"
COMPONENT_DECL_TREE = "_component_decl_tree"


def _component_tree_class() -> Any:
    """The class that defines the mapping method (Dagster's ``@record`` puts ``ComponentTree``
    on top of the class it decorates), or None."""
    import importlib

    module = importlib.import_module(COMPONENT_TREE_MODULE)
    tree = getattr(module, "ComponentTree", None)
    if not isinstance(tree, type):
        return None
    return next((c for c in tree.__mro__ if COMPONENT_DECL_TREE in vars(c)), None)


def component_tree_walked_once_supported() -> bool:
    """Dagster in the tested range, and the tree's mapping method where the hook expects it."""
    if not tested("dagster"):
        return False
    tree = _component_tree_class()
    return tree is not None and callable(vars(tree)[COMPONENT_DECL_TREE])


@contextmanager
def component_tree_walked_once(*, enabled: bool | None = None) -> Iterator[None]:
    """During the block, a component tree maps its declarations once, not once per component.

    Dagster's ``ComponentTree._component_decl_tree`` walks the whole tree (a generator per
    level) to find one component's declaration, and the tree loads every component through it:
    quadratic in the number of ``defs.yaml`` files. Measured at 200 products (420 locations):
    0.30 s of CPU of a 2000-model load, 961,380 generator steps (docs/performance.md,
    "Definitions (session 6)"). Within the block, each tree object keeps the mapping of its
    first call (the same declarations: the filesystem part is cached by the tree itself); the
    block is one build, so a component added meanwhile in the UI (Dagster's app-managed
    components) is seen at the next build, as a file added to ``defs/`` is.

    Public path (Dagster outside 1.13.*, the method gone, or ``enabled=False``): Dagster's own
    walk, nothing replaced. Builds running at once in threads share one replacement, installed
    by the first block to enter and removed by the last to leave (each tree its own mapping).
    """
    if not (component_tree_walked_once_supported() if enabled is None else enabled):
        yield
        return
    global _WALKS_OPEN
    tree_class = _component_tree_class()
    with _WALKS_LOCK:
        if _WALKS_OPEN == 0:
            original = vars(tree_class)[COMPONENT_DECL_TREE]

            def walked_once(self: Any) -> dict[Any, Any]:
                known = _WALKED.get(id(self))
                if known is None or known[0] is not self:
                    known = _WALKED[id(self)] = (self, original(self))
                return known[1]

            walked_once.__wrapped__ = original  # type: ignore[attr-defined]
            setattr(tree_class, COMPONENT_DECL_TREE, walked_once)
        _WALKS_OPEN += 1
    try:
        yield
    finally:
        with _WALKS_LOCK:
            _WALKS_OPEN -= 1
            if _WALKS_OPEN == 0:
                installed = vars(tree_class)[COMPONENT_DECL_TREE]
                stock = getattr(installed, "__wrapped__", None)
                if stock is not None:  # else someone replaced it since: theirs stays
                    setattr(tree_class, COMPONENT_DECL_TREE, stock)
                _WALKED.clear()


_WALKS_LOCK = threading.Lock()
_WALKS_OPEN = 0  # blocks of component_tree_walked_once open in this process
_WALKED: dict[int, tuple[Any, dict[Any, Any]]] = {}  # id(tree) -> (tree, its mapping)


# -- dagster-dbt: what DbtCliResource.cli computes, for dbt run in process ----------------------


def in_process_dbt_supported() -> bool:
    """Whether ddp may run dbt in the Dagster process (``ddp_assets/dbt/in_process.py``).

    Measured gain: a demo ``ddp materialize --all`` has three dbt invocations; as subprocesses
    each paid a Python start, dbt's imports and a partial parse (about 2.7 s each). In process,
    its dbt steps took 11.3 and 14.8 s against 30.2 and 32.7 s, and the run used 24 % less CPU
    (docs/performance.md, "dbt in process, measured alone"). What it needs from dagster-dbt
    beyond its public API is
    :func:`plan_dbt_invocation`. Public path (dagster-dbt outside 0.29.*, dbt-core outside
    1.11.*, or a helper gone): dagster-dbt's own ``DbtCliResource.cli``, one dbt process per
    invocation, exactly as ``DDP_DBT_SUBPROCESS=1`` does.
    """
    if not (tested("dagster-dbt") and tested("dbt-core")):
        return False
    try:
        from dagster_dbt.asset_utils import (  # noqa: F401
            DBT_INDIRECT_SELECTION_ENV,
            extract_runtime_selection_from_args,
            get_updated_cli_invocation_params_for_context,
        )
        from dagster_dbt.dagster_dbt_translator import validate_opt_translator  # noqa: F401
        from dagster_dbt.dbt_manifest import validate_manifest  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class DbtInvocationPlan:
    """What ``DbtCliResource.cli`` computes from its arguments before it starts dbt."""

    args: list[str]  # the command's arguments, less the runtime selection ones
    selection_args: list[str]  # --select/--exclude ... for the context's selected assets
    env: dict[str, str]  # dbt's indirect selection, when the selected checks need one
    manifest: Mapping[str, Any]
    translator: DagsterDbtTranslator
    project: DbtProject | None


def plan_dbt_invocation(
    args: Sequence[str],
    *,
    context: dg.OpExecutionContext | dg.AssetExecutionContext | None,
    manifest: Any,
    dagster_dbt_translator: DagsterDbtTranslator | None,
) -> DbtInvocationPlan:
    """dagster-dbt's own helpers, as ``DbtCliResource.cli`` (0.29) calls them: the selection of
    the context's assets and checks, the validated manifest and translator.

    Private: ``dagster_dbt.asset_utils`` and the validators are not exported from
    ``dagster_dbt``. Only call it when :func:`in_process_dbt_supported`.
    """
    from dagster_dbt import DagsterDbtTranslator
    from dagster_dbt.asset_utils import (
        DBT_INDIRECT_SELECTION_ENV,
        extract_runtime_selection_from_args,
        get_updated_cli_invocation_params_for_context,
    )
    from dagster_dbt.dagster_dbt_translator import validate_opt_translator
    from dagster_dbt.dbt_manifest import validate_manifest

    translator = validate_opt_translator(dagster_dbt_translator) or DagsterDbtTranslator()
    checked = validate_manifest(manifest) if manifest else {}
    cleaned, runtime_selects, runtime_excludes = extract_runtime_selection_from_args(args)
    params = get_updated_cli_invocation_params_for_context(
        context=context,
        manifest=checked,
        dagster_dbt_translator=translator,
        runtime_selects=runtime_selects,
        runtime_excludes=runtime_excludes,
    )
    env = (
        {DBT_INDIRECT_SELECTION_ENV: params.indirect_selection} if params.indirect_selection else {}
    )
    return DbtInvocationPlan(
        args=list(cleaned),
        selection_args=list(params.selection_args),
        env=env,
        manifest=params.manifest,
        translator=params.dagster_dbt_translator,
        project=params.dbt_project,
    )


def installed_dbt_version() -> Version:
    """The installed dbt-core's version, from its package metadata (public: a read), for
    ``DbtCliInvocation(cli_version=...)`` of an in-process invocation; dagster-dbt's resource
    asks a ``dbt --version`` subprocess for it."""
    return Version(importlib.metadata.version("dbt-core"))


# -- leaving a process fast -----------------------------------------------------------------------


def release_multiprocessing_resources() -> bool:
    """Unlink the named semaphores of the process's ``multiprocessing`` objects, as a normal exit
    does, for a process about to leave with ``os._exit``; True if it ran.

    ``ddp`` leaves with ``os._exit`` once a command's work is done (the interpreter's teardown
    of 4,400 modules cost 1.4 s of a demo run: ``cli/console.py::leave``). That skips
    ``multiprocessing``'s exit hook, so the locks dbt makes from a spawn context (every
    ``Manifest`` and connection manager has one) stayed registered with the resource tracker,
    which then warned of "leaked semaphore objects" on every run. Private:
    ``multiprocessing.util._exit_function`` (CPython 3.11 to 3.13, :data:`TESTED_PYTHON`); elsewhere
    nothing is done and the tracker cleans up after its own warning.
    """
    util = sys.modules.get("multiprocessing.util")
    exit_function = getattr(util, "_exit_function", None)
    if util is None or not callable(exit_function) or not python_tested():
        return False
    try:
        exit_function()
    except Exception:  # best effort: the tracker still unlinks what is left
        return False
    return True


# -- Dagster's SQLite event log: one engine per database file ----------------------------------

KEEP_ENGINES = 8  # the index plus the few runs being written or watched at once


def pooled_sqlite_event_log_supported(storage: Any) -> bool:
    """Whether :func:`pool_sqlite_event_log` may change ``storage``: Dagster's own SQLite event
    log (exactly that class, not a subclass a user configured) in a tested Dagster."""
    if not tested("dagster"):
        return False
    try:
        from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
            SqliteEventLogStorage,
        )
    except ImportError:
        return False
    return type(storage) is SqliteEventLogStorage and callable(getattr(storage, "_connect", None))


def pool_sqlite_event_log(instance: dg.DagsterInstance) -> bool:
    """Keep the SQLite engines of ``instance``'s stock event log between events; True if done.

    Measured (session 5, ``cProfile`` of a demo ``ddp materialize --all`` at 100k rows): Dagster's
    ``SqliteEventLogStorage`` stored its 440 events in 9.3 s of a 26 s run, 5.7 s of it in
    ``_connect``, which creates a SQLAlchemy engine and a SQLite connection, commits and
    disposes of both for every event (twice for an asset event: the run's file and the index).
    This keeps one engine per database file (the most recent :data:`KEEP_ENGINES`), its
    connections in WAL mode with ``synchronous=NORMAL`` (SQLite: safe from corruption; a power
    cut may lose the last events), and remembers the tables ``has_table`` found.

    Only ``instance``'s storage object changes (its ``_connect``, Dagster's private connection
    hook, and ``has_table``, bound on the object): the files, schema and locking are Dagster's,
    so the webserver, the daemon and other processes read them as usual, and ``dagster.yaml``
    names only Dagster's classes. ``ddp`` applies it to the instance it runs with
    (``runtime/instance.py``); runs the daemon launches use Dagster's storage as it is.
    Outside the tested Dagster, or on any other storage (PostgreSQL), nothing is done.
    """
    storage: Any = instance.event_log_storage
    if not pooled_sqlite_event_log_supported(storage):
        return False
    from collections import OrderedDict

    from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import QueuePool

    engines: OrderedDict[str, Any] = OrderedDict()
    tables: set[str] = set()
    stock_has_table = storage.has_table
    stock_delete_events = storage.delete_events
    stock_wipe = storage.wipe
    stock_dispose = storage.dispose

    def engine_for(shard: str) -> Any:
        engine = engines.get(shard)
        if engine is not None:
            engines.move_to_end(shard)
            return engine
        engine = create_engine(
            storage.conn_string_for_shard(shard),
            poolclass=QueuePool,
            pool_size=1,
            max_overflow=2,
            # the storage's own lock serializes its threads; the pool hands a connection to
            # whichever thread holds it
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
        event.listen(engine, "connect", _sync_at_checkpoints)
        if shard not in storage._initialized_dbs:
            storage._initdb(engine)
            storage._initialized_dbs.add(shard)
        engines[shard] = engine
        while len(engines) > KEEP_ENGINES:
            _, oldest = engines.popitem(last=False)
            oldest.dispose()
        return engine

    @contextmanager
    def connect(shard: str) -> Iterator[Any]:
        with storage._db_lock, engine_for(shard).connect() as connection, connection.begin():
            yield connection

    def has_table(table_name: str) -> bool:
        if table_name in tables:
            return True
        found = stock_has_table(table_name)
        if found:
            tables.add(table_name)
        return found

    def forget_engines() -> None:
        with storage._db_lock:
            for engine in engines.values():
                engine.dispose()
            engines.clear()

    def delete_events(run_id: str) -> None:
        forget_engines()  # the run's database file may be removed
        stock_delete_events(run_id)

    def wipe() -> None:
        forget_engines()
        tables.clear()
        stock_wipe()

    def dispose() -> None:
        forget_engines()
        stock_dispose()

    storage._connect = connect
    storage.has_table = has_table
    storage.delete_events = delete_events
    storage.wipe = wipe
    storage.dispose = dispose
    storage._ddp_engines = engines  # for the tests
    return True


def _sync_at_checkpoints(connection: Any, _record: Any) -> None:
    """WAL and ``synchronous=NORMAL`` on every new SQLite connection of the pool."""
    cursor = connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


# -- dbt's model context: the names a model may call besides macros -----------------------------


def dbt_context_members() -> frozenset[str] | None:
    """The members of dbt's model context (``ref``, ``source``, ``config``, ``var``, ``this``,
    ``adapter``...), for ``ddp validate``'s undefined-macro check (``dbt/macro_check.py``);
    None outside the tested dbt-core or when dbt keeps them elsewhere.

    Private: ``dbt.context.providers.ModelContext._context_members_``, the table dbt's
    ``@contextmember`` decorator fills (dbt-core 1.11, :data:`TESTED`). dbt has no public list
    of these names (a context is only built for a parsed node, with an adapter). Public path
    (None): the check cannot tell a context member from a misspelt macro, so it reports only
    package-qualified calls to a macro the manifest's package lacks.
    """
    if not tested("dbt-core"):
        return None
    try:
        from dbt.context.providers import ModelContext
    except ImportError:
        return None
    # the class's own table (its metaclass merges the bases' into it), not a base's subset
    members = vars(ModelContext).get("_context_members_")
    if not isinstance(members, Mapping) or not members:
        return None
    return frozenset(str(name) for name in members)


def dbt_jinja_environment() -> Any:
    """The Jinja environment dbt renders models with (its ``{% macro %}``, ``{% test %}`` and
    ``{% materialization %}`` tags, its globals), to parse a model as dbt does.

    ``dbt_common.clients.jinja.get_environment`` (not underscored, but dbt-common documents no
    API), in the tested dbt-core; elsewhere a plain Jinja environment with the ``do`` and loop
    controls extensions: a file using dbt's own tags then does not parse, and is left to
    ``dbt parse``.
    """
    if tested("dbt-core"):
        try:
            from dbt_common.clients.jinja import get_environment

            return get_environment()
        except ImportError:
            pass
    import jinja2

    return jinja2.Environment(extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"])
