"""``ddp import dbt``: a team's existing dbt project becomes product folders of a ddp project.

What the dbt project already says is carried over, never asked again:

- products from dbt groups (else the first folder under the model path, else the sources a
  model reads), with owners from the groups' owners and the models' ``meta.owner``;
- file input ports from sources over local files (dbt-duckdb ``external_location``) and from
  seeds, whose files are copied into the landing zone; ``source()`` and seed ``ref()`` calls
  are rewritten to the product's own ports (:mod:`.jinja_refs`);
- product input ports from the ``ref`` graph between products (a model another product refs, or
  a test of another product refs, becomes an output port);
- output ports from public models and the models exposures depend on (else the marts, else a
  product's last models), each with an ODCS contract from the relation's columns and types
  (``DESCRIBE``), descriptions, constraints and the tests a contract states (``not_null``,
  ``unique``, ``accepted_values``);
- everything else of the team's dbt stays dbt: the remaining properties of every model (tests,
  descriptions, configs, ``time_spine``), unit tests, semantic models and metrics go to the
  product's ``models/_properties.yml`` (merged by :mod:`ddp_assets.dbt.properties` with what
  ddp generates); project macros to ``dbt_project/macros/<project>/``; packages to
  ``dbt_project/packages.yml`` (local packages copied beside it), installed with ``dbt deps``.

Running it again on an unchanged project changes nothing: files are written only when their
text differs, contracts are refreshed without touching hand-written parts, and an existing
``defs.yaml`` keeps everything but the ports the dbt project derives.
"""

from __future__ import annotations

import copy
import io
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from ddp_assets.dbt.packages import install_packages
from ddp_assets.naming import published_relation
from ddp_assets.onboard.contracts import (
    ColumnFacts,
    ObjectFacts,
    contract_text,
    physical_type,
    refresh_contract,
)
from ddp_assets.onboard.jinja_refs import rewrite_calls
from ddp_assets.onboard.reader import DbtSource, read_dbt_project
from ddp_assets.settings import ProjectPaths
from ddp_assets.spec.errors import SpecErrors, SpecProblem, relative

GroupBy = Literal["group", "folder", "source"]
PROPERTIES_FILE = "_properties.yml"
CONTRACT_TESTS = ("not_null", "unique", "accepted_values")
_FORMATS = {".csv": "csv", ".parquet": "parquet", ".json": "json", ".jsonl": "json"}
_CARRIED_CONFIG = ("materialized", "unique_key", "incremental_strategy", "on_schema_change")
_DEFAULTS = {"materialized": "view", "on_schema_change": "ignore"}
_TEST_CONFIG_KEYS = {"config", "where", "severity", "error_if", "warn_if", "limit", "name"}
SPEC_HEADER = (
    "# Imported from the dbt project '{project}' by `ddp import dbt`. Edit freely: importing\n"
    "# again refreshes the ports the dbt project derives and keeps everything else.\n"
)
PROPERTIES_HEADER = (
    "# The dbt properties of this product's models, imported from the dbt project '{project}'\n"
    "# by `ddp import dbt` (importing again rewrites this file). ddp merges them with the\n"
    "# properties it generates from defs.yaml and the contracts (ddp_assets/dbt/properties.py).\n"
)
CONTRACT_HEADER = (
    "# Written by `ddp import dbt` from the built relation (DESCRIBE) and the model's dbt tests;\n"
    "# `ddp contract infer {product} {port}` refreshes it and keeps what you write here.\n"
)


def slug(text: str) -> str:
    value = re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_")
    if not value or not value[0].isalpha():
        value = f"p_{value}"
    return value[:63]


@dataclass
class Planned:
    """One product to write."""

    id: str
    domain: str
    owners: list[str]
    description: str
    models: list[str] = field(default_factory=list)  # unique ids
    ports: list[str] = field(default_factory=list)  # unique ids of output-port models
    file_ports: dict[str, dict[str, Any]] = field(default_factory=dict)  # dbt uid → port
    product_ports: dict[str, dict[str, Any]] = field(default_factory=dict)  # model uid → port
    properties: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))

    @property
    def folder(self) -> Path:
        return Path(self.domain) / self.id


@dataclass
class ImportReport:
    project: str
    group_by: str
    dry_run: bool
    products: list[Planned] = field(default_factory=list)
    mapped: list[str] = field(default_factory=list)
    not_mapped: list[tuple[str, str]] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    next_command: str = "ddp validate && ddp materialize --all"

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "group_by": self.group_by,
            "dry_run": self.dry_run,
            "products": [
                {
                    "id": p.id,
                    "domain": p.domain,
                    "owners": p.owners,
                    "models": len(p.models),
                    "output_ports": sorted(_name(uid) for uid in p.ports),
                    "input_ports": sorted(
                        [port["name"] for port in p.file_ports.values()]
                        + [port["name"] for port in p.product_ports.values()]
                    ),
                }
                for p in self.products
            ],
            "mapped": self.mapped,
            "not_mapped": [{"what": w, "why": y} for w, y in self.not_mapped],
            "written": self.written,
            "unchanged": self.unchanged,
            "next": self.next_command,
        }


def _name(uid: str) -> str:
    return uid.rsplit(".", 1)[-1]


# -- reading the team's YAML ------------------------------------------------------------------


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Yaml:
    """The team's properties files, read once each, entries indexed by kind and name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._files: dict[str, dict[str, Any]] = {}

    def entry(self, file: str | None, kind: str, name: str) -> dict[str, Any] | None:
        if not file:
            return None
        relative_path = file.split("://", 1)[-1]
        if relative_path not in self._files:
            try:
                text = (self.root / relative_path).read_text("utf-8")
                document = yaml.load(text, Loader=_LOADER) or {}  # libyaml: a big project's yml
            except (OSError, yaml.YAMLError):
                document = {}
            self._files[relative_path] = document if isinstance(document, dict) else {}
        for item in self._files[relative_path].get(kind) or []:
            if isinstance(item, dict) and item.get("name") == name:
                return copy.deepcopy(item)
        return None


# -- the plan ---------------------------------------------------------------------------------


def _product_of_models(source: DbtSource, group_by: GroupBy | None) -> tuple[dict[str, str], str]:
    models = source.nodes("model")
    grouped = any(_group(m) for m in models)
    mode: GroupBy = group_by or ("group" if grouped else "folder")
    project = slug(source.name)
    owner: dict[str, str] = {}
    if mode == "source":
        sources = _upstream_sources(source)
        for model in models:
            names = sorted(sources.get(model["unique_id"], set()))
            owner[model["unique_id"]] = slug(names[0]) if names else project
        return owner, mode
    for model in models:
        group = _group(model) if mode == "group" else None
        if group:
            owner[model["unique_id"]] = slug(group)
            continue
        parts = Path(model.get("path") or "").parts
        owner[model["unique_id"]] = slug(parts[0]) if len(parts) > 1 else project
    return owner, mode


def _group(node: dict[str, Any]) -> str | None:
    return node.get("group") or (node.get("config") or {}).get("group")


def _upstream_sources(source: DbtSource) -> dict[str, set[str]]:
    nodes = source.manifest.get("nodes", {})
    sources = source.manifest.get("sources", {})
    memo: dict[str, set[str]] = {}

    def visit(uid: str, seen: frozenset[str]) -> set[str]:
        if uid in memo:
            return memo[uid]
        found: set[str] = set()
        for dep in nodes.get(uid, {}).get("depends_on", {}).get("nodes", []):
            if dep in sources:
                found.add(sources[dep]["source_name"])
            elif dep in nodes and dep not in seen:
                found |= visit(dep, seen | {uid})
        memo[uid] = found
        return found

    for model in source.nodes("model"):
        visit(model["unique_id"], frozenset())
    return memo


def _owners(
    source: DbtSource, product_models: list[dict[str, Any]], group: str | None
) -> list[str]:
    owners: list[str] = []
    for item in source.manifest.get("groups", {}).values():
        if group and item.get("name") == group:
            owner = item.get("owner") or {}
            if owner.get("email"):
                owners.append(str(owner["email"]))
            if owner.get("name"):
                owners.append(f"team:{slug(str(owner['name'])).replace('_', '-')}")
    for model in product_models:
        meta_owner = (model.get("config", {}).get("meta") or {}).get("owner") or (
            model.get("meta") or {}
        ).get("owner")
        if isinstance(meta_owner, str) and ("@" in meta_owner or meta_owner.startswith("team:")):
            owners.append(meta_owner)
    return list(dict.fromkeys(owners))


def plan_import(source: DbtSource, group_by: GroupBy | None, report: ImportReport) -> None:
    models = {m["unique_id"]: m for m in source.nodes("model")}
    product_of, mode = _product_of_models(source, group_by)
    report.group_by = mode
    project = slug(source.name)
    products: dict[str, Planned] = {}
    for uid in sorted(models):
        pid = product_of[uid]
        if pid not in products:
            members = [models[u] for u in models if product_of[u] == pid]
            group = next((g for g in (_group(m) for m in members) if g), None)
            owners = _owners(source, members, group if mode == "group" else None)
            if not owners:
                owners = [f"team:{project.replace('_', '-')}"]
                report.not_mapped.append(
                    (
                        f"owners of product '{pid}'",
                        f"no group owner or meta.owner in the dbt project: wrote '{owners[0]}'; "
                        "put the real owners in its defs.yaml",
                    )
                )
            domain = next(
                (
                    slug(str((m.get("config", {}).get("meta") or {}).get("domain")))
                    for m in members
                    if (m.get("config", {}).get("meta") or {}).get("domain")
                ),
                project,
            )
            how = {"group": f"dbt group '{group}'", "folder": f"folder '{pid}'"}.get(
                mode if group or mode != "group" else "folder", f"source '{pid}'"
            )
            description = (
                f"The models of the {how} of the dbt project '{source.name}', "
                "imported with `ddp import dbt`."
            )
            products[pid] = Planned(pid, domain, owners, description)
        products[pid].models.append(uid)

    # output ports: public models, exposures' models, and every model another product needs
    public = {uid for uid, m in models.items() if _access(m) == "public"}
    for exposure in source.manifest.get("exposures", {}).values():
        for dep in exposure.get("depends_on", {}).get("nodes", []):
            if dep in models:
                public.add(dep)
                report.mapped.append(
                    f"exposure '{exposure['name']}' → {product_of[dep]}.{_name(dep)} is an "
                    "output port (its consumers are not imported: grant them in policies)"
                )
    needs: dict[str, set[str]] = defaultdict(set)  # product → model uids of other products
    file_needs: dict[str, set[str]] = defaultdict(set)  # product → source/seed uids
    for uid in models:
        pid = product_of[uid]
        for dep in models[uid].get("depends_on", {}).get("nodes", []):
            if dep in models and product_of[dep] != pid:
                needs[pid].add(dep)
            elif dep.startswith(("source.", "seed.")):
                file_needs[pid].add(dep)
    for test in source.nodes("test"):
        attached = str(test.get("attached_node") or "")
        if attached not in models:
            continue
        pid = product_of[attached]
        for dep in test.get("depends_on", {}).get("nodes", []):
            if dep in models and product_of[dep] != pid:
                needs[pid].add(dep)
            elif dep.startswith(("source.", "seed.")):
                file_needs[pid].add(dep)
    for pid, deps in needs.items():
        for dep in deps:
            if dep not in public:
                report.mapped.append(
                    f"{product_of[dep]}.{_name(dep)} is an output port: product '{pid}' refs it"
                )
            public.add(dep)
    marts = not any(_access(m) == "public" for m in models.values())
    for product in products.values():
        product.ports = sorted(uid for uid in product.models if uid in public)
        if not product.ports and marts:
            product.ports = sorted(
                uid
                for uid in product.models
                if {"marts", "mart"} & set(Path(models[uid].get("path", "")).parts)
            )
        if not product.ports:  # its last models: the ones no other of its models refs
            used = {
                dep
                for uid in product.models
                for dep in models[uid].get("depends_on", {}).get("nodes", [])
            }
            product.ports = sorted(uid for uid in product.models if uid not in used)
            report.not_mapped.append(
                (
                    f"output ports of '{product.id}'",
                    "no public model, exposure or cross-product ref: its last models "
                    f"({', '.join(_name(u) for u in product.ports)}) became the ports; "
                    "set `access: public` in dbt to choose",
                )
            )

    # input ports
    for pid, deps in needs.items():
        product = products[pid]
        for dep in sorted(deps):
            upstream = products[product_of[dep]]
            product.product_ports[dep] = {
                "name": _name(dep),
                "type": "product",
                "product": f"{upstream.id}.{_name(dep)}",
                "contract": {
                    "id": _contract_id(upstream, _name(dep)),
                    "version": ">=1.0.0,<2.0.0",
                },
            }
    for pid, deps in file_needs.items():
        product = products[pid]
        taken = {p["name"] for p in product.product_ports.values()}
        for dep in sorted(deps):
            port = _file_port(source, dep, product, taken, report)
            if port is not None:
                product.file_ports[dep] = port
                taken.add(port["name"])
    report.products = [products[pid] for pid in sorted(products)]
    for product in report.products:
        report.mapped.append(
            f"product '{product.id}' ({product.folder}): {len(product.models)} model(s), "
            f"output ports {', '.join(_name(u) for u in product.ports)}; "
            f"owners {', '.join(product.owners)}"
        )
    _not_mapped_nodes(source, report)


def _access(model: dict[str, Any]) -> str | None:
    return model.get("access") or (model.get("config") or {}).get("access")


def _contract_id(product: Planned, port: str) -> str:
    return f"urn:ddp:{product.domain}:{product.id}:{port}"


def _file_port(
    source: DbtSource, uid: str, product: Planned, taken: set[str], report: ImportReport
) -> dict[str, Any] | None:
    if uid.startswith("seed."):
        node = source.manifest["nodes"][uid]
        path: Path | None = source.root / node["original_file_path"]
        name = slug(node["name"])
        what = f"seed '{node['name']}'"
        description = node.get("description") or f"The dbt seed {node['name']} (a CSV file)."
    else:
        node = source.manifest["sources"][uid]
        path = source.external_path(node)
        name = slug(node["name"])
        if name in taken:
            name = slug(f"{node['source_name']}_{node['name']}")
        what = f"source '{node['source_name']}.{node['name']}'"
        description = node.get("description") or None
    if name in taken:
        name = slug(f"{uid.split('.')[0]}_{name}")
    file_format = _FORMATS.get(path.suffix.lower()) if path is not None else None
    if path is None or file_format is None:
        report.not_mapped.append(
            (
                f"{what} (read by '{product.id}')",
                "no local CSV, Parquet or JSON file behind it (dbt-duckdb external_location): "
                f"its input port '{name}' waits for files in landing/{product.id}/{name}/",
            )
        )
        file_format = "parquet"
        pattern = f"{product.id}/{name}/*.parquet"
    else:
        pattern = f"{product.id}/{name}/*{path.suffix.lower()}"
        report.mapped.append(f"{what} → file input port {product.id}.{name} ({pattern})")
    port: dict[str, Any] = {"name": name, "type": "file", "path": pattern, "format": file_format}
    if description:
        port["description"] = description
    port["_file"] = path
    port["_call"] = ("source", (product.id, name))
    return port


def _not_mapped_nodes(source: DbtSource, report: ImportReport) -> None:
    for kind, why in (
        ("snapshot", "ddp has no snapshots yet: keep it in dbt, or model it as an incremental"),
        ("analysis", "analyses are not built; copy the SQL where you need it"),
    ):
        for node in source.nodes(kind):
            report.not_mapped.append((f"{kind} '{node['name']}'", why))
    for test in source.nodes("test"):
        if str(test.get("attached_node") or "").startswith("source.") or any(
            d.startswith("source.") for d in test.get("depends_on", {}).get("nodes", [])[:1]
        ):
            report.not_mapped.append(
                (
                    f"test '{test['name']}' on a source",
                    "a landing file's checks are its contract: write "
                    "contracts/<port>.odcs.yaml for the file input port",
                )
            )
    for model in source.nodes("model"):
        if model.get("language") == "python":
            report.not_mapped.append(
                (
                    f"dbt Python model '{model['name']}'",
                    "ddp runs Python models itself: declare it under python_models",
                )
            )
        if model.get("version") is not None:
            report.not_mapped.append(
                (
                    f"version {model['version']} of model '{model['name']}'",
                    "ddp versions ports by their contract's version; only the latest is kept",
                )
            )
    for query in source.manifest.get("saved_queries", {}).values():
        report.not_mapped.append(
            (f"saved query '{query['name']}'", "not carried yet: copy it to _properties.yml")
        )


# -- rewriting the team's SQL and YAML --------------------------------------------------------


def _rewriter(source: DbtSource, product: Planned) -> Any:
    calls: dict[tuple[str, tuple[str, ...]], tuple[str, tuple[str, ...]]] = {}
    for uid, port in product.file_ports.items():
        if uid.startswith("seed."):
            seed = _name(uid)
            calls[("ref", (seed,))] = port["_call"]
            calls[("ref", (source.name, seed))] = port["_call"]
        else:
            node = source.manifest["sources"][uid]
            calls[("source", (node["source_name"], node["name"]))] = port["_call"]

    def rewrite(name: str, args: tuple[str, ...]) -> tuple[str, tuple[str, ...]] | None:
        if (name, args) in calls:
            return calls[(name, args)]
        if name == "ref" and len(args) == 2 and args[0] == source.name:
            return ("ref", (args[1],))
        return None

    return rewrite


def _rewrite_string(value: str, rewrite: Any) -> str:
    """A YAML value such as ``ref('x')`` rewritten (read as the Jinja expression it is)."""
    result = rewrite_calls("{{ " + value + " }}", rewrite)
    if result.changed and result.text.startswith("{{ ") and result.text.endswith(" }}"):
        return result.text[3:-3]
    return value


def _rewrite_values(value: Any, rewrite: Any) -> Any:
    if isinstance(value, str) and ("ref(" in value or "source(" in value):
        return _rewrite_string(value, rewrite)
    if isinstance(value, list):
        return [_rewrite_values(v, rewrite) for v in value]
    if isinstance(value, dict):
        return {k: _rewrite_values(v, rewrite) for k, v in value.items()}
    return value


def _test_parts(test: Any) -> tuple[str, dict[str, Any], bool]:
    """A YAML test: its name, its arguments, and whether it has a config of its own."""
    if isinstance(test, str):
        return test, {}, False
    if isinstance(test, dict) and len(test) == 1:
        name, body = next(iter(test.items()))
        body = body if isinstance(body, dict) else {}
        arguments = dict(body.get("arguments") or {})
        arguments.update(
            {k: v for k, v in body.items() if k not in _TEST_CONFIG_KEYS | {"arguments"}}
        )
        return str(name), arguments, bool(_TEST_CONFIG_KEYS & set(body))
    return "", {}, True


def _relationship_target(arguments: dict[str, Any]) -> str | None:
    """The model a ``relationships`` test's ``to`` refs (read by Jinja's lexer), if a ref."""
    to = arguments.get("to")
    if not isinstance(to, str):
        return None
    calls = rewrite_calls("{{ " + to + " }}", lambda _n, _a: None).calls
    if len(calls) == 1 and calls[0][0] == "ref":
        return calls[0][1][-1]
    return None


def _foreign_key_rule(column: str, product: str, model: str, field_name: str) -> dict[str, Any]:
    schema, table = published_relation(product, model)
    return {
        "type": "sql",
        "description": f"Every {column} is a {field_name} of {schema}.{table} "
        "(the dbt relationships test)",
        "query": f"select count(*) from {{object}} where {column} is not null and {column} "
        f"not in (select {field_name} from {schema}.{table})",
        "mustBe": 0,
    }


def _column_facts(
    source: DbtSource,
    uid: str,
    entry: dict[str, Any] | None,
    report: ImportReport,
    port: str,
    elsewhere: dict[str, str],
) -> ObjectFacts | None:
    node = source.manifest["nodes"][uid]
    described = source.columns.get(uid)
    raw_columns = {
        str(c.get("name")): c for c in (entry or {}).get("columns") or [] if isinstance(c, dict)
    }
    if described is None:
        declared = [(n, c.get("data_type")) for n, c in raw_columns.items() if c.get("data_type")]
        why = source.type_errors.get(uid, "not built")
        if not declared:
            report.not_mapped.append(
                (f"contract of port '{port}'", f"DuckDB could not describe it ({why})")
            )
            return None
        report.not_mapped.append(
            (
                f"types of port '{port}'",
                f"DuckDB could not describe it ({why}): the declared data_types were used",
            )
        )
        described = [(n, str(t)) for n, t in declared]
    key_columns: set[str] = set()
    for constraint in node.get("constraints") or []:
        if constraint.get("type") == "primary_key":
            key_columns.update(constraint.get("columns") or [])
    facts = ObjectFacts(_name(uid), node.get("description") or None)
    for name, data_type in described:
        raw = raw_columns.get(name, {})
        column = ColumnFacts(name, physical_type(data_type), raw.get("description") or None)
        for constraint in raw.get("constraints") or []:
            kind = constraint.get("type") if isinstance(constraint, dict) else None
            column.required |= kind == "not_null"
            column.unique |= kind == "unique"
            column.primary_key |= kind == "primary_key"
        column.primary_key |= name in key_columns and len(key_columns) == 1
        for test in [*(raw.get("data_tests") or []), *(raw.get("tests") or [])]:
            test_name, arguments, configured = _test_parts(test)
            if configured:
                continue
            column.required |= test_name == "not_null"
            column.unique |= test_name == "unique"
            if test_name == "accepted_values" and isinstance(arguments.get("values"), list):
                column.valid_values = list(arguments["values"])
            target = _relationship_target(arguments) if test_name == "relationships" else None
            if target in elsewhere:
                field_name = str(arguments.get("field") or name)
                column.rules.append(_foreign_key_rule(name, elsewhere[target], target, field_name))
        if column.primary_key:
            column.required = column.unique = True
        declared_type = raw.get("data_type")
        if declared_type and physical_type(str(declared_type)) != column.physical_type:
            report.not_mapped.append(
                (
                    f"data_type of {_name(uid)}.{name}",
                    f"dbt declares '{declared_type}' but the relation has "
                    f"'{column.physical_type}': the contract says '{column.physical_type}'",
                )
            )
        facts.columns.append(column)
    return facts


def _crosses(test: Any, elsewhere: dict[str, str]) -> bool:
    name, arguments, _ = _test_parts(test)
    return name == "relationships" and _relationship_target(arguments) in elsewhere


def _model_entry(
    source: DbtSource,
    uid: str,
    entry: dict[str, Any] | None,
    is_port: bool,
    rewrite: Any,
    report: ImportReport,
    elsewhere: dict[str, str],
) -> dict[str, Any] | None:
    """The model's properties for ``_properties.yml`` (what the contract does not state).

    A ``relationships`` test into another product's port becomes a ``type: sql`` rule of the
    contract (a port) or is reported (a private model): in a ddp run dbt would run it as soon as
    the other product's model is built, before this one exists.
    """
    node = source.manifest["nodes"][uid]
    entry = dict(_rewrite_values(entry or {"name": node["name"]}, rewrite))
    for column in entry.get("columns") or []:
        for key in ("data_tests", "tests"):
            tests = column.get(key) or []
            crossing = [t for t in tests if _crosses(t, elsewhere)]
            if not crossing:
                continue
            column[key] = [t for t in tests if not _crosses(t, elsewhere)]
            if not is_port:
                report.not_mapped.append(
                    (
                        f"relationships test on {node['name']}.{column.get('name')}",
                        "it reads another product's port, which a ddp run may build first: "
                        "check it in a port's contract (a type: sql rule) instead",
                    )
                )
    for key in ("group", "access", "tests"):
        if key == "tests" and "tests" in entry:
            entry["data_tests"] = [*(entry.get("data_tests") or []), *entry.pop("tests")]
        elif key != "tests":
            entry.pop(key, None)
    config = dict(entry.get("config") or {})
    for key in ("group", "access", "contract", "schema"):
        config.pop(key, None)
    resolved = node.get("config") or {}
    if is_port:
        entry.pop("description", None)
        for key in _CARRIED_CONFIG:
            config.pop(key, None)
        if resolved.get("materialized") == "incremental":
            report.not_mapped.append(
                (
                    f"incremental materialization of port '{node['name']}'",
                    "ddp publishes a port by write-audit-publish: it is built as a table",
                )
            )
        columns = []
        for column in entry.get("columns") or []:
            kept = [
                t
                for t in [*(column.get("data_tests") or []), *(column.get("tests") or [])]
                if _test_parts(t)[0] not in CONTRACT_TESTS or _test_parts(t)[2]
            ]
            rest = {
                k: v
                for k, v in column.items()
                if k
                not in ("name", "description", "data_type", "constraints", "data_tests", "tests")
            }
            if kept or rest:
                columns.append(
                    {"name": column["name"], **rest, **({"data_tests": kept} if kept else {})}
                )
        if columns:
            entry["columns"] = columns
        else:
            entry.pop("columns", None)
        entry.pop("constraints", None)
    else:
        for key in _CARRIED_CONFIG:
            value = resolved.get(key)
            if value is not None and key not in config and _DEFAULTS.get(key) != value:
                config[key] = value
        for column in entry.get("columns") or []:
            if "tests" in column:
                column["data_tests"] = [*(column.get("data_tests") or []), *column.pop("tests")]
    if config:
        entry["config"] = config
    else:
        entry.pop("config", None)
    return entry if set(entry) - {"name"} else None


def _entries(
    source: DbtSource,
    index: _Yaml,
    report: ImportReport,
    product_of_model: dict[str, str],
) -> dict[str, dict[str, list[Any]]]:
    """Unit tests, semantic models and metrics by product, as the team wrote them."""
    out: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    manifest = source.manifest
    for test in manifest.get("unit_tests", {}).values():
        model_uid = f"model.{source.name}.{test['model']}"
        entry = index.entry(test.get("original_file_path"), "unit_tests", test["name"])
        if model_uid in product_of_model and entry is not None:
            out[product_of_model[model_uid]]["unit_tests"].append(entry)
            report.mapped.append(f"unit test '{test['name']}' → {product_of_model[model_uid]}")
        else:
            report.not_mapped.append((f"unit test '{test['name']}'", "its model was not imported"))
    semantic_product: dict[str, str] = {}
    for semantic in manifest.get("semantic_models", {}).values():
        deps = [d for d in semantic.get("depends_on", {}).get("nodes", []) if d in product_of_model]
        entry = index.entry(semantic.get("original_file_path"), "semantic_models", semantic["name"])
        if deps and entry is not None:
            pid = product_of_model[deps[0]]
            semantic_product[semantic["unique_id"]] = pid
            out[pid]["semantic_models"].append(entry)
            report.mapped.append(f"semantic model '{semantic['name']}' → {pid}")
        else:
            report.not_mapped.append(
                (f"semantic model '{semantic['name']}'", "its model was not imported")
            )
    for metric in manifest.get("metrics", {}).values():
        deps = metric.get("depends_on", {}).get("nodes", [])
        pids = {semantic_product[d] for d in deps if d in semantic_product}
        entry = index.entry(metric.get("original_file_path"), "metrics", metric["name"])
        if len(pids) == 1 and entry is not None:
            pid = pids.pop()
            out[pid]["metrics"].append(entry)
            report.mapped.append(f"metric '{metric['name']}' → {pid}")
        else:
            report.not_mapped.append(
                (
                    f"metric '{metric['name']}'",
                    "it spans several products' semantic models (or none): "
                    "keep it in the product that consumes them",
                )
            )
    return out


# -- writing ----------------------------------------------------------------------------------


class _Changes:
    """Files to write (only those whose text differs) and files to copy."""

    def __init__(self, root: Path, dry_run: bool, report: ImportReport) -> None:
        self.root, self.dry_run, self.report = root, dry_run, report

    def text(self, path: Path, text: str) -> None:
        try:
            current = path.read_text(encoding="utf-8")
        except OSError:
            current = None
        if current == text:
            self.report.unchanged += 1
            return
        self.report.written.append(relative(path, self.root))
        if not self.dry_run:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")

    def copy(self, source: Path, path: Path) -> None:
        try:
            same = path.read_bytes() == source.read_bytes()
        except OSError:
            same = False
        if same:
            self.report.unchanged += 1
            return
        self.report.written.append(relative(path, self.root))
        if not self.dry_run:
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, path)


def _round_trip() -> YAML:
    loader = YAML()
    loader.indent(mapping=2, sequence=4, offset=2)
    loader.width = 100
    loader.preserve_quotes = True
    return loader


def _dump_round_trip(document: Any) -> str:
    buffer = io.StringIO()
    _round_trip().dump(document, buffer)
    return buffer.getvalue()


def _plain(value: Any) -> Any:
    return yaml.safe_load(yaml.safe_dump(_to_builtin(value)))


def _to_builtin(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _to_builtin(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_builtin(v) for v in value]
    for kind in (bool, int, float, str):  # ruamel's scalar subclasses → plain values
        if isinstance(value, kind):
            return kind(value)
    return value


def _spec_text(existing: str | None, spec: dict[str, Any], project: str) -> str:
    """``defs.yaml``: new, or the existing one with its derived ports brought up to date."""
    if existing is None:
        body = yaml.safe_dump(
            {"type": "ddp_assets.components.DataProduct", "attributes": spec},
            sort_keys=False,
            width=100,
            allow_unicode=True,
        )
        # written as a later import will write it back (ruamel's layout): a rerun is a no-op
        return _spec_text(SPEC_HEADER.format(project=project) + body, spec, project)
    document = _round_trip().load(existing)
    attributes = document.get("attributes") if isinstance(document, CommentedMap) else None
    if not isinstance(attributes, CommentedMap):
        return existing
    for key in ("input_ports", "output_ports"):
        current = attributes.get(key)
        if not isinstance(current, list):
            attributes[key] = spec[key]
            continue
        by_name = {p.get("name"): p for p in current if isinstance(p, dict)}
        for port in spec[key]:
            mine = by_name.get(port["name"])
            if mine is None:
                current.append(port)
                continue
            for field_name, value in port.items():
                if field_name == "description" and mine.get("description"):
                    continue  # a description someone wrote is theirs
                if _plain(mine.get(field_name)) != _plain(value):
                    mine[field_name] = value
    text = _dump_round_trip(document)
    return (
        existing
        if _plain(_round_trip().load(text)) == _plain(document) and text == existing
        else text
    )


def _write_product(
    source: DbtSource,
    product: Planned,
    paths: ProjectPaths,
    index: _Yaml,
    extra: dict[str, list[Any]],
    changes: _Changes,
    report: ImportReport,
    model_products: dict[str, str],
) -> None:
    folder = paths.defs_dir / product.folder
    rewrite = _rewriter(source, product)
    nodes = source.manifest["nodes"]
    model_entries: list[dict[str, Any]] = []
    output_ports: list[dict[str, Any]] = []
    for uid in product.models:
        node = nodes[uid]
        sql = (source.root / node["original_file_path"]).read_text(encoding="utf-8")
        rewritten = rewrite_calls(sql, rewrite)
        if rewritten.error:
            report.not_mapped.append(
                (
                    f"ref/source calls of {node['original_file_path']}",
                    f"left as written: {rewritten.error}",
                )
            )
        changes.text(folder / "models" / node["path"], rewritten.text)
        entry = index.entry(node.get("patch_path"), "models", node["name"])
        is_port = uid in product.ports
        elsewhere = {name: pid for name, pid in model_products.items() if pid != product.id}
        carried = _model_entry(source, uid, entry, is_port, rewrite, report, elsewhere)
        if carried is not None:
            model_entries.append(carried)
        if not is_port:
            continue
        port_name = node["name"]
        contract_file = Path("contracts") / f"{port_name}.odcs.yaml"
        materialized = (node.get("config") or {}).get("materialized")
        port: dict[str, Any] = {
            "name": port_name,
            "type": "view" if materialized == "view" else "table",
            "model": node["name"],
            "contract": str(contract_file),
        }
        if node.get("description"):
            port["description"] = node["description"]
        output_ports.append(port)
        facts = _column_facts(source, uid, entry, report, f"{product.id}.{port_name}", elsewhere)
        if facts is not None:
            _write_contract(folder / contract_file, product, port_name, facts, changes)
    properties: dict[str, Any] = {"version": 2}
    if model_entries:
        properties["models"] = model_entries
    for kind in ("unit_tests", "semantic_models", "metrics"):
        if extra.get(kind):
            properties[kind] = _rewrite_values(extra[kind], rewrite)
    if len(properties) > 1:
        text = PROPERTIES_HEADER.format(project=source.name) + yaml.safe_dump(
            properties, sort_keys=False, width=100, allow_unicode=True
        )
        changes.text(folder / "models" / PROPERTIES_FILE, text)
    input_ports: list[dict[str, Any]] = []
    for port in product.file_ports.values():
        input_ports.append({k: v for k, v in port.items() if not k.startswith("_")})
        if port["_file"] is not None:
            landing = paths.landing_dir / port["path"].rsplit("/", 1)[0] / port["_file"].name
            changes.copy(port["_file"], landing)
    input_ports.extend(product.product_ports[u] for u in sorted(product.product_ports))
    spec = {
        "id": product.id,
        "name": product.id.replace("_", " ").title(),
        "domain": product.domain,
        "version": "1.0.0",
        "status": "active",
        "tier": "bronze",
        "owners": product.owners,
        "description": {"purpose": product.description},
        "tags": ["dbt-import"],
        "input_ports": input_ports,
        "output_ports": output_ports,
        "slos": {"refresh": "on_upstream_change" if product.product_ports else "manual"},
        "policies": {"classification": "internal"},
    }
    spec_path = folder / "defs.yaml"
    existing = spec_path.read_text(encoding="utf-8") if spec_path.is_file() else None
    changes.text(spec_path, _spec_text(existing, spec, source.name))


def _write_contract(
    path: Path, product: Planned, port: str, facts: ObjectFacts, changes: _Changes
) -> None:
    if path.is_file():
        existing = path.read_text(encoding="utf-8")
        try:
            refreshed = refresh_contract(existing, facts)
        except ValueError as error:
            raise SpecErrors(
                [SpecProblem(str(path), None, "schema", str(error), "add a schema object for it")]
            ) from None
        changes.text(path, refreshed.text if refreshed.changes else existing)
        return
    text = contract_text(
        contract_id=_contract_id(product, port),
        name=port.replace("_", " ").title(),
        version="1.0.0",
        domain=product.domain,
        product=product.id,
        obj=facts,
        header=CONTRACT_HEADER.format(product=product.id, port=port),
    )
    changes.text(path, text)


def _write_macros(
    source: DbtSource, paths: ProjectPaths, changes: _Changes, report: ImportReport
) -> None:
    target = paths.dbt_dir / "macros" / slug(source.name)
    count = 0
    for folder in source.config.get("macro-paths") or ["macros"]:
        base = source.root / folder
        for file in sorted(base.rglob("*")) if base.is_dir() else []:
            if file.is_file() and file.suffix in (".sql", ".yml", ".yaml", ".md"):
                changes.copy(file, target / file.relative_to(base))
                count += file.suffix == ".sql"
    if count:
        report.mapped.append(
            f"{count} project macro file(s) → {relative(target, paths.root)}/ "
            "(shared by all products)"
        )


def _write_packages(
    source: DbtSource, paths: ProjectPaths, changes: _Changes, report: ImportReport
) -> None:
    """Declare the project's packages once for the platform (``dbt_project/packages.yml``)."""
    packages_file = source.root / "packages.yml"
    if not packages_file.is_file():
        return
    declared = (yaml.safe_load(packages_file.read_text(encoding="utf-8")) or {}).get(
        "packages"
    ) or []
    target_file = paths.dbt_dir / "packages.yml"
    current: dict[str, Any] = {}
    if target_file.is_file():
        current = yaml.safe_load(target_file.read_text(encoding="utf-8")) or {}
    packages: list[Any] = list(current.get("packages") or [])
    for package in declared:
        if not isinstance(package, dict):
            continue
        if isinstance(package.get("local"), str):
            local = (source.root / package["local"]).resolve()
            config = _read_yaml(local / "dbt_project.yml")
            name = slug(str(config.get("name") or local.name))
            destination = paths.dbt_dir / "packages" / name
            for file in sorted(local.rglob("*")):
                parts = set(file.relative_to(local).parts)
                if file.is_file() and not parts & {"target", "dbt_packages", "logs"}:
                    changes.copy(file, destination / file.relative_to(local))
            package = {"local": f"packages/{name}"}
            report.mapped.append(
                f"local package '{name}' → {relative(destination, paths.root)}/ (packages.yml)"
            )
        else:
            report.mapped.append(f"package {package} → dbt_project/packages.yml")
        if package not in packages:
            packages.append(package)
    changes.text(target_file, yaml.safe_dump({"packages": packages}, sort_keys=False))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}
    return document if isinstance(document, dict) else {}


def _check_collisions(paths: ProjectPaths, report: ImportReport) -> None:
    problems: list[SpecProblem] = []
    for product in report.products:
        for spec in paths.defs_dir.glob(f"*/{product.id}/defs.yaml"):
            if spec.parent != paths.defs_dir / product.folder:
                problems.append(
                    SpecProblem(
                        relative(spec, paths.root),
                        None,
                        "id",
                        f"product '{product.id}' already exists in another domain",
                        "rename one of them, or import with another --group-by",
                    )
                )
    if problems:
        raise SpecErrors(problems)


def import_dbt(
    paths: ProjectPaths, project_dir: Path, group_by: GroupBy | None = None, dry_run: bool = False
) -> ImportReport:
    """Import the dbt project at ``project_dir`` into the ddp project at ``paths``."""
    with read_dbt_project(project_dir) as source:
        report = ImportReport(source.name, group_by or "group", dry_run)
        plan_import(source, group_by, report)
        _check_collisions(paths, report)
        index = _Yaml(source.root)
        product_of_model = {uid: p.id for p in report.products for uid in p.models}
        extras = _entries(source, index, report, product_of_model)
        changes = _Changes(paths.root, dry_run, report)
        model_products = {_name(uid): pid for uid, pid in product_of_model.items()}
        for product in report.products:
            _write_product(
                source, product, paths, index, extras[product.id], changes, report, model_products
            )
        _write_macros(source, paths, changes, report)
        _write_packages(source, paths, changes, report)
        if not dry_run:  # what `ddp prepare` does too, when packages.yml changes
            install_packages(paths)
    report.mapped = list(dict.fromkeys(report.mapped))
    report.not_mapped = list(dict.fromkeys(report.not_mapped))
    if report.not_mapped:
        report.next_command = "ddp validate && ddp materialize --all (after reading the list above)"
    return report
