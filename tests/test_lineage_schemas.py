"""Validating OpenLineage events against the official JSON Schemas in ``../shared/spec``.

The facet schemas reference the core schema by URL; every file is registered under its ``$id``
with ``referencing`` so nothing is fetched. ddp's own facet schema ships in the package.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from ddp_assets.lineage.facets import facet_schema


@cache
def _registry(spec_dir: Path) -> tuple[Registry, str]:
    documents = [
        json.loads(path.read_text(encoding="utf-8"))
        for path in [spec_dir / "OpenLineage.json", *sorted((spec_dir / "facets").glob("*.json"))]
    ]
    documents.append(facet_schema())
    registry: Registry = Registry().with_resources(
        (document["$id"], Resource.from_contents(document)) for document in documents
    )
    return registry, documents[0]["$id"]


def _facets(event: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    yield "run", event["run"].get("facets") or {}
    yield "job", event["job"].get("facets") or {}
    for kind in ("inputs", "outputs"):
        for dataset in event.get(kind) or []:
            yield f"{kind}[{dataset['name']}]", dataset.get("facets") or {}
            yield (
                f"{kind}[{dataset['name']}].io",
                (dataset.get("inputFacets") or dataset.get("outputFacets") or {}),
            )


def schema_errors(event: Mapping[str, Any], spec_dir: Path) -> list[str]:
    """Every error of the event against the core RunEvent schema and each facet's own schema."""
    registry, core = _registry(spec_dir)
    errors = [
        f"RunEvent: {e.message} at {list(e.absolute_path)}"
        for e in Draft202012Validator(
            {"$ref": f"{core}#/$defs/RunEvent"}, registry=registry
        ).iter_errors(event)
    ]
    for where, facets in _facets(event):
        for name, facet in facets.items():
            url = facet.get("_schemaURL", "")
            if not url:
                errors.append(f"{where}.{name}: no _schemaURL")
                continue
            validator = Draft202012Validator({"$ref": url}, registry=registry)
            errors.extend(
                f"{where}.{name}: {e.message} at {list(e.absolute_path)}"
                for e in validator.iter_errors(facet)
            )
    return errors
